//! `cargo xtask bench 9p [--rounds N] [--no-guest]`: ninepd against diod on the same tmpfs
//! directory.
//!
//! The load generator `ninep-load` (crates/ninep-server) drives both servers over loopback TCP
//! and a unix socket: streaming 1 GiB of Twrite then Tread at msize 1 MiB (Debian's diod 1.0.24
//! caps msize at 64 KiB) with the same 4 MiB of requests in flight, with the CPU time each server
//! and the client spend per GiB, sequential Tgetattr latency and pipelined
//! (32 in flight) Tgetattr throughput; over the unix socket also sequential Tgetattr on a
//! settled machine with and without `ninepd --busy-poll 50` and the client polling for replies
//! (`settled, ...` rows). Then one guest boot
//! runs create/stat/unlink of 1,000 files and a 64 MiB `dd` write and read through the kernel's
//! v9fs mount of each server.
//! Every measurement runs `--rounds` times, ninepd and diod back to back in each round; the
//! table shows each side's median and the median (and range) of the per-round ratios, since
//! this machine's speed moves more between rounds than between two runs in one round.
//! Last, ninepd with its sandbox against the same build with `--sandbox off` ([`sandbox`];
//! `--sandbox-only` runs just that).

mod sandbox;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::ceiling;
use crate::cmd::target_dir;

/// A server process, stopped on drop.
struct Server(Child);

impl Server {
    /// Fails if the server has already exited: a socket or port that answers is then some
    /// other process's (a server left running from an earlier run, say), not this one's.
    fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.0.try_wait()? {
            bail!("a server of the bench exited at start ({status}); is its port or socket taken?");
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    Ninepd,
    Diod,
    /// Not a server: the socket-to-tmpfs pipeline of [`ceiling`], for scale.
    Ceiling,
}

/// Measurements by (peer, transport, metric name): one value per round, in round order.
type Results = BTreeMap<(Peer, &'static str, String), Figures>;

#[derive(Debug, Default)]
struct Figures {
    values: Vec<f64>,
    unit: String,
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    let mut rounds = 5;
    let mut guest = true;
    let mut sandbox_only = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = it.next().context("--rounds needs a number")?.parse()?,
            "--no-guest" => guest = false,
            "--sandbox-only" => sandbox_only = true,
            other => bail!("unknown argument {other} (use --rounds N, --no-guest, --sandbox-only)"),
        }
    }
    let diod = which("diod").context("diod is not installed (apt-get install diod)")?;
    let bins = build()?;
    let dir = PathBuf::from(format!("/dev/shm/ninep-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sockets = std::env::temp_dir().join(format!("ninep-bench-{}", std::process::id()));
    std::fs::create_dir_all(&sockets)?;
    let result = if sandbox_only {
        Ok(Results::new())
    } else {
        measure(&bins, &diod, &dir, &sockets, rounds, guest)
    };
    let result = result.and_then(|results| {
        if !sandbox_only {
            print_table(&results);
        }
        sandbox::compare(&bins, &dir, &sockets, rounds)
    });
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&sockets);
    result?;
    Ok(ExitCode::SUCCESS)
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.exists())
}

/// Builds the release `ninepd` and `ninep-load`; returns their directory.
fn build() -> Result<PathBuf> {
    let status = crate::cmd::cargo()
        .args(["build", "--release", "-p", "ninep-server", "--bins"])
        .status()?;
    if !status.success() {
        bail!("building ninep-server failed");
    }
    Ok(target_dir().join("release"))
}

fn wait_for_socket(path: &Path) -> Result<()> {
    for _ in 0..200 {
        if path.exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("no server listened on {}", path.display())
}

fn wait_for_port(port: u16) -> Result<()> {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("no server listened on port {port}")
}

fn spawn(cmd: &mut Command) -> Result<Server> {
    Ok(Server(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?,
    ))
}

fn measure(
    bins: &Path,
    diod: &Path,
    dir: &Path,
    sockets: &Path,
    rounds: usize,
    guest: bool,
) -> Result<Results> {
    let ninepd = bins.join("ninepd");
    let load = bins.join("ninep-load");
    let (np_sock, diod_sock) = (sockets.join("ninepd.sock"), sockets.join("diod.sock"));
    let (np_port, diod_port) = (5741u16, 5742u16);
    let export = dir.to_str().context("non-UTF-8 path")?;
    for port in [np_port, diod_port] {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            bail!("port {port} is taken by another process: stop it before the bench");
        }
    }
    let mut servers = [
        spawn(
            // Both servers act as root, as diod -n does for a root client: no root squash
            // over the unix socket, and TCP clients squashed to root.
            Command::new(&ninepd)
                .arg(dir)
                .args(["--log-level", "warn", "--no-root-squash", "--listen"])
                .arg(format!("unix:{}", np_sock.display())),
        )?,
        spawn(Command::new(&ninepd).arg(dir).args([
            "--log-level",
            "warn",
            "--squash-uid",
            "0",
            "--squash-gid",
            "0",
            "--listen",
            &format!("tcp:127.0.0.1:{np_port}"),
        ]))?,
        spawn(
            Command::new(diod)
                .args(["-f", "-n", "-e", export, "-l"])
                .arg(&diod_sock)
                .args(["-L", "/dev/null"]),
        )?,
        spawn(Command::new(diod).args([
            "-f",
            "-n",
            "-e",
            export,
            "-l",
            &format!("127.0.0.1:{diod_port}"),
            "-L",
            "/dev/null",
        ]))?,
    ];
    wait_for_socket(&np_sock)?;
    wait_for_socket(&diod_sock)?;
    wait_for_port(np_port)?;
    wait_for_port(diod_port)?;
    for server in &mut servers {
        server.check_running()?;
    }

    let pid = |i: usize| servers[i].0.id();
    let targets = [
        (
            Peer::Ninepd,
            "unix",
            format!("unix:{}", np_sock.display()),
            "",
            pid(0),
        ),
        (
            Peer::Diod,
            "unix",
            format!("unix:{}", diod_sock.display()),
            export,
            pid(2),
        ),
        (
            Peer::Ninepd,
            "tcp",
            format!("tcp:127.0.0.1:{np_port}"),
            "",
            pid(1),
        ),
        (
            Peer::Diod,
            "tcp",
            format!("tcp:127.0.0.1:{diod_port}"),
            export,
            pid(3),
        ),
    ];
    let mut results = Results::new();
    for round in 0..rounds {
        eprintln!("xtask: bench 9p round {}/{rounds}", round + 1);
        let bytes = (STREAM_GIB * f64::from(1u32 << 30)) as u64;
        for transport in ["unix", "tcp"] {
            let read = ceiling::read_ceiling(transport, dir, bytes)?;
            let spliced = ceiling::spliced_read_ceiling(transport, dir, bytes)?;
            let write = ceiling::write_ceiling(transport, dir, bytes)?;
            eprintln!(
                "  {transport} without 9P: read {read:.0} MB/s ({spliced:.0} spliced), \
                 write {write:.0} MB/s"
            );
            for (metric, rate) in [("read", read), ("read-spliced", spliced), ("write", write)] {
                let key = (Peer::Ceiling, transport, metric.to_string());
                add(&mut results, key, rate, "MB/s");
            }
        }
        for (peer, transport, connect, aname, server) in &targets {
            let (stream, cpu) = stream_with_cpu(&load, connect, aname, *server)?;
            record(&mut results, *peer, transport, figures(&stream));
            // Writing into a new file, for comparison: each page is then allocated as it is
            // written, which on this virtual machine often means fetching it from the host.
            let new_file = run_load(&load, connect, aname, &["--test", "write"])?
                .into_iter()
                .filter(|(name, ..)| name.starts_with("write"))
                .map(|(name, value, unit)| {
                    (name.replacen("write", "write-new-file", 1), value, unit)
                });
            record(&mut results, *peer, transport, new_file.collect());
            for (phase, seconds) in cpu {
                add(
                    &mut results,
                    (*peer, transport, format!("{phase}-server-cpu")),
                    seconds * 1e3 / STREAM_GIB,
                    "ms/GiB",
                );
            }
            for test in [
                &["--test", "getattr"][..],
                &["--test", "pipelined", "--ops", "100000"],
            ] {
                let figures = run_load(&load, connect, aname, test)?;
                record(&mut results, *peer, transport, figures);
            }
        }
    }
    let unix = [&np_sock, &diod_sock].map(|s| format!("unix:{}", s.display()));
    latency_variants(bins, dir, sockets, &unix, export, rounds, &mut results)?;
    if guest {
        guest_v9fs(diod, &mut results)?;
    }
    Ok(results)
}

/// Sequential Tgetattr over a unix socket with busy-polling: `ninepd --busy-poll 50` (also on
/// one worker thread) and a client polling 50 us for its replies (`ninep-load --busy-poll`, on
/// one worker thread).
/// diod cannot poll, so its column is diod with the same client.
///
/// Each round starts after the machine has been left alone for a while ("settled"): right
/// after the streaming tests, wake-ups of idle virtual CPUs are several times faster for a
/// few seconds (sequential Tgetattr p50 14 us at up to 3 s afterwards, 64-83 us from 6 s on),
/// which hides what busy-polling is for.
fn latency_variants(
    bins: &Path,
    dir: &Path,
    sockets: &Path,
    [ninepd_connect, diod_connect]: &[String; 2],
    export: &str,
    rounds: usize,
    results: &mut Results,
) -> Result<()> {
    let servers: [(&str, &[&str]); 2] = [
        ("ninepd --busy-poll 50", &["--busy-poll", "50"]),
        (
            "ninepd --busy-poll 50 --worker-threads 1",
            &["--busy-poll", "50", "--worker-threads", "1"],
        ),
    ];
    let mut connects = vec![("ninepd", ninepd_connect.clone())];
    let mut _running = Vec::new();
    for (i, (label, args)) in servers.iter().enumerate() {
        let sock = sockets.join(format!("ninepd-poll-{i}.sock"));
        _running.push(spawn(
            Command::new(bins.join("ninepd"))
                .arg(dir)
                .args(["--log-level", "warn", "--no-root-squash"])
                .args(*args)
                .arg("--listen")
                .arg(format!("unix:{}", sock.display())),
        )?);
        wait_for_socket(&sock)?;
        connects.push((label, format!("unix:{}", sock.display())));
    }
    let load = bins.join("ninep-load");
    for round in 0..rounds {
        eprintln!("xtask: bench 9p busy-poll round {}/{rounds}", round + 1);
        std::thread::sleep(SETTLE);
        // A polling client runs one worker thread, as a polling server best does.
        for (client_label, client) in [
            ("client blocking", &[][..]),
            (
                "client --busy-poll 50 --worker-threads 1",
                &["--busy-poll", "50", "--worker-threads", "1"],
            ),
        ] {
            let client_args = [&["--test", "getattr"][..], client].concat();
            let diod = latencies(run_load(&load, diod_connect, export, &client_args)?);
            for (server, connect) in &connects {
                let label = match *server {
                    "ninepd" => format!("settled, {client_label}"),
                    server => format!("settled, {server}, {client_label}"),
                };
                let ninepd = latencies(run_load(&load, connect, "", &client_args)?);
                // Each round's figures too: the machine's state moves them more than the
                // medians show.
                let figures = |lines: &[(String, f64, String)]| {
                    lines
                        .iter()
                        .map(|(_, v, _)| format!("{v:.1}"))
                        .collect::<Vec<_>>()
                        .join("/")
                };
                eprintln!(
                    "  {label}: ninepd {} us, diod {} us",
                    figures(&ninepd),
                    figures(&diod)
                );
                for (peer, lines) in [(Peer::Ninepd, ninepd), (Peer::Diod, diod.clone())] {
                    for (name, value, unit) in lines {
                        add(
                            results,
                            (peer, "unix", format!("{name} ({label})")),
                            value,
                            &unit,
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// How long the machine is left alone before a round of busy-polling measurements.
const SETTLE: Duration = Duration::from_secs(10);

/// Runs `ninep-load` and returns its `name value unit` lines.
fn run_load(
    load: &Path,
    connect: &str,
    aname: &str,
    args: &[&str],
) -> Result<Vec<(String, f64, String)>> {
    let out = Command::new(load)
        .args(["--connect", connect, "--aname", aname])
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "ninep-load {args:?} against {connect} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(figures(&String::from_utf8_lossy(&out.stdout)))
}

/// Only the Tgetattr latency figures.
fn latencies(figures: Vec<(String, f64, String)>) -> Vec<(String, f64, String)> {
    figures
        .into_iter()
        .filter(|(name, ..)| name.starts_with("getattr"))
        .collect()
}

/// The `name value unit` lines the load generator printed.
fn figures(output: &str) -> Vec<(String, f64, String)> {
    output
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (name, value, unit) = (f.next()?, f.next()?.parse().ok()?, f.next()?);
            Some((name.to_string(), value, unit.to_string()))
        })
        .collect()
}

/// GiB streamed each way by the streaming test.
const STREAM_GIB: f64 = 1.0;

/// Runs the streaming test (Twrite, then Tread of `STREAM_GIB`) and measures the server's CPU
/// time in each half from `/proc/PID/stat`: how much work a server spends per byte, which a
/// throughput figure alone hides when the client is the bottleneck. Returns the load
/// generator's output and (phase, CPU seconds).
fn stream_with_cpu(
    load: &Path,
    connect: &str,
    aname: &str,
    server: u32,
) -> Result<(String, Vec<(&'static str, f64)>)> {
    use std::io::BufRead;
    let bytes = (STREAM_GIB * f64::from(1u32 << 30)) as u64;
    let mut child = Command::new(load)
        .args([
            "--connect",
            connect,
            "--aname",
            aname,
            "--test",
            "stream",
            "--layout",
        ])
        .args(["--bytes", &bytes.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start ninep-load")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (mut start, mut middle) = (None, None);
    let mut output = String::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        // The load generator says when the timed write half starts (after laying the file
        // out) and when it is done.
        if line == "writing" {
            start = Some(cpu_seconds(server)?);
        }
        if line == "reading" {
            middle = Some(cpu_seconds(server)?);
        }
        output.push_str(&line);
        output.push('\n');
    }
    let end = cpu_seconds(server)?;
    if !child.wait()?.success() {
        bail!("ninep-load --test stream against {connect} failed");
    }
    let start = start.context("ninep-load did not mark the write half")?;
    let middle = middle.context("ninep-load did not mark the read half")?;
    Ok((
        output,
        vec![("write", middle - start), ("read", end - middle)],
    ))
}

/// User plus system CPU time of process `pid` (all its threads, live and exited), in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').context("malformed /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> { Ok(fields.get(i).context("short stat")?.parse()?) };
    // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name.
    let hz = 100.0; // USER_HZ, fixed at 100 on Linux for /proc.
    Ok((ticks(11)? + ticks(12)?) / hz)
}

/// Keeps the best of each figure.
fn record(
    results: &mut Results,
    peer: Peer,
    transport: &'static str,
    figures: Vec<(String, f64, String)>,
) {
    for (name, value, unit) in figures {
        add(results, (peer, transport, name), value, &unit);
    }
}

/// Whether a smaller figure is the better one for this unit.
fn lower_is_better(unit: &str) -> bool {
    matches!(unit, "us" | "s" | "ms/GiB")
}

/// Adds one round's value.
fn add(results: &mut Results, key: (Peer, &'static str, String), value: f64, unit: &str) {
    let figures = results.entry(key).or_default();
    figures.values.push(value);
    figures.unit = unit.to_string();
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// How many times better ninepd did than diod in each round (latency and CPU: diod / ninepd).
fn ratios(ninepd: &Figures, diod: &Figures) -> Vec<f64> {
    let lower = lower_is_better(&ninepd.unit);
    ninepd
        .values
        .iter()
        .zip(&diod.values)
        .map(|(n, d)| if lower { d / n } else { n / d })
        .collect()
}

/// MiB streamed through the guest's v9fs mount by `guest_v9fs`.
const GUEST_STREAM_MIB: u32 = 64;

/// The guest kernel's v9fs client against each server, both running inside the guest over its
/// loopback TCP: create/stat/unlink of 1,000 files, then a file written and read back with
/// `dd` (v9fs's default cache mode sends every read and write to the server).
fn guest_v9fs(diod: &Path, results: &mut Results) -> Result<()> {
    let script = r#"set -e
mkdir -p /export /mnt/9
mount -t tmpfs -o size=256m tmpfs /export
ninepd /export --listen tcp:127.0.0.1:564 --squash-uid 0 --squash-gid 0 --log-level warn &
DIOD &
now() { cut -d' ' -f1 /proc/uptime; }
run() {
    name=$1; shift
    retry 100 mount -t 9p -o "$@" 127.0.0.1 /mnt/9 2>/dev/null
    mkdir /mnt/9/b
    t0=$(now)
    i=0; while [ $i -lt 1000 ]; do : > /mnt/9/b/f$i; i=$((i + 1)); done
    t1=$(now)
    i=0; while [ $i -lt 1000 ]; do [ -f /mnt/9/b/f$i ]; i=$((i + 1)); done
    t2=$(now)
    rm -r /mnt/9/b
    t3=$(now)
    umount /mnt/9
    echo "meta $name $t0 $t1 $t2 $t3"
}
stream() {
    name=$1; shift
    retry 100 mount -t 9p -o "$@",msize=1048576 127.0.0.1 /mnt/9 2>/dev/null
    t0=$(now)
    dd if=/dev/zero of=/mnt/9/stream bs=1M count=MIB 2>/dev/null
    t1=$(now)
    dd if=/mnt/9/stream of=/dev/null bs=1M 2>/dev/null
    t2=$(now)
    rm /mnt/9/stream
    umount /mnt/9
    echo "stream $name $t0 $t1 $t2"
}
for round in 1 2 3; do
    run ninepd trans=tcp,port=564,version=9p2000.L,uname=root,access=user
    run diod trans=tcp,port=565,version=9p2000.L,uname=root,access=user,aname=/export
    stream ninepd trans=tcp,port=564,version=9p2000.L,uname=root,access=user
    stream diod trans=tcp,port=565,version=9p2000.L,uname=root,access=user,aname=/export
done
"#
    .replace("MIB", &GUEST_STREAM_MIB.to_string())
    .replace(
        "DIOD",
        &format!(
            "{} -f -n -l 127.0.0.1:565 -e /export -L /tmp/diod.log",
            diod.display()
        ),
    );
    let out = guest::Vm::builder()
        .name("bench-9p")
        .static_bin("ninep-server", "ninepd")
        .host_program(diod)
        .timeout(Duration::from_secs(600))
        .run(&script)?;
    if !out.success() {
        bail!("guest v9fs benchmark failed:\n{}", out.log_tail());
    }
    // /proc/uptime counts hundredths of a second.
    let per_second = |count: f64, from: f64, to: f64| count / (to - from).max(0.01);
    for line in out.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [kind @ ("meta" | "stream"), name, stamps @ ..] = words.as_slice() else {
            continue;
        };
        let peer = if *name == "ninepd" {
            Peer::Ninepd
        } else {
            Peer::Diod
        };
        let t: Vec<f64> = stamps
            .iter()
            .map(|s| s.parse().unwrap_or(f64::NAN))
            .collect();
        let mut put = |metric: &str, value: f64, unit: &str| {
            add(results, (peer, "v9fs", metric.into()), value, unit);
        };
        match (*kind, t.as_slice()) {
            ("stream", &[start, written, read]) => {
                let mb = f64::from(GUEST_STREAM_MIB) * 1.048576;
                put("write (dd)", per_second(mb, start, written), "MB/s");
                put("read (dd)", per_second(mb, written, read), "MB/s");
            }
            ("meta", &[start, created, statted, unlinked]) => {
                put("create", per_second(1000.0, start, created), "files/s");
                put("stat", per_second(1000.0, created, statted), "files/s");
                put("unlink", per_second(1000.0, statted, unlinked), "files/s");
                let all = per_second(3000.0, start, unlinked);
                put("create+stat+unlink", all, "ops/s");
            }
            _ => {}
        }
    }
    Ok(())
}

fn print_table(results: &Results) {
    println!("\n| transport | measurement | ninepd | diod | ninepd / diod (range) |");
    println!("|---|---|---|---|---|");
    let mut keys: Vec<(&'static str, &String)> = results.keys().map(|(_, t, m)| (*t, m)).collect();
    keys.sort();
    keys.dedup();
    for (transport, metric) in keys {
        let get = |p| results.get(&(p, transport, metric.clone()));
        let (Some(n), d) = (get(Peer::Ninepd), get(Peer::Diod)) else {
            continue;
        };
        let unit = &n.unit;
        let (diod, ratio) = match d {
            Some(d) if unit != "bytes" => {
                let r = ratios(n, d);
                let (lo, hi) = r.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| {
                    (lo.min(x), hi.max(x))
                });
                (
                    format!("{:.1} {unit}", median(&d.values)),
                    format!("{:.2}x ({lo:.2}-{hi:.2})", median(&r)),
                )
            }
            Some(d) => (format!("{:.0} {unit}", median(&d.values)), "-".into()),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {transport} | {metric} | {:.1} {unit} | {diod} | {ratio} |",
            median(&n.values)
        );
    }
    println!(
        "\n(medians over the rounds; ratios > 1 favour ninepd, latency and CPU ratios are diod / \
         ninepd; diod 1.0.24 caps msize at 64 KiB.)"
    );
    println!(
        "\nWithout 9P, for scale (threads moving a tmpfs file through a socket, no protocol):"
    );
    for transport in ["unix", "tcp"] {
        for (label, pipeline, metric) in [
            ("read, copied", "read", "read"),
            ("read, spliced", "read-spliced", "read"),
            ("write, copied", "write", "write"),
        ] {
            let get = |p, m: &str| {
                results
                    .get(&(p, transport, m.to_string()))
                    .map(|f| median(&f.values))
            };
            let (Some(ceiling), Some(n), Some(d)) = (
                get(Peer::Ceiling, pipeline),
                get(Peer::Ninepd, metric),
                get(Peer::Diod, metric),
            ) else {
                continue;
            };
            println!(
                "  {transport} {label}: {ceiling:.0} MB/s; ninepd {:.0} % of it, diod {:.0} %, \
                 twice diod {:.0} %",
                100.0 * n / ceiling,
                100.0 * d / ceiling,
                200.0 * d / ceiling
            );
        }
    }
}

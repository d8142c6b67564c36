//! `cargo xtask bench nvme [--rounds N] [--runtime SECONDS] [--kernel-only] [--vfio] [--ublk]
//! [--multi-queue]`: our userspace driver against the kernel's C driver on the same emulated NVMe
//! controller, in one guest.
//!
//! Each round runs every workload through the kernel (fio with io_uring, then libaio) and then through
//! `nvme-tool bench` on the same controller bound to uio_pci_generic (or, with `--vfio`, to vfio-pci
//! behind the emulated IOMMU, which the kernel's runs then also go through), so slow drift of the host
//! affects both sides alike. The best round of each engine is reported, with the ratio to the
//! kernel's best.
//!
//! `--ublk` (which implies `--vfio`) compares through the block layer: the same fio job (io_uring)
//! on `/dev/nvme0n1` (the kernel's driver) and on `/dev/ublkb0` served by `nvme-ublk` (our driver,
//! polling and on interrupts), plus `nvme-tool bench` with and without shadow doorbells, over the
//! block-layer workloads only. Every fio run also reports the guest's CPU time per I/O (all CPUs,
//! from `/proc/stat`: fio, the kernel and, for ublk, the daemon).
//!
//! `--multi-queue` measures instead whether our driver scales with its queue pairs: one queue
//! against two, directly and through ublk, with and without shadow doorbells, beside ublk's own null
//! target under the same load (`nvme_multi_queue.rs`).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use guest::{Disk, HostLoad, Vm};

use super::run_label;
use serde_json::Value;

#[path = "nvme_multi_queue.rs"]
mod multi_queue;

/// One I/O pattern, in fio's terms.
#[derive(Debug, Clone, Copy)]
struct Workload {
    name: &'static str,
    rw: &'static str,
    bs: usize,
    /// I/Os in flight per job.
    qd: u32,
    /// fio jobs for the kernel (its driver then uses the queues of the CPUs they run on), queue
    /// pairs with a thread each for nvme-tool.
    jobs: u32,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "4k-randread-qd1",
        rw: "randread",
        bs: 4096,
        qd: 1,
        jobs: 1,
    },
    Workload {
        name: "4k-randread-qd32",
        rw: "randread",
        bs: 4096,
        qd: 32,
        jobs: 1,
    },
    Workload {
        name: "4k-randread-2x16",
        rw: "randread",
        bs: 4096,
        qd: 16,
        jobs: 2,
    },
    Workload {
        name: "512-randread-qd1",
        rw: "randread",
        bs: 512,
        qd: 1,
        jobs: 1,
    },
    Workload {
        name: "512-randread-qd32",
        rw: "randread",
        bs: 512,
        qd: 32,
        jobs: 1,
    },
    Workload {
        name: "4k-randwrite-qd32",
        rw: "randwrite",
        bs: 4096,
        qd: 32,
        jobs: 1,
    },
    Workload {
        name: "128k-seqread-qd32",
        rw: "read",
        bs: 128 << 10,
        qd: 32,
        jobs: 1,
    },
];

const KERNEL_ENGINES: &[&str] = &["io_uring", "libaio"];
/// The workloads of `--ublk`, run through the block layer by both drivers.
const BLOCK_LAYER: &[&str] = &[
    "4k-randread-qd1",
    "4k-randread-qd32",
    "4k-randwrite-qd32",
    "128k-seqread-qd32",
];
/// `nvme-ublk` engines of `--ublk`: the name in the table and the daemon's mode flag.
const UBLK_ENGINES: &[(&str, &str)] = &[("ublk-poll", "--poll"), ("ublk-irq", "--interrupts")];
/// `nvme-tool bench` without shadow doorbells (`--ublk` only).
const OURS_NO_SHADOW: &str = "nvme-tool-noshadow";
/// Lines with the guest's CPU time over one fio run: round, engine, workload, jiffies, I/Os.
const CPU_MARK: &str = "BENCH-CPU";
/// With a polling thread per vCPU, the vCPUs never halt, and QEMU's emulated controller (a host
/// thread of its own) waits for a host CPU: on 2 host cores, 4k-randread-2x16 measured 23,688
/// IOPS spinning against 63,279 when the pollers sleep after 20 us without a completion.
const MULTI_QUEUE_POLL: &str = " --hybrid-poll-us 20";
const OURS: &str = "nvme-tool";
const MARK: &str = "BENCH-RESULT";
/// The emulated namespace: a sparse file, so reads of unwritten blocks cost the host nothing.
const DISK_BYTES: u64 = 1 << 30;

/// One measured run.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Measure {
    iops: f64,
    p50_us: f64,
    p99_us: f64,
}

#[derive(Debug)]
struct Options {
    rounds: u32,
    runtime: u32,
    /// Skip our driver (a kernel baseline, or a machine where nvme-tool cannot run).
    kernel_only: bool,
    /// Bind our driver through vfio-pci behind the emulated IOMMU (on for the kernel runs too)
    /// instead of uio_pci_generic without one.
    vfio: bool,
    /// The block-layer comparison (implies `vfio`).
    ublk: bool,
    /// One queue pair against two instead (`multi_queue`).
    multi_queue: bool,
}

impl Options {
    fn workloads(&self) -> impl Iterator<Item = &'static Workload> + '_ {
        WORKLOADS
            .iter()
            .filter(|w| !self.ublk || BLOCK_LAYER.contains(&w.name))
    }

    fn kernel_engines(&self) -> &'static [&'static str] {
        if self.ublk {
            &KERNEL_ENGINES[..1]
        } else {
            KERNEL_ENGINES
        }
    }

    /// Every engine of the run, in table order.
    fn engines(&self) -> Vec<&'static str> {
        let mut engines = self.kernel_engines().to_vec();
        if !self.kernel_only {
            engines.push(OURS);
            if self.ublk {
                engines.push(OURS_NO_SHADOW);
                engines.extend(UBLK_ENGINES.iter().map(|(name, _)| *name));
            }
        }
        engines
    }
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        rounds: 2,
        runtime: 3,
        kernel_only: false,
        vfio: false,
        ublk: false,
        multi_queue: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<u32> {
            let v = it.next().with_context(|| format!("{name} needs a value"))?;
            v.parse()
                .with_context(|| format!("{name} {v:?} is not a number"))
        };
        match arg.as_str() {
            "--rounds" => opts.rounds = value("--rounds")?.max(1),
            "--runtime" => opts.runtime = value("--runtime")?.max(1),
            "--kernel-only" => opts.kernel_only = true,
            "--vfio" => opts.vfio = true,
            "--ublk" => opts.ublk = true,
            "--multi-queue" => opts.multi_queue = true,
            other => bail!(
                "unknown argument {other:?} (use --rounds N, --runtime SECONDS, --kernel-only, --vfio, --ublk, --multi-queue)"
            ),
        }
    }
    if opts.multi_queue && (opts.kernel_only || opts.ublk) {
        bail!(
            "--multi-queue runs its own set (vfio, ublk included): not with --kernel-only or --ublk"
        );
    }
    if opts.ublk {
        if opts.kernel_only {
            bail!("--ublk compares our driver with the kernel's: it cannot be --kernel-only");
        }
        opts.vfio = true;
    }
    Ok(opts)
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    let opts = parse_args(args)?;
    if opts.multi_queue {
        return multi_queue::run(opts.rounds, opts.runtime);
    }
    let fio = which("fio").context("fio is needed on the host (apt-get install -y fio)")?;
    let script = guest_script(&opts);
    let runs = opts.engines().len() * opts.workloads().count() * opts.rounds as usize;
    let limit = Duration::from_secs(60 + runs as u64 * (u64::from(opts.runtime) + 4));
    eprintln!(
        "xtask: {runs} runs of {} s in one guest (at most {} s)",
        opts.runtime,
        limit.as_secs()
    );
    let mut vm = Vm::builder()
        .name("bench-nvme")
        .nvme(Disk::memory(DISK_BYTES))
        .host_program(&fio)
        .iommu(opts.vfio)
        .timeout(limit);
    if !opts.kernel_only {
        vm = vm.static_bin("nvme", "nvme-tool");
    }
    if opts.ublk {
        vm = vm.static_bin("nvme-ublk", "nvme-ublk");
    }
    let out = vm.run(&script).context("the benchmark guest failed")?;
    if !out.success() {
        bail!("the benchmark script failed\n{}", out.log_tail());
    }
    let results = parse_results(&out.stdout)?;
    let cpu = parse_cpu(&out.stdout);
    let loads = guest::loads_by_label(&out.host_stamps);
    println!("{}", table(&results, &cpu, &loads, &opts));
    Ok(ExitCode::SUCCESS)
}

fn which(name: &str) -> Result<std::path::PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} is not on PATH"))
}

/// The start of both NVMe benches' guest scripts: `$BDF` is the NVMe controller, `bind DRIVER` moves it
/// to a driver, `wait_disk DEV` waits for a block device to appear and takes it off the I/O scheduler.
/// The kernel gives a device with one hardware queue mq-deadline and one with more none: so
/// `nvme-ublk --queues 1` would be measured through a scheduler that the kernel's driver (a queue
/// per CPU) and two ublk queues are not (4k random reads, two fio jobs of 16: 12 % more IOPS
/// without it).
const GUEST_PRELUDE: &str = r#"set -u
for d in /sys/bus/pci/devices/*; do [ "$(cat "$d/class")" = 0x010802 ] && BDF=$(basename "$d"); done
bind() {
    [ -e "/sys/bus/pci/devices/$BDF/driver" ] && echo "$BDF" > "/sys/bus/pci/devices/$BDF/driver/unbind"
    echo "$1" > "/sys/bus/pci/devices/$BDF/driver_override"
    echo "$BDF" > /sys/bus/pci/drivers_probe
}
# wait_disk DEV: waits for DEV and its queue in sysfs (a node left by a device just deleted can
# outlive its sysfs directory), then takes it off the I/O scheduler.
wait_disk() {
    q="/sys/block/${1#/dev/}/queue/scheduler"
    i=0; while { [ ! -b "$1" ] || [ ! -e "$q" ]; } && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    [ -b "$1" ] && [ -e "$q" ] && echo none > "$q"
}
"#;

/// Moves the controller to the kernel's driver and waits for its block device.
const TO_KERNEL_DRIVER: &str =
    "bind nvme\nwait_disk /dev/nvme0n1 || { echo 'no /dev/nvme0n1'; exit 1; }\n";

/// [`GUEST_PRELUDE`], then the whole namespace written once through the kernel's driver, before
/// anything is measured.
fn prelude_with_filled_namespace() -> String {
    GUEST_PRELUDE.to_owned() + TO_KERNEL_DRIVER + &super::fill_once("/dev/nvme0n1")
}

/// The guest side: alternate kernel and userspace rounds over every workload.
fn guest_script(opts: &Options) -> String {
    let t = opts.runtime;
    let mut s = prelude_with_filled_namespace()
        + r#"# The guest's busy CPU time in clock ticks (user, nice, system, irq, softirq of all CPUs).
busy() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
# I/Os completed by a block device (reads and writes).
ios() { awk '{ print $1 + $5 }' "/sys/block/$1/stat"; }
echo 64 > /proc/sys/vm/nr_hugepages
"#;
    let fio = |s: &mut String,
               round: u32,
               engine: &str,
               ioengine: &str,
               dev: &str,
               w: &Workload| {
        let command = format!(
            "C0=$(busy); I0=$(ios {dev}); printf '{MARK} {round} {engine} {name} '; fio --name=bench \
             --filename=/dev/{dev} --direct=1 --ioengine={ioengine} --rw={rw} --bs={bs} --iodepth={qd} \
             --numjobs={jobs} --group_reporting --time_based --runtime={t} --ramp_time=1 --norandommap \
             --randrepeat=0 --lat_percentiles=1 --output-format=json | tr -d '\\n'; echo; \
             echo \"{CPU_MARK} {round} {engine} {name} $(( $(busy) - C0 )) $(( $(ios {dev}) - I0 ))\"",
            name = w.name,
            rw = w.rw,
            bs = w.bs,
            qd = w.qd,
            jobs = w.jobs,
        );
        s.push_str(&guest::stamped(&run_label(round, engine, w.name), &command));
    };
    for round in 1..=opts.rounds {
        s.push_str(TO_KERNEL_DRIVER);
        for w in opts.workloads() {
            for engine in opts.kernel_engines() {
                fio(&mut s, round, engine, engine, "nvme0n1", w);
            }
        }
        if opts.kernel_only {
            continue;
        }
        s.push_str(if opts.vfio {
            "bind vfio-pci\nDEV=vfio:$BDF\n"
        } else {
            "bind uio_pci_generic\nDEV=uio:$BDF\n"
        });
        let ours: &[(&str, &str)] = if opts.ublk {
            &[(OURS, ""), (OURS_NO_SHADOW, " --no-shadow-doorbells")]
        } else {
            &[(OURS, "")]
        };
        for (engine, flags) in ours {
            for w in opts.workloads() {
                let command = format!(
                    "printf '{MARK} {round} {engine} {name} '; nvme-tool --device $DEV{flags} bench --rw {rw} \
                     --bs {bs} --iodepth {qd} --queues {jobs}{hybrid} --runtime {t} --json | tr -d '\\n'; echo",
                    name = w.name,
                    rw = w.rw,
                    bs = w.bs,
                    qd = w.qd,
                    jobs = w.jobs,
                    hybrid = if w.jobs > 1 { MULTI_QUEUE_POLL } else { "" },
                );
                s.push_str(&guest::stamped(&run_label(round, engine, w.name), &command));
            }
        }
        if opts.ublk {
            for (engine, mode) in UBLK_ENGINES {
                let _ = writeln!(
                    s,
                    "nvme-ublk --device $DEV --depth 64 {mode} > /tmp/ublk.out 2> /tmp/ublk.err &\n\
                     UBLK=$!\n\
                     wait_disk /dev/ublkb0 || {{ cat /tmp/ublk.err; exit 1; }}"
                );
                for w in opts.workloads() {
                    fio(&mut s, round, engine, "io_uring", "ublkb0", w);
                }
                s.push_str("kill -TERM $UBLK; wait $UBLK\n");
                s.push_str("i=0; while [ -e /dev/ublkb0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done\n");
            }
        }
    }
    s.push_str("bind nvme\n");
    s
}

/// The host's load over the runs of `engine` on `workload`, averaged over the rounds.
fn mean_load(loads: &[(String, HostLoad)], engine: &str, workload: &str) -> Option<HostLoad> {
    // Every round's label: `run_label`'s, after the round.
    let suffix = format!("{engine} {workload}");
    let runs: Vec<&HostLoad> = loads
        .iter()
        .filter(|(label, _)| {
            label
                .split_once(' ')
                .is_some_and(|(_, rest)| rest == suffix)
        })
        .map(|(_, load)| load)
        .collect();
    let n = runs.len() as f64;
    let mean = |f: fn(&HostLoad) -> f64| runs.iter().map(|l| f(l)).sum::<f64>() / n;
    (!runs.is_empty()).then(|| HostLoad {
        busy: mean(|l| l.busy),
        vcpu_cores: mean(|l| l.vcpu_cores),
        emulator_cores: mean(|l| l.emulator_cores),
        guest_instructions: None,
    })
}

/// fio's JSON: the read or write side of the first job, latency from `lat_ns` percentiles.
fn parse_fio(v: &Value) -> Option<Measure> {
    let job = v.get("jobs")?.get(0)?;
    let side = ["read", "write"]
        .into_iter()
        .filter_map(|k| job.get(k))
        .max_by(|a, b| {
            let iops = |x: &Value| x.get("iops").and_then(Value::as_f64).unwrap_or(0.0);
            iops(a).total_cmp(&iops(b))
        })?;
    let pct = side.get("lat_ns")?.get("percentile")?;
    Some(Measure {
        iops: side.get("iops")?.as_f64()?,
        p50_us: pct.get("50.000000")?.as_f64()? / 1000.0,
        p99_us: pct.get("99.000000")?.as_f64()? / 1000.0,
    })
}

/// `nvme-tool bench --json`: `iops` and latency percentiles in microseconds.
fn parse_ours(v: &Value) -> Option<Measure> {
    let num = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.pointer(k).and_then(Value::as_f64))
    };
    Some(Measure {
        iops: num(&["/iops"])?,
        p50_us: num(&["/latency_us/p50", "/lat_p50_us", "/p50_us"])?,
        p99_us: num(&["/latency_us/p99", "/lat_p99_us", "/p99_us"])?,
    })
}

/// (round, engine, workload, measure) for every result line.
type Row = (u32, String, String, Measure);

fn parse_results(stdout: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix(MARK) else {
            // A result glued to the end of other output would otherwise be dropped unnoticed.
            if line.contains(MARK) {
                bail!("a result line does not start with {MARK}: {line:?}");
            }
            continue;
        };
        let mut parts = rest.trim_start().splitn(4, ' ');
        let (Some(round), Some(engine), Some(workload), Some(json)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            bail!("malformed result line {line:?}");
        };
        let value: Value = serde_json::from_str(json.trim())
            .with_context(|| format!("{engine} {workload}: output is not JSON: {json:?}"))?;
        let measure = if engine.starts_with(OURS) {
            parse_ours(&value)
        } else {
            parse_fio(&value)
        }
        .with_context(|| format!("{engine} {workload}: no IOPS/latency in {json}"))?;
        rows.push((
            round.parse()?,
            engine.to_owned(),
            workload.to_owned(),
            measure,
        ));
    }
    if rows.is_empty() {
        bail!("the guest printed no results:\n{stdout}");
    }
    Ok(rows)
}

/// The best round (highest IOPS) of `engine` on `workload`.
fn best(rows: &[Row], engine: &str, workload: &str) -> Option<Measure> {
    rows.iter()
        .filter(|(_, e, w, _)| e == engine && w == workload)
        .map(|r| r.3)
        .max_by(|a, b| a.iops.total_cmp(&b.iops))
}

/// Guest CPU time per I/O in µs for each (engine, workload), over all rounds: from the
/// `BENCH-CPU` lines (clock ticks of 10 ms, I/Os completed by the device).
type CpuPerIo = std::collections::BTreeMap<(String, String), f64>;

fn parse_cpu(stdout: &str) -> CpuPerIo {
    let mut sums: std::collections::BTreeMap<(String, String), (u64, u64)> = Default::default();
    for line in stdout.lines() {
        let Some(rest) = line.trim().strip_prefix(CPU_MARK) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let [_round, engine, workload, ticks, ios] = fields[..] else {
            continue;
        };
        let (Ok(ticks), Ok(ios)) = (ticks.parse::<u64>(), ios.parse::<u64>()) else {
            continue;
        };
        let sum = sums
            .entry((engine.to_owned(), workload.to_owned()))
            .or_default();
        sum.0 += ticks;
        sum.1 += ios;
    }
    sums.into_iter()
        .filter(|(_, (_, ios))| *ios > 0)
        .map(|(key, (ticks, ios))| (key, ticks as f64 * 10_000.0 / ios as f64))
        .collect()
}

fn table(rows: &[Row], cpu: &CpuPerIo, loads: &[(String, HostLoad)], opts: &Options) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: best of {} rounds of {} s; ratios are ours / the kernel's best (IOPS: higher is better, latency: lower).\n\
         Absolute figures are bound by QEMU's emulation under TCG; the ratios are the result.\n\
         CPU µs/IO: the guest's busy CPU time (all CPUs) per I/O over the fio runs of every round.\n\
         Host busy: how busy the host's CPUs (which run the vCPUs and the emulated controller) were, averaged over the rounds.\n",
        if opts.vfio {
            "vfio-pci behind the emulated IOMMU"
        } else {
            "uio_pci_generic, no IOMMU"
        },
        opts.rounds,
        opts.runtime
    );
    let _ = writeln!(
        s,
        "| workload | engine | IOPS | p50 µs | p99 µs | IOPS ratio | p50 ratio | CPU µs/IO | host busy |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let kernel_engines = opts.kernel_engines();
    for w in opts.workloads() {
        let kernel: Vec<Measure> = kernel_engines
            .iter()
            .filter_map(|e| best(rows, e, w.name))
            .collect();
        let kernel_iops = kernel.iter().map(|m| m.iops).fold(0.0, f64::max);
        let kernel_p50 = kernel
            .iter()
            .map(|m| m.p50_us)
            .fold(f64::INFINITY, f64::min);
        for engine in opts.engines() {
            let Some(m) = best(rows, engine, w.name) else {
                continue;
            };
            let ratios = if !kernel_engines.contains(&engine) && kernel_iops > 0.0 {
                format!(
                    "{:.2}x | {:.2}x",
                    m.iops / kernel_iops,
                    m.p50_us / kernel_p50
                )
            } else {
                " | ".to_owned()
            };
            let cpu = cpu
                .get(&(engine.to_owned(), w.name.to_owned()))
                .map_or(String::new(), |us| format!("{us:.1}"));
            let host = mean_load(loads, engine, w.name)
                .map_or(String::new(), |l| format!("{:.0} %", l.busy * 100.0));
            let _ = writeln!(
                s,
                "| {} | {engine} | {:.0} | {:.1} | {:.1} | {ratios} | {cpu} | {host} |",
                w.name, m.iops, m.p50_us, m.p99_us
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fio_json() {
        let v: Value = serde_json::from_str(
            r#"{"jobs":[{"read":{"iops":7000.5,"lat_ns":{"percentile":{"50.000000":120000,"99.000000":300000}}},
                "write":{"iops":0,"lat_ns":{}}}]}"#,
        )
        .unwrap();
        assert_eq!(
            parse_fio(&v),
            Some(Measure {
                iops: 7000.5,
                p50_us: 120.0,
                p99_us: 300.0
            })
        );
    }

    #[test]
    fn cpu_per_io_sums_every_round_and_skips_garbage() {
        let out = format!(
            "{CPU_MARK} 1 ublk-irq 4k-randread-qd1 30 1000\n{CPU_MARK} 2 ublk-irq 4k-randread-qd1 10 3000\n\
             {CPU_MARK} 1 io_uring 4k-randread-qd1 5 0\n{CPU_MARK} 1 x y not-a-number 3\n"
        );
        let cpu = parse_cpu(&out);
        // 40 ticks of 10 ms over 4000 I/Os: 100 µs each.
        assert_eq!(
            cpu.get(&("ublk-irq".into(), "4k-randread-qd1".into())),
            Some(&100.0)
        );
        assert_eq!(cpu.len(), 1, "{cpu:?}");
    }

    #[test]
    fn ublk_runs_the_block_layer_workloads_through_every_engine() {
        let opts = parse_args(&["--ublk".to_owned()]).unwrap();
        assert!(opts.vfio);
        assert_eq!(opts.workloads().count(), BLOCK_LAYER.len());
        assert_eq!(
            opts.engines(),
            ["io_uring", OURS, OURS_NO_SHADOW, "ublk-poll", "ublk-irq"]
        );
        let script = guest_script(&opts);
        assert!(script.contains("nvme-ublk --device $DEV --depth 64 --interrupts"));
        assert!(script.contains("--filename=/dev/ublkb0"));
        assert!(script.contains("--no-shadow-doorbells bench"));
        assert!(!script.contains("libaio"));
        // Every disk waited for is taken off the I/O scheduler (one ublk queue would get one).
        let wait_disk = &script[script.find("wait_disk() {").unwrap()..];
        let wait_disk = &wait_disk[..wait_disk.find("\n}\n").unwrap()];
        assert!(
            wait_disk.contains("q=\"/sys/block/${1#/dev/}/queue/scheduler\"")
                && wait_disk.contains("[ ! -e \"$q\" ]")
                && wait_disk.contains("echo none > \"$q\""),
            "{wait_disk}"
        );
        // The namespace is written once before the first measured run.
        let fill = script.find("--rw=write --bs=1M").expect("no fill");
        assert!(fill < script.find("--name=bench").unwrap(), "{script}");
        assert!(parse_args(&["--ublk".to_owned(), "--kernel-only".to_owned()]).is_err());
        let plain = parse_args(&[]).unwrap();
        assert_eq!(plain.workloads().count(), WORKLOADS.len());
        assert!(!guest_script(&plain).contains("ublk"));
        // Every measured run, ours and the kernel's, is between host stamps of its own label.
        for label in [
            "1 io_uring 4k-randread-qd1",
            "1 nvme-tool-noshadow 4k-randwrite-qd32",
            "2 ublk-irq 128k-seqread-qd32",
        ] {
            let begin = script.find(&format!("host-stamp begin {label}\n"));
            let end = script.find(&format!("host-stamp end {label}\n"));
            let (Some(begin), Some(end)) = (begin, end) else {
                panic!("{label} is not stamped:\n{script}");
            };
            assert_eq!(script[begin..end].matches(MARK).count(), 1, "{label}");
        }
    }

    #[test]
    fn the_table_gives_the_host_load_beside_each_engine() {
        let opts = parse_args(&["--ublk".to_owned()]).unwrap();
        let w = opts.workloads().next().unwrap().name;
        let m = Measure {
            iops: 1000.0,
            p50_us: 100.0,
            p99_us: 200.0,
        };
        let rows: Vec<Row> = [(1, "io_uring"), (1, "ublk-irq")]
            .into_iter()
            .map(|(round, engine)| (round, engine.to_owned(), w.to_owned(), m))
            .collect();
        let load = |busy| HostLoad {
            busy,
            vcpu_cores: 1.0,
            emulator_cores: 0.5,
            guest_instructions: None,
        };
        let loads = vec![
            (run_label(1, "ublk-irq", w), load(0.5)),
            (run_label(2, "ublk-irq", w), load(0.75)),
        ];
        let t = table(&rows, &CpuPerIo::new(), &loads, &opts);
        assert!(
            t.contains(&format!(
                "| {w} | ublk-irq | 1000 | 100.0 | 200.0 | 1.00x | 1.00x |  | 62 % |"
            )),
            "{t}"
        );
        assert!(
            t.contains(&format!(
                "| {w} | io_uring | 1000 | 100.0 | 200.0 |  |  |  |  |"
            )),
            "{t}"
        );
    }

    #[test]
    fn results_pick_the_best_round_and_reject_garbage() {
        let fio = |iops: u32| {
            format!(
                r#"{{"jobs":[{{"read":{{"iops":{iops},"lat_ns":{{"percentile":{{"50.000000":1000,"99.000000":2000}}}}}}}}]}}"#
            )
        };
        let out = format!(
            "noise\n{MARK} 1 io_uring 4k-randread-qd1 {}\n{MARK} 2 io_uring 4k-randread-qd1 {}\n",
            fio(10),
            fio(30)
        );
        let rows = parse_results(&out).unwrap();
        assert_eq!(
            best(&rows, "io_uring", "4k-randread-qd1").unwrap().iops,
            30.0
        );
        assert!(parse_results("nothing here").is_err());
        // fio's progress line, left without a newline, in front of a result.
        let glued = format!(
            "Jobs: 1 (f=1){MARK} 1 io_uring 4k-randread-qd1 {}\n",
            fio(10)
        );
        assert!(parse_results(&(glued + &out)).is_err());
        assert!(parse_results(&format!("{MARK} 1 io_uring x not-json")).is_err());
    }
}

//! `cargo xtask bench nvme [--rounds N] [--runtime SECONDS] [--kernel-only] [--vfio]`: our userspace
//! driver against the kernel's C driver on the same emulated NVMe controller, in one guest.
//!
//! Each round runs every workload through the kernel (fio with io_uring, then libaio) and then through
//! `nvme-tool bench` on the same controller bound to uio_pci_generic (or, with `--vfio`, to vfio-pci
//! behind the emulated IOMMU, which the kernel's runs then also go through), so slow drift of the host
//! affects both sides alike. The best round of each engine is reported, with the ratio to the
//! kernel's best.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use guest::{Disk, Vm};
use serde_json::Value;

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
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        rounds: 2,
        runtime: 3,
        kernel_only: false,
        vfio: false,
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
            other => bail!(
                "unknown argument {other:?} (use --rounds N, --runtime SECONDS, --kernel-only, --vfio)"
            ),
        }
    }
    Ok(opts)
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    let opts = parse_args(args)?;
    let fio = which("fio").context("fio is needed on the host (apt-get install -y fio)")?;
    let script = guest_script(&opts);
    let engines = KERNEL_ENGINES.len() + usize::from(!opts.kernel_only);
    let runs = engines * WORKLOADS.len() * opts.rounds as usize;
    let limit = Duration::from_secs(60 + runs as u64 * (u64::from(opts.runtime) + 4));
    eprintln!(
        "xtask: {runs} runs of {} s in one guest (at most {} s)",
        opts.runtime,
        limit.as_secs()
    );
    let mut vm = Vm::builder()
        .name("bench-nvme")
        .nvme(Disk::sparse(DISK_BYTES))
        .host_program(&fio)
        .iommu(opts.vfio)
        .timeout(limit);
    if !opts.kernel_only {
        vm = vm.static_bin("nvme", "nvme-tool");
    }
    let out = vm.run(&script).context("the benchmark guest failed")?;
    if !out.success() {
        bail!("the benchmark script failed\n{}", out.log_tail());
    }
    let results = parse_results(&out.stdout)?;
    println!("{}", table(&results, &opts));
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

/// The guest side: alternate kernel and userspace rounds over every workload.
fn guest_script(opts: &Options) -> String {
    let t = opts.runtime;
    let mut s = String::from(
        r#"set -u
for d in /sys/bus/pci/devices/*; do [ "$(cat "$d/class")" = 0x010802 ] && BDF=$(basename "$d"); done
bind() {
    [ -e "/sys/bus/pci/devices/$BDF/driver" ] && echo "$BDF" > "/sys/bus/pci/devices/$BDF/driver/unbind"
    echo "$1" > "/sys/bus/pci/devices/$BDF/driver_override"
    echo "$BDF" > /sys/bus/pci/drivers_probe
}
wait_disk() { i=0; while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; [ -b /dev/nvme0n1 ]; }
echo 64 > /proc/sys/vm/nr_hugepages
"#,
    );
    for round in 1..=opts.rounds {
        s.push_str("bind nvme\nwait_disk || { echo 'no /dev/nvme0n1'; exit 1; }\n");
        for w in WORKLOADS {
            for engine in KERNEL_ENGINES {
                let _ = writeln!(
                    s,
                    "printf '{MARK} {round} {engine} {name} '; fio --name=bench --filename=/dev/nvme0n1 \
                     --direct=1 --ioengine={engine} --rw={rw} --bs={bs} --iodepth={qd} --numjobs={jobs} \
                     --group_reporting --time_based --runtime={t} --ramp_time=1 --norandommap --randrepeat=0 --lat_percentiles=1 \
                     --output-format=json | tr -d '\\n'; echo",
                    name = w.name,
                    rw = w.rw,
                    bs = w.bs,
                    qd = w.qd,
                    jobs = w.jobs,
                );
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
        for w in WORKLOADS {
            let _ = writeln!(
                s,
                "printf '{MARK} {round} {OURS} {name} '; nvme-tool --device $DEV bench --rw {rw} \
                 --bs {bs} --iodepth {qd} --queues {jobs}{hybrid} --runtime {t} --json | tr -d '\\n'; echo",
                name = w.name,
                rw = w.rw,
                bs = w.bs,
                qd = w.qd,
                jobs = w.jobs,
                hybrid = if w.jobs > 1 { MULTI_QUEUE_POLL } else { "" },
            );
        }
    }
    s.push_str("bind nvme\n");
    s
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
        let measure = if engine == OURS {
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

fn table(rows: &[Row], opts: &Options) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: best of {} rounds of {} s; ratios are ours / the kernel's best (IOPS: higher is better, latency: lower).\n\
         Absolute figures are bound by QEMU's emulation under TCG; the ratios are the result.\n",
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
        "| workload | engine | IOPS | p50 µs | p99 µs | IOPS ratio | p50 ratio |\n|---|---|---:|---:|---:|---:|---:|"
    );
    for w in WORKLOADS {
        let kernel: Vec<Measure> = KERNEL_ENGINES
            .iter()
            .filter_map(|e| best(rows, e, w.name))
            .collect();
        let kernel_iops = kernel.iter().map(|m| m.iops).fold(0.0, f64::max);
        let kernel_p50 = kernel
            .iter()
            .map(|m| m.p50_us)
            .fold(f64::INFINITY, f64::min);
        for engine in KERNEL_ENGINES.iter().copied().chain([OURS]) {
            let Some(m) = best(rows, engine, w.name) else {
                continue;
            };
            let ratios = if engine == OURS && kernel_iops > 0.0 {
                format!(
                    "{:.2}x | {:.2}x",
                    m.iops / kernel_iops,
                    m.p50_us / kernel_p50
                )
            } else {
                " | ".to_owned()
            };
            let _ = writeln!(
                s,
                "| {} | {engine} | {:.0} | {:.1} | {:.1} | {ratios} |",
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
        assert!(parse_results(&format!("{MARK} 1 io_uring x not-json")).is_err());
    }
}

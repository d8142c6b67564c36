//! `cargo xtask bench kernel [--rounds N] [--runtime SECONDS]`: the kernel's Rust null block driver
//! (`rnull`) against its C twin (`null_blk`), in one boot of the Rust-enabled guest kernel.
//!
//! Both devices are set up alike: 4 KiB blocks, 4 GiB, one hardware queue of depth 256, completions
//! inline (`irqmode` 0), no memory backing (7.2's rnull has none), no I/O scheduler. Each round runs
//! every workload on one device and then on the other, so the host's drift affects both alike; the
//! median round of each side is reported with the ratio Rust/C.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One I/O pattern, in fio's terms.
#[derive(Debug, Clone, Copy)]
struct Workload {
    name: &'static str,
    rw: &'static str,
    qd: u32,
    jobs: u32,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "4k randread QD1, 1 job",
        rw: "randread",
        qd: 1,
        jobs: 1,
    },
    Workload {
        name: "4k randread QD32, 1 job",
        rw: "randread",
        qd: 32,
        jobs: 1,
    },
    Workload {
        name: "4k randwrite QD32, 1 job",
        rw: "randwrite",
        qd: 32,
        jobs: 1,
    },
    Workload {
        name: "4k randread QD1, 2 jobs",
        rw: "randread",
        qd: 1,
        jobs: 2,
    },
    Workload {
        name: "4k randread QD32, 2 jobs",
        rw: "randread",
        qd: 32,
        jobs: 2,
    },
    Workload {
        name: "4k randwrite QD32, 2 jobs",
        rw: "randwrite",
        qd: 32,
        jobs: 2,
    },
];

/// (label, block device) of the two drivers; the first is the Rust one.
const DEVICES: [(&str, &str); 2] = [("rnull", "/dev/rnullb0"), ("null_blk", "/dev/nullb0")];
const MARK: &str = "BENCH-RESULT";

/// Loads both drivers with matching settings. `null_blk`'s parameters are its defaults made explicit,
/// set to what `rnull` does (its configfs defaults: 4096-byte blocks, 4096 MiB, irqmode 0; one queue of
/// depth 256 in its code).
pub const SETUP: &str = r#"set -eu
insmod /lib/modules/test/configfs.ko
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
insmod /lib/modules/test/rnull_mod.ko
mkdir /sys/kernel/config/rnull/rnullb0
echo 4096 > /sys/kernel/config/rnull/rnullb0/blocksize
echo 4096 > /sys/kernel/config/rnull/rnullb0/size
echo 0 > /sys/kernel/config/rnull/rnullb0/irqmode
echo 1 > /sys/kernel/config/rnull/rnullb0/power
insmod /lib/modules/test/null_blk.ko nr_devices=1 queue_mode=2 submit_queues=1 hw_queue_depth=256 bs=4096 gb=4 irqmode=0 memory_backed=0
for d in rnullb0 nullb0; do
    i=0; while [ ! -b /dev/$d ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    echo none > /sys/block/$d/queue/scheduler
done
"#;

/// Rounds and seconds per workload, shared by both kernel benches.
#[derive(Debug)]
pub(super) struct Options {
    pub(super) rounds: u32,
    pub(super) runtime: u32,
    /// Count guest instructions per I/O instead of timing (`bench kernel nvme` only).
    pub(super) instructions: bool,
    /// With `instructions`: also the kernel's instructions per I/O function by function.
    pub(super) functions: bool,
}

pub(super) fn parse_args(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        rounds: 3,
        runtime: 3,
        instructions: false,
        functions: false,
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
            "--instructions" => opts.instructions = true,
            "--functions" => opts.functions = true,
            other => bail!(
                "unknown argument {other:?} (use --rounds N, --runtime SECONDS, --instructions \
                 [--functions])"
            ),
        }
    }
    if opts.functions && !opts.instructions {
        bail!("--functions goes with --instructions");
    }
    Ok(opts)
}

/// The host's fio, copied into the guest with its libraries.
pub(super) fn host_fio() -> Result<std::path::PathBuf> {
    ["/usr/bin/fio", "/usr/local/bin/fio"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
        .context("fio is needed on the host (apt-get install -y fio)")
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    // `cargo xtask bench kernel nvme`: the Rust NVMe driver against the C one.
    if args.first().is_some_and(|a| a == "nvme") {
        return super::kernel_nvme::run(&args[1..]);
    }
    let opts = parse_args(args)?;
    if opts.instructions {
        bail!("--instructions is for `bench kernel nvme`");
    }
    let fio = host_fio()?;
    crate::kernel::ensure(false)?;
    let runs = WORKLOADS.len() * DEVICES.len() * opts.rounds as usize;
    let limit = Duration::from_secs(60 + runs as u64 * (u64::from(opts.runtime) + 3));
    eprintln!(
        "xtask: {runs} fio runs of {} s in one guest (at most {} s)",
        opts.runtime,
        limit.as_secs()
    );
    let vm = crate::kernel::with_rust_kernel(guest::Vm::builder(), true)?
        .name("bench-kernel")
        .host_program(&fio)
        .timeout(limit);
    let out = vm
        .run(&guest_script(&opts))
        .context("the benchmark guest failed")?;
    if !out.success() {
        bail!("the benchmark script failed\n{}", out.log_tail());
    }
    let rows = parse_results(&out.stdout)?;
    println!("{}", table(&rows, &opts));
    Ok(ExitCode::SUCCESS)
}

fn guest_script(opts: &Options) -> String {
    let mut s = String::from(SETUP);
    for round in 1..=opts.rounds {
        for (i, w) in WORKLOADS.iter().enumerate() {
            // Alternate which side goes first, so neither always runs on a warmer host.
            let mut order = DEVICES;
            if (round as usize + i).is_multiple_of(2) {
                order.reverse();
            }
            for (label, dev) in order {
                let _ = writeln!(
                    s,
                    "printf '{MARK} {round} {label} {i} '; fio --name=bench --filename={dev} \
                     --direct=1 --ioengine=io_uring --rw={rw} --bs=4k --iodepth={qd} \
                     --numjobs={jobs} --group_reporting --time_based --runtime={t} --ramp_time=1 \
                     --norandommap --randrepeat=0 --output-format=json | tr -d '\\n'; echo",
                    rw = w.rw,
                    qd = w.qd,
                    jobs = w.jobs,
                    t = opts.runtime,
                );
            }
        }
    }
    s
}

/// (round, device label, workload index, IOPS).
type Row = (u32, String, usize, f64);

fn parse_results(stdout: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix(MARK) else {
            continue;
        };
        let mut parts = rest.trim_start().splitn(4, ' ');
        let (Some(round), Some(label), Some(index), Some(json)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            bail!("malformed result line {line:?}");
        };
        let value: Value = serde_json::from_str(json.trim())
            .with_context(|| format!("{label}: fio output is not JSON: {json:?}"))?;
        let iops = fio_iops(&value).with_context(|| format!("{label}: no IOPS in {json}"))?;
        rows.push((round.parse()?, label.to_owned(), index.parse()?, iops));
    }
    if rows.is_empty() {
        bail!("the guest printed no results:\n{stdout}");
    }
    Ok(rows)
}

/// Total IOPS of a (group-reported) fio job: reads plus writes.
fn fio_iops(v: &Value) -> Option<f64> {
    let job = v.get("jobs")?.get(0)?;
    let side = |k: &str| job.get(k)?.get("iops")?.as_f64();
    Some(side("read")? + side("write")?)
}

pub(super) fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

fn table(rows: &[Row], opts: &Options) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rnull (Rust) against null_blk (C): median IOPS of {} rounds of {} s (fio io_uring, O_DIRECT)\n",
        opts.rounds, opts.runtime
    );
    let _ = writeln!(
        s,
        "| workload | rnull IOPS | null_blk IOPS | Rust/C | rounds rnull | rounds null_blk |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|---|");
    let mut ratios = Vec::new();
    for (i, w) in WORKLOADS.iter().enumerate() {
        let of = |label: &str| -> Vec<f64> {
            rows.iter()
                .filter(|r| r.1 == label && r.2 == i)
                .map(|r| r.3)
                .collect()
        };
        let (rust, c) = (of(DEVICES[0].0), of(DEVICES[1].0));
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{:.0}k", x / 1000.0))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (Some(mr), Some(mc)) = (median(rust.clone()), median(c.clone())) else {
            continue;
        };
        ratios.push(mr / mc);
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} | {:.3} | {} | {} |",
            w.name,
            mr,
            mc,
            mr / mc,
            list(&rust),
            list(&c)
        );
    }
    if !ratios.is_empty() {
        let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        let _ = writeln!(
            s,
            "\nRust/C over all workloads (geometric mean): {geomean:.3}"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fio_iops_adds_reads_and_writes_and_medians_take_the_middle() {
        let v: Value =
            serde_json::from_str(r#"{"jobs":[{"read":{"iops":1000.5},"write":{"iops":0.5}}]}"#)
                .unwrap();
        assert_eq!(fio_iops(&v), Some(1001.0));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn results_are_parsed_per_round_device_and_workload() {
        let out = "noise\nBENCH-RESULT 2 rnull 4 {\"jobs\":[{\"read\":{\"iops\":7},\"write\":{\"iops\":0}}]}\n";
        assert_eq!(
            parse_results(out).unwrap(),
            vec![(2, "rnull".to_owned(), 4, 7.0)]
        );
        assert!(parse_results("nothing").is_err());
    }
}

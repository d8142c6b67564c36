//! `cargo xtask bench kernel nvme [--rounds N] [--runtime SECONDS]`: `rnvme` (the Rust PCI NVMe driver,
//! `kernel/rnvme/`) against the C `nvme` driver on the same QEMU controller, in one boot of the Rust
//! guest kernel.
//!
//! Each workload runs on both drivers back to back, as a pair, so the two runs of a pair see the same
//! load on the shared host; which driver goes first alternates from pair to pair (the controller is
//! rebound once per pair: the second run of one pair and the first of the next use the same driver).
//! Both drivers see the same device, the same namespace and no I/O scheduler. Reported per workload:
//! the median over rounds of each side (IOPS and median completion latency), the ratio of those
//! medians, and the median of the per-pair ratios, which cancels the load drifting between pairs.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::kernel::{Options, median, parse_args};

#[derive(Debug, Clone, Copy)]
struct Workload {
    name: &'static str,
    rw: &'static str,
    bs: &'static str,
    qd: u32,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "4k randread QD1",
        rw: "randread",
        bs: "4k",
        qd: 1,
    },
    Workload {
        name: "4k randread QD32",
        rw: "randread",
        bs: "4k",
        qd: 32,
    },
    Workload {
        name: "512 B randread QD1",
        rw: "randread",
        bs: "512",
        qd: 1,
    },
    Workload {
        name: "512 B randread QD32",
        rw: "randread",
        bs: "512",
        qd: 32,
    },
    Workload {
        name: "4k randwrite QD32",
        rw: "randwrite",
        bs: "4k",
        qd: 32,
    },
    Workload {
        name: "128k seqread QD8",
        rw: "read",
        bs: "128k",
        qd: 8,
    },
];

/// The two drivers: (label, driver name in sysfs, disk name prefix); the first is the Rust one.
const DRIVERS: [(&str, &str, &str); 2] = [("rnvme", "rnvme", "rnvme"), ("nvme", "nvme", "nvme")];
const MARK: &str = "BENCH-RESULT";
const DISK_BYTES: u64 = 1 << 30;

const SETUP: &str = r#"set -eu
dev=$(basename "$(readlink -f /sys/block/nvme0n1/device/device)")
insmod /lib/modules/test/rnvme.ko
bind() {
    echo $1 > /sys/bus/pci/devices/$dev/driver_override
    if [ -e /sys/bus/pci/devices/$dev/driver ]; then echo $dev > /sys/bus/pci/devices/$dev/driver/unbind; fi
    echo $dev > /sys/bus/pci/drivers_probe
    i=0; disk=
    while [ -z "$disk" ] && [ $i -lt 100 ]; do
        disk=$(ls /sys/block | grep "^$2" | head -n 1); sleep 0.1; i=$((i+1))
    done
    [ -n "$disk" ] && [ -b /dev/$disk ]
    echo none > /sys/block/$disk/queue/scheduler
}
"#;

pub fn run(args: &[String]) -> Result<ExitCode> {
    let opts = parse_args(args)?;
    let fio = ["/usr/bin/fio", "/usr/local/bin/fio"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
        .context("fio is needed on the host (apt-get install -y fio)")?;
    crate::kernel::ensure(false)?;
    let runs = WORKLOADS.len() * DRIVERS.len() * opts.rounds as usize;
    let limit = Duration::from_secs(90 + runs as u64 * (u64::from(opts.runtime) + 5));
    eprintln!(
        "xtask: {runs} fio runs of {} s in one guest (at most {} s)",
        opts.runtime,
        limit.as_secs()
    );
    let vm = crate::kernel::with_rust_kernel(guest::Vm::builder(), false)?
        .name("bench-kernel-nvme")
        .nvme(guest::Disk::sparse(DISK_BYTES))
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
    let mut bound: Option<&str> = None;
    for round in 1..=opts.rounds {
        for (i, w) in WORKLOADS.iter().enumerate() {
            // Which driver goes first alternates from pair to pair and, for one workload, from round
            // to round; within a round the second run of a pair and the first of the next share a
            // driver, so the controller is rebound once per pair.
            let mut order = DRIVERS;
            if (round as usize + i).is_multiple_of(2) {
                order.reverse();
            }
            for (label, driver, prefix) in order {
                if bound != Some(driver) {
                    let _ = writeln!(s, "bind {driver} {prefix}");
                    bound = Some(driver);
                }
                let _ = writeln!(
                    s,
                    "printf '{MARK} {round} {label} {i} '; fio --name=bench --filename=/dev/$disk \
                     --direct=1 --ioengine=io_uring --rw={rw} --bs={bs} --iodepth={qd} \
                     --time_based --runtime={t} --ramp_time=1 --norandommap --randrepeat=0 \
                     --output-format=json | tr -d '\\n'; echo",
                    rw = w.rw,
                    bs = w.bs,
                    qd = w.qd,
                    t = opts.runtime,
                );
            }
        }
    }
    s
}

/// One fio run: (round, driver label, workload index, IOPS, median completion latency in µs).
#[derive(Debug, Clone, PartialEq)]
struct Row {
    round: u32,
    label: String,
    workload: usize,
    iops: f64,
    p50_us: f64,
}

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
        let (iops, p50_us) =
            fio_summary(&value).with_context(|| format!("{label}: no IOPS in {json}"))?;
        rows.push(Row {
            round: round.parse()?,
            label: label.to_owned(),
            workload: index.parse()?,
            iops,
            p50_us,
        });
    }
    if rows.is_empty() {
        bail!("the guest printed no results:\n{stdout}");
    }
    Ok(rows)
}

/// IOPS (reads plus writes) and the median completion latency of the busier direction, in µs.
fn fio_summary(v: &Value) -> Option<(f64, f64)> {
    let job = v.get("jobs")?.get(0)?;
    let side = |k: &str| -> Option<(f64, f64)> {
        let s = job.get(k)?;
        let iops = s.get("iops")?.as_f64()?;
        let p50 = s
            .get("clat_ns")?
            .get("percentile")
            .and_then(|p| p.get("50.000000"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        Some((iops, p50 / 1000.0))
    };
    let (r, w) = (side("read")?, side("write")?);
    let p50 = if r.0 >= w.0 { r.1 } else { w.1 };
    Some((r.0 + w.0, p50))
}

/// The median over rounds of `value(rust) / value(c)`, pairing the two runs of each round.
fn paired_ratio(rust: &[&Row], c: &[&Row], value: impl Fn(&Row) -> f64) -> Option<f64> {
    let ratios = rust
        .iter()
        .filter_map(|r| {
            let other = c.iter().find(|o| o.round == r.round)?;
            let (a, b) = (value(r), value(other));
            (b > 0.0).then(|| a / b)
        })
        .collect();
    median(ratios)
}

fn table(rows: &[Row], opts: &Options) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rnvme (Rust) against nvme (C) on one QEMU NVMe controller: medians of {} rounds of {} s \
         (fio io_uring, O_DIRECT, 1 job); the two runs of a round run back to back, and \
         \"paired\" is the median of the rounds' own ratios\n",
        opts.rounds, opts.runtime
    );
    let _ = writeln!(
        s,
        "| workload | rnvme IOPS | nvme IOPS | IOPS Rust/C | paired | rnvme p50 µs | nvme p50 µs | p50 Rust/C | paired | rounds rnvme | rounds nvme |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for (i, w) in WORKLOADS.iter().enumerate() {
        let of = |label: &str| -> Vec<&Row> {
            rows.iter()
                .filter(|r| r.label == label && r.workload == i)
                .collect()
        };
        let (rust, c) = (of(DRIVERS[0].0), of(DRIVERS[1].0));
        let iops = |v: &[&Row]| median(v.iter().map(|r| r.iops).collect());
        let p50 = |v: &[&Row]| median(v.iter().map(|r| r.p50_us).collect());
        let list = |v: &[&Row]| {
            v.iter()
                .map(|r| format!("{:.1}k", r.iops / 1000.0))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (Some(ir), Some(ic), Some(pr), Some(pc)) = (iops(&rust), iops(&c), p50(&rust), p50(&c))
        else {
            continue;
        };
        let paired_iops = paired_ratio(&rust, &c, |r| r.iops).unwrap_or(f64::NAN);
        let paired_p50 = paired_ratio(&rust, &c, |r| r.p50_us).unwrap_or(f64::NAN);
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} | {:.3} | {:.3} | {:.1} | {:.1} | {:.3} | {:.3} | {} | {} |",
            w.name,
            ir,
            ic,
            ir / ic,
            paired_iops,
            pr,
            pc,
            if pc > 0.0 { pr / pc } else { f64::NAN },
            paired_p50,
            list(&rust),
            list(&c)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_carry_iops_and_the_median_latency_of_the_busier_direction() {
        let out = "noise\nBENCH-RESULT 2 rnvme 4 {\"jobs\":[{\"read\":{\"iops\":7,\"clat_ns\":{\"percentile\":{\"50.000000\":3000}}},\"write\":{\"iops\":900,\"clat_ns\":{\"percentile\":{\"50.000000\":41000}}}}]}\n";
        let rows = parse_results(out).unwrap();
        assert_eq!(
            rows,
            vec![Row {
                round: 2,
                label: "rnvme".to_owned(),
                workload: 4,
                iops: 907.0,
                p50_us: 41.0
            }]
        );
        assert!(parse_results("nothing").is_err());
        let t = table(
            &rows,
            &Options {
                rounds: 1,
                runtime: 1,
            },
        );
        // One side only: no ratio row.
        assert!(!t.contains("| 4k randwrite QD32 |"), "{t}");
    }

    fn row(round: u32, label: &str, iops: f64) -> Row {
        Row {
            round,
            label: label.to_owned(),
            workload: 0,
            iops,
            p50_us: 1.0,
        }
    }

    #[test]
    fn the_paired_ratio_compares_runs_of_the_same_round() {
        // The host slowed down in round 2 for both sides: each round's own ratio is 0.5, while the
        // medians of the sides (5 and 6) would give 0.833.
        let rust = [
            row(1, "rnvme", 10.0),
            row(2, "rnvme", 1.0),
            row(3, "rnvme", 5.0),
        ];
        let c = [
            row(1, "nvme", 20.0),
            row(2, "nvme", 2.0),
            row(3, "nvme", 6.0),
        ];
        let (rust, c): (Vec<&Row>, Vec<&Row>) = (rust.iter().collect(), c.iter().collect());
        let ratio = paired_ratio(&rust, &c, |r| r.iops).unwrap();
        assert!((ratio - 0.5).abs() < 1e-9, "{ratio}");
        // A round with one side missing is left out; none at all gives nothing.
        assert_eq!(paired_ratio(&rust[..1], &c[1..], |r| r.iops), None);
    }
}

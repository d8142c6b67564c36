//! `cargo xtask bench nvme --multi-queue`: does our driver scale with its queue pairs?
//!
//! One guest, the controller behind the emulated IOMMU (vfio-pci). Each round runs 4 KiB random
//! reads at 16 in flight per queue through
//! - `nvme-tool bench --queues 1` and `--queues 2` (a polling thread per queue pair, pausing
//!   after 20 µs without a completion so the emulated controller keeps a host core),
//! - `nvme-ublk --queues 1` and `--queues 2` (polling and on interrupts) under one fio job of two
//!   jobs pinned one per vCPU (so with two queues each job has its own),
//! - the kernel's driver under the same fio job, for reference,
//!
//! each of ours with shadow doorbells and without. The best round of each is reported, with the
//! ratio of two queues to one.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use guest::{Disk, Vm};

use super::{
    DISK_BYTES, MARK, Measure, Row, TO_KERNEL_DRIVER, best, parse_results,
    prelude_with_filled_namespace, which,
};

/// Queue entries in flight per queue pair (nvme-tool) or per fio job.
const DEPTH: u32 = 16;
/// The fio job on a block device: two jobs, one per vCPU.
const FIO_JOBS: u32 = 2;
const KERNEL: &str = "kernel";
const TOOL: &str = "nvme-tool";
const UBLK_MODES: &[(&str, &str)] = &[("ublk-poll", "--poll"), ("ublk-irq", "--interrupts")];
const SHADOW: &[(&str, &str)] = &[("on", ""), ("off", " --no-shadow-doorbells")];
const WORKLOAD: &str = "4k-randread";

/// Engine names in result lines: `{engine}-{shadow}-q{queues}` (the kernel: `kernel-q0`).
fn engine(name: &str, shadow: &str, queues: u32) -> String {
    format!("{name}-{shadow}-q{queues}")
}

pub(super) fn run(rounds: u32, runtime: u32) -> Result<ExitCode> {
    let fio = which("fio").context("fio is needed on the host (apt-get install -y fio)")?;
    let script = guest_script(rounds, runtime);
    // Per round: the kernel, 2 shadow settings x 2 queue counts x (nvme-tool + 2 ublk modes).
    let runs = rounds as u64 * (1 + 2 * 2 * 3);
    let limit = Duration::from_secs(90 + runs * (u64::from(runtime) + 8));
    eprintln!(
        "xtask: {runs} runs of {runtime} s in one guest (at most {} s)",
        limit.as_secs()
    );
    let out = Vm::builder()
        .name("bench-nvme-mq")
        .nvme(Disk::memory(DISK_BYTES))
        .host_program(&fio)
        .iommu(true)
        .timeout(limit)
        .static_bin("nvme", "nvme-tool")
        .static_bin("nvme-ublk", "nvme-ublk")
        .run(&script)
        .context("the benchmark guest failed")?;
    if !out.success() {
        bail!("the benchmark script failed\n{}", out.log_tail());
    }
    let rows = parse_results(&out.stdout)?;
    println!("{}", table(&rows, rounds, runtime));
    Ok(ExitCode::SUCCESS)
}

fn guest_script(rounds: u32, t: u32) -> String {
    let mut s = prelude_with_filled_namespace();
    let fio = |s: &mut String, round: u32, engine: &str, dev: &str| {
        let _ = writeln!(
            s,
            "printf '{MARK} {round} {engine} {WORKLOAD} '; fio --name=bench --filename=/dev/{dev} \
             --direct=1 --ioengine=io_uring --rw=randread --bs=4k --iodepth={DEPTH} \
             --numjobs={FIO_JOBS} --cpus_allowed=0-1 --cpus_allowed_policy=split --group_reporting \
             --time_based --runtime={t} --ramp_time=1 --norandommap --randrepeat=0 \
             --lat_percentiles=1 --output-format=json | tr -d '\\n'; echo"
        );
    };
    for round in 1..=rounds {
        s.push_str(TO_KERNEL_DRIVER);
        fio(&mut s, round, &engine(KERNEL, "on", 0), "nvme0n1");
        s.push_str("bind vfio-pci\nDEV=vfio:$BDF\n");
        for (shadow, flag) in SHADOW {
            for queues in [1, 2] {
                let _ = writeln!(
                    s,
                    "printf '{MARK} {round} {} {WORKLOAD} '; nvme-tool --device $DEV{flag} bench \
                     --rw randread --bs 4k --iodepth {DEPTH} --queues {queues} --hybrid-poll-us 20 \
                     --runtime {t} --json | tr -d '\\n'; echo",
                    engine(TOOL, shadow, queues)
                );
            }
        }
        for (mode_name, mode) in UBLK_MODES {
            for (shadow, flag) in SHADOW {
                for queues in [1, 2] {
                    let _ = writeln!(
                        s,
                        "nvme-ublk --device $DEV{flag} --queues {queues} --depth 64 {mode} \
                         > /tmp/ublk.out 2> /tmp/ublk.err &\n\
                         UBLK=$!\n\
                         wait_disk /dev/ublkb0 || {{ cat /tmp/ublk.err; exit 1; }}"
                    );
                    fio(&mut s, round, &engine(mode_name, shadow, queues), "ublkb0");
                    s.push_str("kill -TERM $UBLK; wait $UBLK\n");
                    s.push_str(
                        "i=0; while [ -e /dev/ublkb0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done\n",
                    );
                }
            }
        }
    }
    s.push_str("bind nvme\n");
    s
}

fn table(rows: &[Row], rounds: u32, runtime: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Multi-queue, vfio-pci behind the emulated IOMMU: 4k random reads, {DEPTH} in flight per \
         queue pair (nvme-tool) or per fio job ({FIO_JOBS} jobs, one per vCPU, on the block \
         devices); best of {rounds} rounds of {runtime} s.\n"
    );
    let _ = writeln!(
        s,
        "| engine | shadow doorbells | IOPS, 1 queue | IOPS, 2 queues | 2 / 1 | p50 µs, 1 / 2 queues |\n\
         |---|---|---:|---:|---:|---:|"
    );
    if let Some(m) = best(rows, &engine(KERNEL, "on", 0), WORKLOAD) {
        let _ = writeln!(
            s,
            "| kernel nvme (fio, same job) | | {:.0} | | | {:.1} |",
            m.iops, m.p50_us
        );
    }
    let names = std::iter::once(TOOL).chain(UBLK_MODES.iter().map(|(name, _)| *name));
    for name in names {
        for (shadow, _) in SHADOW {
            let get = |q| best(rows, &engine(name, shadow, q), WORKLOAD);
            let (Some(one), Some(two)): (Option<Measure>, Option<Measure>) = (get(1), get(2))
            else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {name} | {shadow} | {:.0} | {:.0} | {:.2}x | {:.1} / {:.1} |",
                one.iops,
                two.iops,
                two.iops / one.iops,
                one.p50_us,
                two.p50_us
            );
        }
    }
    let _ = writeln!(s, "\nEvery round's IOPS (round order):\n");
    let mut engines: Vec<&str> = Vec::new();
    for (_, engine, _, _) in rows {
        if !engines.contains(&engine.as_str()) {
            engines.push(engine);
        }
    }
    for engine in engines {
        let mut runs: Vec<(u32, f64)> = rows
            .iter()
            .filter(|(_, e, _, _)| e == engine)
            .map(|(round, _, _, m)| (*round, m.iops))
            .collect();
        runs.sort_by_key(|(round, _)| *round);
        let list: Vec<String> = runs.iter().map(|(_, iops)| format!("{iops:.0}")).collect();
        let _ = writeln!(s, "- {engine}: {}", list.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_one_and_two_queues_with_and_without_shadow_doorbells() {
        let script = guest_script(1, 2);
        for queues in [1, 2] {
            assert!(script.contains(&format!(
                "--iodepth 16 --queues {queues} --hybrid-poll-us 20"
            )));
            for mode in ["--poll", "--interrupts"] {
                assert!(script.contains(&format!("--queues {queues} --depth 64 {mode}")));
                assert!(script.contains(&format!(
                    " --no-shadow-doorbells --queues {queues} --depth 64 {mode}"
                )));
            }
        }
        assert!(script.contains("nvme-tool --device $DEV --no-shadow-doorbells bench"));
        assert_eq!(script.matches("--numjobs=2 --cpus_allowed=0-1").count(), 9);
        // The namespace is written once before the first measured run.
        let fill = script.find("--rw=write --bs=1M").expect("no fill");
        assert!(fill < script.find("--name=bench").unwrap(), "{script}");
    }

    #[test]
    fn the_table_sets_two_queues_against_one() {
        let rows: Vec<Row> = [("nvme-tool-on-q1", 100.0), ("nvme-tool-on-q2", 150.0)]
            .iter()
            .map(|(e, iops)| {
                let m = Measure {
                    iops: *iops,
                    p50_us: 10.0,
                    p99_us: 20.0,
                };
                (1, e.to_string(), WORKLOAD.to_owned(), m)
            })
            .collect();
        let table = table(&rows, 1, 2);
        assert!(
            table.contains("| nvme-tool | on | 100 | 150 | 1.50x | 10.0 / 10.0 |"),
            "{table}"
        );
        assert!(!table.contains("| nvme-tool | off |"));
        assert!(table.contains("- nvme-tool-on-q2: 150\n"), "{table}");
    }
}

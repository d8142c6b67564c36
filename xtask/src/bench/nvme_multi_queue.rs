//! `cargo xtask bench nvme --multi-queue`: does our driver scale with its queue pairs?
//!
//! One guest, the controller behind the emulated IOMMU (vfio-pci). Each round runs 4 KiB random
//! reads through
//! - `nvme-tool bench --queues 1` and `--queues 2`, 16 in flight per queue pair (a polling thread
//!   per queue pair, pausing after 20 µs without a completion so the emulated controller keeps a
//!   host core),
//! - `nvme-ublk --queues 1` and `--queues 2` (polling and on interrupts) under two fio loads: two
//!   jobs of 16 pinned one per vCPU (so with two queues each job has its own), and one job of 32
//!   left to the scheduler (so the daemon's threads have a vCPU fio does not fill),
//! - the ublk project's null target (`libublk`'s `null` example, see [`crate::bench::ublk_null`]) with
//!   one queue and two under the same fio loads: what ublk itself allows on this guest, with no
//!   driver or device behind it,
//! - the kernel's driver under the same fio loads, for reference,
//!
//! each of ours with shadow doorbells and without (the one-job load with them only). The best round
//! of each is reported, with the ratio of two queues to one.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use guest::{Disk, HostLoad, Vm};

use super::{
    DISK_BYTES, MARK, Measure, Row, TO_KERNEL_DRIVER, best, mean_load, parse_results,
    prelude_with_filled_namespace, which,
};
use crate::bench::{run_label, run_load};

/// Queue entries in flight per queue pair (nvme-tool).
const DEPTH: u32 = 16;
/// A fio load on a block device: its name in result lines, in the table, and fio's options.
struct FioLoad {
    workload: &'static str,
    label: &'static str,
    options: &'static str,
}
/// Two jobs of 16, one per vCPU: every vCPU submits, to its own queue when there are two.
const TWO_JOBS: FioLoad = FioLoad {
    workload: "4k-randread",
    label: "fio 2 jobs x 16, one per vCPU",
    options: "--iodepth=16 --numjobs=2 --cpus_allowed=0-1 --cpus_allowed_policy=split",
};
/// One job of 32, placed by the scheduler: a vCPU is left for the daemon's queue threads.
const ONE_JOB: FioLoad = FioLoad {
    workload: "4k-randread-1job",
    label: "fio 1 job x 32",
    options: "--iodepth=32 --numjobs=1",
};
/// Both loads, in the order they run and are reported.
const FIO_LOADS: [&FioLoad; 2] = [&TWO_JOBS, &ONE_JOB];
const KERNEL: &str = "kernel";
const TOOL: &str = "nvme-tool";
const UBLK_MODES: &[(&str, &str)] = &[("ublk-poll", "--poll"), ("ublk-irq", "--interrupts")];
const SHADOW: &[(&str, &str)] = &[("on", ""), ("off", " --no-shadow-doorbells")];
const WORKLOAD: &str = "4k-randread";
/// The ublk null target's engine name in result lines (`{NULL_TARGET}-q{queues}`) and table.
const NULL_TARGET: &str = "ublk-null";
/// Where the null target's binary is in the guest (host programs keep their host path).
const NULL_IN_GUEST: &str = "$UBLK_NULL";

/// Engine names in result lines: `{engine}-{shadow}-q{queues}` (the kernel: `kernel-q0`).
fn engine(name: &str, shadow: &str, queues: u32) -> String {
    format!("{name}-{shadow}-q{queues}")
}

pub(super) fn run(rounds: u32, runtime: u32) -> Result<ExitCode> {
    let fio = which("fio").context("fio is needed on the host (apt-get install -y fio)")?;
    let null_target = crate::bench::ublk_null::build()?;
    let script = format!("UBLK_NULL={}\n", null_target.display()) + &guest_script(rounds, runtime);
    // Per round: the kernel under both loads, 2 shadow settings x 2 queue counts x (nvme-tool + 2
    // ublk modes), the one-job load on 2 ublk modes x 2 queue counts with shadow doorbells, and
    // the null target's 2 queue counts under both loads.
    let runs = rounds as u64 * (2 + 2 * 2 * 3 + 2 * 2 + 2 * 2);
    let limit = Duration::from_secs(90 + runs * (u64::from(runtime) + 8));
    eprintln!(
        "xtask: {runs} runs of {runtime} s in one guest (at most {} s)",
        limit.as_secs()
    );
    let out = Vm::builder()
        .name("bench-nvme-mq")
        .nvme(Disk::memory(DISK_BYTES))
        .host_program(&fio)
        .host_program(&null_target)
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
    let loads = guest::loads_by_label(&out.host_stamps);
    println!("{}", table(&rows, &loads, rounds, runtime));
    Ok(ExitCode::SUCCESS)
}

fn guest_script(rounds: u32, t: u32) -> String {
    let mut s = prelude_with_filled_namespace();
    let fio = |s: &mut String, round: u32, engine: &str, dev: &str, load: &FioLoad| {
        let workload = load.workload;
        let command = format!(
            "printf '{MARK} {round} {engine} {workload} '; fio --name=bench --filename=/dev/{dev} \
             --direct=1 --ioengine=io_uring --rw=randread --bs=4k {options} --group_reporting \
             --time_based --runtime={t} --ramp_time=1 --norandommap --randrepeat=0 \
             --lat_percentiles=1 --output-format=json | tr -d '\\n'; echo",
            options = load.options,
        );
        s.push_str(&guest::stamped(
            &run_label(round, engine, workload),
            &command,
        ));
    };
    for round in 1..=rounds {
        s.push_str(TO_KERNEL_DRIVER);
        for load in FIO_LOADS {
            fio(&mut s, round, &engine(KERNEL, "on", 0), "nvme0n1", load);
        }
        s.push_str("bind vfio-pci\nDEV=vfio:$BDF\n");
        for (shadow, flag) in SHADOW {
            for queues in [1, 2] {
                let name = engine(TOOL, shadow, queues);
                let command = format!(
                    "printf '{MARK} {round} {name} {WORKLOAD} '; nvme-tool --device $DEV{flag} bench \
                     --rw randread --bs 4k --iodepth {DEPTH} --queues {queues} --hybrid-poll-us 20 \
                     --runtime {t} --json | tr -d '\\n'; echo"
                );
                s.push_str(&guest::stamped(
                    &run_label(round, &name, WORKLOAD),
                    &command,
                ));
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
                    let name = engine(mode_name, shadow, queues);
                    fio(&mut s, round, &name, "ublkb0", &TWO_JOBS);
                    if flag.is_empty() {
                        fio(&mut s, round, &name, "ublkb0", &ONE_JOB);
                    }
                    s.push_str("kill -TERM $UBLK; wait $UBLK\n");
                    s.push_str(GONE);
                }
            }
        }
        for queues in [1, 2] {
            let _ = writeln!(
                s,
                "{NULL_IN_GUEST} add --number 0 --queues {queues} --depth 64 --foreground \
                 > /tmp/null.out 2>&1 &\n\
                 NULL=$!\n\
                 wait_disk /dev/ublkb0 || {{ cat /tmp/null.out; exit 1; }}"
            );
            let name = format!("{NULL_TARGET}-q{queues}");
            for load in FIO_LOADS {
                fio(&mut s, round, &name, "ublkb0", load);
            }
            let _ = writeln!(s, "{NULL_IN_GUEST} del --number 0 > /dev/null; wait $NULL");
            s.push_str(GONE);
        }
    }
    s.push_str("bind nvme\n");
    s
}

/// Waits (up to 5 s) for the ublk device of the run before to be gone.
const GONE: &str =
    "i=0; while [ -e /dev/ublkb0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done\n";

fn table(rows: &[Row], loads: &[(String, HostLoad)], rounds: u32, runtime: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Multi-queue, vfio-pci behind the emulated IOMMU: 4k random reads, {DEPTH} in flight per \
         queue pair (nvme-tool) or under a fio load (the block devices); best of {rounds} rounds of \
         {runtime} s. Host: how busy the host's CPUs were during the runs and how many cores' worth \
         QEMU's device emulation (its threads but the vCPUs) took, averaged over the rounds.\n"
    );
    let _ = writeln!(
        s,
        "| engine | shadow doorbells | load | IOPS, 1 queue | IOPS, 2 queues | 2 / 1 | p50 µs, 1 / 2 queues | host busy, 1 / 2 queues | emulation cores, 1 / 2 queues |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|"
    );
    for load in FIO_LOADS {
        let kernel = engine(KERNEL, "on", 0);
        if let Some(m) = best(rows, &kernel, load.workload) {
            let host = mean_load(loads, &kernel, load.workload);
            let _ = writeln!(
                s,
                "| kernel nvme | | {} | {:.0} | | | {:.1} | {} | {} |",
                load.label,
                m.iops,
                m.p50_us,
                busy(host),
                cores(host)
            );
        }
    }
    let tool = (TOOL, format!("{DEPTH} per queue pair"), WORKLOAD);
    let ublk = UBLK_MODES.iter().flat_map(|(name, _)| {
        FIO_LOADS
            .into_iter()
            .map(move |load| (*name, load.label.to_owned(), load.workload))
    });
    for (name, label, workload) in std::iter::once(tool).chain(ublk) {
        for (shadow, _) in SHADOW {
            let cells = [name, shadow, label.as_str()];
            two_queue_row(&mut s, rows, loads, cells, workload, |q| {
                engine(name, shadow, q)
            });
        }
    }
    for load in FIO_LOADS {
        let cells = ["ublk null target (no device)", "", load.label];
        two_queue_row(&mut s, rows, loads, cells, load.workload, |q| {
            format!("{NULL_TARGET}-q{q}")
        });
    }
    let _ = writeln!(
        s,
        "\nEvery round's IOPS (round order), with the host's busy share and the cores' worth QEMU's \
         vCPU threads and its emulation took:\n"
    );
    let mut runs_of: Vec<(&str, &str)> = Vec::new();
    for (_, engine, workload, _) in rows {
        if !runs_of.contains(&(engine.as_str(), workload.as_str())) {
            runs_of.push((engine, workload));
        }
    }
    for (engine, workload) in runs_of {
        let mut runs: Vec<(u32, f64)> = rows
            .iter()
            .filter(|(_, e, w, _)| e == engine && w == workload)
            .map(|(round, _, _, m)| (*round, m.iops))
            .collect();
        runs.sort_by_key(|(round, _)| *round);
        let list: Vec<String> = runs
            .iter()
            .map(
                |(round, iops)| match run_load(loads, *round, engine, workload) {
                    Some(h) => format!(
                        "{iops:.0} ({:.0} %, {:.2} + {:.2})",
                        h.busy * 100.0,
                        h.vcpu_cores,
                        h.emulator_cores
                    ),
                    None => format!("{iops:.0}"),
                },
            )
            .collect();
        let _ = writeln!(s, "- {engine} {workload}: {}", list.join(", "));
    }
    s
}

/// How busy the host's CPUs were over a run ("-" if unknown).
fn busy(load: Option<HostLoad>) -> String {
    load.map_or_else(|| "-".to_owned(), |l| format!("{:.0} %", l.busy * 100.0))
}

/// The cores' worth of host CPU QEMU's emulation took over a run ("-" if unknown).
fn cores(load: Option<HostLoad>) -> String {
    load.map_or_else(|| "-".to_owned(), |l| format!("{:.2}", l.emulator_cores))
}

/// One table row: an engine's best round with one queue against its best with two (no row when
/// either is missing). `cells` are the engine, shadow doorbell and load columns.
fn two_queue_row(
    s: &mut String,
    rows: &[Row],
    loads: &[(String, HostLoad)],
    cells: [&str; 3],
    workload: &str,
    engine_of: impl Fn(u32) -> String,
) {
    let get = |q| best(rows, &engine_of(q), workload);
    let (Some(one), Some(two)): (Option<Measure>, Option<Measure>) = (get(1), get(2)) else {
        return;
    };
    let host = |q| mean_load(loads, &engine_of(q), workload);
    let [name, shadow, label] = cells;
    // An empty cell as the kernel's rows write it: "| |".
    let shadow = if shadow.is_empty() {
        String::new()
    } else {
        format!("{shadow} ")
    };
    let _ = writeln!(
        s,
        "| {name} | {shadow}| {label} | {:.0} | {:.0} | {:.2}x | {:.1} / {:.1} | {} / {} | {} / {} |",
        one.iops,
        two.iops,
        two.iops / one.iops,
        one.p50_us,
        two.p50_us,
        busy(host(1)),
        busy(host(2)),
        cores(host(1)),
        cores(host(2)),
    );
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
        assert_eq!(script.matches("--numjobs=2 --cpus_allowed=0-1").count(), 11);
        // The one-job load: the kernel, each ublk mode's two queue counts with shadow doorbells,
        // and the null target's two.
        assert_eq!(script.matches("--iodepth=32 --numjobs=1 ").count(), 7);
        // The null target: one queue, then two, each deleted (and awaited) before the next.
        let one = script
            .find("$UBLK_NULL add --number 0 --queues 1 --depth 64")
            .unwrap();
        let two = script
            .find("$UBLK_NULL add --number 0 --queues 2 --depth 64")
            .unwrap();
        let del = script
            .find("$UBLK_NULL del --number 0 > /dev/null; wait $NULL")
            .unwrap();
        assert!(one < del && del < two, "{script}");
        assert_eq!(
            script.matches("filename=/dev/ublkb0").count(),
            2 * 2 * (2 + 1) + 2 * 2
        );
        // The namespace is written once before the first measured run.
        let fill = script.find("--rw=write --bs=1M").expect("no fill");
        assert!(fill < script.find("--name=bench").unwrap(), "{script}");
    }

    #[test]
    fn the_table_sets_two_queues_against_one_with_the_host_load() {
        let rows: Vec<Row> = [
            (1, "nvme-tool-on-q1", 100.0),
            (2, "nvme-tool-on-q1", 90.0),
            (1, "nvme-tool-on-q2", 150.0),
            (1, "ublk-null-q1", 200.0),
            (1, "ublk-null-q2", 50.0),
        ]
        .iter()
        .map(|(round, e, iops)| {
            let m = Measure {
                iops: *iops,
                p50_us: 10.0,
                p99_us: 20.0,
            };
            (*round, e.to_string(), WORKLOAD.to_owned(), m)
        })
        .collect();
        let load = |busy, emulator_cores| HostLoad {
            busy,
            vcpu_cores: 1.0,
            emulator_cores,
            guest_instructions: None,
        };
        // Both rounds of one queue are averaged; two queues have no stamps (a failed script).
        let loads = vec![
            (run_label(1, "nvme-tool-on-q1", WORKLOAD), load(0.9, 0.5)),
            (run_label(2, "nvme-tool-on-q1", WORKLOAD), load(1.0, 0.7)),
            (run_label(1, "kernel-on-q0", WORKLOAD), load(0.5, 0.2)),
        ];
        let table = table(&rows, &loads, 2, 2);
        assert!(
            table.contains(
                "| nvme-tool | on | 16 per queue pair | 100 | 150 | 1.50x | 10.0 / 10.0 | 95 % / - | 0.60 / - |"
            ),
            "{table}"
        );
        assert!(!table.contains("| nvme-tool | off |"));
        assert!(
            table.contains(
                "| ublk null target (no device) | | fio 2 jobs x 16, one per vCPU | 200 | 50 | 0.25x |"
            ),
            "{table}"
        );
        assert!(!table.contains("| ublk null target (no device) | | fio 1 job"));
        assert!(
            table.contains(
                "- nvme-tool-on-q1 4k-randread: 100 (90 %, 1.00 + 0.50), 90 (100 %, 1.00 + 0.70)\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("- nvme-tool-on-q2 4k-randread: 150\n"),
            "{table}"
        );
    }

    #[test]
    fn every_measured_run_is_between_host_stamps_of_its_label() {
        let script = guest_script(1, 2);
        for (label, command) in [
            (
                "1 nvme-tool-off-q2 4k-randread",
                "nvme-tool --device $DEV --no-shadow-doorbells",
            ),
            (
                "1 ublk-irq-on-q1 4k-randread-1job",
                "fio --name=bench --filename=/dev/ublkb0",
            ),
            (
                "1 kernel-on-q0 4k-randread",
                "fio --name=bench --filename=/dev/nvme0n1",
            ),
        ] {
            let begin = script
                .find(&format!("host-stamp begin {label}\n"))
                .expect(label);
            let end = script
                .find(&format!("host-stamp end {label}\n"))
                .expect(label);
            let run = &script[begin..end];
            assert!(
                run.contains(command) && run.matches(MARK).count() == 1,
                "{run}"
            );
        }
    }
}

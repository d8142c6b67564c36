//! `cargo xtask bench kernel nvme --instructions`: the guest instructions each driver needs per I/O,
//! on the workloads of `bench kernel nvme`, counted by QEMU's `tcg-insn-count` plugin.
//!
//! Wall-clock rates under TCG mix the drivers' own work with the emulator's and the host's noise.
//! Instructions do not: they tell which driver does more work per request, and where rates differ
//! by less than their spread, they still show a difference. Each run is fio in the background; once
//! it is past its ramp, the guest stamps the start of a window, and at its end the window's
//! instructions (everything the guest ran: fio, the kernel, `nvme-ublk`) are divided by the I/Os the
//! disk completed in it. Counting slows the guest down, so these runs give no rates.
//!
//! With `--functions`, the kernel's share is also broken down by function
//! ([`super::kernel_nvme_functions`]).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::kernel::Options;
use super::kernel_nvme::{
    C, DISK_BYTES, DRIVERS, Driver, RUST, SETUP, USER, WORKLOADS, rounds_script,
};
use super::run_load;

const MARK: &str = "INSN-RESULT";

/// Seconds fio runs before the window opens (its ramp) and after it closes.
const RAMP: u32 = 1;

/// `fio_counted LABEL ROUND WORKLOAD WINDOW ARGS...`: fio on `$disk` in the background, a stamped
/// window of WINDOW seconds once it runs, and a result line with the I/Os completed in the window.
const FIO_COUNTED: &str = r#"ios() { awk '{ print $1 + $5 }' "/sys/block/$disk/stat"; }
fio_counted() {
    label=$1 round=$2 workload=$3 window=$4; shift 4
    fio --name=bench --filename=/dev/$disk --output=/dev/null --eta=never --time_based \
        --runtime=$((window + 2 * RAMP)) "$@" &
    pid=$!
    sleep $RAMP
    i0=$(ios)
    host-stamp begin $round $label $workload
    sleep $window
    host-stamp end $round $label $workload
    i1=$(ios)
    wait $pid
    echo "INSN-RESULT $round $label $workload $((i1 - i0))"
}
"#;

pub(super) fn run(opts: &Options, fio: &std::path::Path) -> Result<ExitCode> {
    let runs = WORKLOADS.len() * DRIVERS.len() * opts.rounds as usize;
    let limit = Duration::from_secs(90 + runs as u64 * (u64::from(opts.runtime + 2 * RAMP) + 10));
    eprintln!(
        "xtask: {runs} counted fio runs of {} s in one guest (at most {} s)",
        opts.runtime,
        limit.as_secs()
    );
    let out = crate::kernel::with_rust_kernel(guest::Vm::builder(), true)?
        .name("bench-kernel-nvme-instructions")
        .nvme(guest::Disk::memory(DISK_BYTES))
        .host_program(fio)
        .static_bin("nvme-ublk", "nvme-ublk")
        .count_instructions(true)
        .count_kernel_blocks(opts.functions)
        .timeout(limit)
        .run(&guest_script(opts))
        .context("the benchmark guest failed")?;
    if !out.success() {
        bail!("the benchmark script failed\n{}", out.log_tail());
    }
    let runs = parse_results(&out.stdout)?;
    let loads = guest::loads_by_label(&out.host_stamps);
    println!("{}", table(&runs, &loads, opts));
    if opts.functions {
        let counted: Vec<_> = runs
            .iter()
            .map(|r| super::kernel_nvme_functions::CountedRun {
                round: r.round,
                label: &r.label,
                workload: r.workload,
                ios: r.ios,
            })
            .collect();
        let blocks_at = |label: &str| {
            let stamp = out.host_stamps.iter().find(|s| s.label == label)?;
            Some(stamp.kernel_blocks())
        };
        println!(
            "{}",
            super::kernel_nvme_functions::report(&out.stdout, blocks_at, &counted)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn guest_script(opts: &Options) -> String {
    let symbols = match opts.functions {
        true => super::kernel_nvme_functions::PRINT_SYMBOLS,
        false => "",
    };
    let prelude = format!("{SETUP}RAMP={RAMP}\n{FIO_COUNTED}{symbols}");
    rounds_script(&prelude, opts, |round, i, w, driver| {
        format!(
            "fio_counted {} {round} {i} {} --direct=1 --ioengine=io_uring --rw={} --bs={} \
             --iodepth={} --norandommap --randrepeat=0\n",
            driver.label, opts.runtime, w.rw, w.bs, w.qd,
        )
    })
}

/// One counted run: its round, driver label, workload index and the I/Os of its window.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    round: u32,
    label: String,
    workload: usize,
    ios: u64,
}

fn parse_results(stdout: &str) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.find(MARK).map(|at| &line[at + MARK.len()..]) else {
            continue;
        };
        let parts: Vec<&str> = rest.split_whitespace().collect();
        let [round, label, workload, ios] = parts[..] else {
            bail!("malformed result line {line:?}");
        };
        runs.push(Run {
            round: round.parse()?,
            label: label.to_owned(),
            workload: workload.parse()?,
            ios: ios.parse()?,
        });
    }
    if runs.is_empty() {
        bail!("the guest printed no results:\n{stdout}");
    }
    Ok(runs)
}

/// Guest instructions per I/O of each of `driver`'s runs of workload `i`, by round.
fn per_io(
    runs: &[Run],
    loads: &[(String, guest::HostLoad)],
    driver: Driver,
    i: usize,
) -> Vec<(u32, f64)> {
    runs.iter()
        .filter(|r| r.label == driver.label && r.workload == i && r.ios > 0)
        .filter_map(|r| {
            let n = run_load(loads, r.round, &r.label, r.workload)?.guest_instructions?;
            Some((r.round, n as f64 / r.ios as f64))
        })
        .collect()
}

/// The median of `driver`'s figure and of its ratios to the C driver's in the same round.
fn summary(ours: &[(u32, f64)], c: &[(u32, f64)]) -> (Option<f64>, Option<f64>) {
    let ratios = ours
        .iter()
        .filter_map(|(round, v)| Some(v / c.iter().find(|(r, _)| r == round)?.1))
        .collect();
    (
        super::kernel::median(ours.iter().map(|(_, v)| *v).collect()),
        super::kernel::median(ratios),
    )
}

fn table(runs: &[Run], loads: &[(String, guest::HostLoad)], opts: &Options) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Guest instructions per I/O (everything the guest ran, over both vCPUs), counted over a {} s \
         window of each fio run (io_uring, O_DIRECT, 1 job), medians of {} rounds; the ratios are \
         paired against the C driver's run of the same round\n",
        opts.runtime, opts.rounds
    );
    s.push_str(
        "| workload | nvme | rnvme | nvme-ublk | rnvme/C | nvme-ublk/C |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let cell =
        |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
    for (i, w) in WORKLOADS.iter().enumerate() {
        let c = per_io(runs, loads, C, i);
        let (rust, rust_ratio) = summary(&per_io(runs, loads, RUST, i), &c);
        let (user, user_ratio) = summary(&per_io(runs, loads, USER, i), &c);
        let c_median = super::kernel::median(c.iter().map(|(_, v)| *v).collect());
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            w.name,
            cell(c_median, 0),
            cell(rust, 0),
            cell(user, 0),
            cell(rust_ratio, 3),
            cell(user_ratio, 3),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::run_label;

    fn load(instructions: u64) -> guest::HostLoad {
        guest::HostLoad {
            busy: 0.5,
            vcpu_cores: 1.0,
            emulator_cores: 0.5,
            guest_instructions: Some(instructions),
        }
    }

    #[test]
    fn every_run_counts_a_stamped_window_after_fio_started() {
        let s = guest_script(&Options {
            rounds: 2,
            runtime: 3,
            instructions: true,
            functions: false,
        });
        let runs = s.matches("fio_counted ").count();
        assert_eq!(runs, 2 * WORKLOADS.len() * DRIVERS.len());
        assert!(s.contains("fio_counted rnvme 1 1 3 --direct=1 --ioengine=io_uring --rw=randread --bs=4k --iodepth=32"), "{s}");
        // The window opens after the ramp, inside fio's run, and its stamps carry the run's label.
        let f = FIO_COUNTED;
        let (start, open, close, wait) = (
            f.find("fio --name").unwrap(),
            f.find("host-stamp begin $round $label $workload").unwrap(),
            f.find("host-stamp end $round $label $workload").unwrap(),
            f.find("wait $pid").unwrap(),
        );
        assert!(start < f.find("sleep $RAMP").unwrap() && f.find("sleep $RAMP").unwrap() < open);
        assert!(open < close && close < wait);
        assert!(s.contains("RAMP=1\n"));
    }

    #[test]
    fn instructions_per_io_pair_each_driver_with_the_c_run_of_its_round() {
        let out = "noise\nINSN-RESULT 1 nvme 1 1000\nINSN-RESULT 1 rnvme 1 2000\n\
                   INSN-RESULT 2 nvme 1 1000\nINSN-RESULT 2 rnvme 1 1000\nINSN-RESULT 1 nvme-ublk 1 0\n";
        let runs = parse_results(out).unwrap();
        assert_eq!(runs.len(), 5);
        let loads = vec![
            (run_label(1, "nvme", 1), load(9_000_000)),
            (run_label(1, "rnvme", 1), load(20_000_000)),
            (run_label(2, "nvme", 1), load(8_000_000)),
            (run_label(2, "rnvme", 1), load(9_600_000)),
            (run_label(1, "nvme-ublk", 1), load(5)),
        ];
        let c = per_io(&runs, &loads, C, 1);
        assert_eq!(c, [(1, 9000.0), (2, 8000.0)]);
        // rnvme: 10,000 and 9,600 per I/O; paired with C: 1.111 and 1.2.
        let (median, ratio) = summary(&per_io(&runs, &loads, RUST, 1), &c);
        assert_eq!(median, Some(9800.0));
        assert!((ratio.unwrap() - (10_000.0 / 9000.0 + 1.2) / 2.0).abs() < 1e-9);
        // A run without I/Os gives no figure rather than infinity.
        assert_eq!(per_io(&runs, &loads, USER, 1), []);
        let t = table(
            &runs,
            &loads,
            &Options {
                rounds: 2,
                runtime: 3,
                instructions: true,
                functions: false,
            },
        );
        assert!(
            t.contains("| 4k randread QD32 | 8500 | 9800 | - | 1.156 | - |"),
            "{t}"
        );
        assert!(parse_results("INSN-RESULT 1 nvme\n").is_err());
        assert!(parse_results("nothing\n").is_err());
    }
}

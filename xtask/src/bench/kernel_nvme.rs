//! `cargo xtask bench kernel nvme [--rounds N] [--runtime SECONDS]`: `rnvme` (the Rust PCI NVMe driver,
//! `kernel/rnvme/`) against the C `nvme` driver on the same QEMU controller, in one boot of the Rust
//! guest kernel, with the user-space driver (`nvme-ublk`, the `nvme` crate behind `/dev/ublkb0`)
//! beside them, so that its ratio to the same C driver comes from the same boot and the same fio job.
//!
//! Each workload runs on the three back to back, so they see the same load on the shared host: the
//! Rust and the C driver always one right after the other, which goes first alternating, and the
//! user-space driver before or after that pair (see [`order`]). The controller is rebound between
//! drivers (not between consecutive runs on the same one). All see the same device, the same
//! namespace, no IOMMU and no I/O scheduler. Reported per workload: the median over rounds of each
//! side (IOPS and median completion latency) and, for rnvme and nvme-ublk, the median of the rounds'
//! own ratios against the C run of the same round, which cancels the load drifting between rounds.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::kernel::{Options, host_fio, median, parse_args};
use super::{run_label, run_load};

#[derive(Debug, Clone, Copy)]
pub(super) struct Workload {
    pub(super) name: &'static str,
    pub(super) rw: &'static str,
    pub(super) bs: &'static str,
    pub(super) qd: u32,
}

pub(super) const WORKLOADS: &[Workload] = &[
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

/// One way of serving the controller's namespace as a block device: its label in the table and the
/// guest shell function that switches the controller to it (leaving the device's name in `$disk`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Driver {
    pub(super) label: &'static str,
    pub(super) switch: &'static str,
}

/// The Rust driver under test.
pub(super) const RUST: Driver = Driver {
    label: "rnvme",
    switch: "use_kernel rnvme",
};
/// The C driver every ratio is against.
pub(super) const C: Driver = Driver {
    label: "nvme",
    switch: "use_kernel nvme",
};
/// The user-space `nvme` crate through the block layer: `nvme-ublk` serving `/dev/ublkb0`. Without an
/// IOMMU (the kernel drivers run without one too), so through `uio_pci_generic`, which has no MSI-X:
/// the daemon polls while requests are in flight.
pub(super) const USER: Driver = Driver {
    label: "nvme-ublk",
    switch: "use_ublk",
};
pub(super) const DRIVERS: [Driver; 3] = [RUST, C, USER];
const MARK: &str = "BENCH-RESULT";
pub(super) const DISK_BYTES: u64 = 1 << 30;

pub(super) const SETUP: &str = r#"set -eu
dev=$(basename "$(readlink -f /sys/block/nvme0n1/device/device)")
insmod /lib/modules/test/rnvme.ko
echo 64 > /proc/sys/vm/nr_hugepages
UBLK=
bind() {
    if [ -n "$UBLK" ]; then
        kill -TERM $UBLK; wait $UBLK || { cat /tmp/ublk.err; exit 1; }; UBLK=
        i=0; while [ -e /dev/ublkb0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    fi
    echo $1 > /sys/bus/pci/devices/$dev/driver_override
    if [ -e /sys/bus/pci/devices/$dev/driver ]; then echo $dev > /sys/bus/pci/devices/$dev/driver/unbind; fi
    echo $dev > /sys/bus/pci/drivers_probe
}
wait_disk() {
    i=0; disk=
    while [ -z "$disk" ] && [ $i -lt 100 ]; do
        disk=$(ls /sys/block | grep "^$1" | head -n 1); sleep 0.1; i=$((i+1))
    done
    [ -n "$disk" ] && [ -b /dev/$disk ] || return 1
    echo none > /sys/block/$disk/queue/scheduler
}
# fio LABEL ROUND WORKLOAD LIMIT ARGS...: runs fio on $disk and prints its JSON on one result line. A
# request that never completes would otherwise stall the guest silently: after LIMIT seconds the run
# fails with what the kernel and the daemon said, and the daemon is killed (which fails its requests).
fio_run() {
    label=$1 round=$2 workload=$3 limit=$4; shift 4
    fio --name=bench --filename=/dev/$disk --output-format=json --output=/tmp/fio.json --eta=never "$@" &
    pid=$!; i=0
    while kill -0 $pid 2>/dev/null; do
        i=$((i+1))
        if [ $i -gt $((limit * 5)) ]; then
            echo "$label: fio did not end within $limit s (round $round, workload $workload)"
            dmesg | tail -n 40; [ -z "$UBLK" ] || { cat /tmp/ublk.err; kill -KILL $UBLK; }
            exit 1
        fi
        sleep 0.2
    done
    wait $pid
    printf '%s %s %s %s ' BENCH-RESULT $round $label $workload; tr -d '\n' < /tmp/fio.json; echo
}
use_kernel() { bind $1; wait_disk $1; }
use_ublk() {
    bind uio_pci_generic
    nvme-ublk --device uio:$dev --depth 64 --poll > /tmp/ublk.out 2> /tmp/ublk.err &
    UBLK=$!
    wait_disk ublkb || { cat /tmp/ublk.err; exit 1; }
}
"#;

pub fn run(args: &[String]) -> Result<ExitCode> {
    let opts = parse_args(args)?;
    let fio = host_fio()?;
    crate::kernel::ensure(false)?;
    if opts.instructions {
        return super::kernel_nvme_instructions::run(&opts, &fio);
    }
    let runs = WORKLOADS.len() * DRIVERS.len() * opts.rounds as usize;
    let limit = Duration::from_secs(90 + runs as u64 * (u64::from(opts.runtime) + 6));
    eprintln!(
        "xtask: {runs} fio runs of {} s in one guest (at most {} s)",
        opts.runtime,
        limit.as_secs()
    );
    let vm = crate::kernel::with_rust_kernel(guest::Vm::builder(), true)?
        .name("bench-kernel-nvme")
        .nvme(guest::Disk::memory(DISK_BYTES))
        .host_program(&fio)
        .static_bin("nvme-ublk", "nvme-ublk")
        .timeout(limit);
    let out = vm
        .run(&guest_script(&opts))
        .context("the benchmark guest failed")?;
    if !out.success() {
        bail!("the benchmark script failed\n{}", out.log_tail());
    }
    let rows = parse_results(&out.stdout)?;
    let loads = guest::loads_by_label(&out.host_stamps);
    println!("{}", table(&rows, &loads, &opts));
    Ok(ExitCode::SUCCESS)
}

/// The order of the three runs of workload `i` in `round`. The Rust and the C driver always run back
/// to back, which of them first alternating; the user-space driver runs before or after that pair,
/// alternating at half that rate, so over four rounds a workload sees every combination.
pub(super) fn order(round: u32, i: usize) -> [Driver; 3] {
    let k = round as usize + i;
    let pair = if k.is_multiple_of(2) {
        [C, RUST]
    } else {
        [RUST, C]
    };
    if (k / 2).is_multiple_of(2) {
        [USER, pair[0], pair[1]]
    } else {
        [pair[0], pair[1], USER]
    }
}

fn guest_script(opts: &Options) -> String {
    rounds_script(SETUP, opts, |round, i, w, driver| {
        let fio = format!(
            "fio_run {label} {round} {i} {limit} --direct=1 --ioengine=io_uring --rw={rw} \
             --bs={bs} --iodepth={qd} --time_based --runtime={t} --ramp_time=1 --norandommap \
             --randrepeat=0",
            label = driver.label,
            limit = opts.runtime + 60,
            rw = w.rw,
            bs = w.bs,
            qd = w.qd,
            t = opts.runtime,
        );
        guest::stamped(&run_label(round, driver.label, i), &fio)
    })
}

/// The guest script of a run of rounds: `prelude`, the namespace filled once through the C driver,
/// then for every round, workload and driver (in [`order`]) the lines `run(round, workload index,
/// workload, driver)` gives, on that driver; at the end the controller goes back to the C driver.
pub(super) fn rounds_script(
    prelude: &str,
    opts: &Options,
    run: impl Fn(u32, usize, &Workload, Driver) -> String,
) -> String {
    let mut s = String::from(prelude);
    let _ = writeln!(s, "stage filling the namespace\n{}", C.switch);
    s.push_str(&super::fill_once("/dev/$disk"));
    let mut current = Some(C);
    for round in 1..=opts.rounds {
        for (i, w) in WORKLOADS.iter().enumerate() {
            for driver in order(round, i) {
                // Consecutive runs on the same driver share one bind (and one nvme-ublk daemon).
                // Stages name what the guest does, should it stall.
                if current != Some(driver) {
                    let _ = writeln!(s, "stage round {round}: switching to {}", driver.label);
                    let _ = writeln!(s, "{}", driver.switch);
                    current = Some(driver);
                }
                let _ = writeln!(s, "stage round {round}: {} {}", driver.label, w.name);
                s.push_str(&run(round, i, w, driver));
            }
        }
    }
    // Stop the daemon, if it runs, and leave the controller to the C driver.
    let _ = writeln!(s, "{}", C.switch);
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
        // Anything before the mark on its line (a program's progress output) is not ours.
        let Some(rest) = line.find(MARK).map(|at| &line[at + MARK.len()..]) else {
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

/// `value(rust) / value(c)` for each round that has both sides (and a positive `value(c)`).
fn paired_ratios(rust: &[&Row], c: &[&Row], value: impl Fn(&Row) -> f64) -> Vec<f64> {
    rust.iter()
        .filter_map(|r| {
            let other = c.iter().find(|o| o.round == r.round)?;
            let (a, b) = (value(r), value(other));
            (b > 0.0).then(|| a / b)
        })
        .collect()
}

/// The median over rounds of `value(rust) / value(c)`, pairing the two runs of each round.
fn paired_ratio(rust: &[&Row], c: &[&Row], value: impl Fn(&Row) -> f64) -> Option<f64> {
    median(paired_ratios(rust, c, value))
}

/// The paired ratios of `value(rust) / value(c)` as a geometric mean with its 95 % confidence
/// interval (Student's t over the rounds' log ratios): (mean, low, high). Needs two rounds with
/// both sides. It says whether a row's gap is larger than the rounds' spread: an interval that
/// holds 1.0 does not tell the drivers apart.
fn paired_interval(
    rust: &[&Row],
    c: &[&Row],
    value: impl Fn(&Row) -> f64,
) -> Option<(f64, f64, f64)> {
    let logs: Vec<f64> = paired_ratios(rust, c, value)
        .into_iter()
        .filter(|r| *r > 0.0)
        .map(f64::ln)
        .collect();
    let n = logs.len();
    if n < 2 {
        return None;
    }
    let mean = logs.iter().sum::<f64>() / n as f64;
    let variance = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t_975(n - 1) * (variance / n as f64).sqrt();
    Some((mean.exp(), (mean - half).exp(), (mean + half).exp()))
}

/// The 97.5 % quantile of Student's t with `df` degrees of freedom (two-sided 95 %).
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::INFINITY,
        1..=10 => TABLE[df - 1],
        11..=20 => 2.2 - (df - 11) as f64 * 0.0125,
        21..=30 => 2.08 - (df - 21) as f64 * 0.0045,
        _ => 1.96,
    }
}

/// One driver's runs of one workload, with their medians.
struct Side<'a> {
    runs: Vec<&'a Row>,
    iops: f64,
    p50_us: f64,
}

impl<'a> Side<'a> {
    fn of(rows: &'a [Row], driver: Driver, workload: usize) -> Option<Side<'a>> {
        let runs: Vec<&Row> = rows
            .iter()
            .filter(|r| r.label == driver.label && r.workload == workload)
            .collect();
        Some(Side {
            iops: median(runs.iter().map(|r| r.iops).collect())?,
            p50_us: median(runs.iter().map(|r| r.p50_us).collect())?,
            runs,
        })
    }

    /// The interval of the paired IOPS ratio against `c`, as the table prints it.
    fn interval_against(&self, c: &Side) -> String {
        match paired_interval(&self.runs, &c.runs, |r| r.iops) {
            Some((mean, low, high)) => format!("{mean:.3} ({low:.3}-{high:.3})"),
            None => "-".to_owned(),
        }
    }

    /// The paired ratios against `c`: (IOPS, p50), NaN where no round has both.
    fn against(&self, c: &Side) -> (f64, f64) {
        let ratio = |f: fn(&Row) -> f64| paired_ratio(&self.runs, &c.runs, f).unwrap_or(f64::NAN);
        (ratio(|r| r.iops), ratio(|r| r.p50_us))
    }
}

/// The project's goal for the Rust driver, on the paired ratios: at least the C driver's IOPS and
/// at most its median latency.
fn meets_goal((iops, p50): (f64, f64)) -> bool {
    iops >= 1.0 && p50 <= 1.0
}

fn table(rows: &[Row], loads: &[(String, guest::HostLoad)], opts: &Options) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rnvme (Rust, in the kernel) and nvme-ublk (the user-space driver through ublk, polling, \
         uio_pci_generic) against nvme (C) on one QEMU NVMe controller, in one boot: medians of {} \
         rounds of {} s (fio io_uring, O_DIRECT, 1 job, the same job on each); the ratios are paired, \
         the median of the rounds' own ratios against the C run of the same round; the interval is the \
         geometric mean of those ratios with its 95 % confidence interval over the rounds\n",
        opts.rounds, opts.runtime
    );
    let _ = writeln!(
        s,
        "| workload | nvme IOPS | rnvme IOPS | nvme-ublk IOPS | IOPS rnvme/C | IOPS nvme-ublk/C | IOPS rnvme/C interval | nvme p50 µs | rnvme p50 µs | nvme-ublk p50 µs | p50 rnvme/C | p50 nvme-ublk/C | rnvme goal |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    let mut rounds = String::new();
    let mut met = Vec::new();
    for (i, w) in WORKLOADS.iter().enumerate() {
        let [Some(rust), Some(c), Some(user)] = [RUST, C, USER].map(|d| Side::of(rows, d, i))
        else {
            continue;
        };
        let (rust_ratio, user_ratio) = (rust.against(&c), user.against(&c));
        let goal = meets_goal(rust_ratio);
        if goal {
            met.push(w.name);
        }
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} | {:.0} | {:.3} | {:.3} | {} | {:.1} | {:.1} | {:.1} | {:.3} | {:.3} | {} |",
            w.name,
            c.iops,
            rust.iops,
            user.iops,
            rust_ratio.0,
            user_ratio.0,
            rust.interval_against(&c),
            c.p50_us,
            rust.p50_us,
            user.p50_us,
            rust_ratio.1,
            user_ratio.1,
            if goal { "met" } else { "not met" },
        );
        let list = |side: &Side| {
            side.runs
                .iter()
                .map(|r| match run_load(loads, r.round, &r.label, r.workload) {
                    Some(host) => format!("{:.1}k ({:.0} %)", r.iops / 1000.0, host.busy * 100.0),
                    None => format!("{:.1}k", r.iops / 1000.0),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(
            rounds,
            "| {} | {} | {} | {} |",
            w.name,
            list(&c),
            list(&rust),
            list(&user)
        );
    }
    let _ = writeln!(
        s,
        "\nrnvme's goal (paired IOPS >= 1.0 and p50 <= 1.0 of the C driver's) met at {} of {} rows\n",
        met.len(),
        WORKLOADS.len()
    );
    let _ = writeln!(
        s,
        "IOPS of each round, in round order, with how busy the host's CPUs were during the run:\n\n| workload | nvme | rnvme | nvme-ublk |\n|---|---|---|---|"
    );
    s.push_str(&rounds);
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
        let after_progress = format!(
            "Jobs: 1 (f=1): [r(1)][100.0%]{}",
            out.trim_start_matches("noise\n")
        );
        assert_eq!(parse_results(&after_progress).unwrap(), rows);
        let t = table(
            &rows,
            &[],
            &Options {
                rounds: 1,
                runtime: 1,
                instructions: false,
                functions: false,
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

    #[test]
    fn the_interval_of_the_paired_ratio_widens_with_the_rounds_spread() {
        let pairs = |ratios: &[f64]| {
            let rust: Vec<Row> = (0..ratios.len())
                .map(|i| row(i as u32, "rnvme", ratios[i] * (i + 1) as f64))
                .collect();
            let c: Vec<Row> = (0..ratios.len())
                .map(|i| row(i as u32, "nvme", (i + 1) as f64))
                .collect();
            (rust, c)
        };
        let interval = |(rust, c): &(Vec<Row>, Vec<Row>)| {
            let (rust, c): (Vec<&Row>, Vec<&Row>) = (rust.iter().collect(), c.iter().collect());
            paired_interval(&rust, &c, |r| r.iops)
        };
        // Rounds that agree: the interval is the ratio itself, whatever the load did to both sides.
        let (mean, low, high) = interval(&pairs(&[0.9, 0.9, 0.9])).unwrap();
        assert!((mean - 0.9).abs() < 1e-9 && (low - 0.9).abs() < 1e-9 && (high - 0.9).abs() < 1e-9);
        // Ratios of 0.8 and 1.25 (geometric mean 1.0) over two rounds: t(1) = 12.706 and a
        // standard error of ln(1.25), so the interval is 1.25^-12.706 to 1.25^12.706.
        let (mean, low, high) = interval(&pairs(&[0.8, 1.25])).unwrap();
        assert!((mean - 1.0).abs() < 1e-9, "{mean}");
        let bound = 1.25f64.powf(12.706);
        assert!((high / bound - 1.0).abs() < 1e-6 && (low * bound - 1.0).abs() < 1e-6);
        // One round cannot give an interval.
        assert_eq!(interval(&pairs(&[0.9])), None);
        assert!(t_975(4) > t_975(5) && t_975(30) > 1.96 && t_975(1000) == 1.96);
    }

    #[test]
    fn every_round_runs_the_three_drivers_with_rust_and_c_back_to_back() {
        let mut seen = std::collections::BTreeSet::new();
        for round in 1..=4 {
            let o = order(round, 0);
            let at = |d: Driver| o.iter().position(|x| *x == d).unwrap();
            assert_eq!(at(RUST).abs_diff(at(C)), 1, "{o:?}");
            seen.insert((at(RUST) < at(C), at(USER)));
        }
        // Four rounds: either of the pair first, the user-space driver before and after it.
        assert_eq!(seen.len(), 4, "{seen:?}");
        let script = guest_script(&Options {
            rounds: 2,
            runtime: 1,
            instructions: false,
            functions: false,
        });
        assert!(script.contains("nvme-ublk --device uio:$dev"), "{script}");
        // Every run has a time limit and says what it does, so a stuck request cannot stall the
        // guest without a word.
        assert!(
            script.contains(&format!("printf '%s %s %s %s ' {MARK} ")),
            "{script}"
        );
        let lines = |prefix: &str| script.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(
            lines("stage round") - script.matches("switching to").count(),
            lines("fio_run "),
            "{script}"
        );
        assert!(script.contains(" 2 0 61 --direct=1"), "{script}");
        // The namespace is written once, through the C driver, before the first measured run.
        let fill = script.find("--rw=write --bs=1M").expect("no fill");
        assert!(fill < script.find("fio_run ").unwrap(), "{script}");
        assert!(script[..fill].contains("use_kernel nvme"), "{script}");
        // fio writes its JSON to a file; its progress line must not share the result's line.
        assert!(SETUP.contains("--eta=never"));
        for d in DRIVERS {
            let runs = script.matches(&format!("fio_run {} 2 ", d.label)).count();
            assert_eq!(runs, WORKLOADS.len(), "{}", d.label);
        }
        // Every run is between host stamps of its own label.
        for d in DRIVERS {
            let label = run_label(2, d.label, 3);
            let begin = script
                .find(&format!("host-stamp begin {label}\n"))
                .expect(d.label);
            let end = script
                .find(&format!("host-stamp end {label}\n"))
                .expect(d.label);
            let run = &script[begin..end];
            assert!(run.contains(&format!("fio_run {} 2 3 ", d.label)), "{run}");
            assert_eq!(run.matches("fio_run").count(), 1, "{run}");
        }
        // The daemon is stopped and the C driver has the controller at the end.
        assert!(script.trim_end().ends_with(C.switch), "{script}");
    }

    #[test]
    fn the_table_puts_the_user_space_ratio_beside_the_rust_one() {
        let mut rows = Vec::new();
        for round in 1..=3 {
            let scale = f64::from(round);
            for (label, iops, p50) in [
                ("nvme", 100.0, 10.0),
                ("rnvme", 110.0, 9.0),
                ("nvme-ublk", 250.0, 20.0),
            ] {
                rows.push(Row {
                    round,
                    label: label.to_owned(),
                    workload: 1,
                    iops: iops * scale,
                    p50_us: p50 / scale,
                });
            }
        }
        // The host's load of two runs (the others have no stamps).
        let host = |busy| guest::HostLoad {
            busy,
            vcpu_cores: 1.0,
            emulator_cores: 0.5,
            guest_instructions: None,
        };
        let loads = [
            (run_label(1, "nvme", 1), host(0.5)),
            (run_label(3, "rnvme", 1), host(0.875)),
        ];
        let t = table(
            &rows,
            &loads,
            &Options {
                rounds: 3,
                runtime: 1,
                instructions: false,
                functions: false,
            },
        );
        assert!(
            t.contains("| 4k randread QD32 | 200 | 220 | 500 | 1.100 | 2.500 | 1.100 (1.100-1.100) | 5.0 | 4.5 | 10.0 | 0.900 | 2.000 | met |"),
            "{t}"
        );
        assert!(t.contains("met at 1 of 6 rows"), "{t}");
        assert!(
            t.contains(
                "| 4k randread QD32 | 0.1k (50 %) 0.2k 0.3k | 0.1k 0.2k 0.3k (88 %) | 0.2k 0.5k 0.8k |"
            ),
            "{t}"
        );
        assert!(!meets_goal((1.0, 1.01)));
        assert!(!meets_goal((0.99, 0.5)));
    }
}

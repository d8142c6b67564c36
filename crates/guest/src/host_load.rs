//! The host's CPU during parts of a guest's script.
//!
//! A guest's vCPUs and QEMU's device emulation run on the same host cores. Whether a benchmark in
//! the guest was short of host CPU cannot be seen from inside it, so the script asks the harness:
//! `host-stamp LABEL` in the guest makes the harness read the host's CPU counters and QEMU's at
//! once, and [`HostLoad::between`] turns two such readings into how busy the host was and who
//! used it. The reading is taken when the line reaches the harness over the serial console, after
//! a lag not measured here: small against runs of seconds, not to be trusted for milliseconds.
//!
//! The same counters, per thread, tell what a stalled guest was doing before it is killed
//! ([`ThreadUse`]).

use std::path::Path;

/// How long a stamp waits for the counting plugin's answer (it looks every millisecond).
const SNAPSHOT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Clock ticks of CPU time (`USER_HZ`, as `/proc` counts them).
type Ticks = u64;

/// The host's and QEMU's CPU counters when the guest printed one `host-stamp` line.
#[derive(Debug, Clone, PartialEq)]
pub struct HostStamp {
    /// What the guest printed after `host-stamp`.
    pub label: String,
    /// Busy time of all host CPUs (everything but idle and iowait).
    busy: Ticks,
    /// All time of all host CPUs.
    total: Ticks,
    /// Host CPUs counted in `total`.
    cpus: u32,
    /// CPU time of QEMU's vCPU threads (named `CPU N/...`).
    vcpus: Ticks,
    /// CPU time of QEMU's other threads: the main loop that emulates devices, I/O workers.
    emulator: Ticks,
    /// Guest instructions executed so far, when the run counts them ([`VmBuilder::count_instructions`](crate::VmBuilder::count_instructions)).
    instructions: Option<u64>,
    /// The kernel's blocks that ran so far, when the run counts them ([`VmBuilder::count_kernel_blocks`](crate::VmBuilder::count_kernel_blocks)).
    blocks: Vec<tcg_insn_count::BlockCount>,
}

/// The host's CPU between two stamps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostLoad {
    /// How busy the host's CPUs were, 0 to 1 (1: every core busy all the time).
    pub busy: f64,
    /// Host cores' worth of CPU QEMU's vCPU threads took (2.0: two cores all the time).
    pub vcpu_cores: f64,
    /// Host cores' worth of CPU QEMU's other threads (device emulation) took.
    pub emulator_cores: f64,
    /// Instructions the guest executed, over all vCPUs, when the run counted them.
    pub guest_instructions: Option<u64>,
}

impl HostStamp {
    /// Reads the counters now, for QEMU's process `qemu_pid`, and the guest's instruction count from
    /// the counting plugin answering in `insn_count` (if there is one). `None` if `/proc` could not
    /// be read.
    pub(crate) fn read(label: &str, qemu_pid: u32, insn_count: Option<&Path>) -> Option<HostStamp> {
        let (busy, total, cpus) = parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)?;
        let (vcpus, emulator) = qemu_ticks(&Path::new("/proc").join(qemu_pid.to_string()))?;
        let snapshot =
            insn_count.and_then(|dir| tcg_insn_count::Snapshot::take(dir, SNAPSHOT_WAIT));
        Some(HostStamp {
            label: label.to_owned(),
            busy,
            total,
            cpus,
            vcpus,
            emulator,
            instructions: snapshot.as_ref().map(|s| s.instructions),
            blocks: snapshot.map(|s| s.blocks).unwrap_or_default(),
        })
    }

    /// The kernel's translation blocks that had run when the stamp was taken, in address order,
    /// with the instructions each executed (empty unless the run counts them).
    pub fn kernel_blocks(&self) -> &[tcg_insn_count::BlockCount] {
        &self.blocks
    }
}

impl HostLoad {
    /// The load from `start` to `end`; `None` if no time passed between them.
    pub fn between(start: &HostStamp, end: &HostStamp) -> Option<HostLoad> {
        let total = end.total.checked_sub(start.total)?;
        if total == 0 || end.cpus == 0 {
            return None;
        }
        let wall = total as f64 / f64::from(end.cpus);
        let delta = |a: Ticks, b: Ticks| b.saturating_sub(a) as f64;
        Some(HostLoad {
            busy: delta(start.busy, end.busy) / total as f64,
            vcpu_cores: delta(start.vcpus, end.vcpus) / wall,
            emulator_cores: delta(start.emulator, end.emulator) / wall,
            guest_instructions: end
                .instructions
                .zip(start.instructions)
                .and_then(|(e, s)| e.checked_sub(s)),
        })
    }
}

/// Guest shell lines that run `command` between the stamps `begin LABEL` and `end LABEL`, which
/// [`loads_by_label`] pairs.
pub fn stamped(label: &str, command: &str) -> String {
    format!("host-stamp begin {label}\n{command}\nhost-stamp end {label}\n")
}

/// The host's load over each command run through [`stamped`], by its label, in the order they
/// ended. A `begin` without its `end` (the script failed in between) gives nothing.
pub fn loads_by_label(stamps: &[HostStamp]) -> Vec<(String, HostLoad)> {
    let mut begun: Vec<&HostStamp> = Vec::new();
    let mut loads = Vec::new();
    for stamp in stamps {
        if stamp.label.starts_with("begin ") {
            begun.push(stamp);
        } else if let Some(label) = stamp.label.strip_prefix("end ") {
            let Some(at) = begun
                .iter()
                .rposition(|b| b.label["begin ".len()..] == *label)
            else {
                continue;
            };
            let start = begun.remove(at);
            loads.extend(HostLoad::between(start, stamp).map(|load| (label.to_owned(), load)));
        }
    }
    loads
}

/// How much of a host core one of QEMU's threads used over a short window.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadUse {
    /// The thread's name: `CPU N/TCG` (or `/KVM`) for a vCPU, else QEMU's own.
    pub name: String,
    /// Host cores' worth of CPU (1.0: one core all the time).
    pub cores: f64,
}

impl ThreadUse {
    /// Whether the thread runs one of the guest's vCPUs.
    pub fn is_vcpu(&self) -> bool {
        self.name.starts_with("CPU ")
    }

    /// Whether the thread is a vCPU that ran for at least [`ThreadUse::BUSY_VCPU`] of the window.
    pub fn is_busy_vcpu(&self) -> bool {
        self.is_vcpu() && self.cores >= Self::BUSY_VCPU
    }

    /// The share of a core from which a vCPU counts as busy: a guest that waits leaves its vCPUs
    /// halted, at a few hundredths of a core for its timer ticks.
    pub const BUSY_VCPU: f64 = 0.25;
}

/// The threads of process `pid` that used CPU over the next `window`, busiest first, for a stalled
/// guest: vCPU threads near a core each mean the guest spins (a livelock, an endless loop), all of
/// them near nothing that it waits (a deadlock, a lost wake-up). `None` if `/proc` could not be read.
pub(crate) fn thread_use(pid: u32, window: std::time::Duration) -> Option<Vec<ThreadUse>> {
    let process = Path::new("/proc").join(pid.to_string());
    // All CPUs' ticks and the number of CPUs.
    let host = || {
        let (_, total, cpus) = parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)?;
        Some((total, cpus))
    };
    let ((total_before, _), before) = (host()?, thread_ticks(&process)?);
    std::thread::sleep(window);
    let ((total_after, cpus), after) = (host()?, thread_ticks(&process)?);
    let core_ticks = total_after.checked_sub(total_before)? as f64 / f64::from(cpus.max(1));
    Some(busiest(&before, &after, core_ticks))
}

/// One thread's CPU time so far.
#[derive(Debug, Clone, PartialEq)]
struct ThreadTicks {
    tid: String,
    name: String,
    ticks: Ticks,
}

/// The CPU time of each thread of `process` (`/proc/PID`); a thread that ended since the directory
/// was listed is left out.
fn thread_ticks(process: &Path) -> Option<Vec<ThreadTicks>> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(process.join("task")).ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, ticks)) = parse_task_stat(&stat) {
            threads.push(ThreadTicks {
                tid: task.file_name().to_string_lossy().into_owned(),
                name: name.to_owned(),
                ticks,
            });
        }
    }
    Some(threads)
}

/// The threads of `after` that used CPU since `before` (matched by thread id; a thread new since
/// then counts from zero), as shares of `core_ticks`, busiest first.
fn busiest(before: &[ThreadTicks], after: &[ThreadTicks], core_ticks: f64) -> Vec<ThreadUse> {
    if core_ticks <= 0.0 {
        return Vec::new();
    }
    let mut used: Vec<ThreadUse> = after
        .iter()
        .filter_map(|thread| {
            let start = before
                .iter()
                .find(|b| b.tid == thread.tid)
                .map_or(0, |b| b.ticks);
            let delta = thread.ticks.saturating_sub(start);
            (delta > 0).then(|| ThreadUse {
                name: thread.name.clone(),
                cores: delta as f64 / core_ticks,
            })
        })
        .collect();
    used.sort_by(|a, b| b.cores.total_cmp(&a.cores));
    used
}

/// Busy ticks, all ticks and the number of CPUs, from `/proc/stat`.
fn parse_proc_stat(text: &str) -> Option<(Ticks, Ticks, u32)> {
    let mut all = None;
    let mut cpus = 0;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("cpu") => {
                // user nice system idle iowait irq softirq steal (guest time is inside user).
                let fields: Vec<Ticks> = words
                    .take(8)
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .ok()?;
                let total: Ticks = fields.iter().sum();
                let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
                all = Some((total - idle, total));
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    let (busy, total) = all?;
    Some((busy, total, cpus))
}

/// CPU ticks of a process's vCPU threads and of its other threads, from `/proc/PID/task`.
fn qemu_ticks(process: &Path) -> Option<(Ticks, Ticks)> {
    let (mut vcpus, mut other) = (0, 0);
    for thread in thread_ticks(process)? {
        if thread.name.starts_with("CPU ") {
            vcpus += thread.ticks;
        } else {
            other += thread.ticks;
        }
    }
    Some((vcpus, other))
}

/// A thread's name and its user plus system ticks, from its `stat` line. The name is in
/// parentheses and may hold spaces and parentheses itself (`CPU 0/TCG`), so fields are counted from
/// the last `)`.
fn parse_task_stat(line: &str) -> Option<(&str, Ticks)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?;
    // After the name: state (field 3), ..., utime (field 14), stime (field 15).
    let mut fields = line.get(close + 1..)?.split_whitespace().skip(11);
    let utime: Ticks = fields.next()?.parse().ok()?;
    let stime: Ticks = fields.next()?.parse().ok()?;
    Some((name, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_gives_busy_and_total_time_of_all_cpus() {
        let text = "cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\n\
                    cpu1 50 3 25 400 10 2 1 0 0 0\nintr 12345\nctxt 99\n";
        assert_eq!(parse_proc_stat(text), Some((160, 980, 2)));
        assert_eq!(parse_proc_stat("intr 1\n"), None);
        assert_eq!(parse_proc_stat("cpu  1 2 x 4 5 6 7 8\n"), None);
    }

    #[test]
    fn task_stat_names_the_thread_and_sums_its_user_and_system_time() {
        let vcpu = "4242 (CPU 0/TCG) S 1 4242 4242 0 -1 4194560 10 0 0 0 700 55 0 0 20 0 5 0 1";
        assert_eq!(parse_task_stat(vcpu), Some(("CPU 0/TCG", 755)));
        let odd = "7 (a) b) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1";
        assert_eq!(parse_task_stat(odd), Some(("a) b", 7)));
        assert_eq!(parse_task_stat("7 (short) R 1"), None);
    }

    #[test]
    fn thread_use_is_shares_of_a_core_busiest_first_without_idle_threads() {
        let thread = |tid: &str, name: &str, ticks| ThreadTicks {
            tid: tid.to_owned(),
            name: name.to_owned(),
            ticks,
        };
        let before = [
            thread("10", "qemu-system-x86", 500),
            thread("11", "CPU 0/TCG", 1000),
            thread("12", "CPU 1/TCG", 2000),
        ];
        let after = [
            thread("10", "qemu-system-x86", 505),
            thread("11", "CPU 0/TCG", 1000),
            thread("12", "CPU 1/TCG", 2100),
            thread("13", "worker", 20),
        ];
        let used = busiest(&before, &after, 100.0);
        let shares: Vec<(&str, f64)> = used.iter().map(|u| (u.name.as_str(), u.cores)).collect();
        assert_eq!(
            shares,
            [
                ("CPU 1/TCG", 1.0),
                ("worker", 0.2),
                ("qemu-system-x86", 0.05)
            ]
        );
        assert!(used[0].is_busy_vcpu() && !used[1].is_vcpu());
        let idle = ThreadUse {
            name: "CPU 0/TCG".into(),
            cores: 0.02,
        };
        assert!(idle.is_vcpu() && !idle.is_busy_vcpu());
        assert!(busiest(&before, &after, 0.0).is_empty());
    }

    #[test]
    fn this_process_spinning_shows_in_its_thread_use() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinning = std::sync::Arc::clone(&stop);
        let spinner = std::thread::Builder::new()
            .name("spinner".into())
            .spawn(move || {
                while !spinning.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
        let used = thread_use(std::process::id(), std::time::Duration::from_millis(500))
            .expect("read /proc");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spinner.join().unwrap();
        let spinner = used.iter().find(|u| u.name == "spinner");
        // A busy host may take some of its time; it still stands out from the waiting threads.
        assert!(spinner.is_some_and(|u| u.cores > 0.2), "{used:?}");
    }

    #[test]
    fn the_load_is_shares_of_the_host_between_two_stamps() {
        let stamp = |busy, total, vcpus, emulator| HostStamp {
            label: String::new(),
            busy,
            total,
            cpus: 2,
            vcpus,
            emulator,
            instructions: None,
            blocks: Vec::new(),
        };
        // 4 s on 2 CPUs (800 ticks, 400 per CPU): 600 busy, of which the vCPUs 400 ticks (1 core)
        // and the emulation 200 (half a core).
        let load = HostLoad::between(&stamp(1000, 5000, 40, 10), &stamp(1600, 5800, 440, 210));
        assert_eq!(
            load,
            Some(HostLoad {
                busy: 0.75,
                vcpu_cores: 1.0,
                emulator_cores: 0.5,
                guest_instructions: None,
            })
        );
        assert_eq!(
            HostLoad::between(&stamp(1, 5, 0, 0), &stamp(1, 5, 0, 0)),
            None
        );
        assert_eq!(
            HostLoad::between(&stamp(1, 9, 0, 0), &stamp(1, 5, 0, 0)),
            None
        );
    }

    #[test]
    fn instructions_are_counted_between_stamps_that_both_have_a_count() {
        let stamp = |total, instructions| HostStamp {
            label: String::new(),
            busy: 0,
            total,
            cpus: 1,
            vcpus: 0,
            emulator: 0,
            instructions,
            blocks: Vec::new(),
        };
        let count =
            |a, b| HostLoad::between(&stamp(0, a), &stamp(100, b)).map(|l| l.guest_instructions);
        assert_eq!(
            count(Some(1_000), Some(5_000_000_000)),
            Some(Some(4_999_999_000))
        );
        assert_eq!(count(None, Some(5)), Some(None));
        assert_eq!(count(Some(5), None), Some(None));
        // A counter that went backwards (a restarted QEMU) counts nothing.
        assert_eq!(count(Some(9), Some(5)), Some(None));
    }

    #[test]
    fn stamps_pair_by_label_and_a_begin_without_end_gives_nothing() {
        let stamp = |label: &str, busy, total| HostStamp {
            label: label.to_owned(),
            busy,
            total,
            cpus: 1,
            vcpus: 0,
            emulator: 0,
            instructions: None,
            blocks: Vec::new(),
        };
        let stamps = [
            stamp("begin a", 0, 0),
            stamp("begin lost", 0, 0),
            stamp("begin b", 10, 100),
            stamp("end b", 60, 200),
            stamp("end a", 100, 400),
            stamp("end never-begun", 0, 500),
        ];
        let loads: Vec<(String, f64)> = loads_by_label(&stamps)
            .into_iter()
            .map(|(label, load)| (label, load.busy))
            .collect();
        assert_eq!(loads, [("b".to_owned(), 0.5), ("a".to_owned(), 0.25)]);
        assert_eq!(
            stamped("1 x", "fio"),
            "host-stamp begin 1 x\nfio\nhost-stamp end 1 x\n"
        );
    }

    #[test]
    fn this_process_can_be_read() {
        let stamp = HostStamp::read("here", std::process::id(), None).expect("read /proc");
        assert_eq!(stamp.label, "here");
        assert!(stamp.cpus >= 1 && stamp.total > 0, "{stamp:?}");
        assert_eq!(stamp.instructions, None);
    }
}

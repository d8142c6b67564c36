//! The machine-wide VM lock: one guest at a time on the machine, whichever checkout, target directory or
//! user starts it.
//!
//! The lock is an exclusive `flock` on one file outside every checkout (`/run/lock/kangrejos-vm.lock`, or
//! `$GUEST_VM_LOCK`). The kernel drops an `flock` when its holder dies, so a crashed holder never blocks
//! anyone. The file itself records who holds the lock (pid, command, directory, since when, and the QEMU it
//! started): a waiter prints it, and the next holder finds a QEMU that outlived its dead parent (a test
//! killed with SIGKILL) and stops it, since nothing reads that guest any more and it would run beside the
//! next one.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, flock};

use crate::error::{IoContext, Result};
use crate::queue::{Ticket, queue_path};

/// Where the lock lives unless `$GUEST_VM_LOCK` says otherwise.
const DEFAULT_LOCK: &str = "/run/lock/kangrejos-vm.lock";
/// How often a waiter retries, and how often it repeats whom it waits for.
const POLL: Duration = Duration::from_millis(200);
const REMIND: Duration = Duration::from_secs(60);
/// How long a record naming an exited process may stand before a waiter reports it as such.
const STALE_AFTER: Duration = Duration::from_secs(2);

/// The lock file: `$GUEST_VM_LOCK`, else `/run/lock/kangrejos-vm.lock` (a directory every user may write
/// to on Debian), else the same name in the temporary directory.
pub fn lock_path() -> PathBuf {
    if let Some(path) = std::env::var_os("GUEST_VM_LOCK") {
        return PathBuf::from(path);
    }
    let default = Path::new(DEFAULT_LOCK);
    match default.parent() {
        Some(dir) if dir.is_dir() => default.to_path_buf(),
        _ => std::env::temp_dir().join("kangrejos-vm.lock"),
    }
}

/// Holds the machine-wide VM lock until dropped.
#[derive(Debug)]
pub struct VmLock {
    file: File,
    path: PathBuf,
    record: Holder,
}

impl VmLock {
    /// Blocks until no other guest runs on the machine, printing on stderr whom it waits for.
    pub fn acquire() -> Result<VmLock> {
        Self::acquire_at(&lock_path(), &mut |line| crate::paths::tell(line))
    }

    /// [`VmLock::acquire`] on a given file, telling `say` about waits and stale holders.
    pub fn acquire_at(path: &Path, say: &mut dyn FnMut(&str)) -> Result<VmLock> {
        let file = open_shared(path)?;
        let waited = Instant::now();
        let mut reminded: Option<Instant> = None;
        let mut told: Option<(u32, u64)> = None;
        // First come, first served: only the first in line tries the lock.
        let ticket = Ticket::take(&queue_path(path));
        loop {
            let (ahead, waiting) = ticket.as_ref().map_or((0, 1), Ticket::position);
            if ahead == 0 {
                match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                    Ok(()) => break,
                    Err(rustix::io::Errno::WOULDBLOCK) => {}
                    Err(e) => {
                        return Err(std::io::Error::from(e))
                            .ctx(|| format!("cannot lock {}", path.display()));
                    }
                }
            }
            let holder = Holder::read(path);
            // A new holder writes its record just after it locks: a record naming an exited process is
            // only worth telling once it stays (then a child of that process holds the lock).
            let settled = holder.alive() || waited.elapsed() >= STALE_AFTER;
            let changed = told != Some((holder.pid, holder.start));
            let remind = reminded.is_some_and(|at| at.elapsed() >= REMIND);
            if settled && (changed || remind) {
                say(&format!(
                    "waiting{}{} for the machine-wide VM lock {}, held by {}",
                    match waited.elapsed().as_secs() {
                        0 => String::new(),
                        s => format!(" ({s} s so far)"),
                    },
                    match ahead {
                        0 => String::new(),
                        n => format!(", {n} of {} waiters ahead", waiting - 1),
                    },
                    path.display(),
                    holder.describe()
                ));
                told = Some((holder.pid, holder.start));
                reminded = Some(Instant::now());
            }
            std::thread::sleep(POLL);
        }
        drop(ticket);
        if reminded.is_some() {
            say(&format!(
                "got the VM lock after {:.1} s",
                waited.elapsed().as_secs_f64()
            ));
        }
        let previous = Holder::read(path);
        if let Some(qemu) = previous.leftover_qemu() {
            say(&format!(
                "stopping QEMU pid {} left running by {}, which has exited",
                qemu.pid,
                previous.describe()
            ));
            qemu.stop();
        }
        let record = Holder::me();
        let mut lock = VmLock {
            file,
            path: path.to_path_buf(),
            record,
        };
        lock.write_record();
        Ok(lock)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records what the holder runs (a test's name), for waiters.
    pub fn set_run(&mut self, name: &str) {
        self.record.run = name.to_owned();
        self.write_record();
    }

    /// Records the QEMU this holder started, so that a later holder can stop it if it outlives us.
    pub fn set_qemu(&mut self, pid: Option<u32>) {
        self.record.qemu = pid.and_then(Process::find);
        self.write_record();
    }

    fn write_record(&mut self) {
        // Only a hint for waiters: failing to write it must not fail the run (a lock file of another
        // user may be read-only to us).
        let text = self.record.to_text();
        let _ = self
            .file
            .set_len(0)
            .and_then(|()| self.file.write_all_at(text.as_bytes(), 0));
    }
}

/// Opens (creating if needed) the lock file so that every user can lock it: mode 0666, no `O_CREAT` on a
/// file that exists (a sticky world-writable directory may refuse it for another user's file), read-only
/// when writing is refused (`flock` needs no write access).
pub(crate) fn open_shared(path: &Path) -> Result<File> {
    let open_existing = || {
        File::options()
            .read(true)
            .write(true)
            .open(path)
            .or_else(|e| match e.kind() {
                ErrorKind::PermissionDenied => File::open(path),
                _ => Err(e),
            })
    };
    match open_existing() {
        Ok(file) => return Ok(file),
        Err(e) if e.kind() != ErrorKind::NotFound => {
            return Err(e).ctx(|| format!("cannot open the VM lock {}", path.display()));
        }
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        crate::paths::create_dir(dir)?;
    }
    match File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(path)
    {
        Ok(file) => {
            // The umask took bits away: give them back so that other users can open it too.
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o666));
            Ok(file)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            open_existing().ctx(|| format!("cannot open the VM lock {}", path.display()))
        }
        Err(e) => Err(e).ctx(|| {
            format!(
                "cannot create the VM lock {} (set $GUEST_VM_LOCK to a file that every user who \
                 runs guests on this machine can open)",
                path.display()
            )
        }),
    }
}

/// A process named by pid and start time (so a reused pid is not mistaken for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Process {
    pub(crate) pid: u32,
    pub(crate) start: u64,
}

impl Process {
    /// The process `pid` if it runs now.
    pub(crate) fn find(pid: u32) -> Option<Process> {
        start_time(pid).map(|start| Process { pid, start })
    }

    pub(crate) fn alive(self) -> bool {
        start_time(self.pid) == Some(self.start)
    }

    /// SIGKILL, then wait (bounded) until it is gone.
    fn stop(self) {
        if !self.alive() {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let until = Instant::now() + Duration::from_secs(10);
        while self.alive() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Field 22 of `/proc/<pid>/stat`: the start time in clock ticks since boot. `None` if no such process
/// (or a zombie's, which is as good as gone).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Who holds (or last held) the lock, as written in the lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Holder {
    pid: u32,
    start: u64,
    since_unix: u64,
    dir: String,
    command: String,
    /// The run's name (the test's, normally).
    run: String,
    qemu: Option<Process>,
}

impl Holder {
    fn me() -> Holder {
        let pid = std::process::id();
        Holder {
            pid,
            start: start_time(pid).unwrap_or(0),
            since_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            dir: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            run: String::new(),
            qemu: None,
        }
    }

    fn read(path: &Path) -> Holder {
        Holder::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    fn to_text(&self) -> String {
        let mut text = format!(
            "pid={} {}\nsince={}\ndir={}\ncommand={}\n",
            self.pid,
            self.start,
            self.since_unix,
            one_line(&self.dir),
            one_line(&self.command)
        );
        if !self.run.is_empty() {
            text.push_str(&format!("run={}\n", one_line(&self.run)));
        }
        if let Some(q) = self.qemu {
            text.push_str(&format!("qemu={} {}\n", q.pid, q.start));
        }
        text
    }

    fn parse(text: &str) -> Holder {
        let mut h = Holder::default();
        let process = |v: &str| {
            let (pid, start) = v.split_once(' ')?;
            Some(Process {
                pid: pid.parse().ok()?,
                start: start.parse().ok()?,
            })
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "pid" => {
                    if let Some(p) = process(value) {
                        (h.pid, h.start) = (p.pid, p.start);
                    }
                }
                "since" => h.since_unix = value.parse().unwrap_or(0),
                "dir" => h.dir = value.to_owned(),
                "command" => h.command = value.to_owned(),
                "run" => h.run = value.to_owned(),
                "qemu" => h.qemu = process(value),
                _ => {}
            }
        }
        h
    }

    fn alive(&self) -> bool {
        self.pid != 0
            && Process {
                pid: self.pid,
                start: self.start,
            }
            .alive()
    }

    /// The QEMU this holder started, if it still runs although the holder has exited.
    fn leftover_qemu(&self) -> Option<Process> {
        self.qemu.filter(|q| !self.alive() && q.alive())
    }

    /// `pid 123 (cargo test ...) in /work/x for 42 s[, QEMU pid 456]`, or why the record says nothing.
    fn describe(&self) -> String {
        if self.pid == 0 {
            return "a process that has not written its name yet".to_owned();
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut text = format!("pid {} ({})", self.pid, shorten(&self.command, 160));
        if !self.run.is_empty() {
            text.push_str(&format!(" running {}", self.run));
        }
        text.push_str(&format!(
            " in {} for {} s",
            self.dir,
            now.saturating_sub(self.since_unix)
        ));
        if let Some(q) = self.qemu {
            text.push_str(&format!(", QEMU pid {}", q.pid));
        }
        if !self.alive() {
            text.push_str(
                " (that process has exited: a process it started holds the lock, or the holder has \
                 not written its name)",
            );
        }
        text
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::mpsc;

    #[test]
    fn the_default_lock_is_outside_every_checkout() {
        if std::env::var_os("GUEST_VM_LOCK").is_some() {
            return;
        }
        let path = lock_path();
        let root = crate::paths::workspace_root();
        assert!(!path.starts_with(&root), "{}", path.display());
        assert!(
            !path.starts_with(crate::paths::vm_dir()),
            "{}",
            path.display()
        );
    }

    #[test]
    fn a_second_holder_waits_and_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.lock");
        let mut first = VmLock::acquire_at(&path, &mut |_| {}).unwrap();
        first.set_run("guest_first");
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut said = Vec::new();
                let lock = VmLock::acquire_at(&path, &mut |l| said.push(l.to_owned())).unwrap();
                tx.send(()).unwrap();
                drop(lock);
                said
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(800)).is_err(),
            "the second holder got the lock while the first held it"
        );
        drop(first);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the waiter got the lock once the first let go");
        let said = waiter.join().unwrap();
        let me = std::process::id();
        assert!(
            said[0].contains(&format!("held by pid {me} ("))
                && said[0].contains(") running guest_first in ")
                && said[0].contains(&path_str(&path)),
            "{said:?}"
        );
        assert!(
            said.last().unwrap().starts_with("got the VM lock"),
            "{said:?}"
        );
    }

    #[test]
    fn a_holder_that_asks_again_at_once_goes_behind_the_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.lock");
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let first = VmLock::acquire_at(&path, &mut |_| {}).unwrap();
        let waiter = {
            let (path, order) = (path.clone(), order.clone());
            std::thread::spawn(move || {
                let lock = VmLock::acquire_at(&path, &mut |_| {}).unwrap();
                order.lock().unwrap().push("waiter");
                std::thread::sleep(Duration::from_millis(300));
                drop(lock);
            })
        };
        let queue = crate::queue::queue_path(&path);
        let until = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&queue)
            .unwrap_or_default()
            .is_empty()
        {
            assert!(Instant::now() < until, "the waiter never lined up");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Like a test binary that goes on to its next guest test.
        drop(first);
        let again = VmLock::acquire_at(&path, &mut |_| {}).unwrap();
        order.lock().unwrap().push("holder again");
        drop(again);
        waiter.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["waiter", "holder again"]);
    }

    #[test]
    fn a_lock_file_written_by_others_and_a_reused_pid_are_handled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.lock");
        // A record of a process that exited (pid of a reaped child, with a start time that cannot match).
        let mut child = Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(
            &path,
            format!("pid={dead} 1\nsince=0\ndir=/x\ncommand=gone\n"),
        )
        .unwrap();
        let holder = Holder::read(&path);
        assert_eq!((holder.pid, holder.command.as_str()), (dead, "gone"));
        assert!(!holder.alive());
        assert!(
            holder.describe().contains("has exited"),
            "{}",
            holder.describe()
        );
        let lock = VmLock::acquire_at(&path, &mut |_| {}).unwrap();
        let mine = Holder::read(&path);
        assert_eq!(mine.pid, std::process::id());
        assert!(mine.alive());
        drop(lock);
        // Garbage is a record that names nobody, not an error.
        std::fs::write(&path, "\0\0not a record").unwrap();
        assert_eq!(Holder::read(&path), Holder::default());
        drop(VmLock::acquire_at(&path, &mut |_| {}).unwrap());
    }

    #[test]
    fn the_next_holder_stops_a_qemu_whose_parent_died() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.lock");
        // A stand-in for a QEMU whose test was killed: a process that would otherwise run for a minute.
        let mut orphan = Command::new("sleep").arg("60").spawn().unwrap();
        let q = Process::find(orphan.id()).unwrap();
        let mut gone = Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        std::fs::write(
            &path,
            format!(
                "pid={dead} 1\nsince=0\ndir=/x\ncommand=killed test\nqemu={} {}\n",
                q.pid, q.start
            ),
        )
        .unwrap();
        let mut said = Vec::new();
        let lock = VmLock::acquire_at(&path, &mut |l| said.push(l.to_owned())).unwrap();
        let status = orphan.wait().unwrap();
        assert!(
            !status.success(),
            "the leftover was stopped, not left to finish"
        );
        assert!(
            said.iter()
                .any(|l| l.contains(&format!("stopping QEMU pid {}", q.pid))),
            "{said:?}"
        );
        drop(lock);
        // A live holder's QEMU is never touched.
        let mut running = Command::new("sleep").arg("60").spawn().unwrap();
        let mut record = Holder::me();
        record.qemu = Process::find(running.id());
        assert_eq!(record.leftover_qemu(), None);
        running.kill().unwrap();
        running.wait().unwrap();
    }

    fn path_str(p: &Path) -> String {
        p.display().to_string()
    }
}

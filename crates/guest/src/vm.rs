//! The builder the tests use: describe a guest, run a script in it, get its output.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::console::{Stage, Watch, strip_escapes};
use crate::cpio;
use crate::deadline::{Clock, Limit, Limits};
use crate::error::{Error, IoContext, Result, Stall};
use crate::host_load::HostStamp;
use crate::initramfs::{self, add_file};
use crate::kernel::{Kernel, KernelFlavor};
use crate::lock::VmLock;
use crate::paths::{create_dir, vm_dir};
use crate::payload::{build_insn_count_plugin, build_static, guest_path, shared_libraries};
use crate::qemu::{Accel, Machine, QEMU, Qemu};

/// Boots tried before giving up (a multi-threaded TCG boot panics about 1 time in 12).
const BOOT_TRIES: u32 = 3;
/// How long QEMU may take to exit after the script reported its status (times the slowdown).
const POWEROFF_GRACE: Duration = Duration::from_secs(15);
/// The memory file system [`Disk::Memory`] images live in, and the directory there that holds one
/// directory per run.
const SHM: &str = "/dev/shm";
const SHM_RUNS: &str = "/dev/shm/kangrejos-vm";
/// The overall ceiling is this many times the builder's timeout (times the slowdown): generous, since the
/// stall limit is what catches a stuck guest, and load can grow after the calibration.
pub const CEILING_SLACK: u32 = 3;
/// The stall limit unless the builder sets one (times the slowdown).
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(120);
/// How long a stalled guest's QEMU threads are watched before the kill, to tell spinning from
/// waiting.
const STALL_SAMPLE: Duration = Duration::from_secs(1);
/// The guest-side relay binary, included whenever a virtio-serial port is attached.
pub const RELAY_BIN: &str = "vport-relay";

/// Entry point: `Vm::builder()`.
#[derive(Debug)]
pub struct Vm;

impl Vm {
    pub fn builder() -> VmBuilder {
        VmBuilder::default()
    }
}

/// The backing file of an emulated NVMe namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disk {
    /// A fresh sparse file of this many bytes, made for the run and deleted after it.
    Sparse(u64),
    /// The same, in shared memory (`/dev/shm`), for benchmarks: its pages stay in the host's memory.
    /// A file on disk is written back, and its cached pages may be dropped between runs (a host under
    /// proactive memory reclaim drops them between rounds of a benchmark), after which the emulated device reads
    /// the host's disk and a benchmark measures that instead of the drivers.
    Memory(u64),
    /// An existing raw image, used in place (the guest's writes land in it).
    Image(PathBuf),
}

impl Disk {
    pub fn sparse(bytes: u64) -> Disk {
        Disk::Sparse(bytes)
    }

    pub fn memory(bytes: u64) -> Disk {
        Disk::Memory(bytes)
    }

    pub fn image(path: impl Into<PathBuf>) -> Disk {
        Disk::Image(path.into())
    }
}

/// Describes one guest. Every setter takes and returns the builder.
#[derive(Debug, Clone)]
pub struct VmBuilder {
    name: Option<String>,
    disks: Vec<Disk>,
    iommu: bool,
    serial_ports: Vec<(String, PathBuf)>,
    static_bins: Vec<(String, String)>,
    host_programs: Vec<PathBuf>,
    files: Vec<(PathBuf, String)>,
    timeout: Duration,
    stall_limit: Option<Duration>,
    boot_timeout: Duration,
    slowdown: Option<f64>,
    memory_mib: u32,
    smp: u32,
    append: Vec<String>,
    echo: bool,
    accel: Option<Accel>,
    tries: u32,
    rerun_after_crash: bool,
    qemu: PathBuf,
    kernel: KernelFlavor,
    count_instructions: bool,
    count_blocks: bool,
}

impl Default for VmBuilder {
    fn default() -> Self {
        VmBuilder {
            name: None,
            disks: Vec::new(),
            iommu: false,
            serial_ports: Vec::new(),
            static_bins: Vec::new(),
            host_programs: Vec::new(),
            files: Vec::new(),
            timeout: Duration::from_secs(120),
            stall_limit: None,
            boot_timeout: Duration::from_secs(20),
            slowdown: None,
            memory_mib: 2048,
            smp: 2,
            append: vec!["quiet".to_owned()],
            echo: false,
            accel: None,
            tries: BOOT_TRIES,
            rerun_after_crash: false,
            qemu: PathBuf::from(QEMU),
            kernel: KernelFlavor::Debian,
            count_instructions: false,
            count_blocks: false,
        }
    }
}

/// What a finished guest reported.
#[derive(Debug, Clone)]
pub struct Output {
    /// The script's exit status.
    pub status: i32,
    /// The script's stdout and stderr, interleaved as printed (kernel warnings may appear among them).
    pub stdout: String,
    /// The console log of the boot that ran the script.
    pub log: PathBuf,
    /// Boots it took (more than one after a kernel panic, a stuck boot, or a QEMU crash run again).
    pub tries: u32,
    /// From QEMU's start to its exit, for the boot that ran the script.
    pub elapsed: Duration,
    /// The limits this run had (the slowdown included).
    pub limits: Limits,
    /// The host's CPU counters at each `host-stamp` line, in order (see [`crate::HostLoad`]).
    pub host_stamps: Vec<HostStamp>,
    tail: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// The status, the script's output and the end of the console, for assertion messages.
    pub fn log_tail(&self) -> String {
        format!(
            "guest script exited with {}; console log {}\n--- script output ---\n{}--- console tail ---\n{}",
            self.status,
            self.log.display(),
            self.stdout,
            self.tail
        )
    }
}

impl VmBuilder {
    /// Names the run (log file, QEMU `-name`); defaults to the current thread's name, i.e. the test's name.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Attaches an emulated NVMe controller (`-device nvme`) with one namespace backed by `disk`.
    /// The first has serial `deadbeef`, the next `deadbeef1`, ...
    pub fn nvme(mut self, disk: Disk) -> Self {
        self.disks.push(disk);
        self
    }

    /// Puts the devices behind an emulated Intel IOMMU with interrupt remapping (needed by VFIO type1).
    pub fn iommu(mut self, on: bool) -> Self {
        self.iommu = on;
        self
    }

    /// Adds a virtio-serial port named `name` whose host end is the unix socket `host_socket` (QEMU connects
    /// to it: the listener must be up before `run`). Also puts `/bin/vport-relay` in the guest.
    pub fn virtio_serial(mut self, name: &str, host_socket: impl AsRef<Path>) -> Self {
        self.serial_ports
            .push((name.to_owned(), host_socket.as_ref().to_path_buf()));
        self
    }

    /// Builds `bin` of workspace package `package` statically and puts it at `/bin/<bin>`.
    pub fn static_bin(mut self, package: &str, bin: &str) -> Self {
        self.static_bins.push((package.to_owned(), bin.to_owned()));
        self
    }

    /// Copies a dynamically linked host program to the same path in the guest, with its shared libraries.
    pub fn host_program(mut self, path: impl AsRef<Path>) -> Self {
        self.host_programs.push(path.as_ref().to_path_buf());
        self
    }

    /// Copies a host file into the guest at `guest_path`, read-only.
    pub fn file(mut self, host_path: impl AsRef<Path>, guest_path: &str) -> Self {
        self.files
            .push((host_path.as_ref().to_path_buf(), guest_path.to_owned()));
        self
    }

    /// How long the guest takes, at most, once its kernel reached `/init` (module loading plus the
    /// script), on a quiet machine. Default 120 s.
    ///
    /// It sets the overall ceiling: [`CEILING_SLACK`] times this, times the run's slowdown. A guest that
    /// keeps progressing may run past `limit`; one that stops is caught by the [stall
    /// limit](Self::stall_limit) long before the ceiling.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// How long the guest may go without progress (times the run's slowdown) before it is killed:
    /// progress is a line of output from `/init` or the script, and the guest's `stage NAME` and
    /// `CMD | progress` commands (for steps whose output goes to a file). Kernel messages do not count.
    /// Default: [`DEFAULT_STALL_LIMIT`], or the timeout if that is shorter.
    pub fn stall_limit(mut self, limit: Duration) -> Self {
        self.stall_limit = Some(limit);
        self
    }

    /// How long one boot may take to reach `/init` (times the run's slowdown) before it is retried.
    /// Default 20 s.
    pub fn boot_timeout(mut self, limit: Duration) -> Self {
        self.boot_timeout = limit;
        self
    }

    /// Uses this slowdown for the limits instead of the run's calibration (`$GUEST_SLOWDOWN`, or one
    /// empty-guest boot measured at the first run of the process, see [`crate::calibrate`]).
    pub fn slowdown(mut self, factor: f64) -> Self {
        self.slowdown = Some(factor);
        self
    }

    /// The limits a run would have under `slowdown`.
    pub fn limits(&self, slowdown: f64) -> Limits {
        let slowdown = if slowdown.is_finite() {
            slowdown.max(1.0)
        } else {
            1.0
        };
        let stall = self
            .stall_limit
            .unwrap_or_else(|| DEFAULT_STALL_LIMIT.min(self.timeout));
        Limits {
            slowdown,
            boot: self.boot_timeout.mul_f64(slowdown),
            stall: stall.mul_f64(slowdown),
            ceiling: (self.timeout * CEILING_SLACK).mul_f64(slowdown),
            poweroff: POWEROFF_GRACE.mul_f64(slowdown),
        }
    }

    /// Boots tried before giving up (default 3).
    pub fn boot_tries(mut self, tries: u32) -> Self {
        self.tries = tries.max(1);
        self
    }

    /// When QEMU itself crashes (dies by a signal) once `/init` runs, runs the script once more in
    /// a fresh boot with the scratch disks emptied, and says so on stderr. Such a crash is the
    /// emulator's fault, not the guest's, and QEMU 7.2 has crashed that way, rarely, under TCG.
    /// Only for scripts whose state lives in the guest and its scratch disks: what the first run
    /// changed on the host stays changed, and a run with a host image ([`Disk::Image`]) is never
    /// run again. (A crash while the kernel boots is a failed boot, retried as such anyway.)
    pub fn rerun_if_qemu_crashes(mut self) -> Self {
        self.rerun_after_crash = true;
        self
    }

    /// Guest memory (default 2048 MiB).
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Virtual CPUs (default 2; with 1, NVMe at high queue depth loses completions under TCG).
    pub fn smp(mut self, cpus: u32) -> Self {
        self.smp = cpus;
        self
    }

    /// Appends a kernel command-line argument.
    pub fn kernel_arg(mut self, arg: &str) -> Self {
        self.append.push(arg.to_owned());
        self
    }

    /// Shows all kernel messages on the console (drops `quiet`).
    pub fn verbose_kernel(mut self) -> Self {
        self.append.retain(|a| a != "quiet");
        self
    }

    /// Counts the instructions the guest executes (QEMU's `tcg-insn-count` plugin, under TCG): each
    /// host stamp then carries the total so far, and [`HostLoad::guest_instructions`](crate::HostLoad)
    /// the count between two. The plugin's counting slows the guest down, so time its runs apart.
    pub fn count_instructions(mut self, on: bool) -> Self {
        self.count_instructions = on;
        self
    }

    /// Counts instructions ([`VmBuilder::count_instructions`]) and, at each host stamp, the
    /// instructions each kernel translation block has executed so far
    /// ([`HostStamp::kernel_blocks`](crate::HostStamp::kernel_blocks)): with the guest's
    /// `/proc/kallsyms`, where the kernel's instructions went, function by function.
    pub fn count_kernel_blocks(mut self, on: bool) -> Self {
        self.count_blocks = on;
        self
    }

    /// Copies every console line to stderr as it arrives.
    pub fn echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    /// Forces an accelerator instead of the cached KVM probe's verdict (`$GUEST_ACCEL=tcg|kvm` does too).
    pub fn accel(mut self, accel: Accel) -> Self {
        self.accel = Some(accel);
        self
    }

    /// Boots this kernel (default: Debian's 6.12; [`KernelFlavor::Rust`] needs `cargo xtask kernel` first).
    pub fn kernel(mut self, flavor: KernelFlavor) -> Self {
        self.kernel = flavor;
        self
    }

    /// Uses another QEMU executable than `qemu-system-x86_64` on `$PATH`.
    pub fn qemu_binary(mut self, program: impl AsRef<Path>) -> Self {
        self.qemu = program.as_ref().to_path_buf();
        self
    }

    /// Boots the guest, runs `script` with `/bin/sh` as root, powers off, and returns what it printed.
    ///
    /// A script that fails is still `Ok` (see [`Output::success`]); `Err` means the harness or the guest
    /// broke: nothing to boot, no boot in 3 tries, the deadline, QEMU dying.
    pub fn run(&self, script: &str) -> Result<Output> {
        let slowdown = match self.slowdown {
            Some(factor) => factor,
            None => {
                self.validate()?;
                crate::calibration::slowdown()?
            }
        };
        let limits = self.limits(slowdown);
        let prepared = self.prepare(Some(script))?;
        let accel = self.chosen_accel(&prepared)?;
        let mut why = Vec::new();
        let mut last_log = PathBuf::new();
        let mut rerun = false;
        let mut attempt = 0;
        while why.len() < self.tries.max(1) as usize {
            attempt += 1;
            let log = log_path(&prepared.name, attempt);
            match self.attempt(&prepared, accel, &log, &limits) {
                Attempt::Done(mut out) => {
                    out.tries = attempt;
                    return Ok(out);
                }
                Attempt::Retry(reason) => why.push(format!("try {attempt}: {reason}")),
                Attempt::Crashed(err)
                    if self.rerun_after_crash && !rerun && prepared.scratch_only =>
                {
                    eprintln!(
                        "guest harness: {err}\nguest harness: running the script again in a new boot, its scratch disks emptied"
                    );
                    note_crash(&self.qemu, &prepared.name, &err);
                    prepared.empty_scratch_disks()?;
                    rerun = true;
                }
                Attempt::Crashed(err) | Attempt::Fail(err) => return Err(err),
            }
            last_log = log;
        }
        Err(Error::Boot {
            tries: self.tries.max(1),
            why: why.join("; "),
            tail: log_tail(&last_log),
            log: last_log,
        })
    }

    /// Boots the guest with an interactive shell on this terminal (Ctrl-A X quits QEMU).
    pub fn interactive(&self) -> Result<ExitStatus> {
        let prepared = self.prepare(None)?;
        let accel = self.chosen_accel(&prepared)?;
        let mut machine = self.machine(&prepared, accel);
        machine.interactive = true;
        let mut child = Qemu::new(
            machine
                .command()
                .spawn()
                .ctx(|| format!("cannot start {}", self.qemu.display()))?,
        );
        child.wait().ctx(|| "cannot wait for QEMU".to_owned())
    }

    /// Builds binaries, takes the VM lock, makes sure the kernel is there and writes this run's initrd.
    fn prepare(&self, script: Option<&str>) -> Result<Prepared> {
        self.validate()?;
        let mut bins = Vec::new();
        for (package, bin) in &self.static_bins {
            bins.push((build_static(package, bin)?, bin.clone()));
        }
        if !self.serial_ports.is_empty() {
            bins.push((build_static("guest", RELAY_BIN)?, RELAY_BIN.to_owned()));
        }
        let plugin = match self.count_instructions || self.count_blocks {
            true => Some(build_insn_count_plugin()?),
            false => None,
        };
        let name = self.run_name();
        let mut lock = VmLock::acquire()?;
        lock.set_run(&name);
        let kernel = self.kernel.locate_locked()?;
        let base = initramfs::base(&kernel)?;

        let dir = RunDir::create(&vm_dir().join("run").join(format!(
            "{name}-{}-{}",
            std::process::id(),
            RUN_COUNTER.fetch_add(1, Ordering::Relaxed)
        )))?;
        let run_dir = dir.path.clone().expect("created");
        let initrd = run_dir.join("initrd.cpio");
        self.write_initrd(&base, &initrd, &bins, script)?;
        let insn_count = match plugin {
            Some(library) => {
                let requests = run_dir.join("insn-count");
                create_dir(&requests)?;
                Some((library, requests))
            }
            None => None,
        };
        let mut nvme = Vec::new();
        let mut memory_dir = None;
        for (i, disk) in self.disks.iter().enumerate() {
            let (dir, bytes) = match disk {
                Disk::Image(path) => {
                    nvme.push(path.clone());
                    continue;
                }
                Disk::Sparse(bytes) => (run_dir.clone(), bytes),
                Disk::Memory(bytes) => {
                    if memory_dir.is_none() {
                        let root = Path::new(SHM_RUNS);
                        create_dir(root)?;
                        prune_dead_runs(root);
                        let leaf = run_dir.file_name().expect("a run directory has a name");
                        memory_dir = Some(RunDir::create(&root.join(leaf))?);
                    }
                    (
                        memory_dir
                            .as_ref()
                            .and_then(|d| d.path.clone())
                            .expect("created"),
                        bytes,
                    )
                }
            };
            let path = dir.join(format!("nvme{i}.img"));
            File::create(&path)
                .and_then(|f| f.set_len(*bytes))
                .ctx(|| format!("cannot create the disk {}", path.display()))?;
            nvme.push(path);
        }
        Ok(Prepared {
            name,
            kernel,
            base,
            initrd,
            scratch_only: !self.disks.iter().any(|d| matches!(d, Disk::Image(_))),
            nvme,
            insn_count,
            _dir: dir,
            _memory_dir: memory_dir,
            lock: Some(std::cell::RefCell::new(lock)),
        })
    }

    fn validate(&self) -> Result<()> {
        for (port, socket) in &self.serial_ports {
            if port.is_empty()
                || !port
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(Error::Invalid(format!(
                    "virtio-serial port name {port:?}: use letters, digits, '.', '_' or '-'"
                )));
            }
            if !socket.exists() {
                return Err(Error::Invalid(format!(
                    "virtio-serial port {port}: no listener at {} (start it before the guest)",
                    socket.display()
                )));
            }
        }
        for (package, bin) in &self.static_bins {
            if package.is_empty() || bin.is_empty() || bin.contains('/') {
                return Err(Error::Invalid(format!(
                    "static binary {package:?}/{bin:?}: need a package and a plain binary name"
                )));
            }
        }
        for (host, guest) in &self.files {
            if !guest.starts_with('/') {
                return Err(Error::Invalid(format!(
                    "guest path {guest:?} for {} must be absolute",
                    host.display()
                )));
            }
        }
        for disk in &self.disks {
            match disk {
                Disk::Sparse(0) | Disk::Memory(0) => {
                    return Err(Error::Invalid("an NVMe disk of 0 bytes".into()));
                }
                Disk::Memory(_) if !Path::new(SHM).is_dir() => {
                    return Err(Error::Invalid(format!(
                        "a memory-backed disk needs {SHM}, which this host does not have"
                    )));
                }
                Disk::Image(p) if !p.is_file() => {
                    return Err(Error::Invalid(format!("no disk image at {}", p.display())));
                }
                _ => {}
            }
        }
        if self.smp == 0 || self.memory_mib < 256 {
            return Err(Error::Invalid(format!(
                "{} CPUs and {} MiB: need at least 1 CPU and 256 MiB",
                self.smp, self.memory_mib
            )));
        }
        Ok(())
    }

    /// The base archive, then this run's archive: script, binaries, host programs, files.
    fn write_initrd(
        &self,
        base: &Path,
        initrd: &Path,
        bins: &[(PathBuf, String)],
        script: Option<&str>,
    ) -> Result<()> {
        let io = |e| Error::Io {
            context: format!("cannot write {}", initrd.display()),
            source: e,
        };
        let mut out = BufWriter::new(
            File::create(initrd).ctx(|| format!("cannot create {}", initrd.display()))?,
        );
        std::io::copy(
            &mut File::open(base).ctx(|| format!("cannot open {}", base.display()))?,
            &mut out,
        )
        .map_err(io)?;
        let mut w = cpio::Writer::new(out);
        if let Some(script) = script {
            w.bytes("/script", 0o755, script.as_bytes()).map_err(io)?;
        }
        for (host, bin) in bins {
            add_file(&mut w, host, &format!("/bin/{bin}"), 0o755)?;
        }
        let mut added = Vec::new();
        for program in &self.host_programs {
            let mut closure = vec![program.clone()];
            closure.extend(shared_libraries(program)?);
            for path in closure {
                if !added.contains(&path) {
                    add_file(&mut w, &path, &guest_path(&path)?, 0o755)?;
                    added.push(path);
                }
            }
        }
        for (package, bin) in &self.static_bins {
            if package.is_empty() || bin.is_empty() || bin.contains('/') {
                return Err(Error::Invalid(format!(
                    "static binary {package:?}/{bin:?}: need a package and a plain binary name"
                )));
            }
        }
        for (host, guest) in &self.files {
            add_file(&mut w, host, guest, 0o444)?;
        }
        w.finish().map_err(io)?.flush().map_err(io)
    }

    fn run_name(&self) -> String {
        let raw = match &self.name {
            Some(n) => n.clone(),
            None => std::thread::current()
                .name()
                .filter(|n| *n != "main")
                .unwrap_or("vm")
                .rsplit("::")
                .next()
                .unwrap_or("vm")
                .to_owned(),
        };
        let clean: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        if clean.is_empty() { "vm".into() } else { clean }
    }

    fn machine(&self, prepared: &Prepared, accel: Accel) -> Machine {
        Machine {
            program: self.qemu.clone(),
            name: format!("kangrejos-{}-{}", prepared.name, std::process::id()),
            accel,
            smp: self.smp,
            memory_mib: self.memory_mib,
            kernel: prepared.kernel.image(),
            initrd: prepared.initrd.clone(),
            append: self.append.clone(),
            iommu: self.iommu,
            nvme: prepared.nvme.clone(),
            serial_ports: self.serial_ports.clone(),
            interactive: false,
            insn_count: prepared.insn_count.clone(),
            insn_blocks: self.count_blocks,
        }
    }

    /// The builder's or `$GUEST_ACCEL`'s choice, else the KVM probe's cached verdict.
    fn chosen_accel(&self, prepared: &Prepared) -> Result<Accel> {
        if let Some(accel) = self.accel {
            return Ok(accel);
        }
        match std::env::var("GUEST_ACCEL").as_deref() {
            Ok("tcg") => return Ok(Accel::Tcg),
            Ok("kvm") => return Ok(Accel::Kvm),
            Ok(other) => {
                return Err(Error::Invalid(format!(
                    "GUEST_ACCEL={other}: expected tcg or kvm"
                )));
            }
            Err(_) => {}
        }
        if !Path::new("/dev/kvm").exists() {
            return Ok(Accel::Tcg);
        }
        let verdict = vm_dir().join("accel-verdict");
        match std::fs::read_to_string(&verdict).as_deref().map(str::trim) {
            Ok("kvm") => return Ok(Accel::Kvm),
            Ok("tcg") => return Ok(Accel::Tcg),
            _ => {}
        }
        // Probe: a KVM boot must reach /init quickly, else KVM is unusable here (as on a kvm_pvm host).
        let probe = VmBuilder {
            boot_timeout: Duration::from_secs(15),
            timeout: Duration::from_secs(15),
            ..VmBuilder::default()
        };
        let dir = RunDir::create(&vm_dir().join("run").join("kvm-probe"))?;
        let initrd = dir.path.as_ref().expect("created").join("initrd.cpio");
        probe.write_initrd(&prepared.base, &initrd, &[], Some("true"))?;
        let probe_prepared = Prepared {
            name: "kvm-probe".into(),
            kernel: prepared.kernel.clone(),
            base: prepared.base.clone(),
            initrd,
            nvme: Vec::new(),
            insn_count: None,
            scratch_only: true,
            _dir: dir,
            _memory_dir: None,
            lock: None,
        };
        let works = matches!(
            probe.attempt(
                &probe_prepared,
                Accel::Kvm,
                &log_path("kvm-probe", 1),
                &probe.limits(1.0)
            ),
            Attempt::Done(_)
        );
        let accel = if works { Accel::Kvm } else { Accel::Tcg };
        let word = if works { "kvm" } else { "tcg" };
        std::fs::write(&verdict, word).ctx(|| format!("cannot write {}", verdict.display()))?;
        Ok(accel)
    }

    /// One boot: follows the console until the script's status, a deadline, or QEMU's exit.
    fn attempt(&self, prepared: &Prepared, accel: Accel, log: &Path, limits: &Limits) -> Attempt {
        match self.try_attempt(prepared, accel, log, limits) {
            Ok(a) => a,
            Err(e) => Attempt::Fail(e),
        }
    }

    fn try_attempt(
        &self,
        prepared: &Prepared,
        accel: Accel,
        log: &Path,
        limits: &Limits,
    ) -> Result<Attempt> {
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .ctx(|| format!("cannot create {}", log.display()))?;
        let qemu_stderr = log_file
            .try_clone()
            .ctx(|| format!("cannot reopen {}", log.display()))?;
        let machine = self.machine(prepared, accel);
        // Stamps ask the plugin only where it runs: a KVM guest's would each wait for no answer.
        let counter = machine.counting_plugin().map(|(_, dir)| dir.to_path_buf());
        let mut cmd = machine.command();
        writeln!(&log_file, "# {cmd:?}").ctx(|| format!("cannot write {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(qemu_stderr);
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Missing(format!(
                    "{} is not installed: run `cargo xtask vm -c true` once (it installs it)",
                    self.qemu.display()
                ))
            } else {
                Error::Io {
                    context: format!("cannot start {}", self.qemu.display()),
                    source: e,
                }
            }
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut qemu = Qemu::new(child);
        prepared.record_qemu(Some(qemu.pid()));
        let lines = spawn_reader(stdout, log_file, self.echo);

        let started = Instant::now();
        note(log, &format!("limits: {}", limits.describe()));
        let mut watch = Watch::default();
        let mut host_stamps = Vec::new();
        let mut clock = Clock::new(started);
        loop {
            let (deadline, limit) = clock.deadline(watch.stage, limits);
            let wait = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(wait) {
                Ok(line) => {
                    let before = watch.stage;
                    let progressed = watch.feed(&line);
                    if let Some(label) = watch.host_stamp.take() {
                        host_stamps.extend(HostStamp::read(&label, qemu.pid(), counter.as_deref()));
                    }
                    if watch.panicked && before == Stage::Kernel {
                        qemu.kill();
                        note(
                            log,
                            "kernel panic while booting: QEMU killed, the boot will be retried",
                        );
                        return Ok(Attempt::Retry("kernel panic while booting".into()));
                    }
                    clock.saw(Instant::now(), before, watch.stage, progressed);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let pid = qemu.pid();
                    let now = Instant::now();
                    // Whether a stalled guest spins or waits, read before QEMU goes.
                    let qemu_threads = match limit {
                        Limit::Stall => crate::host_load::thread_use(pid, STALL_SAMPLE),
                        _ => None,
                    };
                    qemu.kill();
                    // QEMU is gone, so the reader ends soon: take its last lines into the log first.
                    for line in lines.iter() {
                        watch.feed(&line);
                    }
                    let stage = watch.stage.describe();
                    let step = watch.step.clone();
                    let in_step = step
                        .as_deref()
                        .map(|s| format!(", in its stage {s:?}"))
                        .unwrap_or_default();
                    note(
                        log,
                        &format!(
                            "{} while {stage}{in_step}: QEMU killed",
                            match limit {
                                Limit::Boot => "boot limit passed",
                                Limit::Stall => "no progress for the stall limit",
                                Limit::Ceiling => "overall ceiling passed",
                                Limit::Poweroff => "poweroff grace passed",
                            }
                        ),
                    );
                    if limit == Limit::Stall {
                        note(
                            log,
                            &crate::error::describe_threads(qemu_threads.as_deref()),
                        );
                    }
                    let since_init = now.saturating_duration_since(clock.init.unwrap_or(started));
                    return Ok(match (watch.stage, limit) {
                        (Stage::Kernel, _) => Attempt::Retry(format!(
                            "no {} within {:.0?}",
                            initramfs::MARK_START,
                            limits.boot
                        )),
                        (Stage::Exited(status), _) => Attempt::Done(self.output(
                            status,
                            &watch,
                            host_stamps,
                            log,
                            started.elapsed(),
                            limits,
                        )),
                        (_, Limit::Stall) => Attempt::Fail(Error::Stalled(Box::new(Stall {
                            stage,
                            step,
                            quiet_for: now.saturating_duration_since(clock.progress),
                            limit: limits.stall,
                            slowdown: limits.slowdown,
                            running_for: since_init,
                            last_line: watch.last_output().map(str::to_owned),
                            pid,
                            qemu_threads,
                            log: log.to_path_buf(),
                            tail: log_tail(log),
                        }))),
                        _ => Attempt::Fail(Error::Timeout {
                            limit: limits.ceiling,
                            stage,
                            step,
                            slowdown: limits.slowdown,
                            pid,
                            log: log.to_path_buf(),
                            tail: log_tail(log),
                        }),
                    });
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let exit = qemu.wait();
                    let killed_by_signal = exit.as_ref().is_ok_and(|s| s.signal().is_some());
                    let status = exit
                        .map(|s| s.to_string())
                        .unwrap_or_else(|e| format!("unknown status: {e}"));
                    note(
                        log,
                        &format!("QEMU exited ({status}) while {}", watch.stage.describe()),
                    );
                    return Ok(match watch.stage {
                        Stage::Exited(code) => Attempt::Done(self.output(
                            code,
                            &watch,
                            host_stamps,
                            log,
                            started.elapsed(),
                            limits,
                        )),
                        Stage::Kernel => {
                            Attempt::Retry(format!("QEMU exited ({status}) before /init"))
                        }
                        stage => {
                            let err = Error::Exited {
                                status,
                                stage: stage.describe(),
                                log: log.to_path_buf(),
                                tail: log_tail(log),
                            };
                            if killed_by_signal {
                                Attempt::Crashed(err)
                            } else {
                                Attempt::Fail(err)
                            }
                        }
                    });
                }
            }
        }
    }

    fn output(
        &self,
        status: i32,
        watch: &Watch,
        host_stamps: Vec<HostStamp>,
        log: &Path,
        elapsed: Duration,
        limits: &Limits,
    ) -> Output {
        Output {
            status,
            stdout: watch.script_output(),
            log: log.to_path_buf(),
            tries: 1,
            elapsed,
            limits: *limits,
            host_stamps,
            tail: watch.tail(),
        }
    }
}

/// Removes the run directories under `root` that a run killed before its cleanup left behind: those
/// named `...-PID-N` for a process that no longer exists. (A memory-backed image holds host memory
/// until it is removed.)
fn prune_dead_runs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.rsplit('-').nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_removes_the_runs_of_dead_processes_only() {
        let root = tempfile::tempdir().unwrap();
        let live = format!("guest_x-{}-0", std::process::id());
        // PIDs stop well below this (the kernel's limit is 2^22).
        let dead = "guest_x-2147483646-3";
        for name in [live.as_str(), dead, "not-a-run", "kvm-probe"] {
            create_dir(&root.path().join(name)).unwrap();
            std::fs::write(root.path().join(name).join("nvme0.img"), b"x").unwrap();
        }
        prune_dead_runs(root.path());
        let mut left: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [live, "kvm-probe".to_owned(), "not-a-run".to_owned()]);
    }

    #[test]
    fn pruning_keeps_the_newest_logs_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "2026-01-02T00:00:00.000Z-b.log",
            "2026-01-01T00:00:00.000Z-a.log",
            "2026-01-03T00:00:00.000Z-c.log",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        prune_logs(dir.path(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "2026-01-02T00:00:00.000Z-b.log",
                "2026-01-03T00:00:00.000Z-c.log",
                "notes.txt"
            ]
        );
    }

    #[test]
    fn run_names_come_from_the_test_thread_and_are_sanitised() {
        let named = VmBuilder::default().name("a b/c::d");
        assert_eq!(named.run_name(), "a_b_c__d");
        let from_thread = std::thread::Builder::new()
            .name("tests::guest_x".into())
            .spawn(|| VmBuilder::default().run_name())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(from_thread, "guest_x");
    }
}

/// What one boot came to.
enum Attempt {
    Done(Output),
    Retry(String),
    /// QEMU died by a signal once `/init` ran.
    Crashed(Error),
    Fail(Error),
}

/// A run's inputs, ready to boot; holds the VM lock and the run directory until dropped.
#[derive(Debug)]
struct Prepared {
    name: String,
    kernel: Kernel,
    base: PathBuf,
    initrd: PathBuf,
    nvme: Vec<PathBuf>,
    /// The instruction-counting plugin's library and request directory, if asked for.
    insn_count: Option<(PathBuf, PathBuf)>,
    /// Whether every disk was created for this run (none is a host image).
    scratch_only: bool,
    _dir: RunDir,
    /// Where memory-backed disks live, removed with the run.
    _memory_dir: Option<RunDir>,
    lock: Option<std::cell::RefCell<VmLock>>,
}

impl Prepared {
    /// Makes every scratch disk read as zeroes again, as created.
    fn empty_scratch_disks(&self) -> Result<()> {
        for path in &self.nvme {
            File::options()
                .write(true)
                .open(path)
                .and_then(|f| {
                    let len = f.metadata()?.len();
                    f.set_len(0)?;
                    f.set_len(len)
                })
                .ctx(|| format!("cannot empty the disk {}", path.display()))?;
        }
        Ok(())
    }

    /// Names the running QEMU in the lock file, for waiters and for a holder that finds it orphaned.
    fn record_qemu(&self, pid: Option<u32>) {
        if let Some(lock) = &self.lock {
            lock.borrow_mut().set_qemu(pid);
        }
    }
}

static RUN_COUNTER: AtomicU32 = AtomicU32::new(0);

/// `target/vm/run/<name>-<pid>-<n>/`: the initrd and scratch disks, removed after the run.
#[derive(Debug)]
struct RunDir {
    path: Option<PathBuf>,
}

impl RunDir {
    fn create(path: &Path) -> Result<RunDir> {
        let _ = std::fs::remove_dir_all(path);
        create_dir(path)?;
        Ok(RunDir {
            path: Some(path.to_path_buf()),
        })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Copies QEMU's console to the log (and stderr if asked) and hands each line to the watcher.
fn spawn_reader(
    stdout: std::process::ChildStdout,
    mut log: File,
    echo: bool,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let _ = log.write_all(&buf);
            let line = String::from_utf8_lossy(&buf);
            if echo {
                let _ = std::io::stderr().write_all(strip_escapes(&line).as_bytes());
            }
            if tx.send(line.trim_end_matches('\n').to_owned()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Appends the harness's own `# guest harness: ...` line to a console log, so the log says how the run ended.
fn note(log: &Path, message: &str) {
    if let Ok(mut file) = File::options().append(true).open(log) {
        let _ = writeln!(file, "\n# guest harness: {message}");
    }
}

/// Console logs kept; older ones are deleted when a new boot starts.
const KEPT_LOGS: usize = 2000;

/// Deletes the oldest logs (names start with a UTC timestamp, so they sort by age) beyond `keep`.
fn prune_logs(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    if logs.len() <= keep {
        return;
    }
    logs.sort();
    for old in &logs[..logs.len() - keep] {
        let _ = std::fs::remove_file(old);
    }
}

/// Where each run that was run again after QEMU crashed is noted, a line each, so that a crash a
/// passing rerun hides is still seen (`cargo xtask test` lists the lines a run added).
pub fn crash_log() -> PathBuf {
    vm_dir().join("qemu-crashes.log")
}

/// Appends the crash of run `name` (QEMU binary `qemu`) to [`crash_log`].
fn note_crash(qemu: &Path, name: &str, err: &Error) {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now());
    let what = match err {
        Error::Exited {
            status, stage, log, ..
        } => format!(
            "QEMU exited ({status}) while {stage}; console log {}",
            log.display()
        ),
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let line = format!("{stamp} qemu={} run={name}: {what}\n", qemu.display());
    let noted = File::options()
        .create(true)
        .append(true)
        .open(crash_log())
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = noted {
        eprintln!(
            "guest harness: cannot note the crash in {}: {e}",
            crash_log().display()
        );
    }
}

/// `target/vm/logs/<UTC timestamp>-<name>[-try<n>].log`.
fn log_path(name: &str, attempt: u32) -> PathBuf {
    let dir = vm_dir().join("logs");
    let _ = std::fs::create_dir_all(&dir);
    prune_logs(&dir, KEPT_LOGS);
    let stamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let suffix = if attempt > 1 {
        format!("-try{attempt}")
    } else {
        String::new()
    };
    dir.join(format!("{stamp}-{name}{suffix}.log"))
}

/// The last lines of a log file (QEMU's own errors included).
fn log_tail(log: &Path) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(crate::console::TAIL_LINES);
    lines[from..]
        .iter()
        .map(|l| strip_escapes(l).trim_end_matches('\r').to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

//! The QEMU command line, and a child process that is always killed and reaped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// How QEMU executes the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Multi-threaded TCG: works everywhere, boots in about 3 s.
    Tcg,
    /// Hardware virtualisation; used only when a probe boot proved it works.
    Kvm,
}

/// The QEMU program a guest runs on unless the builder names another (`VmBuilder::qemu_binary`).
pub const QEMU: &str = "qemu-system-x86_64";

/// The CPU model under TCG: every feature TCG emulates but ERMS ("enhanced `rep movsb`"). With ERMS the
/// kernel copies to and from user space, and clears pages, with `rep movsb`/`rep stosb`, which TCG runs
/// one byte per iteration: a 4 KiB `read` from tmpfs took 18-24 µs in the guest against 5-9 µs without
/// it (64 MiB in 4 KiB reads, three times each). Real CPUs make that path their fastest, so the
/// emulated costs would otherwise penalise whatever copies (ublk, 9p) against what does DMA.
pub const TCG_CPU: &str = "max,-erms";

/// Everything that shapes one QEMU invocation.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The QEMU executable (normally `qemu-system-x86_64` on `$PATH`).
    pub program: PathBuf,
    pub name: String,
    pub accel: Accel,
    pub smp: u32,
    pub memory_mib: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: Vec<String>,
    pub iommu: bool,
    pub nvme: Vec<PathBuf>,
    /// (port name, host unix socket QEMU connects to)
    pub serial_ports: Vec<(String, PathBuf)>,
    /// The console on stdio with QEMU's monitor multiplexed (Ctrl-A X quits), for a person at a terminal.
    pub interactive: bool,
    /// The instruction-counting plugin (`tcg-insn-count`): its library and the directory it answers
    /// snapshot requests in. TCG only: KVM runs guest code natively, where no plugin sees it.
    pub insn_count: Option<(PathBuf, PathBuf)>,
    /// Whether the counting plugin adds the kernel's blocks to its snapshots (`blocks=on`).
    pub insn_blocks: bool,
}

impl Machine {
    /// The counting plugin's library and request directory, if this machine loads it: asked for,
    /// and under TCG (under KVM no plugin sees guest code).
    pub fn counting_plugin(&self) -> Option<(&Path, &Path)> {
        match (self.accel, &self.insn_count) {
            (Accel::Tcg, Some((library, dir))) => Some((library, dir)),
            _ => None,
        }
    }

    /// The `qemu-system-x86_64` command for this machine (stdio not yet set).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        let machine = if self.iommu {
            "q35,kernel-irqchip=split"
        } else {
            "q35"
        };
        // debug-threads: QEMU names its threads (`CPU 0/TCG`, ...), which tells the vCPUs' host CPU
        // time from the device emulation's (see `HostStamp`).
        let name = format!("{},debug-threads=on", self.name);
        cmd.args(["-name", &name, "-machine", machine]);
        match self.accel {
            Accel::Tcg => cmd.args(["-accel", "tcg,thread=multi", "-cpu", TCG_CPU]),
            Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        };
        if let Some((library, dir)) = self.counting_plugin() {
            let mut plugin = escape_comma(library);
            plugin.push(",dir=");
            plugin.push(escape_comma(dir));
            if self.insn_blocks {
                plugin.push(",blocks=on");
            }
            cmd.arg("-plugin").arg(plugin);
        }
        cmd.args(["-smp", &self.smp.to_string()])
            .args(["-m", &format!("{}M", self.memory_mib)])
            .args(["-nographic", "-no-reboot", "-nic", "none"]);
        if !self.interactive {
            cmd.args(["-serial", "stdio", "-monitor", "none"]);
        }
        cmd.arg("-kernel").arg(&self.kernel);
        cmd.arg("-initrd").arg(&self.initrd);
        let mut append = vec!["console=ttyS0".to_owned(), "panic=-1".to_owned()];
        if self.iommu {
            append.push("intel_iommu=on".to_owned());
        }
        let host_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if tsc_needs_trust(self.accel, self.smp, host_cores) {
            append.push("tsc=reliable".to_owned());
        }
        append.extend(self.append.iter().cloned());
        cmd.args(["-append", &append.join(" ")]);
        if self.iommu {
            // Before the other devices, so that they sit behind it.
            cmd.args(["-device", "intel-iommu,intremap=on,caching-mode=on"]);
        }
        for (i, image) in self.nvme.iter().enumerate() {
            let mut drive = std::ffi::OsString::from("file=");
            drive.push(escape_comma(image));
            drive.push(format!(",if=none,id=nvme{i},format=raw"));
            cmd.arg("-drive").arg(drive);
            let serial = if i == 0 {
                "deadbeef".to_owned()
            } else {
                format!("deadbeef{i}")
            };
            cmd.args(["-device", &format!("nvme,serial={serial},drive=nvme{i}")]);
        }
        if !self.serial_ports.is_empty() {
            cmd.args(["-device", "virtio-serial-pci"]);
        }
        for (i, (port, socket)) in self.serial_ports.iter().enumerate() {
            let mut chardev = std::ffi::OsString::from(format!("socket,id=vser{i},path="));
            chardev.push(escape_comma(socket));
            cmd.arg("-chardev").arg(chardev);
            cmd.args([
                "-device",
                &format!("virtserialport,chardev=vser{i},name={port}"),
            ]);
        }
        cmd
    }
}

/// QEMU option values escape a comma by doubling it.
fn escape_comma(path: &Path) -> std::ffi::OsString {
    path.as_os_str().to_string_lossy().replace(',', ",,").into()
}

/// A running QEMU that is killed and waited for when dropped, so none outlives its test (even a panicking one).
#[derive(Debug)]
pub struct Qemu {
    child: Child,
    reaped: bool,
}

impl Qemu {
    pub fn new(child: Child) -> Qemu {
        Qemu {
            child,
            reaped: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for QEMU to exit by itself.
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait()?;
        self.reaped = true;
        Ok(status)
    }

    /// Kills QEMU and reaps it.
    pub fn kill(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.reaped = true;
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a guest's kernel must be told to trust its TSC (`tsc=reliable`): under TCG with more
/// vCPUs than host cores. The vCPU threads then wait for cores, the kernel's clocksource watchdog
/// sees the TSC drift against the other clocks and marks it unstable, and the switch patches the
/// kernel's code on every CPU; once, under QEMU 7.2, a CPU then ran a stale translation of the
/// patched code and oopsed on an int3. The emulated TSC comes from one host clock for all vCPUs,
/// so trusting it is right. Under KVM the TSC is the host's own, and the kernel checks it itself.
fn tsc_needs_trust(accel: Accel, smp: u32, host_cores: usize) -> bool {
    accel == Accel::Tcg && usize::try_from(smp).unwrap_or(usize::MAX) > host_cores
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(m: &Machine) -> Vec<String> {
        m.command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_tcg_guest_with_more_vcpus_than_host_cores_trusts_its_tsc() {
        assert!(tsc_needs_trust(Accel::Tcg, 4, 2));
        assert!(!tsc_needs_trust(Accel::Tcg, 2, 2));
        assert!(!tsc_needs_trust(Accel::Tcg, 2, 8));
        assert!(!tsc_needs_trust(Accel::Kvm, 4, 2));
        let mut m = machine();
        m.smp = 1024;
        assert!(args(&m).join(" ").contains(" tsc=reliable"));
        m.smp = 1;
        assert!(!args(&m).join(" ").contains("tsc="));
    }

    fn machine() -> Machine {
        Machine {
            program: "qemu-system-x86_64".into(),
            name: "t".into(),
            accel: Accel::Tcg,
            smp: 2,
            memory_mib: 2048,
            kernel: "/k".into(),
            initrd: "/i".into(),
            append: vec!["quiet".into()],
            iommu: false,
            nvme: vec![],
            serial_ports: vec![],
            interactive: false,
            insn_count: None,
            insn_blocks: false,
        }
    }

    #[test]
    fn the_counting_plugin_is_loaded_under_tcg_only() {
        let mut m = machine();
        assert!(!args(&m).contains(&"-plugin".to_owned()));
        m.insn_count = Some(("/p/libtcg_insn_count.so".into(), "/r/a,b".into()));
        let a = args(&m);
        let at = a
            .iter()
            .position(|x| x == "-plugin")
            .expect("a -plugin option");
        assert_eq!(a[at + 1], "/p/libtcg_insn_count.so,dir=/r/a,,b");
        m.insn_blocks = true;
        let a = args(&m);
        let at = a.iter().position(|x| x == "-plugin").unwrap();
        assert_eq!(a[at + 1], "/p/libtcg_insn_count.so,dir=/r/a,,b,blocks=on");
        m.accel = Accel::Kvm;
        assert!(!args(&m).contains(&"-plugin".to_owned()));
    }

    #[test]
    fn plain_machine_has_no_network_and_tcg() {
        let a = args(&machine()).join(" ");
        assert!(
            a.contains("-machine q35 -accel tcg,thread=multi -cpu max,-erms -smp 2 -m 2048M"),
            "{a}"
        );
        assert!(a.contains("-nic none"), "{a}");
        assert!(a.contains("-append console=ttyS0 panic=-1 quiet"), "{a}");
        // Named threads, so the vCPUs' host CPU time can be told from the emulation's.
        assert!(a.contains("-name t,debug-threads=on "), "{a}");
        assert!(
            !a.contains("intel-iommu") && !a.contains("virtio-serial"),
            "{a}"
        );
    }

    #[test]
    fn iommu_comes_before_devices_and_paths_escape_commas() {
        let mut m = machine();
        m.iommu = true;
        m.nvme = vec!["/d/a,b.img".into()];
        m.serial_ports = vec![("p9".into(), "/s/sock".into())];
        let a = args(&m);
        let pos = |s: &str| a.iter().position(|x| x.contains(s)).unwrap();
        assert!(pos("intel-iommu,intremap=on") < pos("nvme,serial=deadbeef,drive=nvme0"));
        assert!(a.contains(&"q35,kernel-irqchip=split".to_owned()));
        assert!(a.contains(&"file=/d/a,,b.img,if=none,id=nvme0,format=raw".to_owned()));
        assert!(a.contains(&"socket,id=vser0,path=/s/sock".to_owned()));
        assert!(a.contains(&"virtserialport,chardev=vser0,name=p9".to_owned()));
        assert!(a.iter().any(|x| x.ends_with("intel_iommu=on quiet")));
    }
}

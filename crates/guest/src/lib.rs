//! QEMU guest harness: boots a Debian 6.12 kernel with a busybox initramfs and runs a shell script in it,
//! so tests can exercise real kernel clients (v9fs, nvme, vfio-pci, uio_pci_generic) that the host lacks.
//!
//! ```text
//! let out = guest::Vm::builder()
//!     .nvme(guest::Disk::sparse(1 << 30))        // -device nvme, serial deadbeef, sparse image
//!     .iommu(true)                                 // emulated intel-iommu + intel_iommu=on (VFIO type1)
//!     .virtio_serial("p9", "/tmp/ninepd.sock")     // QEMU connects to this host listener; adds vport-relay
//!     .static_bin("ninep-server", "ninepd")        // static build, lands at /bin/ninepd
//!     .host_program("/usr/sbin/diod")              // the host binary plus its shared libraries
//!     .file("/etc/os-release", "/share/os-release")// read-only copy
//!     .timeout(Duration::from_secs(120))           // quiet-machine bound once /init runs (ceiling: 3x)
//!     .stall_limit(Duration::from_secs(60))        // longest time without progress
//!     .run("set -e; stage probe; uname -r; ls /dev/nvme0n1")?;
//! assert!(out.success(), "{}", out.log_tail());
//! assert!(out.stdout.contains("/dev/nvme0n1"));
//! ```
//!
//! * [`Output`]: `status`, `stdout` (the script's stdout and stderr), `log` (console log path), `tries`,
//!   `elapsed`, `limits`; [`Error`] says what broke, where the guest stopped, and quotes the console's last
//!   lines.
//! * Deadlines follow progress: once `/init` runs, a guest is killed when it prints nothing for its stall
//!   limit ([`Error::Stalled`], naming the stage and how long it was quiet) or at its overall ceiling,
//!   [`CEILING_SLACK`] times its timeout ([`Error::Timeout`]). In the guest, `stage NAME` names the
//!   script's stage and `CMD | progress` turns lines that go elsewhere into progress. Every limit is
//!   multiplied by the run's slowdown ([`calibrate`]: the empty guest's boot against [`REFERENCE_BOOT`],
//!   measured once per run; `cargo xtask test` passes it to the tests in `$GUEST_SLOWDOWN`).
//! * One VM runs at a time on the machine, whichever checkout or target directory starts it: [`Vm`] runs
//!   take an exclusive `flock` on [`lock_path`] (`/run/lock/kangrejos-vm.lock`); a waiter prints the holder.
//! * The kernel is fetched on first use (`apt-get download`) into `target/vm/kernel/`; the base initramfs and
//!   decompressed modules are cached under `target/vm/`. Every boot's console is kept in `target/vm/logs/`.
//! * `host-stamp LABEL` in the guest has the harness read the host's CPU counters and QEMU's threads'
//!   ([`Output::host_stamps`]); [`HostLoad::between`] says how busy the host was between two stamps and
//!   how much of it the vCPUs and the device emulation took, which the guest cannot see itself.
//! * A boot that panics or does not reach `/init` within the boot timeout is retried (3 tries).
//! * Modules loaded at boot (with their dependencies): see [`MODULES`].
//! * 9P over virtio-serial: in the guest, `vport-relay NAME FD CMD...` opens the port once, puts one end of
//!   a socketpair at fd `FD`, runs `CMD` and keeps relaying after it returns:
//!   `vport-relay p9 3 mount -t 9p -o trans=fd,rfdno=3,wfdno=3,version=9p2000.L,aname=/srv,uname=root,access=user none /mnt`

#![forbid(unsafe_code)]

mod calibration;
mod console;
mod cpio;
mod deadline;
mod error;
mod host_load;
mod initramfs;
mod kernel;
mod lock;
mod paths;
mod payload;
mod qemu;
mod queue;
mod vm;

pub use calibration::{
    Calibration, MAX_SLOWDOWN, MIN_SLOWDOWN, REFERENCE_BOOT, SLOWDOWN_ENV, calibrate, slowdown,
};
pub use console::Stage;
pub use deadline::Limits;
pub use error::{Error, Result, Stall};
pub use host_load::{HostLoad, HostStamp, ThreadUse, loads_by_label, stamped};
pub use initramfs::MODULES;
pub use kernel::{
    Kernel, KernelFlavor, PINNED_PACKAGE, install as install_kernel, rust_kernel_link,
};
pub use lock::{VmLock, lock_path};
pub use paths::{vm_dir, workspace_root};
pub use payload::{STATIC_TARGET, build_static};
pub use qemu::{Accel, QEMU, TCG_CPU};
pub use tcg_insn_count::BlockCount;
pub use vm::{
    CEILING_SLACK, DEFAULT_STALL_LIMIT, Disk, Output, RELAY_BIN, Vm, VmBuilder, crash_log,
};

//! The guest's initramfs: a cached base archive (busybox, `/etc`, modules, `/init`) followed by a small
//! per-run archive (the script, binaries, files). The kernel unpacks concatenated newc archives in order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cpio;
use crate::error::{Error, IoContext, Result};
use crate::kernel::Kernel;
use crate::paths::{create_dir, output, vm_dir};

/// Modules every guest loads at boot, by `modprobe` name; dependencies are added in order.
pub const MODULES: &[&str] = &[
    "9p",
    "9pnet_fd",
    // vsock inside one guest (CID 1), for servers that listen on vsock.
    "vsock_loopback",
    "nvme",
    "vfio_iommu_type1",
    "vfio-pci",
    "uio_pci_generic",
    "ublk_drv",
    "ext4",
];

/// Printed by `/init` once userspace runs: the kernel booted.
pub const MARK_START: &str = "INIT:start";
/// Printed right before the script starts; everything after it is the script's output.
pub const MARK_SCRIPT: &str = "INIT:script";
/// Printed with the script's exit status: `GUEST-EXIT:<status>`.
pub const MARK_EXIT: &str = "GUEST-EXIT:";
/// `GUEST-STAGE:<name>`, printed by the guest's `stage NAME` command: the script enters a named stage.
pub const MARK_STAGE: &str = "GUEST-STAGE:";
/// Printed by the guest's `progress` command for each line it reads: progress without output.
pub const MARK_PROGRESS: &str = "GUEST-PROGRESS";
/// `GUEST-HOST-STAMP:<label>`, printed by the guest's `host-stamp LABEL` command: the harness reads
/// the host's CPU counters (see [`crate::HostStamp`]).
pub const MARK_HOST_STAMP: &str = "GUEST-HOST-STAMP:";

/// `/init`: mounts the pseudo file systems, loads the modules, runs `/script` (or a shell) and powers off.
const INIT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/hugepages
mount -t devpts devpts /dev/pts
mount -t hugetlbfs hugetlbfs /dev/hugepages
echo INIT:start
while read -r m; do
    insmod "/lib/modules/$m" || echo "INIT:insmod-failed:$m"
done < /etc/modules.order
ip link set lo up
hostname guest
if [ -e /script ]; then
    echo INIT:script
    sh /script </dev/null 2>&1
    status=$?
    echo
    echo "GUEST-EXIT:$status"
else
    echo INIT:shell
    setsid cttyhack sh -l
fi
poweroff -f
"#;

/// `retry N COMMAND...`: runs the command until it succeeds, at most N times 0.1 s apart. A
/// server a script starts in the background takes a moment before a client can reach it.
const RETRY: &str = r#"#!/bin/sh
n=$1
shift
i=0
until "$@"; do
    i=$((i + 1))
    [ "$i" -lt "$n" ] || exit 1
    sleep 0.1
done
"#;

/// `stage NAME...`: names the stage the script enters, for the harness's progress watch and its errors.
const STAGE: &str = r#"#!/bin/sh
echo "GUEST-STAGE:$*"
"#;

/// `CMD | progress [NAME...]`: enters stage NAME (if given), then reports one step of progress per line
/// read from standard input without showing the line, for commands whose output goes to a file
/// (`CMD | tee FILE | progress`).
const PROGRESS: &str = r#"#!/bin/sh
[ $# -eq 0 ] || echo "GUEST-STAGE:$*"
while IFS= read -r line; do
    echo GUEST-PROGRESS
done
"#;

/// `host-stamp LABEL...`: has the harness read the host's CPU counters now, under LABEL.
const HOST_STAMP: &str = r#"#!/bin/sh
echo "GUEST-HOST-STAMP:$*"
"#;

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";
/// diod resolves the peer's name: without these it resets every connection.
const HOSTS: &str = "127.0.0.1 localhost guest\n::1 localhost\n";
const NSSWITCH: &str = "passwd: files\ngroup: files\nhosts: files\n";

/// The base archive for `kernel`, rebuilt only when its inputs changed.
pub fn base(kernel: &Kernel) -> Result<PathBuf> {
    let busybox = which("busybox")?;
    let meta = std::fs::metadata(&busybox).ctx(|| format!("cannot stat {}", busybox.display()))?;
    let modules = kernel.module_order(MODULES)?;
    let key = format!(
        "{}\n{} {} {:?}\n{modules:?}\n{INIT}{RETRY}{STAGE}{PROGRESS}{HOST_STAMP}{PASSWD}{GROUP}{HOSTS}{NSSWITCH}",
        kernel.version,
        busybox.display(),
        meta.len(),
        meta.modified().ok()
    );
    // The inputs' hash names the file, so that differing checkouts sharing `target/vm` do not evict each other.
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&key, &mut hasher);
    let dir = vm_dir().join("initramfs");
    create_dir(&dir)?;
    let archive = dir.join(format!(
        "base-{}-{:016x}.cpio",
        kernel.version,
        std::hash::Hasher::finish(&hasher)
    ));
    if archive.exists() {
        return Ok(archive);
    }

    let partial = archive.with_extension("partial");
    let file = File::create(&partial).ctx(|| format!("cannot create {}", partial.display()))?;
    let mut w = cpio::Writer::new(BufWriter::new(file));
    let io = |e| Error::Io {
        context: format!("cannot write {}", partial.display()),
        source: e,
    };
    for d in [
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/run",
        "/mnt",
        "/root",
        "/sbin",
        "/usr/bin",
        "/usr/sbin",
    ] {
        w.dir(d, 0o755).map_err(io)?;
    }
    w.char_dev("/dev/console", 0o600, 5, 1).map_err(io)?;
    w.char_dev("/dev/null", 0o666, 1, 3).map_err(io)?;
    add_file(&mut w, &busybox, "/bin/busybox", 0o755)?;
    for applet in output(Command::new(&busybox).arg("--list"))?.lines() {
        let applet = applet.trim();
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            w.symlink(&format!("/bin/{applet}"), "busybox")
                .map_err(io)?;
        }
    }
    for (path, text) in [
        ("/etc/passwd", PASSWD),
        ("/etc/group", GROUP),
        ("/etc/hosts", HOSTS),
        ("/etc/nsswitch.conf", NSSWITCH),
        ("/init", INIT),
        ("/usr/bin/retry", RETRY),
        ("/usr/bin/stage", STAGE),
        ("/usr/bin/progress", PROGRESS),
        ("/usr/bin/host-stamp", HOST_STAMP),
    ] {
        let mode = if path == "/init" || path.starts_with("/usr/bin/") {
            0o755
        } else {
            0o644
        };
        w.bytes(path, mode, text.as_bytes()).map_err(io)?;
    }
    let mut order = String::new();
    for module in &modules {
        let plain = decompressed(kernel, module)?;
        let name = plain.file_name().expect("a module file").to_string_lossy();
        add_file(&mut w, &plain, &format!("/lib/modules/{name}"), 0o644)?;
        order.push_str(&name);
        order.push('\n');
    }
    w.bytes("/etc/modules.order", 0o644, order.as_bytes())
        .map_err(io)?;
    w.finish().map_err(io)?.flush().map_err(io)?;
    std::fs::rename(&partial, &archive).ctx(|| format!("cannot move {}", partial.display()))?;
    Ok(archive)
}

/// A plain `.ko` for a (possibly `.ko.xz`/`.ko.zst`) module, cached under `target/vm/modules/<version>/`.
fn decompressed(kernel: &Kernel, module: &Path) -> Result<PathBuf> {
    let name = module
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("bad module path {}", module.display())))?
        .to_string_lossy();
    let (stem, tool) = if let Some(stem) = name.strip_suffix(".xz") {
        (stem, Some("xz"))
    } else if let Some(stem) = name.strip_suffix(".zst") {
        (stem, Some("zstd"))
    } else {
        (name.as_ref(), None)
    };
    let dir = vm_dir().join("modules").join(&kernel.version);
    create_dir(&dir)?;
    let plain = dir.join(stem);
    if plain.exists() {
        return Ok(plain);
    }
    let partial = dir.join(format!("{stem}.partial"));
    match tool {
        Some(tool) => {
            let out =
                File::create(&partial).ctx(|| format!("cannot create {}", partial.display()))?;
            let status = Command::new(tool)
                .arg("-dc")
                .arg(module)
                .stdout(out)
                .status()
                .map_err(|e| Error::Missing(format!("cannot run {tool} to unpack modules: {e}")))?;
            if !status.success() {
                return Err(Error::Command {
                    what: format!("{tool} -dc {}", module.display()),
                    detail: status.to_string(),
                });
            }
        }
        None => {
            std::fs::copy(module, &partial).ctx(|| format!("cannot copy {}", module.display()))?;
        }
    }
    std::fs::rename(&partial, &plain).ctx(|| format!("cannot move {}", partial.display()))?;
    Ok(plain)
}

/// Copies a host file into the archive at `guest_path`.
pub(crate) fn add_file<W: Write>(
    w: &mut cpio::Writer<W>,
    host: &Path,
    guest_path: &str,
    mode: u32,
) -> Result<()> {
    let file = File::open(host).ctx(|| format!("cannot open {}", host.display()))?;
    let len = file
        .metadata()
        .ctx(|| format!("cannot stat {}", host.display()))?
        .len();
    w.file(guest_path, mode, len, std::io::BufReader::new(file))
        .ctx(|| format!("cannot add {} to the initramfs", host.display()))
}

/// The first `name` on `$PATH` (plus the sbin directories, which a non-root `$PATH` may lack).
pub fn which(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Missing(format!(
                "{name} is not installed: run `cargo xtask vm -c true` once (it installs what the guest needs)"
            ))
        })
}

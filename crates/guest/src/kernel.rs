//! The guest kernel: a Debian 6.12 `linux-image` package unpacked under `target/vm/kernel/`, and its modules;
//! or the Rust-enabled kernel `cargo xtask kernel` prepares, found through `target/vm/kernel-rust`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};
use crate::paths::{create_dir, output, vm_dir};

/// The kernel package tried first; security updates rotate the ABI name, hence the fallback search.
pub const PINNED_PACKAGE: &str = "linux-image-6.12.117+deb12-amd64";
/// What `apt-cache search --names-only` looks for when the pinned package is gone.
const FALLBACK_PATTERN: &str = r"^linux-image-6\.12\.[0-9]+\+deb12-amd64$";
/// Written last by [`install`]: its presence means the unpacked kernel is complete.
const STAMP: &str = ".installed";

/// Which kernel a guest boots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KernelFlavor {
    /// Debian's 6.12 package, fetched on first use.
    #[default]
    Debian,
    /// Debian's 7.2 package (`CONFIG_RUST=y`) with the Rust modules built against it by `cargo xtask kernel`.
    Rust,
}

impl KernelFlavor {
    /// The kernel of this flavour, installing the Debian one if needed. The caller holds the VM lock.
    pub(crate) fn locate_locked(self) -> Result<Kernel> {
        match self {
            KernelFlavor::Debian => install_locked(),
            KernelFlavor::Rust => Kernel::find_rust(),
        }
    }
}

/// Where `cargo xtask kernel` links its output: `target/vm/kernel-rust` (or under `$GUEST_VM_DIR`).
pub fn rust_kernel_link() -> PathBuf {
    vm_dir().join("kernel-rust")
}

/// An unpacked kernel: `root/boot/vmlinuz-<version>` and `root/lib/modules/<version>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub root: PathBuf,
    pub version: String,
}

impl Kernel {
    /// The kernel image QEMU boots.
    pub fn image(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", self.version))
    }

    /// The installed kernel, or a clear error saying how to install it.
    pub fn find() -> Result<Kernel> {
        let root = kernel_dir();
        match std::fs::read_to_string(root.join(STAMP)) {
            Ok(version) => Ok(Kernel {
                root,
                version: version.trim().to_owned(),
            }),
            Err(_) => Err(Error::Missing(format!(
                "no guest kernel under {}: run `cargo xtask vm -c true` once to fetch it",
                root.display()
            ))),
        }
    }

    /// The Rust-enabled kernel `cargo xtask kernel` built, or an error saying to run it.
    pub fn find_rust() -> Result<Kernel> {
        let link = rust_kernel_link();
        let root = std::fs::canonicalize(&link).ok();
        match root.and_then(|r| Some((std::fs::read_to_string(r.join(STAMP)).ok()?, r))) {
            Some((version, root)) => Ok(Kernel {
                root,
                version: version.trim().to_owned(),
            }),
            None => Err(Error::Missing(format!(
                "no Rust guest kernel at {}: run `cargo xtask kernel` to build it",
                link.display()
            ))),
        }
    }

    /// Plain `.ko` files that tests load by hand (the Rust kernel's `test-modules/`).
    pub fn test_module(&self, name: &str) -> PathBuf {
        self.root.join("test-modules").join(format!("{name}.ko"))
    }

    /// The `.ko*` files to load, in dependency order, for `modules` (names as `modprobe` takes them).
    /// Built-in modules are skipped.
    pub fn module_order(&self, modules: &[&str]) -> Result<Vec<PathBuf>> {
        let mut order: Vec<PathBuf> = Vec::new();
        for module in modules {
            let shown = output(Command::new("modprobe").arg("-d").arg(&self.root).args([
                "-S",
                &self.version,
                "--show-depends",
                module,
            ]))?;
            for path in parse_show_depends(&shown) {
                if !order.contains(&path) {
                    order.push(path);
                }
            }
        }
        Ok(order)
    }
}

/// `target/vm/kernel/`.
pub fn kernel_dir() -> PathBuf {
    vm_dir().join("kernel")
}

/// The `insmod` paths of `modprobe --show-depends` output (`builtin` lines name nothing to load).
pub fn parse_show_depends(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("insmod "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(PathBuf::from)
        .collect()
}

/// Fetches and unpacks the kernel unless it already is (then this does nothing and returns at once).
///
/// Takes the VM lock, so concurrent callers download it once.
pub fn install() -> Result<Kernel> {
    let _lock = crate::lock::VmLock::acquire()?;
    install_locked()
}

/// [`install`] for a caller that already holds the VM lock.
pub(crate) fn install_locked() -> Result<Kernel> {
    if let Ok(kernel) = Kernel::find() {
        return Ok(kernel);
    }
    let package = choose_package()?;
    let vm = vm_dir();
    let download = vm.join("download");
    let _ = std::fs::remove_dir_all(&download);
    create_dir(&download)?;
    output(
        Command::new("apt-get")
            .args(["download", &package])
            .current_dir(&download),
    )
    .map_err(|e| Error::Missing(format!("cannot download the guest kernel {package}: {e}")))?;
    let deb = std::fs::read_dir(&download)
        .ctx(|| format!("cannot list {}", download.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| Error::Missing(format!("apt-get download {package} left no .deb")))?;

    let root = kernel_dir();
    let staging = vm.join("kernel.partial");
    let _ = std::fs::remove_dir_all(&staging);
    let _ = std::fs::remove_dir_all(&root);
    output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&staging))?;
    let version = unpacked_version(&staging)?;
    output(Command::new("depmod").arg("-b").arg(&staging).arg(&version))?;
    std::fs::write(staging.join(STAMP), &version)
        .ctx(|| format!("cannot write the stamp in {}", staging.display()))?;
    std::fs::rename(&staging, &root)
        .ctx(|| format!("cannot move the kernel to {}", root.display()))?;
    let _ = std::fs::remove_dir_all(&download);
    Kernel::find()
}

/// The pinned package if apt knows it, else the newest 6.12 `+deb12` image.
fn choose_package() -> Result<String> {
    let known = Command::new("apt-cache")
        .args(["show", "--no-all-versions", PINNED_PACKAGE])
        .output()
        .map_err(|e| Error::Missing(format!("apt-cache is not available: {e}")))?;
    if known.status.success() && !known.stdout.is_empty() {
        return Ok(PINNED_PACKAGE.to_owned());
    }
    let found =
        output(Command::new("apt-cache").args(["search", "--names-only", FALLBACK_PATTERN]))?;
    newest_package(&found).ok_or_else(|| {
        Error::Missing(format!(
            "no Debian 6.12 kernel package is reachable ({PINNED_PACKAGE} is gone and no other \
             linux-image-6.12.*+deb12-amd64 is listed): run `apt-get update` and check that \
             bookworm-security is in the apt sources"
        ))
    })
}

/// The highest-numbered package of `apt-cache search` output (`name - description` lines).
pub fn newest_package(search: &str) -> Option<String> {
    search
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with("linux-image-6.12.") && !name.contains("-dbg"))
        .max_by_key(|name| {
            name.trim_start_matches("linux-image-")
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .map(str::to_owned)
}

/// The single directory name under `lib/modules/`.
fn unpacked_version(root: &Path) -> Result<String> {
    let dir = root.join("lib").join("modules");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .ctx(|| format!("the kernel package has no {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match names.len() {
        1 => Ok(names.remove(0)),
        n => Err(Error::Invalid(format!(
            "expected one kernel version under {}, found {n}",
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_depends_gives_insmod_paths_in_order() {
        let text = "builtin fscache\ninsmod /k/lib/modules/v/kernel/fs/netfs/netfs.ko.xz \n\
                    insmod /k/lib/modules/v/kernel/net/9p/9pnet.ko.xz opt=1\n";
        assert_eq!(
            parse_show_depends(text),
            [
                PathBuf::from("/k/lib/modules/v/kernel/fs/netfs/netfs.ko.xz"),
                PathBuf::from("/k/lib/modules/v/kernel/net/9p/9pnet.ko.xz"),
            ]
        );
    }

    #[test]
    fn newest_package_compares_numerically() {
        let search = "linux-image-6.12.9+deb12-amd64 - Linux 6.12 for 64-bit PCs\n\
                      linux-image-6.12.117+deb12-amd64 - Linux 6.12 for 64-bit PCs\n\
                      linux-image-6.12.200+deb12-amd64-dbg - debug symbols\n\
                      linux-image-6.12.38+deb12-amd64 - Linux 6.12 for 64-bit PCs\n";
        assert_eq!(
            newest_package(search).as_deref(),
            Some("linux-image-6.12.117+deb12-amd64")
        );
        assert_eq!(newest_package(""), None);
    }
}

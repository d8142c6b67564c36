//! Installs what the suites need on a fresh Debian machine: Debian packages and the guest kernel.
//!
//! Each need is a command on `$PATH` and the Debian package that provides it. What is present is left
//! alone; what is missing is installed with one `apt-get update` and one `apt-get install -y`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A command some suite runs, and the Debian package that provides it.
#[derive(Debug, Clone, Copy)]
struct Need {
    command: &'static str,
    package: &'static str,
    /// Whether only the guest suites use it.
    guest_only: bool,
}

const NEEDS: &[Need] = &[
    Need {
        command: "valgrind",
        package: "valgrind",
        guest_only: false,
    },
    Need {
        command: "qemu-system-x86_64",
        package: "qemu-system-x86",
        guest_only: true,
    },
    Need {
        command: "busybox",
        package: "busybox-static",
        guest_only: true,
    },
    Need {
        command: "cpio",
        package: "cpio",
        guest_only: true,
    },
    Need {
        command: "diod",
        package: "diod",
        guest_only: true,
    },
    Need {
        command: "fio",
        package: "fio",
        guest_only: true,
    },
    Need {
        command: "modprobe",
        package: "kmod",
        guest_only: true,
    },
    Need {
        command: "depmod",
        package: "kmod",
        guest_only: true,
    },
    Need {
        command: "xz",
        package: "xz-utils",
        guest_only: true,
    },
    Need {
        command: "zstd",
        package: "zstd",
        guest_only: true,
    },
    Need {
        command: "dpkg-deb",
        package: "dpkg",
        guest_only: true,
    },
    Need {
        command: "ldd",
        package: "libc-bin",
        guest_only: true,
    },
    // Host programs the 9P guest workload copies into the guest.
    Need {
        command: "setfattr",
        package: "attr",
        guest_only: true,
    },
    Need {
        command: "flock",
        package: "util-linux",
        guest_only: true,
    },
];

/// Makes sure everything the selected suites need is present, installing it when missing.
pub fn ensure_all(needs_guest: bool) -> Result<()> {
    let mut missing: Vec<&str> = Vec::new();
    for need in NEEDS.iter().filter(|n| needs_guest || !n.guest_only) {
        let present = match find_command(need.command) {
            // The guest needs a static busybox: the initramfs has no shared libraries for it.
            Some(path) if need.package == "busybox-static" => is_static(&path),
            Some(_) => true,
            None => false,
        };
        if !present && !missing.contains(&need.package) {
            missing.push(need.package);
        }
    }
    let mut apt = Apt::default();
    if !missing.is_empty() {
        eprintln!("xtask: installing {}", missing.join(" "));
        apt.install(&missing)?;
        if needs_guest && find_command("qemu-system-x86_64").is_none() {
            bail!("qemu-system-x86_64 is still missing after installing qemu-system-x86");
        }
    }
    if needs_guest {
        ensure_kernel(&mut apt)?;
    }
    Ok(())
}

/// Fetches the guest kernel into `target/vm/kernel/` unless it is there (then this costs nothing).
fn ensure_kernel(apt: &mut Apt) -> Result<()> {
    if let Ok(kernel) = guest::Kernel::find() {
        eprintln!("xtask: guest kernel {} is in place", kernel.version);
        return Ok(());
    }
    eprintln!(
        "xtask: fetching the guest kernel ({} or the newest 6.12)",
        guest::PINNED_PACKAGE
    );
    let kernel = match guest::install_kernel() {
        Ok(kernel) => kernel,
        // A fresh machine may have stale or no package lists: refresh them once and try again.
        Err(first) if !apt.updated => {
            eprintln!("xtask: {first}; refreshing the package lists and trying again");
            apt.update()?;
            guest::install_kernel().context("no guest kernel package is reachable")?
        }
        Err(err) => return Err(err).context("no guest kernel package is reachable"),
    };
    eprintln!(
        "xtask: guest kernel {} unpacked under {}",
        kernel.version,
        kernel.root.display()
    );
    Ok(())
}

/// `apt-get`, updated at most once per run.
#[derive(Debug, Default)]
struct Apt {
    updated: bool,
}

impl Apt {
    fn update(&mut self) -> Result<()> {
        if !self.updated {
            require_root()?;
            apt_get(&["update"])?;
            self.updated = true;
        }
        Ok(())
    }

    fn install(&mut self, packages: &[&str]) -> Result<()> {
        self.update()?;
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend_from_slice(packages);
        apt_get(&args)
    }
}

fn apt_get(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get: is this a Debian machine?")?;
    if !status.success() {
        bail!("`apt-get {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn require_root() -> Result<()> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .context("cannot run `id -u`")?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        bail!(
            "packages are missing and installing them needs root: run as root, or install them \
             yourself and pass --no-install"
        );
    }
    Ok(())
}

/// `name` on `$PATH` or in the sbin directories (which a non-root `$PATH` may lack).
fn find_command(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether an ELF executable has no program interpreter (is statically linked).
fn is_static(path: &Path) -> bool {
    Command::new("ldd")
        .arg(path)
        .output()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.contains("not a dynamic executable") || text.contains("statically linked")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guest_tool_has_a_package() {
        for need in NEEDS {
            assert!(!need.command.is_empty() && !need.package.is_empty());
        }
        let guest: Vec<&str> = NEEDS
            .iter()
            .filter(|n| n.guest_only)
            .map(|n| n.command)
            .collect();
        for tool in [
            "qemu-system-x86_64",
            "busybox",
            "diod",
            "modprobe",
            "depmod",
            "xz",
        ] {
            assert!(guest.contains(&tool), "{tool} missing from the guest needs");
        }
    }

    #[test]
    fn a_shell_is_found_and_a_nonsense_name_is_not() {
        assert!(find_command("sh").is_some());
        assert!(find_command("no-such-command-anywhere-xyz").is_none());
    }
}

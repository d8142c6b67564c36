//! Installs what the suites need on a fresh Debian machine: Debian packages and the guest kernel.
//!
//! Each need is a command on `$PATH` and the Debian package that provides it. What is present is left
//! alone; what is missing is installed with one `apt-get update` and one `apt-get install -y`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};

/// A command some suite runs, and the Debian package that provides it.
#[derive(Debug, Clone, Copy)]
pub struct Need {
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
    // nvme-cli: the peer whose output nvme-tool's is compared with in the guest.
    Need {
        command: "nvme",
        package: "nvme-cli",
        guest_only: true,
    },
    // The MUNGE daemon: ninep-server's authentication tests run it on the host and in the
    // guest (with diod's mount.diod).
    Need {
        command: "munged",
        package: "munge",
        guest_only: false,
    },
    // libclang, which bindgen loads to build nvme-ublk's ublk bindings (libublk-rs-sys). The
    // library has no command, so its Debian path stands for one.
    Need {
        command: "/usr/lib/x86_64-linux-gnu/libclang-14.so.1",
        package: "libclang-dev",
        guest_only: false,
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
    // The deb suite renders ninepd's manual page and checks its systemd units.
    Need {
        command: "man",
        package: "man-db",
        guest_only: false,
    },
    Need {
        command: "systemd-analyze",
        package: "systemd",
        guest_only: false,
    },
];

/// What a command may do about missing tools and the guest kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Say what is missing, then install it.
    Install,
    /// Install nothing: what is missing makes the tests that need it fail.
    Skip,
    /// Say what would be installed, install nothing, and stop.
    DryRun,
}

impl Mode {
    /// From a command's `--no-install` and `--dry-run` flags.
    pub fn from_flags(no_install: bool, dry_run: bool) -> Mode {
        match (no_install, dry_run) {
            (_, true) => Mode::DryRun,
            (true, false) => Mode::Skip,
            (false, false) => Mode::Install,
        }
    }
}

/// Whether this run may install (false under `--no-install`): suites that would build something read it.
static MAY_INSTALL: AtomicBool = AtomicBool::new(true);

pub fn may_install() -> bool {
    MAY_INSTALL.load(Ordering::Relaxed)
}

/// What is missing: Debian packages (with the commands that need them) and the guest kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub packages: Vec<(&'static str, Vec<&'static str>)>,
    /// The kernel package to fetch into `target/vm/kernel/`, if it is not there.
    pub kernel: Option<String>,
}

impl Plan {
    /// What the suites need (the guest ones only if `needs_guest`) and `find` does not find.
    pub fn missing(needs_guest: bool, find: impl Fn(&Need) -> bool, kernel_present: bool) -> Plan {
        let mut plan = Plan::default();
        for need in NEEDS.iter().filter(|n| needs_guest || !n.guest_only) {
            if find(need) {
                continue;
            }
            match plan.packages.iter_mut().find(|(p, _)| *p == need.package) {
                Some((_, commands)) => commands.push(need.command),
                None => plan.packages.push((need.package, vec![need.command])),
            }
        }
        if needs_guest && !kernel_present {
            plan.kernel = Some(guest::PINNED_PACKAGE.to_owned());
        }
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.packages.is_empty() && self.kernel.is_none()
    }

    fn package_names(&self) -> Vec<&'static str> {
        self.packages.iter().map(|(p, _)| *p).collect()
    }

    /// The list a person reads before anything is installed.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return "nothing to install: every package and the guest kernel are in place"
                .to_owned();
        }
        let mut text = String::new();
        if !self.packages.is_empty() {
            text.push_str(&format!(
                "Debian packages, with `apt-get update` and `apt-get install -y --no-install-recommends {}` (as root):\n",
                self.package_names().join(" ")
            ));
            for (package, commands) in &self.packages {
                text.push_str(&format!("  {package:<18} for {}\n", commands.join(", ")));
            }
        }
        if let Some(kernel) = &self.kernel {
            text.push_str(&format!(
                "the guest kernel: `apt-get download {kernel}` (or the newest 6.12 if that one is gone, \
                 about 110 MB), unpacked under {} (no root needed)\n",
                guest::vm_dir().join("kernel").display()
            ));
        }
        text
    }
}

/// Makes sure everything the selected suites need is present: says what is missing, then installs it
/// ([`Mode::Install`]), only says it ([`Mode::Skip`], [`Mode::DryRun`]). Returns whether the caller
/// should go on (not after a dry run).
pub fn ensure_all(needs_guest: bool, needs_rust_kernel: bool, mode: Mode) -> Result<bool> {
    let plan = Plan::missing(needs_guest, present, guest::Kernel::find().is_ok());
    MAY_INSTALL.store(mode == Mode::Install, Ordering::Relaxed);
    match mode {
        Mode::DryRun => {
            println!("xtask: --dry-run: would install {}", plan.describe());
            if needs_rust_kernel {
                println!(
                    "xtask: --dry-run: and would build {}",
                    crate::kernel::describe_plan()
                );
            }
            return Ok(false);
        }
        Mode::Skip => {
            if !plan.is_empty() {
                eprintln!(
                    "xtask: --no-install: not installing what is missing, so the tests that need it will \
                     fail: {}",
                    plan.describe()
                );
            }
            return Ok(true);
        }
        Mode::Install if plan.is_empty() => return Ok(true),
        Mode::Install => {}
    }
    eprintln!(
        "xtask: this run needs, and will now install, {}xtask: (--no-install skips this, --dry-run only \
         lists it)",
        plan.describe()
    );
    let mut apt = Apt::default();
    if !plan.packages.is_empty() {
        require_root(&plan)?;
        apt.install(&plan.package_names())?;
        if needs_guest && find_command("qemu-system-x86_64").is_none() {
            bail!("qemu-system-x86_64 is still missing after installing qemu-system-x86");
        }
    }
    if needs_guest {
        ensure_kernel(&mut apt)?;
    }
    Ok(true)
}

/// Whether a need's command is there (the guest needs a static busybox: the initramfs has no shared
/// libraries for it).
fn present(need: &Need) -> bool {
    match find_command(need.command) {
        Some(path) if need.package == "busybox-static" => is_static(&path),
        Some(_) => true,
        None => false,
    }
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
        // A fresh machine may have stale or no package lists: refresh them once (as root) and try again.
        Err(first) if !apt.updated && rustix::process::geteuid().is_root() => {
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

/// Installing packages needs root: a non-root run says what to run instead of failing inside apt-get.
fn require_root(plan: &Plan) -> Result<()> {
    match not_root_message(rustix::process::geteuid().is_root(), plan) {
        None => Ok(()),
        Some(message) => bail!("{message}"),
    }
}

fn not_root_message(is_root: bool, plan: &Plan) -> Option<String> {
    if is_root || plan.packages.is_empty() {
        return None;
    }
    Some(format!(
        "installing Debian packages needs root, and this is not a root run. Either run this command as \
         root, or install them yourself:\n  sudo apt-get update && sudo apt-get install -y \
         --no-install-recommends {}\nthen run it again (with --no-install, the tests that need them fail \
         instead)",
        plan.package_names().join(" ")
    ))
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
    fn the_plan_lists_each_missing_package_once_with_its_commands_and_the_kernel() {
        let nothing = Plan::missing(true, |_| true, true);
        assert!(nothing.is_empty());
        assert!(nothing.describe().starts_with("nothing to install"));

        let all = Plan::missing(true, |_| false, false);
        let kmod = all.packages.iter().find(|(p, _)| *p == "kmod").unwrap();
        assert_eq!(kmod.1, ["modprobe", "depmod"]);
        assert_eq!(all.packages.iter().filter(|(p, _)| *p == "kmod").count(), 1);
        assert_eq!(all.kernel.as_deref(), Some(guest::PINNED_PACKAGE));
        let text = all.describe();
        assert!(
            text.contains("apt-get install -y --no-install-recommends valgrind qemu-system-x86"),
            "{text}"
        );
        assert!(
            text.contains("qemu-system-x86    for qemu-system-x86_64"),
            "{text}"
        );
        assert!(
            text.contains(&format!("apt-get download {}", guest::PINNED_PACKAGE)),
            "{text}"
        );

        let host_only = Plan::missing(false, |n| n.command != "valgrind", false);
        assert_eq!(host_only.packages, [("valgrind", vec!["valgrind"])]);
        assert_eq!(host_only.kernel, None, "no guest suite, no kernel");
    }

    #[test]
    fn a_non_root_run_says_what_to_install_by_hand() {
        let plan = Plan::missing(true, |n| n.package != "diod" && n.package != "fio", true);
        let message = not_root_message(false, &plan).unwrap();
        assert!(
            message.contains("sudo apt-get install -y --no-install-recommends diod fio"),
            "{message}"
        );
        assert!(message.contains("--no-install"), "{message}");
        assert_eq!(not_root_message(true, &plan), None);
        let kernel_only = Plan::missing(true, |_| true, false);
        assert_eq!(
            not_root_message(false, &kernel_only),
            None,
            "fetching the kernel needs no root"
        );
    }

    #[test]
    fn dry_run_wins_over_no_install() {
        assert_eq!(Mode::from_flags(false, false), Mode::Install);
        assert_eq!(Mode::from_flags(true, false), Mode::Skip);
        assert_eq!(Mode::from_flags(true, true), Mode::DryRun);
        assert_eq!(Mode::from_flags(false, true), Mode::DryRun);
    }

    #[test]
    fn a_shell_is_found_and_a_nonsense_name_is_not() {
        assert!(find_command("sh").is_some());
        assert!(find_command("no-such-command-anywhere-xyz").is_none());
    }
}

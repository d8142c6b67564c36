//! The build environment: Debian unstable in a `debootstrap`ed chroot, with the toolchain Debian builds
//! its 7.2 kernel with (rustc, bindgen, clang, gcc-16), so nothing but Debian's archive is downloaded.
//!
//! Commands run in it through `unshare --mount --pid --fork --mount-proc=...`: `/proc` is mounted for the
//! command's lifetime only (objtool reads it) and disappears with its mount namespace, so an interrupted
//! build never leaves a mount behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The suite the chroot follows: the only one with `linux-source-7.2` and its toolchain.
const SUITE: &str = "sid";
const MIRROR: &str = "http://deb.debian.org/debian";

/// Packages installed in the chroot. Changing the list installs the difference on the next run.
pub const PACKAGES: &[&str] = &[
    "linux-source-7.2",
    "rustc",
    "rust-src",
    // clippy-driver, for `make CLIPPY=1`.
    "rust-clippy",
    "bindgen",
    "clang",
    "libclang-dev",
    "lld",
    "llvm",
    "gcc-16",
    "build-essential",
    "bc",
    "flex",
    "bison",
    "libelf-dev",
    "libssl-dev",
    // pahole: without it `olddefconfig` drops BTF and the options that depend on it, so the config
    // would no longer be the packaged image's.
    "dwarves",
    "cpio",
    "kmod",
    "xz-utils",
    "python3",
];

/// Written into the chroot once it is complete: the package list it was made with.
const STAMP: &str = ".kangrejos-ready";

/// A complete chroot at `root`.
#[derive(Debug, Clone)]
pub struct Chroot {
    pub root: PathBuf,
}

impl Chroot {
    /// The chroot under `cache`, created (about 3 GB; a few minutes, mostly downloads) when missing,
    /// and given the packages of [`PACKAGES`] it lacks. With `refresh`, also updated from the archive.
    pub fn ensure(cache: &Path, refresh: bool, log: &Path) -> Result<Chroot> {
        let root = cache.join(format!("chroot-{SUITE}"));
        let wanted = PACKAGES.join(" ");
        let chroot = Chroot { root: root.clone() };
        match std::fs::read_to_string(root.join(STAMP)) {
            Ok(have) if have.trim() == wanted && !refresh => return Ok(chroot),
            Ok(_) => {
                chroot.run("apt", "apt-get update", log)?;
                chroot.install(log)?;
                if refresh {
                    chroot.run("apt", "apt-get -y dist-upgrade", log)?;
                }
            }
            Err(_) => {
                let partial = cache.join(format!("chroot-{SUITE}.partial"));
                if partial.exists() {
                    std::fs::remove_dir_all(&partial)
                        .with_context(|| format!("cannot remove {}", partial.display()))?;
                }
                ensure_host_tool("debootstrap", "debootstrap")?;
                ensure_host_tool("unshare", "util-linux")?;
                let mut cmd = Command::new("debootstrap");
                cmd.args(["--variant=minbase", SUITE])
                    .arg(&partial)
                    .arg(MIRROR);
                run_logged(cmd, log)?;
                let apt_conf = partial.join("etc/apt/apt.conf.d/99kangrejos");
                // Release files of unstable can look expired to a machine whose clock runs ahead.
                std::fs::write(
                    &apt_conf,
                    "Acquire::Check-Valid-Until \"false\";\nAPT::Install-Recommends \"false\";\n",
                )
                .with_context(|| format!("cannot write {}", apt_conf.display()))?;
                let fresh = Chroot {
                    root: partial.clone(),
                };
                fresh.run("apt", "apt-get update", log)?;
                fresh.install(log)?;
                std::fs::rename(&partial, &root).with_context(|| {
                    format!("cannot move {} to {}", partial.display(), root.display())
                })?;
            }
        }
        std::fs::write(root.join(STAMP), &wanted)
            .with_context(|| format!("cannot write the stamp in {}", root.display()))?;
        Ok(chroot)
    }

    /// What [`Chroot::ensure`] would do now (without `refresh`), for a dry run; `None` if nothing.
    pub fn plan(cache: &Path) -> Option<String> {
        let root = cache.join(format!("chroot-{SUITE}"));
        let wanted = PACKAGES.join(" ");
        match std::fs::read_to_string(root.join(STAMP)) {
            Ok(have) if have.trim() == wanted => None,
            Ok(_) => Some(format!(
                "in the chroot {}: `apt-get update` and `apt-get install -y {wanted}`",
                root.display()
            )),
            Err(_) => {
                let mut text = String::new();
                for (command, package) in
                    [("debootstrap", "debootstrap"), ("unshare", "util-linux")]
                {
                    if !host_tool_present(command) {
                        text.push_str(&format!(
                            "on the host: `apt-get install -y --no-install-recommends {package}` (for {command})\n"
                        ));
                    }
                }
                text.push_str(&format!(
                    "a Debian {SUITE} chroot at {} (`debootstrap --variant=minbase {SUITE}` from {MIRROR}, \
                     about 3 GB) with `apt-get install -y {wanted}`",
                    root.display()
                ));
                Some(text)
            }
        }
    }

    fn install(&self, log: &Path) -> Result<()> {
        self.run(
            "apt",
            &format!("apt-get install -y {}", PACKAGES.join(" ")),
            log,
        )
    }

    /// A command that runs `script` with `sh -ec` inside the chroot, at low CPU priority.
    pub fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new("nice");
        cmd.args(["-n", "15", "unshare", "--mount", "--pid", "--fork"])
            .arg(format!("--mount-proc={}", self.root.join("proc").display()))
            .arg("chroot")
            .arg(&self.root)
            .args(["/bin/sh", "-ec", script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    }

    /// Runs `script` in the chroot, its output appended to `log`; on failure the error quotes the log's end.
    pub fn run(&self, what: &str, script: &str, log: &Path) -> Result<()> {
        run_logged(self.command(script), log).with_context(|| format!("{what}: `{script}` failed"))
    }

    /// Runs `script` in the chroot and returns its stdout.
    pub fn output(&self, script: &str) -> Result<String> {
        let out = self
            .command(script)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run `{script}` in {}", self.root.display()))?;
        if !out.status.success() {
            bail!("`{script}` failed in the chroot with {}", out.status);
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A path inside the chroot seen from the host.
    pub fn host_path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }
}

/// Runs `cmd` with stdout and stderr appended to `log`. On failure the error quotes the log's last lines.
pub fn run_logged(mut cmd: Command, log: &Path) -> Result<()> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let shown = format!("{cmd:?}");
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!(
            "{shown} failed with {status}; the end of {}:\n{}",
            log.display(),
            tail(log, 25)
        );
    }
    Ok(())
}

/// The last `lines` lines of a text file (empty if unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn host_tool_present(command: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|dir| Path::new(dir).join(command).is_file())
}

/// Installs `package` on the host when `command` is missing.
pub(super) fn ensure_host_tool(command: &str, package: &str) -> Result<()> {
    if host_tool_present(command) {
        return Ok(());
    }
    eprintln!("xtask kernel: installing {package} on the host");
    let apt = |args: &[&str]| -> Result<bool> {
        Ok(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("cannot run apt-get")?
            .success())
    };
    let install = ["install", "-y", "--no-install-recommends", package];
    if apt(&install)? {
        return Ok(());
    }
    // A fresh machine may have no package lists yet: refresh them once and try again.
    if apt(&["update"])? && apt(&install)? {
        return Ok(());
    }
    bail!("`apt-get install {package}` failed, also after `apt-get update`")
}

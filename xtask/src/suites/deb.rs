//! Packaging of `ninepd`: `cargo install --path crates/ninep-server`, and the Debian package
//! `cargo deb` makes, installed on this machine with dpkg (as root), checked and removed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::Suite;
use crate::cmd::{Tally, cargo, target_dir};

/// The cargo-deb release the suite installs when `cargo deb` is missing.
const CARGO_DEB_VERSION: &str = "3.8.0";
/// The cargo profile the package is built from: `dev`, whose build the workspace suite has
/// already done, so packaging adds seconds. A release build of ninepd and its dependencies
/// took 9 min 55 s (2 min 27 s of CPU) on the two cores under a load average of 8-13
/// (`time nice cargo build --release -p ninep-server --bin ninepd`, 2026-12-06). The package
/// checked is the same but for optimisation; cargo-deb warns that it prefers a release
/// profile.
const PROFILE: &str = "dev";

pub fn suites() -> Vec<Suite> {
    vec![Suite {
        name: "deb",
        about: "cargo install --path crates/ninep-server; cargo deb of ninepd, installed with dpkg (root): ninepd and mount.ninep --version, man -l ninepd.8 and mount.ninep.8, systemd-analyze verify of the units, removal",
        needs_guest: false,
        run,
    }]
}

/// Runs `cmd` and returns its standard output, failing with its standard error if it fails.
fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One check: counted as passed or failed, its error printed.
fn check(tally: &mut Tally, what: &str, result: Result<()>) {
    match result {
        Ok(()) => {
            eprintln!("xtask: deb: {what}: ok");
            tally.passed += 1;
        }
        Err(e) => {
            eprintln!("xtask: deb: {what}: FAILED: {e:#}");
            tally.failed += 1;
        }
    }
}

fn run() -> Result<Tally> {
    let mut tally = Tally::default();
    check(&mut tally, "cargo install --path", cargo_install());
    let deb = build_deb();
    check(
        &mut tally,
        "cargo deb",
        deb.as_ref()
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e:#}")),
    );
    let Ok(deb) = deb else {
        return Ok(tally);
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!("xtask: deb: not root, the package is built but not installed");
        tally.ignored += 1;
        return Ok(tally);
    }
    check(
        &mut tally,
        "dpkg -i, checks, dpkg -P",
        install_and_check(&deb),
    );
    Ok(tally)
}

/// `cargo install --path crates/ninep-server` into a scratch root, then the installed
/// `ninepd --version`.
fn cargo_install() -> Result<()> {
    let root = target_dir().join("deb-install-root");
    let _ = std::fs::remove_dir_all(&root);
    let mut install = cargo();
    install
        .args([
            "install",
            "--path",
            "crates/ninep-server",
            "--debug",
            "--root",
        ])
        .arg(&root)
        .arg("--target-dir")
        .arg(target_dir());
    output(&mut install)?;
    let version = output(Command::new(root.join("bin/ninepd")).arg("--version"))?;
    if !version.starts_with("ninepd ") {
        bail!("the installed ninepd --version says {version:?}");
    }
    Ok(())
}

/// Builds ninepd, writes its manual page where the package metadata takes it, and makes the
/// package; returns its path.
fn build_deb() -> Result<PathBuf> {
    let have_cargo_deb = cargo()
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_cargo_deb {
        if !crate::install::may_install() {
            bail!("`cargo deb` is missing, and --no-install forbids installing cargo-deb");
        }
        let mut install = cargo();
        install.args([
            "install",
            "cargo-deb",
            "--locked",
            "--version",
            CARGO_DEB_VERSION,
        ]);
        output(&mut install)?;
    }
    let mut build = cargo();
    build.args([
        "build",
        "-p",
        "ninep-server",
        "--bin",
        "ninepd",
        "--profile",
        PROFILE,
    ]);
    output(&mut build)?;
    let mut build = cargo();
    build.args(["build", "-p", "ninep-mount", "--profile", PROFILE]);
    output(&mut build)?;
    let profile_dir = target_dir().join(if PROFILE == "dev" { "debug" } else { PROFILE });
    // Next to the binary, where the package metadata's `target/release/` assets are taken from
    // (cargo deb maps that prefix to the profile's directory).
    // Compressed, as Debian's policy has manual pages.
    for (binary, page) in [("ninepd", "ninepd.8"), ("ninep-mount", "mount.ninep.8")] {
        let man = output(Command::new(profile_dir.join(binary)).arg("--generate-man"))?;
        std::fs::write(profile_dir.join(page), man)?;
        output(
            Command::new("gzip")
                .args(["-9nf"])
                .arg(profile_dir.join(page)),
        )?;
    }
    let out_dir = target_dir().join("debian");
    let mut deb = cargo();
    deb.args([
        "deb",
        "-p",
        "ninep-server",
        "--no-build",
        "--no-strip",
        "--profile",
        PROFILE,
    ])
    .arg("--output")
    .arg(&out_dir);
    let said = output(&mut deb)?;
    let path = said
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .context("cargo deb named no package")?;
    if !path.exists() {
        bail!(
            "cargo deb said it made {}, which does not exist",
            path.display()
        );
    }
    Ok(path)
}

/// Installs the package, checks what it installed, and removes it (also when a check fails).
fn install_and_check(deb: &Path) -> Result<()> {
    let mut dpkg = Command::new("dpkg");
    dpkg.arg("-i").arg(deb);
    output(&mut dpkg)?;
    let checked = check_installed();
    let mut purge = Command::new("dpkg");
    purge.args(["-P", "ninepd"]);
    let removed = output(&mut purge).map(drop);
    checked?;
    removed?;
    if Path::new("/usr/sbin/ninepd").exists() {
        bail!("/usr/sbin/ninepd is still there after dpkg -P");
    }
    Ok(())
}

fn check_installed() -> Result<()> {
    let version = output(Command::new("/usr/sbin/ninepd").arg("--version"))?;
    if version.trim() != format!("ninepd {}", env!("CARGO_PKG_VERSION")) {
        bail!("/usr/sbin/ninepd --version says {version:?}");
    }
    let helper = output(Command::new("/sbin/mount.ninep").arg("--version"))?;
    if !helper.starts_with("mount.ninep ") {
        bail!("/sbin/mount.ninep --version says {helper:?}");
    }
    check_manual_page(
        "ninepd.8",
        &[
            "ninepd - Serve a directory",
            "--config",
            "--check-config",
            "SIGHUP",
        ],
    )?;
    check_manual_page(
        "mount.ninep.8",
        &[
            "mount.ninep - Mount a 9P2000.L server",
            "vsock:CID:PORT",
            "munge_socket",
        ],
    )?;
    let units = [
        "/lib/systemd/system/ninepd.service",
        "/lib/systemd/system/ninepd.socket",
        "/lib/systemd/system/ninepd@.service",
    ];
    for unit in units {
        if !Path::new(unit).exists() {
            bail!("the package installed no {unit}");
        }
    }
    // A template is verified through an instance of it.
    let scratch = target_dir().join("deb-units");
    std::fs::create_dir_all(&scratch)?;
    let instance = scratch.join("ninepd@example.service");
    std::fs::copy(units[2], &instance)?;
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units[..2])
        .arg(&instance)
        .output()
        .context("cannot run systemd-analyze")?;
    let remarks = String::from_utf8_lossy(&verify.stderr);
    if !verify.status.success() || !remarks.trim().is_empty() {
        bail!("systemd-analyze verify: {}:\n{remarks}", verify.status);
    }
    // The example configuration is installed and, all commented out, refused for want of an
    // export: the service does not start until one is added.
    let mut check = Command::new("/usr/sbin/ninepd");
    check.args(["--check-config", "--config", "/etc/ninepd.toml"]);
    let out = check.output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(1) || !said.contains("no export") {
        bail!("ninepd --check-config of the example: {out:?}");
    }
    Ok(())
}

/// Text as it reads, without the overstrikes (`X\x08X` bold, `_\x08X` underline) with which
/// The installed manual page `name` (compressed or not), rendered by `man -l`, shows each of
/// `expected`.
fn check_manual_page(name: &str, expected: &[&str]) -> Result<()> {
    let page = [".gz", ""]
        .into_iter()
        .map(|suffix| format!("/usr/share/man/man8/{name}{suffix}"))
        .find(|p| Path::new(p).exists())
        .with_context(|| format!("the package installed no {name}"))?;
    let rendered = output(
        Command::new("man")
            .args(["-l", &page])
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_FORMATTING", "0"),
    )?;
    let rendered = plain(&rendered);
    for expected in expected {
        if !rendered.contains(expected) {
            bail!("man -l {page} shows no {expected:?}:\n{rendered}");
        }
    }
    Ok(())
}

/// man's formatter marks emphasis when it writes to a pipe.
fn plain(text: &str) -> String {
    let mut out: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    // What the backspace took back was the overstruck copy; the next character is the text.
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn overstrikes_are_taken_out() {
        assert_eq!(
            super::plain("N\u{8}NA\u{8}AM\u{8}ME\u{8}E _\u{8}D_\u{8}I_\u{8}R --x"),
            "NAME DIR --x"
        );
    }
}

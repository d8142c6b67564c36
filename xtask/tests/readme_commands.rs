//! The top README's first two commands, read from the README text itself and run on a fresh clone,
//! so the README cannot drift from what works: the main command (`ninepd`) until it answers a
//! Tversion, and the test command with `--dry-run` (which must install nothing).
//!
//! The clone builds in its own target directory, `<target>/readme-clone`, kept between runs: sharing
//! the outer one would let the clone's build of the committed sources overwrite, with newer times,
//! what the outer run built from a working tree with uncommitted changes.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first two commands of the README's first `sh` block, without their trailing comments.
fn readme_commands(readme: &str) -> Result<(String, String), String> {
    let mut lines = readme.lines();
    lines
        .by_ref()
        .find(|l| l.trim() == "```sh")
        .ok_or("the README has no ```sh block")?;
    let mut commands = lines
        .take_while(|l| l.trim() != "```")
        .map(|l| strip_comment(l).trim().to_owned())
        .filter(|l| !l.is_empty());
    let main = commands.next().ok_or("the first ```sh block is empty")?;
    let test = commands
        .next()
        .ok_or("the first ```sh block has only one command")?;
    Ok((main, test))
}

/// The line before a ` #` comment (a `#` that starts a word).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    (0..bytes.len())
        .find(|&i| bytes[i] == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()))
        .map_or(line, |i| &line[..i])
}

#[test]
fn the_commands_come_from_the_first_sh_block_without_comments() {
    let readme = "# T\n\n```rust\nlet x = 1;\n```\n\n```sh\n\ncargo run -p a   # serve #1\n\
                  cargo xtask test#x  # test\ncargo bench\n```\n";
    assert_eq!(
        readme_commands(readme).unwrap(),
        ("cargo run -p a".to_owned(), "cargo xtask test#x".to_owned())
    );
    assert!(readme_commands("no block").is_err());
    assert!(readme_commands("```sh\n# only a comment\ncargo x\n```\n").is_err());
}

/// The value of the first `key = "value"` line of a TOML text.
fn toml_string(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// A toolchain that is too old must be stopped by cargo itself with a message that names the version
/// (xtask cannot speak before cargo has read the manifests): so rustup's toolchain, the workspace's
/// `rust-version` and every member's agree, and the README names that version.
#[test]
fn one_toolchain_version_for_rustup_cargo_and_the_readme() {
    let root = workspace_root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let channel = toml_string(&read("rust-toolchain.toml"), "channel").unwrap();
    let rust_version = toml_string(&read("Cargo.toml"), "rust-version").unwrap();
    assert!(
        channel == rust_version || channel.starts_with(&format!("{rust_version}.")),
        "rust-toolchain.toml names {channel}, the workspace's rust-version is {rust_version}"
    );
    let mut manifests = vec![root.join("xtask/Cargo.toml")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        if manifest.exists() {
            manifests.push(manifest);
        }
    }
    for manifest in manifests {
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(
            text.lines()
                .any(|l| l.trim() == "rust-version.workspace = true"),
            "{} does not inherit the workspace's rust-version, so cargo would not refuse an old \
             toolchain for it with a message naming the version",
            manifest.display()
        );
    }
    let readme = read("README.md");
    assert!(
        readme.contains(&format!("Rust {rust_version}")),
        "the README does not say the workspace needs Rust {rust_version}"
    );
}

/// The lowest and highest of one ratio column (`1.85x`) of the first table under `heading`.
fn ratio_range(readme: &str, heading: &str, column: &str) -> Option<(String, String)> {
    let section = &readme[readme.find(heading)?..];
    let mut rows = section.lines().skip_while(|l| !l.starts_with('|'));
    let header: Vec<&str> = rows.next()?.split('|').map(str::trim).collect();
    let index = header.iter().position(|h| *h == column)?;
    let mut ratios: Vec<(f64, String)> = rows
        .take_while(|l| l.starts_with('|'))
        .filter_map(|row| {
            let cell = row.split('|').map(str::trim).nth(index)?;
            let value = cell.strip_suffix('x')?.parse().ok()?;
            Some((value, cell.to_owned()))
        })
        .collect();
    ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some((ratios.first()?.1.clone(), ratios.last()?.1.clone()))
}

/// The top README quotes the NVMe benchmark's range from the nvme README's table, its one source.
#[test]
fn the_top_readme_quotes_the_nvme_table() {
    let root = workspace_root();
    let nvme = std::fs::read_to_string(root.join("crates/nvme/README.md")).unwrap();
    let top = std::fs::read_to_string(root.join("README.md")).unwrap();
    let (iops_low, iops_high) = ratio_range(&nvme, "## Benchmark", "IOPS ratio").unwrap();
    let (p50_low, p50_high) = ratio_range(&nvme, "## Benchmark", "p50 ratio").unwrap();
    let quote = format!(
        "gave {iops_low} to {iops_high} the kernel's IOPS and {p50_low} to {p50_high} its median latency"
    );
    let flat = top.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&quote),
        "the top README does not say \"{quote}\" as crates/nvme/README.md's table does"
    );
}

/// A command started in its own process group, which is sent SIGTERM when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = rustix::process::Pid::from_child(&self.0);
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        let _ = self.0.wait();
    }
}

/// Whether a 9P2000.L Tversion on `socket` is answered with 9P2000.L.
fn answers_tversion(socket: &Path) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let exchange = async {
            let client = ninep::Client::connect_unix(socket)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let (msize, version) = client
                .version(8192, "9P2000.L")
                .await
                .map_err(|e| format!("Tversion: {e}"))?;
            if &version[..] != b"9P2000.L" || msize == 0 || msize > 8192 {
                return Err(format!("Rversion {msize} {version:?}"));
            }
            Ok(())
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| "no Rversion within 10 s".to_owned())?
    })
}

/// The cargo environment of this test, minus what would make the clone's commands differ from a
/// person's (the outer cargo's and rustup's choices). A toolchain the person chose in their
/// environment (`RUSTUP_TOOLCHAIN` set before rustup ran: its source is `env`) stays theirs;
/// one rustup chose from the toolchain file or its default goes, for the clone's rustup to choose.
fn person_command(program: &str, clone: &Path, target: &Path) -> Command {
    let toolchain_from_env = std::env::var("RUSTUP_TOOLCHAIN_SOURCE").is_ok_and(|s| s == "env");
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO") && key != "CARGO_HOME")
            || (key.starts_with("RUSTUP_TOOLCHAIN") && !toolchain_from_env)
            || key.starts_with("RUSTC")
            || key.starts_with("RUST_")
            || key == "RUSTFLAGS"
            || key == "GUEST_VM_DIR"
        {
            cmd.env_remove(&*key);
        }
    }
    cmd.current_dir(clone).env("CARGO_TARGET_DIR", target);
    cmd
}

fn tail(path: &Path) -> String {
    let mut text = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs the README's main command as written in the clone, in a mount namespace whose `/run` is a
/// directory of the test (so its `/run/ninepd.sock` clashes with no other server), until it answers a
/// Tversion on that socket.
fn main_command_answers_tversion(command: &str, clone: &Path, target: &Path, scratch: &Path) {
    let run_dir = scratch.join("run");
    std::fs::create_dir(&run_dir).unwrap();
    let log_path = scratch.join("main-command.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = person_command("unshare", clone, target);
    if !rustix::process::geteuid().is_root() {
        // The README runs it as root; a user namespace gives a non-root run the same view.
        cmd.arg("--map-root-user");
    }
    cmd.args(["--mount", "--propagation", "private", "sh", "-ec"])
        .arg(r#"mount --bind "$1" /run; exec sh -c "$2""#)
        .args(["sh", run_dir.to_str().unwrap(), command])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0);
    let mut server = Group(cmd.spawn().expect("unshare runs"));
    // ninepd's default socket, /run/ninepd.sock, as seen from outside the namespace.
    let socket = run_dir.join("ninepd.sock");
    // A fresh clone builds ninepd in release first: minutes on a loaded 2-core machine.
    let deadline = Instant::now() + Duration::from_secs(40 * 60);
    let mut last = String::from("no socket yet");
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!(
                "`{command}` exited ({status}) before answering a Tversion on /run/ninepd.sock:\n{}",
                tail(&log_path)
            );
        }
        if socket.exists() {
            match answers_tversion(&socket) {
                Ok(()) => break,
                Err(e) => last = e,
            }
        }
        assert!(
            Instant::now() < deadline,
            "`{command}` did not answer a Tversion on /run/ninepd.sock ({last}):\n{}",
            tail(&log_path)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(server);
    // The group's leader is the shell that ran the command, which SIGTERM ends at once; ninepd, its
    // child, removes the socket as it stops, which can come a moment later.
    let deadline = Instant::now() + Duration::from_secs(20);
    while socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !socket.exists(),
        "ninepd left its socket behind after SIGTERM:\n{}",
        tail(&log_path)
    );
}

/// Programs that install: stand-ins that record being called and fail.
const INSTALLERS: &[&str] = &["apt-get", "apt", "dpkg", "debootstrap", "sudo"];

fn dpkg_list() -> String {
    Command::new("dpkg")
        .arg("-l")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Runs the README's test command with `--dry-run` in the clone: it lists the guest kernel it would
/// fetch (a fresh clone has none), runs no suite, calls no installer and changes no package.
fn test_command_dry_run_installs_nothing(
    command: &str,
    clone: &Path,
    target: &Path,
    scratch: &Path,
) {
    let shims = scratch.join("installers");
    std::fs::create_dir(&shims).unwrap();
    let calls = scratch.join("installer-calls");
    for name in INSTALLERS {
        let shim = shims.join(name);
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\necho \"{name} $*\" >> '{}'\nexit 1\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path =
        std::env::join_paths(std::iter::once(shims.clone()).chain(std::env::split_paths(&path)))
            .unwrap();

    let packages_before = dpkg_list();
    let out = person_command("sh", clone, target)
        .arg("-c")
        .arg(format!("{command} --dry-run"))
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .expect("sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
    let shown = format!(
        "`{command} --dry-run`:\n{stdout}\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(out.status.success(), "{shown}");
    assert!(
        stdout.contains("--dry-run: would install")
            && stdout.contains(&format!("apt-get download {}", guest::PINNED_PACKAGE)),
        "the dry run does not list the guest kernel: {shown}"
    );
    assert!(
        !stdout.contains("===== suite") && !stderr.contains("===== suite"),
        "the dry run ran suites: {shown}"
    );
    let called = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(
        called.is_empty(),
        "the dry run ran installers:\n{called}\n{shown}"
    );
    assert_eq!(dpkg_list(), packages_before, "the dry run changed packages");
    assert!(
        !clone.join("target/vm/kernel").exists(),
        "the dry run fetched the guest kernel"
    );
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
#[ignore = "clones the repository and builds ninepd and xtask in the clone: run by cargo xtask test"]
fn readme_commands_work_on_a_fresh_clone() {
    let scratch = tempfile::tempdir().unwrap();
    let clone = scratch.path().join("clone");
    let status = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(workspace_root())
        .arg(&clone)
        .status()
        .expect("git runs");
    assert!(status.success(), "git clone failed: {status}");
    let readme = std::fs::read_to_string(clone.join("README.md")).unwrap();
    let (main, test) = readme_commands(&readme).unwrap();
    // `CARGO_TARGET_TMPDIR` is `<target>/tmp`.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("readme-clone");

    main_command_answers_tversion(&main, &clone, &target, scratch.path());
    test_command_dry_run_installs_nothing(&test, &clone, &target, scratch.path());
}

//! The sandbox `ninepd` closes around itself: what the process can still do once it serves.
//!
//! The misbehaviour tests need `--features test-hooks` (ninepd's hidden `--test-misbehave`);
//! `cargo xtask test workspace` runs them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

use ninep::{Client, NOFID};

/// A `ninepd` on a unix socket in a directory of its own, beside (not inside) its export.
struct Server {
    child: Child,
    stderr: BufReader<ChildStderr>,
    /// Standard error up to the line saying it serves.
    log: String,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts `ninepd EXPORT --listen unix:SOCKET ARGS` and reads its standard error until it
/// serves, or until it exits.
fn start(export: &Path, args: &[&str], uid: Option<u32>) -> Server {
    start_on(export, args, uid, None)
}

/// A protection the kernel does not offer, as far as a process can tell.
#[derive(Debug, Clone, Copy)]
enum Lacking {
    /// A kernel without Landlock: its system calls do not exist (`ENOSYS`).
    Landlock,
    /// A kernel without seccomp filters: installing one fails with `EINVAL`.
    Seccomp,
}

/// Spawns `cmd` as if on a kernel that lacks `lacking`: from a thread of its own whose seccomp
/// filter, which the child inherits and cannot lift, answers that protection's system calls as
/// such a kernel does. The filter goes with the thread; the test process keeps none.
fn spawn_lacking(mut cmd: Command, lacking: Lacking) -> Child {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    std::thread::spawn(move || {
        let (rules, errno): (Vec<(i64, Vec<SeccompRule>)>, _) = match lacking {
            Lacking::Landlock => (
                [
                    libc::SYS_landlock_create_ruleset,
                    libc::SYS_landlock_add_rule,
                    libc::SYS_landlock_restrict_self,
                ]
                .map(|call| (call, vec![]))
                .into(),
                libc::ENOSYS,
            ),
            Lacking::Seccomp => {
                let set_seccomp = SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::Eq,
                    libc::PR_SET_SECCOMP as u64,
                )
                .unwrap();
                (
                    vec![
                        (libc::SYS_seccomp, vec![]),
                        (
                            libc::SYS_prctl,
                            vec![SeccompRule::new(vec![set_seccomp]).unwrap()],
                        ),
                    ],
                    libc::EINVAL,
                )
            }
        };
        let filter = SeccompFilter::new(
            rules.into_iter().collect(),
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            std::env::consts::ARCH.try_into().unwrap(),
        )
        .unwrap();
        let program: seccompiler::BpfProgram = filter.try_into().unwrap();
        seccompiler::apply_filter(&program).unwrap();
        cmd.spawn().unwrap()
    })
    .join()
    .unwrap()
}

/// [`start`] on a kernel that lacks `lacking`, if given.
fn start_on(export: &Path, args: &[&str], uid: Option<u32>, lacking: Option<Lacking>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ninepd.sock");
    let mut binary = PathBuf::from(env!("CARGO_BIN_EXE_ninepd"));
    if uid.is_some() {
        // The checkout may be out of the user's reach (a clone in a 0700 directory): run a
        // copy from the server's own directory, which the user may enter. `cp` writes it, so
        // that no test thread's fork inherits a descriptor open for writing and makes the
        // exec fail with ETXTBSY.
        let copy = dir.path().join("ninepd");
        assert!(
            Command::new("cp")
                .arg(&binary)
                .arg(&copy)
                .status()
                .unwrap()
                .success()
        );
        binary = copy;
    }
    let mut cmd = Command::new(&binary);
    cmd.arg(export)
        .arg("--listen")
        .arg(format!("unix:{}", socket.display()))
        .args(["--log-level", "info"])
        .args(args)
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped());
    if let Some(uid) = uid {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        cmd.uid(uid).gid(uid);
    }
    let mut child = match lacking {
        Some(lacking) => spawn_lacking(cmd, lacking),
        None => cmd.spawn().unwrap(),
    };
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        log.push_str(&line);
        if line.contains("serving ") {
            break;
        }
    }
    Server {
        child,
        stderr,
        log,
        socket,
        _dir: dir,
    }
}

impl Server {
    /// Stops the server with SIGTERM and returns the rest of its standard error.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.child.id() as i32).unwrap(),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        self.finish()
    }

    /// Waits for the server to exit and returns the rest of its standard error.
    fn wait(mut self) -> (std::process::ExitStatus, String) {
        self.finish()
    }

    fn finish(&mut self) -> (std::process::ExitStatus, String) {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stderr, &mut rest).unwrap();
        (self.child.wait().unwrap(), rest)
    }

    /// The `Name:\tvalue` fields of `/proc/PID/task/TID/status` of every thread.
    fn thread_status(&self) -> Vec<Vec<(String, String)>> {
        let tasks = format!("/proc/{}/task", self.child.id());
        std::fs::read_dir(tasks)
            .unwrap()
            .map(|task| {
                let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
                status
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                    .collect()
            })
            .collect()
    }
}

/// A test that fails half-way leaves no server running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field<'a>(status: &'a [(String, String)], name: &str) -> &'a str {
    &status.iter().find(|(k, _)| k == name).unwrap().1
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// An export with one file, and a secret beside it, outside the export.
fn export_and_secret() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let export = top.path().join("export");
    std::fs::create_dir(&export).unwrap();
    std::fs::write(export.join("inside"), b"served").unwrap();
    let secret = top.path().join("secret");
    std::fs::write(&secret, b"not served").unwrap();
    (top, export, secret)
}

/// CHOWN DAC_OVERRIDE FOWNER FSETID SETGID SETUID MKNOD SETFCAP: what a root server keeps.
const ROOT_CAPS: u64 = 1 << 0 | 1 << 1 | 1 << 3 | 1 << 4 | 1 << 6 | 1 << 7 | 1 << 27 | 1 << 31;

#[test]
fn a_root_server_keeps_only_the_file_capabilities_on_every_thread_with_no_new_privs() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (_top, export, _) = export_and_secret();
    let server = start(&export, &["--worker-threads", "2"], None);
    assert!(
        server.log.contains("sandbox: landlock ABI")
            && server.log.contains("seccomp kill")
            && server.log.contains("capabilities kept: CAP_CHOWN"),
        "the start-up log says what is enforced: {}",
        server.log
    );
    let threads = server.thread_status();
    assert!(threads.len() >= 3, "the main thread and two workers");
    for status in &threads {
        let caps = |name| u64::from_str_radix(field(status, name), 16).unwrap();
        assert_eq!(caps("CapEff"), ROOT_CAPS, "{status:?}");
        assert_eq!(caps("CapPrm"), ROOT_CAPS);
        assert_eq!(caps("CapBnd"), ROOT_CAPS);
        assert_eq!(caps("CapInh"), 0);
        assert_eq!(caps("CapAmb"), 0);
        assert_eq!(field(status, "NoNewPrivs"), "1");
        // 2: a seccomp filter (mode "filter"); two of them, clone3's and the allow-list.
        assert_eq!(field(status, "Seccomp"), "2");
        assert_eq!(field(status, "Seccomp_filters"), "2");
    }
    let (status, _) = server.stop();
    assert!(status.success());
}

#[test]
fn a_server_that_is_not_root_keeps_no_capability() {
    if !is_root() {
        eprintln!("skipped: needs root to start a server as nobody");
        return;
    }
    let (top, export, _) = export_and_secret();
    use std::os::unix::fs::PermissionsExt;
    for dir in [top.path(), &export] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let server = start(&export, &[], Some(65534));
    assert!(server.log.contains("no capabilities"), "{}", server.log);
    for status in server.thread_status() {
        for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
            assert_eq!(field(&status, set), "0000000000000000", "{set}");
        }
        assert_eq!(field(&status, "NoNewPrivs"), "1");
    }
    let (status, _) = server.stop();
    assert!(status.success());
}

#[test]
fn sandbox_off_enforces_nothing_and_says_so() {
    let (_top, export, _) = export_and_secret();
    let server = start(&export, &["--sandbox", "off"], None);
    assert!(server.log.contains("sandbox off"), "{}", server.log);
    let status = &server.thread_status()[0];
    assert_eq!(field(status, "NoNewPrivs"), "0");
    assert_eq!(field(status, "Seccomp"), "0");
    server.stop();
}

#[test]
fn bad_sandbox_options_are_refused() {
    for bad in [
        ["--seccomp", "maybe"],
        ["--landlock", "yes"],
        ["--sandbox", "half"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ninepd"))
            .arg(".")
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("invalid value '{}'", bad[1])),
            "a known option with a bad value: {stderr}"
        );
    }
}

/// `--landlock on` on a kernel without Landlock: the server refuses to start and says why.
#[test]
fn an_explicit_landlock_on_a_kernel_without_it_stops_the_server() {
    let (_top, export, _) = export_and_secret();
    for args in [
        &["--landlock", "on"][..],
        &["--sandbox", "off", "--landlock", "on"],
    ] {
        let server = start_on(&export, args, None, Some(Lacking::Landlock));
        let socket = server.socket.clone();
        let mut log = server.log.clone();
        assert!(
            !log.contains("serving "),
            "{args:?}: it never serves: {log}"
        );
        let (status, rest) = server.wait();
        log.push_str(&rest);
        assert_eq!(status.code(), Some(1), "{args:?}: {log}");
        assert!(
            log.contains(
                "ninepd: --landlock on, but the kernel offers no Landlock (not built in, or not \
                 enabled at boot"
            ) && log.trim_end().ends_with("refusing to start"),
            "{args:?}: a clear message: {log}"
        );
        assert!(!socket.exists(), "{args:?}: no socket file is left behind");
    }
}

/// `--seccomp MODE` on a kernel that cannot install the filter: the server refuses to start.
#[test]
fn an_explicit_seccomp_mode_on_a_kernel_without_filters_stops_the_server() {
    let (_top, export, _) = export_and_secret();
    for mode in ["kill", "errno", "log"] {
        let server = start_on(&export, &["--seccomp", mode], None, Some(Lacking::Seccomp));
        let socket = server.socket.clone();
        let mut log = server.log.clone();
        assert!(!log.contains("serving "), "{mode}: it never serves: {log}");
        let (status, rest) = server.wait();
        log.push_str(&rest);
        assert_eq!(status.code(), Some(1), "{mode}: {log}");
        assert!(
            log.contains(&format!(
                "ninepd: --seccomp {mode}, but the kernel refused the seccomp filter: seccomp(): \
                 Invalid argument (os error 22): refusing to start"
            )),
            "{mode}: a clear message: {log}"
        );
        assert!(!socket.exists(), "{mode}: no socket file is left behind");
    }
}

/// By default a protection the kernel lacks is a warning: the server enforces the rest and
/// serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_missing_protection_is_a_warning_and_the_rest_is_enforced() {
    let (_top, export, _) = export_and_secret();
    for lacking in [Lacking::Landlock, Lacking::Seccomp] {
        let server = start_on(&export, &[], None, Some(lacking));
        let log = server.log.clone();
        assert!(log.contains("serving "), "{lacking:?}: it serves: {log}");
        let (warning, enforced) = match lacking {
            Lacking::Landlock => (
                "sandbox: not enforced, the kernel lacks it: the kernel offers no Landlock (not \
                 built in, or not enabled at boot",
                "sandbox: landlock off, seccomp kill",
            ),
            Lacking::Seccomp => (
                "sandbox: not enforced, the kernel lacks it: the kernel refused the seccomp \
                 filter: seccomp(): Invalid argument",
                "sandbox: landlock ABI",
            ),
        };
        assert!(
            log.lines()
                .any(|l| l.contains(" WARN ") && l.contains(warning)),
            "{lacking:?}: a warning names what is missing: {log}"
        );
        assert!(log.contains(enforced), "{lacking:?}: {log}");
        let status = &server.thread_status()[0];
        assert_eq!(field(status, "NoNewPrivs"), "1", "{lacking:?}");
        // The test's filter (inherited) and, where seccomp works, the server's two.
        let filters = match lacking {
            Lacking::Landlock => "3",
            Lacking::Seccomp => "1",
        };
        assert_eq!(field(status, "Seccomp_filters"), filters, "{lacking:?}");

        reads_the_file_inside(&server.socket).await;
        let (status, rest) = server.stop();
        assert!(status.success(), "{lacking:?}: {rest}");
    }
}

/// A user of the passwd file whose primary group is not its uid's number (and neither is 0).
fn user_with_another_group() -> Option<(u32, u32)> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
        })
        .find(|&(uid, gid): &(u32, u32)| uid != gid && uid != 0 && gid != 0)
}

/// A multi-user server still looks users up (the C library's user database, nscd's socket)
/// and acts as them inside its sandbox: with the primary group the passwd file gives them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_user_server_acts_as_its_users_inside_the_sandbox() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let Some((uid, gid)) = user_with_another_group() else {
        eprintln!("skipped: no user whose primary group differs from its uid");
        return;
    };
    let (_top, export, _) = export_and_secret();
    // Only the user's primary group may read this.
    let group_only = export.join("group-only");
    std::fs::create_dir(&group_only).unwrap();
    std::fs::write(group_only.join("file"), b"for the group").unwrap();
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [(&group_only, 0o050), (&group_only.join("file"), 0o040)] {
        std::os::unix::fs::chown(path, Some(0), Some(gid)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let server = start(&export, &["--multi-user"], None);
    let c = Client::connect_unix(&server.socket).await.unwrap();
    c.version(1 << 16, "9P2000.L").await.unwrap();
    c.attach(0, NOFID, b"", b"", uid).await.unwrap();
    c.walk(0, 1, &["group-only", "file"]).await.unwrap();
    c.lopen(1, 0).await.unwrap();
    assert_eq!(&c.read(1, 0, 100).await.unwrap()[..], b"for the group");
    drop(c);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(!server_log_warns(&log), "no failed user lookup: {log}");
}

/// A client reads the export's file through the server at `socket`.
async fn reads_the_file_inside(socket: &Path) {
    let c = Client::connect_unix(socket).await.unwrap();
    c.version(1 << 16, "9P2000.L").await.unwrap();
    c.attach(0, NOFID, b"", b"", 0).await.unwrap();
    c.walk(0, 1, &["inside"]).await.unwrap();
    c.lopen(1, 0).await.unwrap();
    assert_eq!(&c.read(1, 0, 100).await.unwrap()[..], b"served");
}

fn server_log_warns(log: &str) -> bool {
    log.lines().any(|l| l.contains(" WARN "))
}

#[cfg(feature = "test-hooks")]
mod misbehaving {
    use super::*;

    fn outcome<'a>(log: &'a str, what: &str) -> &'a str {
        log.lines()
            .find_map(|l| l.strip_prefix("misbehave ")?.strip_prefix(what))
            .unwrap_or_else(|| panic!("no outcome for {what} in {log}"))
    }

    /// `--seccomp errno`: what the sandbox forbids fails, and the server goes on serving.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forbidden_calls_fail_and_the_server_goes_on_serving() {
        let (_top, export, secret) = export_and_secret();
        let open_secret = format!("open:{}", secret.display());
        let open_inside = format!("open:{}", export.join("inside").display());
        let server = start(
            &export,
            &[
                "--seccomp",
                "errno",
                "--test-misbehave",
                &open_secret,
                "--test-misbehave",
                &open_inside,
                "--test-misbehave",
                "exec:/bin/true",
                "--test-misbehave",
                "syscall",
            ],
            None,
        );
        let log = server.log.clone();
        assert_eq!(
            outcome(&log, &format!("Open({secret:?}): ")),
            "denied: Permission denied (os error 13)",
            "Landlock"
        );
        assert_eq!(
            outcome(&log, &format!("Open({:?}): ", export.join("inside"))),
            "allowed"
        );
        assert_eq!(
            outcome(&log, "Exec(\"/bin/true\"): "),
            "denied: Operation not permitted (os error 1)",
            "seccomp, before Landlock"
        );
        assert_eq!(
            outcome(&log, "OffListSyscall: "),
            "denied: Operation not permitted (os error 1)"
        );

        reads_the_file_inside(&server.socket).await;
        let socket = server.socket.clone();
        let (status, log) = server.stop();
        assert!(status.success(), "{log}");
        assert!(
            !socket.exists(),
            "the sandbox still lets the server remove its socket's file"
        );
    }

    /// `--seccomp log`: the off-list call runs (the kernel logs it), and Landlock alone still
    /// stops the exec.
    #[test]
    fn with_seccomp_only_logging_landlock_still_forbids_exec() {
        let (_top, export, _) = export_and_secret();
        let server = start(
            &export,
            &[
                "--seccomp",
                "log",
                "--test-misbehave",
                "exec:/bin/true",
                "--test-misbehave",
                "syscall",
            ],
            None,
        );
        let log = server.log.clone();
        assert_eq!(
            outcome(&log, "Exec(\"/bin/true\"): "),
            "denied: Permission denied (os error 13)"
        );
        assert_eq!(outcome(&log, "OffListSyscall: "), "allowed");
        server.stop();
    }

    /// The default, `--seccomp kill`, lets the allocator map new memory once the server
    /// serves: mimalloc names each mapping with `prctl(PR_SET_VMA)`, and a busy server maps
    /// more (a large directory listing did, and the kernel killed the server mid-mount).
    #[test]
    fn a_server_under_kill_may_map_and_name_new_memory() {
        let (_top, export, _) = export_and_secret();
        let server = start(&export, &["--test-misbehave", "alloc:4294967296"], None);
        assert_eq!(
            outcome(&server.log.clone(), "Allocate(4294967296): "),
            "allowed"
        );
        let (status, rest) = server.stop();
        assert!(status.success(), "{status:?} {rest}");
    }

    /// The default, `--seccomp kill`: the first off-list call kills the whole process with
    /// SIGSYS, after Landlock has already refused the open.
    #[test]
    fn an_off_list_call_kills_the_server_by_default() {
        use std::os::unix::process::ExitStatusExt;
        let (_top, export, secret) = export_and_secret();
        let open_secret = format!("open:{}", secret.display());
        for last in ["syscall", "exec:/bin/true"] {
            let server = start(
                &export,
                &["--test-misbehave", &open_secret, "--test-misbehave", last],
                None,
            );
            assert_eq!(
                outcome(&server.log.clone(), &format!("Open({secret:?}): ")),
                "denied: Permission denied (os error 13)"
            );
            let (status, rest) = server.wait();
            assert_eq!(
                status.signal(),
                Some(libc::SIGSYS),
                "{last}: {status:?} {rest}"
            );
        }
    }
}

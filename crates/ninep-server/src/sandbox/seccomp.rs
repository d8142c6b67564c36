//! seccomp: the system calls the server makes once it serves, and nothing else.
//!
//! The list was found by running the binary's tests with `--seccomp log` (the kernel's audit
//! records name each call off the list) and `strace -f`, and is checked by the guest suite
//! (pjdfstest, the kernel's v9fs client, `--multi-user`, MUNGE), whose `ninepd` runs under
//! the default `kill`. What is not on it is a bug's or an attacker's: by default the process is
//! killed (`kill`), or the call fails with `EPERM` (`errno`), or it is only logged by the
//! kernel's audit (`log`, to extend the list).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// What happens to a system call off the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeccompMode {
    /// The kernel kills the whole process (`SIGSYS`): it cannot go on with a compromised thread.
    Kill,
    /// The call fails with `EPERM`; the server goes on.
    Errno,
    /// The call runs and the kernel logs it (audit `type=1326`, in `dmesg`).
    Log,
    /// No filter.
    Off,
}

impl std::fmt::Display for SeccompMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SeccompMode::Kill => "kill",
            SeccompMode::Errno => "errno",
            SeccompMode::Log => "log",
            SeccompMode::Off => "off",
        })
    }
}

/// Why no filter was installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp filters are not supported for {0}")]
    Arch(String),
    #[error("cannot build the seccomp filter: {0}")]
    Build(seccompiler::BackendError),
    #[error("the kernel refused the seccomp filter: {}", install_error(.0))]
    Install(seccompiler::Error),
}

/// What the kernel answered, without the library's wording around it.
fn install_error(e: &seccompiler::Error) -> String {
    match e {
        seccompiler::Error::Seccomp(e) => format!("seccomp(): {e}"),
        seccompiler::Error::Prctl(e) => format!("prctl(): {e}"),
        e => e.to_string(),
    }
}

/// Installs the filters on every thread of the process (`PR_SET_NO_NEW_PRIVS` first) and
/// returns the number of system calls allowed. `Off` installs nothing.
pub fn install(mode: SeccompMode) -> Result<usize, SeccompError> {
    let mismatch = match mode {
        SeccompMode::Kill => SeccompAction::KillProcess,
        SeccompMode::Errno => SeccompAction::Errno(libc::EPERM as u32),
        SeccompMode::Log => SeccompAction::Log,
        SeccompMode::Off => return Ok(0),
    };
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SeccompError::Arch(std::env::consts::ARCH.into()))?;
    let mut allowed = allow_list();
    // Allowed here, answered by the filter below (the most restrictive answer wins).
    allowed.insert(libc::SYS_clone3, Vec::new());
    let count = allowed.len();
    let main = compile(allowed, mismatch, SeccompAction::Allow, arch)?;
    // clone3 passes its flags in memory, where a filter cannot check them: answer ENOSYS, so
    // that the C library creates threads with clone, whose flags the main filter checks.
    let clone3 = BTreeMap::from([(libc::SYS_clone3, vec![])]);
    let clone3 = compile(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    for filter in [clone3, main] {
        seccompiler::apply_filter_all_threads(&filter).map_err(SeccompError::Install)?;
    }
    Ok(count)
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
    arch: TargetArch,
) -> Result<BpfProgram, SeccompError> {
    SeccompFilter::new(rules, mismatch, matched, arch)
        .and_then(BpfProgram::try_from)
        .map_err(SeccompError::Build)
}

/// `prctl(PR_GET_AUXV)` (Linux 6.4), not in the libc crate yet.
const PR_GET_AUXV: u64 = 0x4155_5856;
/// `prctl(PR_SET_VMA)` (Linux 5.17): mimalloc names each region it maps ("mimalloc").
const PR_SET_VMA: u64 = 0x5356_4d41;

/// An ioctl request number as the filter compares it (its C type differs between C libraries).
#[allow(clippy::unnecessary_cast)]
fn request(number: libc::Ioctl) -> u64 {
    number as u64
}

/// A rule matching when argument `arg` (masked by `mask`) equals `value`.
fn arg_is(arg: u8, mask: u64, value: u64) -> SeccompRule {
    let condition = SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(mask),
        value,
    )
    .expect("argument index below 6");
    SeccompRule::new(vec![condition]).expect("one condition")
}

/// A rule matching when argument `arg` equals one of `values`.
fn arg_in(arg: u8, values: &[u64]) -> Vec<SeccompRule> {
    values.iter().map(|&v| arg_is(arg, u64::MAX, v)).collect()
}

/// Every system call the server makes after its sandbox is closed, by purpose.
fn allow_list() -> BTreeMap<i64, Vec<SeccompRule>> {
    let any = |calls: &[libc::c_long]| calls.iter().map(|&c| (c, Vec::new())).collect::<Vec<_>>();
    let mut list: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // Memory, threads, time and signals (the allocator, tokio, the C library).
    list.extend(any(&[
        libc::SYS_brk,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mprotect,
        libc::SYS_mremap,
        libc::SYS_madvise,
        libc::SYS_futex,
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_sched_yield,
        libc::SYS_sched_getaffinity,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_tgkill,
        libc::SYS_exit,
        libc::SYS_exit_group,
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        libc::SYS_restart_syscall,
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_gettimeofday,
        libc::SYS_getrandom,
        libc::SYS_prlimit64,
        libc::SYS_sysinfo,
        libc::SYS_uname,
    ]));
    // Threads only: a clone without CLONE_THREAD would be a new process.
    list.insert(
        libc::SYS_clone,
        vec![arg_is(
            0,
            libc::CLONE_THREAD as u64,
            libc::CLONE_THREAD as u64,
        )],
    );
    // Naming threads (the C library's pthread_setname_np) and the allocator's new mappings,
    // and reading the auxiliary vector (the standard library's CPU feature detection).
    list.insert(
        libc::SYS_prctl,
        arg_in(
            0,
            &[
                libc::PR_SET_NAME as u64,
                libc::PR_GET_NAME as u64,
                PR_SET_VMA,
                PR_GET_AUXV,
            ],
        ),
    );
    // The event loop and its wake-ups.
    list.extend(any(&[
        libc::SYS_epoll_create1,
        libc::SYS_epoll_ctl,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_pwait2,
        libc::SYS_eventfd2,
        libc::SYS_ppoll,
        libc::SYS_pipe2,
    ]));
    // Connections: accepting and talking to clients, and the C library's user lookups,
    // which first try nscd's unix socket. No other socket family: no new network endpoints.
    // Listeners (unix, TCP, vsock) are bound before the filter is installed: accepting on a
    // vsock one takes accept4 and the FIONBIO ioctl, as on the others.
    list.extend(any(&[
        libc::SYS_accept4,
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        libc::SYS_shutdown,
        libc::SYS_getsockopt,
        libc::SYS_setsockopt,
        libc::SYS_getsockname,
        libc::SYS_getpeername,
        libc::SYS_socketpair,
        libc::SYS_connect,
    ]));
    list.insert(libc::SYS_socket, arg_in(0, &[libc::AF_UNIX as u64]));
    // Descriptors and data.
    list.extend(any(&[
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_preadv,
        libc::SYS_pwritev,
        libc::SYS_preadv2,
        libc::SYS_pwritev2,
        libc::SYS_lseek,
        libc::SYS_close,
        libc::SYS_dup,
        libc::SYS_dup3,
        libc::SYS_fcntl,
        libc::SYS_splice,
        libc::SYS_fsync,
        libc::SYS_fdatasync,
        libc::SYS_ftruncate,
        libc::SYS_fallocate,
        libc::SYS_fadvise64,
        libc::SYS_flock,
    ]));
    list.insert(
        libc::SYS_ioctl,
        arg_in(
            1,
            &[
                request(libc::FIONREAD),
                request(libc::FIONBIO),
                request(libc::TCGETS),
            ],
        ),
    );
    // Files, always relative to a descriptor of the export (Landlock bounds the rest).
    list.extend(any(&[
        libc::SYS_openat,
        libc::SYS_openat2,
        libc::SYS_newfstatat,
        libc::SYS_fstat,
        libc::SYS_statx,
        libc::SYS_fstatfs,
        libc::SYS_statfs,
        libc::SYS_getdents64,
        libc::SYS_readlinkat,
        libc::SYS_mkdirat,
        libc::SYS_mknodat,
        libc::SYS_symlinkat,
        libc::SYS_linkat,
        libc::SYS_unlinkat,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_fchmod,
        libc::SYS_fchmodat,
        libc::SYS_fchown,
        libc::SYS_fchownat,
        libc::SYS_utimensat,
        libc::SYS_faccessat,
        libc::SYS_faccessat2,
        libc::SYS_fgetxattr,
        libc::SYS_fsetxattr,
        libc::SYS_flistxattr,
        libc::SYS_fremovexattr,
        libc::SYS_getxattr,
        libc::SYS_setxattr,
        libc::SYS_listxattr,
        libc::SYS_removexattr,
        libc::SYS_lgetxattr,
        libc::SYS_lsetxattr,
        libc::SYS_llistxattr,
        libc::SYS_lremovexattr,
    ]));
    // Acting as the attaching user (`--multi-user`): the filesystem ids and groups of one
    // thread, never the process's real or effective ids.
    list.extend(any(&[
        libc::SYS_setfsuid,
        libc::SYS_setfsgid,
        libc::SYS_setgroups,
        libc::SYS_getgroups,
        libc::SYS_getuid,
        libc::SYS_geteuid,
        libc::SYS_getgid,
        libc::SYS_getegid,
    ]));
    #[cfg(target_arch = "x86_64")]
    list.extend(any(&[
        libc::SYS_epoll_wait,
        libc::SYS_poll,
        libc::SYS_open,
        libc::SYS_stat,
        libc::SYS_lstat,
        libc::SYS_unlink,
        libc::SYS_rename,
        libc::SYS_readlink,
        libc::SYS_access,
        libc::SYS_getdents,
    ]));
    list
}

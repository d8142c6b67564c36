//! The `-o` option list: generic mount flags become `mount(2)` flags, v9fs options go to the
//! kernel, and the transport options are mount.ninep's own to set.

use rustix::mount::MountFlags;

/// Options that are what mount.ninep does: the user cannot set them.
const SET_BY_US: &[&str] = &["trans", "rfdno", "wfdno", "version", "port", "privport"];

/// v9fs options passed to the kernel as given (`fs/9p/v9fs.c`).
const V9FS_VALUED: &[&str] = &[
    "msize",
    "debug",
    "dfltuid",
    "dfltgid",
    "afid",
    "uname",
    "aname",
    "cache",
    "cachetag",
    "access",
    "locktimeout",
];
const V9FS_FLAGS: &[&str] = &[
    "posixacl", "noextend", "nodevmap", "ignoreqv", "loose", "fscache", "mmap",
];

/// Options for mount(8) itself (fstab, user mounts), which the kernel never sees.
const USERSPACE: &[&str] = &[
    "defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group", "nofail", "_netdev",
];

/// The options parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Generic flags for `mount(2)`.
    pub flags: MountFlags,
    /// v9fs options, in the order given.
    pub kernel: Vec<String>,
    /// The `msize` asked for (checked here; the kernel negotiates it with the server).
    pub msize: Option<u32>,
    /// The user name sent in Tauth and Tattach.
    pub uname: Option<String>,
    /// The export to attach.
    pub aname: Option<String>,
    /// The munged socket to encode a credential with, when the server asks for one.
    pub munge_socket: Option<String>,
}

/// Why an option list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown option `{0}` (see mount.ninep --help; -s ignores unknown options)")]
    Unknown(String),
    #[error("option `{0}` is set by mount.ninep itself")]
    Reserved(String),
    #[error("option `{0}` needs a value ({0}=...)")]
    NeedsValue(String),
    #[error("option `{0}`: {1}")]
    BadValue(String, &'static str),
}

/// A generic mount flag: the flag, and whether the option sets (or clears) it.
fn generic_flag(name: &str) -> Option<(MountFlags, bool)> {
    Some(match name {
        "ro" => (MountFlags::RDONLY, true),
        "rw" => (MountFlags::RDONLY, false),
        "nosuid" => (MountFlags::NOSUID, true),
        "suid" => (MountFlags::NOSUID, false),
        "nodev" => (MountFlags::NODEV, true),
        "dev" => (MountFlags::NODEV, false),
        "noexec" => (MountFlags::NOEXEC, true),
        "exec" => (MountFlags::NOEXEC, false),
        "sync" => (MountFlags::SYNCHRONOUS, true),
        "async" => (MountFlags::SYNCHRONOUS, false),
        "dirsync" => (MountFlags::DIRSYNC, true),
        "noatime" => (MountFlags::NOATIME, true),
        "atime" => (MountFlags::NOATIME, false),
        "nodiratime" => (MountFlags::NODIRATIME, true),
        "diratime" => (MountFlags::NODIRATIME, false),
        "relatime" => (MountFlags::RELATIME, true),
        "norelatime" => (MountFlags::RELATIME, false),
        "strictatime" => (MountFlags::STRICTATIME, true),
        "nostrictatime" => (MountFlags::STRICTATIME, false),
        "lazytime" => (MountFlags::LAZYTIME, true),
        "nolazytime" => (MountFlags::LAZYTIME, false),
        "nosymfollow" => (MountFlags::NOSYMFOLLOW, true),
        "symfollow" => (MountFlags::NOSYMFOLLOW, false),
        "silent" => (MountFlags::SILENT, true),
        "loud" => (MountFlags::SILENT, false),
        _ => return None,
    })
}

impl Options {
    /// Parses a comma-separated option list. With `sloppy` (mount's `-s`), unknown options
    /// are returned apart instead of refused.
    pub fn parse(list: &str, sloppy: bool) -> Result<(Options, Vec<String>), OptionError> {
        let mut options = Options {
            flags: MountFlags::empty(),
            kernel: Vec::new(),
            msize: None,
            uname: None,
            aname: None,
            munge_socket: None,
        };
        let mut ignored = Vec::new();
        for option in list.split(',').filter(|o| !o.is_empty()) {
            let (name, value) = match option.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (option, None),
            };
            if let Some((flag, set)) = generic_flag(option) {
                options.flags.set(flag, set);
            } else if USERSPACE.contains(&name) || name.starts_with("x-") || name == "comment" {
                // mount(8)'s own business.
            } else if SET_BY_US.contains(&name) {
                return Err(OptionError::Reserved(name.into()));
            } else if name == "munge_socket" {
                options.munge_socket = Some(required(name, value)?.into());
            } else if V9FS_VALUED.contains(&name) {
                let value = required(name, value)?;
                match name {
                    "msize" => {
                        let msize = value
                            .parse()
                            .map_err(|_| OptionError::BadValue(name.into(), "not a number"))?;
                        if msize < MIN_MSIZE {
                            return Err(OptionError::BadValue(name.into(), "below 4096"));
                        }
                        options.msize = Some(msize);
                    }
                    "uname" => options.uname = Some(value.into()),
                    "aname" => options.aname = Some(value.into()),
                    _ => {}
                }
                options.kernel.push(option.into());
            } else if V9FS_FLAGS.contains(&option) {
                options.kernel.push(option.into());
            } else if sloppy {
                ignored.push(option.into());
            } else {
                return Err(OptionError::Unknown(option.into()));
            }
        }
        Ok((options, ignored))
    }
}

/// The smallest msize worth asking for (the server refuses less).
const MIN_MSIZE: u32 = 4096;

fn required<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, OptionError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(OptionError::NeedsValue(name.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &str) -> Options {
        Options::parse(list, false)
            .unwrap_or_else(|e| panic!("{list}: {e}"))
            .0
    }

    #[test]
    fn generic_flags_become_mount_flags_and_the_last_word_wins() {
        let o = parse("ro,nosuid,nodev,noexec,noatime");
        assert_eq!(
            o.flags,
            MountFlags::RDONLY
                | MountFlags::NOSUID
                | MountFlags::NODEV
                | MountFlags::NOEXEC
                | MountFlags::NOATIME
        );
        assert!(o.kernel.is_empty());
        assert_eq!(parse("ro,rw").flags, MountFlags::empty());
        assert_eq!(
            parse("defaults,noauto,_netdev,x-systemd.automount").flags,
            MountFlags::empty()
        );
    }

    #[test]
    fn v9fs_options_go_to_the_kernel_in_order() {
        let o = parse("msize=1048576,cache=loose,access=user,posixacl,uname=alice,aname=sub/dir");
        assert_eq!(
            o.kernel,
            [
                "msize=1048576",
                "cache=loose",
                "access=user",
                "posixacl",
                "uname=alice",
                "aname=sub/dir"
            ]
        );
        assert_eq!(o.msize, Some(1 << 20));
        assert_eq!(o.uname.as_deref(), Some("alice"));
        assert_eq!(o.aname.as_deref(), Some("sub/dir"));
    }

    #[test]
    fn munge_socket_is_ours_and_not_the_kernels() {
        let o = parse("munge_socket=/run/m.sock,ro");
        assert_eq!(o.munge_socket.as_deref(), Some("/run/m.sock"));
        assert!(o.kernel.is_empty());
    }

    #[test]
    fn bad_options_are_refused_with_their_name() {
        assert_eq!(
            Options::parse("ro,bogus", false),
            Err(OptionError::Unknown("bogus".into()))
        );
        for reserved in [
            "trans=tcp",
            "rfdno=3",
            "wfdno=4",
            "version=9p2000.u",
            "port=1",
        ] {
            assert!(
                matches!(
                    Options::parse(reserved, false),
                    Err(OptionError::Reserved(_))
                ),
                "{reserved}"
            );
        }
        assert_eq!(
            Options::parse("msize=", false),
            Err(OptionError::NeedsValue("msize".into()))
        );
        assert_eq!(
            Options::parse("uname", false),
            Err(OptionError::NeedsValue("uname".into()))
        );
        assert!(matches!(
            Options::parse("msize=lots", false),
            Err(OptionError::BadValue(..))
        ));
        assert!(matches!(
            Options::parse("msize=512", false),
            Err(OptionError::BadValue(..))
        ));
    }

    #[test]
    fn sloppy_sets_unknown_options_apart() {
        let (o, ignored) = Options::parse("ro,bogus,other=1", true).unwrap();
        assert_eq!(o.flags, MountFlags::RDONLY);
        assert_eq!(ignored, ["bogus", "other=1"]);
        // Sloppy or not, what mount.ninep sets itself stays refused.
        assert!(Options::parse("trans=tcp", true).is_err());
    }
}

//! Exports from a configuration file (`ninepd --config /etc/ninepd.toml`).
//!
//! ```toml
//! default = "home"                    # what an empty aname attaches to (optional)
//! sandbox_roots = ["/srv"]            # where a reload may add exports (optional)
//!
//! [export.home]
//! path = "/srv/home"
//! multi_user = true
//! allow_gids = [100]
//!
//! [export.media]
//! path = "/srv/media"
//! read_only = true
//! allow_hosts = ["192.168.1.0/24"]
//! allow_cids = [3]
//! ```
//!
//! Each `[export.NAME]` table has a `path` and options: `read_only`, `multi_user`,
//! `root_squash`, `squash_uid`, `squash_gid` (as the command-line options, whose values are
//! the defaults), and the peers it admits: `allow_uids`, `allow_gids` (unix socket peers and
//! authenticated users), `allow_hosts` (TCP clients, by network), `allow_cids` (vsock clients,
//! by context id: which virtual machine). Unknown keys are errors.
//! Every error names the file, the line and column, and the key.
//!
//! The server's sandbox is fixed at start (see `SECURITY.md`): the exports it may reach are
//! the `sandbox_roots` if given, the exports' own paths otherwise. A reload whose exports
//! lie outside them is refused, and the server says a restart is needed.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::exports::{Allow, Exports, Share};
use crate::fs::Export;
use crate::trust::Trust;

/// What the file's exports default to where they say nothing: the command line's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub read_only: bool,
    pub multi_user: bool,
    pub root_squash: bool,
    pub squash_uid: u32,
    pub squash_gid: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            read_only: false,
            multi_user: false,
            root_squash: true,
            squash_uid: crate::trust::NOBODY,
            squash_gid: crate::trust::NOGROUP,
        }
    }
}

/// A configuration file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the error is at a place in the file.
    pub line: Option<(usize, usize)>,
    /// The key at fault (`export.home.path`), when there is one.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.line {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    default: Option<Spanned<String>>,
    sandbox_roots: Option<Spanned<Vec<Spanned<PathBuf>>>>,
    #[serde(default)]
    export: BTreeMap<Spanned<String>, Spanned<ExportTable>>,
}

/// One `[export.NAME]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportTable {
    path: Spanned<PathBuf>,
    read_only: Option<bool>,
    multi_user: Option<Spanned<bool>>,
    root_squash: Option<bool>,
    squash_uid: Option<u32>,
    squash_gid: Option<u32>,
    allow_uids: Option<Vec<u32>>,
    allow_gids: Option<Vec<u32>>,
    allow_hosts: Option<Vec<Spanned<String>>>,
    allow_cids: Option<Vec<u32>>,
}

/// A loaded configuration: the exports, opened, and what the sandbox must let the server
/// reach for them.
#[derive(Debug)]
pub struct Loaded {
    pub exports: Exports,
    /// The directories the sandbox covers: `sandbox_roots`, or each export's path.
    pub sandbox_roots: Vec<PathBuf>,
}

/// Reads, validates and opens the exports of the configuration file `path`.
pub fn load(path: &Path, defaults: &Defaults) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(path, &e, ""))?;
    parse(path, &text, defaults)
}

/// The error for a file that cannot be read, with `hint` after the reason.
fn unreadable(path: &Path, e: &std::io::Error, hint: &str) -> ConfigError {
    ConfigError {
        file: path.to_path_buf(),
        line: None,
        key: None,
        message: format!("cannot read it: {e}{hint}"),
    }
}

/// [`load`] of `text`, read from `file`.
pub fn parse(file: &Path, text: &str, defaults: &Defaults) -> Result<Loaded, ConfigError> {
    let at = |span: Option<Range<usize>>, key: Option<String>, message: String| ConfigError {
        file: file.to_path_buf(),
        line: span.map(|s| line_column(text, s.start)),
        key,
        message,
    };
    let parsed: File = toml::from_str(text).map_err(|e| {
        let key = e.span().and_then(|s| key_at(text, s));
        at(e.span(), key, e.message().trim().to_string())
    })?;
    if parsed.export.is_empty() {
        return Err(at(
            None,
            None,
            "no export: add an [export.NAME] table with a path".into(),
        ));
    }
    let root = rustix::process::geteuid().is_root();
    let mut shares = Vec::new();
    for (name, table) in &parsed.export {
        let key = |field: &str| Some(format!("export.{}.{field}", name.get_ref()));
        let name_text = name.get_ref();
        if name_text.is_empty()
            || name_text == "."
            || name_text == ".."
            || name_text.contains(['/', '\0'])
        {
            return Err(at(
                Some(name.span()),
                Some(format!("export.{name_text}")),
                "an export's name must be a single path element (no `/`, not `.` or `..`)".into(),
            ));
        }
        let table = table.get_ref();
        let dir = table.path.get_ref();
        if !dir.is_absolute() {
            return Err(at(
                Some(table.path.span()),
                key("path"),
                format!("`{}` is not an absolute path", dir.display()),
            ));
        }
        let multi_user = table
            .multi_user
            .as_ref()
            .map_or(defaults.multi_user, |m| *m.get_ref());
        if multi_user && !root {
            return Err(at(
                table.multi_user.as_ref().map(Spanned::span),
                key("multi_user"),
                "multi_user needs the server to run as root".into(),
            ));
        }
        let mut hosts = None;
        if let Some(list) = &table.allow_hosts {
            let mut nets = Vec::new();
            for host in list {
                nets.push(parse_net(host.get_ref()).ok_or_else(|| {
                    at(
                        Some(host.span()),
                        key("allow_hosts"),
                        format!(
                            "`{}` is not an address or a network such as 192.168.1.0/24",
                            host.get_ref()
                        ),
                    )
                })?);
            }
            hosts = Some(nets);
        }
        let read_only = table.read_only.unwrap_or(defaults.read_only);
        let fs = Export::open(dir, read_only).map_err(|e| {
            at(
                Some(table.path.span()),
                key("path"),
                format!("cannot open the directory {}: {e}", dir.display()),
            )
        })?;
        shares.push(Share {
            name: Some(name_text.clone()),
            path: dir.clone(),
            fs,
            trust: Trust {
                root,
                multi_user,
                root_squash: table.root_squash.unwrap_or(defaults.root_squash),
                squash_uid: table.squash_uid.unwrap_or(defaults.squash_uid),
                squash_gid: table.squash_gid.unwrap_or(defaults.squash_gid),
            },
            allow: Allow {
                uids: table.allow_uids.clone(),
                gids: table.allow_gids.clone(),
                hosts,
                cids: table.allow_cids.clone(),
            },
        });
    }
    let default = match &parsed.default {
        Some(name) => Some(
            shares
                .iter()
                .position(|s| s.name.as_deref() == Some(name.get_ref().as_str()))
                .ok_or_else(|| {
                    at(
                        Some(name.span()),
                        Some("default".into()),
                        format!("no export is named `{}`", name.get_ref()),
                    )
                })?,
        ),
        None if shares.len() == 1 => Some(0),
        None => None,
    };
    let sandbox_roots = match &parsed.sandbox_roots {
        Some(roots) => {
            let mut dirs = Vec::new();
            for root in roots.get_ref() {
                let dir = root.get_ref();
                if !dir.is_absolute() || !dir.is_dir() {
                    return Err(at(
                        Some(root.span()),
                        Some("sandbox_roots".into()),
                        format!("`{}` is not an absolute path to a directory", dir.display()),
                    ));
                }
                dirs.push(dir.clone());
            }
            for share in &shares {
                if !covered(&share.path, &dirs) {
                    let span = parsed
                        .export
                        .iter()
                        .find(|(name, _)| share.name.as_deref() == Some(name.get_ref().as_str()))
                        .map(|(_, table)| table.get_ref().path.span());
                    return Err(at(
                        span,
                        Some(format!(
                            "export.{}.path",
                            share.name.as_deref().unwrap_or_default()
                        )),
                        format!(
                            "{} is outside every sandbox_roots directory",
                            share.path.display()
                        ),
                    ));
                }
            }
            dirs
        }
        None => shares.iter().map(|s| s.path.clone()).collect(),
    };
    Ok(Loaded {
        exports: Exports::named(shares, default),
        sandbox_roots,
    })
}

/// Reloads the file for a running server whose sandbox covers `sandbox_roots`: the new
/// exports, or why they cannot be served without a restart.
pub fn reload(
    path: &Path,
    defaults: &Defaults,
    sandbox_roots: &[PathBuf],
) -> Result<Exports, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            // Landlock's rule names the file the server started with (its inode).
            " (the sandbox lets a running server read only the file it started with: a file \
             replaced since, as editors that write a new file and rename it do, stays \
             unreadable; write changes into the file in place, or restart the server)"
        } else {
            ""
        };
        unreadable(path, &e, hint)
    })?;
    let loaded = parse(path, &text, defaults)?;
    for share in loaded.exports.shares() {
        if !covered(&share.path, sandbox_roots) {
            return Err(ConfigError {
                file: path.to_path_buf(),
                line: None,
                key: share.name.as_ref().map(|n| format!("export.{n}.path")),
                message: format!(
                    "{} is outside what the sandbox let the server reach when it started \
                     ({}): restart the server to serve it, or list a directory holding it in \
                     sandbox_roots at the next start",
                    share.path.display(),
                    sandbox_roots
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    Ok(loaded.exports)
}

/// Whether `path` is one of `roots` or beneath one (both with symlinks resolved where
/// possible).
fn covered(path: &Path, roots: &[PathBuf]) -> bool {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let path = real(path);
    roots.iter().any(|root| path.starts_with(real(root)))
}

/// An address (`10.0.0.1`, `::1`) or a network (`10.0.0.0/8`).
fn parse_net(text: &str) -> Option<ipnet::IpNet> {
    text.parse().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

/// The 1-based line and column of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// The dotted key of the table the byte at `span` is in, and of the key on its line when
/// there is one: `export.home.read_only`.
fn key_at(text: &str, span: Range<usize>) -> Option<String> {
    let start = span.start.min(text.len());
    let before = &text[..start];
    let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Loaded, ConfigError> {
        parse(Path::new("/etc/ninepd.toml"), text, &Defaults::default())
    }

    #[test]
    fn two_exports_with_their_own_options() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let text = format!(
            "default = \"b\"\n\n[export.a]\npath = \"{}\"\nread_only = true\nallow_uids = [1000]\n\n\
             [export.b]\npath = \"{}\"\nallow_hosts = [\"10.0.0.0/8\", \"::1\"]\nallow_cids = [3, 7]\nsquash_uid = 1234\n",
            a.path().display(),
            b.path().display()
        );
        let loaded = parse_text(&text).unwrap();
        let shares = loaded.exports.shares();
        assert_eq!(shares.len(), 2);
        assert!(shares[0].fs.read_only());
        assert_eq!(shares[0].allow.uids, Some(vec![1000]));
        assert!(!shares[1].fs.read_only());
        assert_eq!(shares[1].trust.squash_uid, 1234);
        assert_eq!(shares[1].allow.hosts.as_ref().map(Vec::len), Some(2));
        assert_eq!(shares[1].allow.cids, Some(vec![3, 7]));
        assert_eq!(shares[0].allow.cids, None);
        let (default, rest) = loaded.exports.select(b"").unwrap();
        assert_eq!((default.name.as_deref(), rest), (Some("b"), &b""[..]));
        let (by_name, rest) = loaded.exports.select(b"a/x/y").unwrap();
        assert_eq!((by_name.name.as_deref(), rest), (Some("a"), &b"x/y"[..]));
        let by_path = format!("{}/sub", b.path().display());
        let (by_path, rest) = loaded.exports.select(by_path.as_bytes()).unwrap();
        assert_eq!((by_path.name.as_deref(), rest), (Some("b"), &b"/sub"[..]));
        assert!(loaded.exports.select(b"c").is_none());
        assert!(loaded.exports.select(b"/nowhere").is_none());
        assert_eq!(
            loaded.sandbox_roots,
            vec![a.path().to_path_buf(), b.path().to_path_buf()]
        );
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let cases = [
            (
                format!("[export.a]\npath = \"{d}\"\nread_onyl = true\n"),
                (3, 1),
                "export.a.read_onyl",
                "unknown field `read_onyl`",
            ),
            (
                format!("[export.a]\npath = \"{d}\"\nread_only = \"yes\"\n"),
                (3, 13),
                "export.a.read_only",
                "invalid type",
            ),
            (
                "[export.a]\npath = \"relative/dir\"\n".to_string(),
                (2, 8),
                "export.a.path",
                "not an absolute path",
            ),
            (
                format!("[export.a]\npath = \"{d}/missing\"\n"),
                (2, 8),
                "export.a.path",
                "cannot open the directory",
            ),
            (
                format!("[export.a]\npath = \"{d}\"\nallow_hosts = [\"10.0.0.0/33\"]\n"),
                (3, 16),
                "export.a.allow_hosts",
                "not an address or a network",
            ),
            (
                format!("default = \"b\"\n[export.a]\npath = \"{d}\"\n"),
                (1, 11),
                "default",
                "no export is named `b`",
            ),
            (
                format!("[export.\"a/b\"]\npath = \"{d}\"\n"),
                (1, 9),
                "export.a/b",
                "single path element",
            ),
            (
                format!("[export.a]\npath = \"{d}\"\npath = \"{d}\"\n"),
                (3, 1),
                "export.a.path",
                "duplicate key",
            ),
        ];
        for (text, line, key, message) in cases {
            let e = parse_text(&text).expect_err(&text);
            assert_eq!(e.file, Path::new("/etc/ninepd.toml"));
            assert_eq!(e.line, Some(line), "{e} in\n{text}");
            assert_eq!(e.key.as_deref(), Some(key), "{e} in\n{text}");
            assert!(e.message.contains(message), "{e} in\n{text}");
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("/etc/ninepd.toml:{}:{}: {key}: ", line.0, line.1)),
                "{shown}"
            );
        }
        let none = parse_text("").expect_err("no export");
        assert!(none.message.contains("no export"), "{none}");
    }

    #[test]
    fn a_reload_outside_the_sandbox_roots_is_refused() {
        let roots = tempfile::tempdir().unwrap();
        let inside = roots.path().join("in");
        std::fs::create_dir(&inside).unwrap();
        let outside = tempfile::tempdir().unwrap();
        let file = roots.path().join("ninepd.toml");
        let write = |dir: &Path| {
            std::fs::write(&file, format!("[export.x]\npath = \"{}\"\n", dir.display())).unwrap()
        };
        let sandbox = [roots.path().to_path_buf()];
        write(&inside);
        assert!(reload(&file, &Defaults::default(), &sandbox).is_ok());
        write(outside.path());
        let e = reload(&file, &Defaults::default(), &sandbox).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("export.x.path"));
        assert!(e.message.contains("restart the server"), "{e}");
    }

    #[test]
    fn sandbox_roots_must_hold_every_export() {
        let root = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let text = format!(
            "sandbox_roots = [\"{}\"]\n[export.x]\npath = \"{}\"\n",
            root.path().display(),
            other.path().display()
        );
        let e = parse_text(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("export.x.path"));
        assert_eq!(e.line, Some((3, 8)));
        assert!(e.message.contains("outside every sandbox_roots"), "{e}");
    }
}

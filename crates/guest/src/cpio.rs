//! A writer for the "newc" cpio format the kernel unpacks as its initramfs.
//!
//! Written here rather than through `cpio -H newc` so that entries get root ownership and device nodes
//! (`/dev/console`) without staging a directory tree as root.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};

const MAGIC: &str = "070701";
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Streams newc entries to `out`; parent directories are created on demand.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    offset: u64,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer {
            out,
            offset: 0,
            next_ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    /// A directory (and its missing parents).
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        let path = relative(path)?;
        if path.is_empty() || self.dirs.contains(path) {
            return Ok(());
        }
        self.parents(path)?;
        self.dirs.insert(path.to_owned());
        self.header(path, S_IFDIR | perm, 2, 0, (0, 0))
    }

    /// A regular file of `len` bytes read from `data`.
    pub fn file(&mut self, path: &str, perm: u32, len: u64, data: impl Read) -> io::Result<()> {
        let path = relative(path)?;
        self.parents(path)?;
        self.header(path, S_IFREG | perm, 1, len, (0, 0))?;
        let copied = io::copy(&mut data.take(len), &mut self.out)?;
        if copied != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path}: expected {len} bytes, read {copied}"),
            ));
        }
        self.offset += len;
        self.pad()
    }

    /// A regular file held in memory.
    pub fn bytes(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.file(path, perm, data.len() as u64, data)
    }

    /// A symbolic link at `path` pointing to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let path = relative(path)?;
        self.parents(path)?;
        self.header(path, S_IFLNK | 0o777, 1, target.len() as u64, (0, 0))?;
        self.write(target.as_bytes())?;
        self.pad()
    }

    /// A character device node.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        let path = relative(path)?;
        self.parents(path)?;
        self.header(path, S_IFCHR | perm, 1, 0, (major, minor))
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 1, 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn parents(&mut self, path: &str) -> io::Result<()> {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent, 0o755)?;
        }
        Ok(())
    }

    fn header(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        size: u64,
        rdev: (u32, u32),
    ) -> io::Result<()> {
        let size = u32::try_from(size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: larger than the 4 GiB newc limit"),
            )
        })?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            size,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        let mut head = String::with_capacity(110 + name.len() + 1);
        head.push_str(MAGIC);
        for f in fields {
            head.push_str(&format!("{f:08X}"));
        }
        head.push_str(name);
        head.push('\0');
        self.write(head.as_bytes())?;
        self.pad()
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.offset += data.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.offset % 4) as usize) % 4;
        self.write(&[0; 3][..n])
    }
}

/// Archive names carry no leading `/`; `..` and empty components are refused.
fn relative(path: &str) -> io::Result<&str> {
    let rel = path.trim_start_matches('/').trim_end_matches('/');
    if rel
        .split('/')
        .any(|c| c == ".." || c == "." || (c.is_empty() && !rel.is_empty()))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad path in initramfs: {path:?}"),
        ));
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, mode, data, rdev) of one entry.
    type Entry = (String, u32, Vec<u8>, (u32, u32));

    /// Reads back each entry, checking alignment and the trailer.
    fn parse(buf: &[u8]) -> Vec<Entry> {
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            assert_eq!(at % 4, 0);
            assert_eq!(&buf[at..at + 6], MAGIC.as_bytes());
            let field = |i: usize| {
                let s = std::str::from_utf8(&buf[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let rdev = (field(9), field(10));
            let name_at = at + 110;
            let name = std::str::from_utf8(&buf[name_at..name_at + namesize - 1]).unwrap();
            assert_eq!(buf[name_at + namesize - 1], 0);
            let data_at = (name_at + namesize).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert_eq!(data_at, buf.len());
                return out;
            }
            out.push((
                name.to_owned(),
                mode,
                buf[data_at..data_at + size].to_vec(),
                rdev,
            ));
            at = (data_at + size).next_multiple_of(4);
        }
    }

    #[test]
    fn entries_round_trip_with_parents_once() {
        let mut w = Writer::new(Vec::new());
        w.bytes("/etc/hosts", 0o644, b"127.0.0.1 localhost\n")
            .unwrap();
        w.bytes("/etc/a", 0o600, b"xyz").unwrap();
        w.symlink("/bin/sh", "busybox").unwrap();
        w.char_dev("/dev/console", 0o600, 5, 1).unwrap();
        let entries = parse(&w.finish().unwrap());
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc",
                "etc/hosts",
                "etc/a",
                "bin",
                "bin/sh",
                "dev",
                "dev/console"
            ]
        );
        assert_eq!(entries[0].1, S_IFDIR | 0o755);
        assert_eq!(entries[1].2, b"127.0.0.1 localhost\n");
        assert_eq!(entries[2].1, S_IFREG | 0o600);
        assert_eq!(
            (entries[4].1, entries[4].2.as_slice()),
            (S_IFLNK | 0o777, &b"busybox"[..])
        );
        assert_eq!((entries[6].1, entries[6].3), (S_IFCHR | 0o600, (5, 1)));
    }

    #[test]
    fn short_reader_is_an_error() {
        let mut w = Writer::new(Vec::new());
        let err = w.file("/x", 0o644, 10, &b"abc"[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn escaping_paths_are_refused() {
        let mut w = Writer::new(Vec::new());
        assert!(w.bytes("/../etc/x", 0o644, b"").is_err());
        assert!(w.bytes("/a//b", 0o644, b"").is_err());
        assert!(w.bytes("/a/./b", 0o644, b"").is_err());
    }
}

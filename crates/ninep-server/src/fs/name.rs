//! Validation of the single names a client sends (walk elements, create names).
//!
//! A name is one path component: never empty, never containing `/` or NUL. `.` and `..` are
//! refused where they would make no sense (creating, renaming); walks handle them explicitly.

use rustix::io::Errno;

/// One validated path component, as bytes (Linux names need not be UTF-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component<'a> {
    /// `.`: stay where we are.
    Current,
    /// `..`: the parent, which is the root itself at the export root.
    Parent,
    /// An ordinary name.
    Name(&'a [u8]),
}

/// Checks one walk element. Empty names, names with `/` or NUL are refused with `EINVAL`.
pub fn component(name: &[u8]) -> Result<Component<'_>, Errno> {
    match name {
        b"." => Ok(Component::Current),
        b".." => Ok(Component::Parent),
        _ => entry(name).map(Component::Name),
    }
}

/// Checks a name that will become a directory entry (create, link, rename target).
///
/// `.` and `..` are refused too: they can never be created.
pub fn entry(name: &[u8]) -> Result<&[u8], Errno> {
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(Errno::INVAL);
    }
    if name == b"." || name == b".." {
        return Err(Errno::INVAL);
    }
    if name.len() > 255 {
        return Err(Errno::NAMETOOLONG);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_slashes_empty_and_nul() {
        assert_eq!(component(b""), Err(Errno::INVAL));
        assert_eq!(component(b"/etc"), Err(Errno::INVAL));
        assert_eq!(component(b"a/b"), Err(Errno::INVAL));
        assert_eq!(component(b"a\0b"), Err(Errno::INVAL));
        assert_eq!(entry(b".."), Err(Errno::INVAL));
        assert_eq!(entry(&[b'x'; 256]), Err(Errno::NAMETOOLONG));
    }

    #[test]
    fn accepts_dots_and_non_utf8() {
        assert_eq!(component(b".."), Ok(Component::Parent));
        assert_eq!(component(b"."), Ok(Component::Current));
        assert_eq!(component(b"\xff\xfe"), Ok(Component::Name(b"\xff\xfe")));
        assert_eq!(component(b"...").unwrap(), Component::Name(b"..."));
    }
}

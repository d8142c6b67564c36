//! Extended attributes (and so POSIX ACLs, which travel as `system.posix_acl_*`).
//!
//! `O_PATH` descriptors refuse the f*xattr calls, so these go through the descriptor's
//! `/proc/self/fd/N` link, which resolves to exactly the fid's inode.

use rustix::fs::{FileType, XattrFlags};
use rustix::io::Errno;

use super::node::Node;
use super::{FsResult, proc_path};

/// Largest value or list the server reads (the Linux limit, XATTR_SIZE_MAX).
pub const MAX_SIZE: usize = 64 * 1024;

fn path_of(node: &Node) -> FsResult<String> {
    if node.kind() == FileType::Symlink {
        // Only trusted/security names are allowed on symlinks; the /proc link cannot name one.
        return Err(Errno::OPNOTSUPP);
    }
    Ok(proc_path(node.fd()))
}

/// The value of `name`, or the list of names when `name` is empty.
pub fn get(node: &Node, name: &[u8]) -> FsResult<Vec<u8>> {
    let path = path_of(node)?;
    if name.contains(&0) {
        return Err(Errno::INVAL);
    }
    let mut buf = vec![0u8; MAX_SIZE];
    let n = if name.is_empty() {
        rustix::fs::listxattr(&path, &mut buf[..])?
    } else {
        rustix::fs::getxattr(&path, name, &mut buf[..])?
    };
    buf.truncate(n);
    Ok(buf)
}

/// Whether `name` is in a namespace the kernel guards with capabilities rather than file
/// ownership (`security.`, such as file capabilities, and `trusted.`).
pub fn is_privileged(name: &[u8]) -> bool {
    name.starts_with(b"security.") || name.starts_with(b"trusted.")
}

/// `XATTR_CREATE` and `XATTR_REPLACE` of Txattrcreate's flags.
pub const XATTR_CREATE: u32 = 1;
pub const XATTR_REPLACE: u32 = 2;

/// Commits a Txattrcreate at clunk: a zero-sized replace is the client's removexattr.
pub fn set(node: &Node, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
    let path = path_of(node)?;
    if name.is_empty() || name.contains(&0) {
        return Err(Errno::INVAL);
    }
    if value.is_empty() && flags & XATTR_REPLACE != 0 {
        return rustix::fs::removexattr(&path, name);
    }
    let f = XattrFlags::from_bits(flags).ok_or(Errno::INVAL)?;
    rustix::fs::setxattr(&path, name, value, f)
}

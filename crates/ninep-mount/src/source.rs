//! The SOURCE argument: where the server is, and which export (`aname`) to attach.
//!
//! ```text
//! tcp:HOST[:PORT][:ANAME]     HOST a name, an IPv4 address or [IPv6]; PORT digits (default 564)
//! unix:PATH[:ANAME]           PATH holds no ':'
//! vsock:CID:PORT[:ANAME]      CID and PORT decimal (2: the host, 1: this machine)
//! ```
//!
//! The address has a fixed shape, so whatever follows it after one `:` is the aname, which
//! may itself hold `:`. After a TCP host, a field of digits is the port: a numeric aname
//! needs the port spelt out (`tcp:server:564:2024`).

use std::fmt;

/// 9P's registered TCP port.
pub const DEFAULT_TCP_PORT: u16 = 564;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A host name or address, and a port.
    Tcp { host: String, port: u16 },
    /// A unix socket's path.
    Unix(String),
    /// A vsock address.
    Vsock { cid: u32, port: u32 },
}

/// A parsed SOURCE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub address: Address,
    /// The export to attach, when the source names one.
    pub aname: Option<String>,
}

/// Why a SOURCE does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("`{0}` is not tcp:HOST[:PORT][:ANAME], unix:PATH[:ANAME] or vsock:CID:PORT[:ANAME]")]
    UnknownKind(String),
    #[error("`{0}`: {1}")]
    Bad(String, &'static str),
}

impl Source {
    /// Parses a SOURCE as the module documentation describes.
    pub fn parse(s: &str) -> Result<Source, SourceError> {
        let bad = |why| SourceError::Bad(s.to_string(), why);
        let (address, rest) = if let Some(rest) = s.strip_prefix("tcp:") {
            parse_tcp(rest).map_err(bad)?
        } else if let Some(rest) = s.strip_prefix("unix:") {
            let (path, rest) = split_field(rest);
            if path.is_empty() {
                return Err(bad("the socket path is empty"));
            }
            (Address::Unix(path.to_string()), rest)
        } else if let Some(rest) = s.strip_prefix("vsock:") {
            let (cid, rest) = split_field(rest);
            let (port, rest) = split_field(rest.ok_or_else(|| bad("vsock needs CID:PORT"))?);
            let cid = cid.parse().map_err(|_| bad("the CID is not a number"))?;
            let port = port.parse().map_err(|_| bad("the port is not a number"))?;
            (Address::Vsock { cid, port }, rest)
        } else {
            return Err(SourceError::UnknownKind(s.to_string()));
        };
        let aname = match rest {
            None => None,
            Some("") => return Err(bad("the aname after ':' is empty")),
            Some(aname) => Some(aname.to_string()),
        };
        Ok(Source { address, aname })
    }
}

/// `HOST[:PORT][:ANAME]` after `tcp:`.
fn parse_tcp(s: &str) -> Result<(Address, Option<&str>), &'static str> {
    let (host, rest) = if let Some(bracketed) = s.strip_prefix('[') {
        let end = bracketed.find(']').ok_or("an IPv6 address lacks its ']'")?;
        let after = &bracketed[end + 1..];
        let rest = match after.strip_prefix(':') {
            Some(rest) => Some(rest),
            None if after.is_empty() => None,
            None => return Err("something follows the IPv6 address's ']' without a ':'"),
        };
        (&bracketed[..end], rest)
    } else {
        split_field(s)
    };
    if host.is_empty() {
        return Err("the host is empty");
    }
    let (port, rest) = match rest {
        Some(r) => {
            let (field, after) = split_field(r);
            if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) {
                let port = field.parse().map_err(|_| "the port is above 65535")?;
                (port, after)
            } else {
                (DEFAULT_TCP_PORT, rest)
            }
        }
        None => (DEFAULT_TCP_PORT, None),
    };
    let host = host.to_string();
    Ok((Address::Tcp { host, port }, rest))
}

/// The text up to the first `:`, and what follows it (`None`: there was no `:`).
fn split_field(s: &str) -> (&str, Option<&str>) {
    match s.split_once(':') {
        Some((field, rest)) => (field, Some(rest)),
        None => (s, None),
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Address::Unix(path) => write!(f, "unix:{path}"),
            Address::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp {
            host: host.into(),
            port,
        }
    }

    fn parse(s: &str) -> (Address, Option<String>) {
        let source = Source::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (source.address, source.aname)
    }

    #[test]
    fn tcp_sources_take_an_optional_port_then_an_optional_aname() {
        assert_eq!(parse("tcp:server"), (tcp("server", 564), None));
        assert_eq!(parse("tcp:10.0.0.1:5640"), (tcp("10.0.0.1", 5640), None));
        assert_eq!(
            parse("tcp:server:5640:srv/a:b"),
            (tcp("server", 5640), Some("srv/a:b".into()))
        );
        // A field that is not all digits is the aname, with the default port.
        assert_eq!(
            parse("tcp:server:home"),
            (tcp("server", 564), Some("home".into()))
        );
        assert_eq!(
            parse("tcp:server:564:2024"),
            (tcp("server", 564), Some("2024".into()))
        );
        assert_eq!(parse("tcp:[::1]:5640"), (tcp("::1", 5640), None));
        assert_eq!(parse("tcp:[fe80::1]"), (tcp("fe80::1", 564), None));
        assert_eq!(parse("tcp:[::1]:x"), (tcp("::1", 564), Some("x".into())));
    }

    #[test]
    fn unix_and_vsock_sources() {
        assert_eq!(
            parse("unix:/run/ninepd.sock"),
            (Address::Unix("/run/ninepd.sock".into()), None)
        );
        assert_eq!(
            parse("unix:/run/ninepd.sock:sub/dir"),
            (
                Address::Unix("/run/ninepd.sock".into()),
                Some("sub/dir".into())
            )
        );
        assert_eq!(
            parse("vsock:2:564"),
            (Address::Vsock { cid: 2, port: 564 }, None)
        );
        assert_eq!(
            parse("vsock:1:5640:share"),
            (Address::Vsock { cid: 1, port: 5640 }, Some("share".into()))
        );
    }

    #[test]
    fn bad_sources_are_refused_with_a_reason() {
        for bad in [
            "tcp:",
            "tcp::564",
            "tcp:host:99999",
            "tcp:[::1",
            "tcp:[::1]x",
            "tcp:host:564:",
            "unix:",
            "unix::x",
            "vsock:2",
            "vsock:x:564",
            "vsock:2:port",
            "vsock:2:99999999999",
        ] {
            assert!(
                matches!(Source::parse(bad), Err(SourceError::Bad(..))),
                "{bad} parsed"
            );
        }
        for unknown in ["nfs:host", "/dev/sda", "", "TCP:host"] {
            assert!(
                matches!(Source::parse(unknown), Err(SourceError::UnknownKind(_))),
                "{unknown}"
            );
        }
    }

    #[test]
    fn addresses_print_as_they_parse() {
        for s in [
            "tcp:server:564",
            "tcp:[::1]:5640",
            "unix:/a/b",
            "vsock:2:564",
        ] {
            assert_eq!(parse(s).0.to_string(), s);
        }
    }
}

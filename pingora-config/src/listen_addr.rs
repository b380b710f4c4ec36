//! Listening addresses: a TCP socket address or a unix domain socket path.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Longest unix socket path the kernel accepts (`sun_path` holds 108 bytes with the NUL).
pub const MAX_UNIX_PATH_BYTES: usize = 107;

/// Where a listener (or the admin endpoint) accepts connections.
///
/// Written in YAML as `IP:PORT` (`0.0.0.0:8080`, `[::]:8443`) or `unix:/path/to.sock`.
/// The one listen-address type of the workspace: pingora-core binds it as
/// `pingora_core::listener::ListenAddr`, and its `Display` form names a listener
/// handed over during an upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address; port 0 asks the kernel for a free port.
    Tcp(SocketAddr),
    /// A unix domain stream socket at this path.
    Unix(PathBuf),
}

impl ListenAddr {
    /// Whether two listeners would compete for the same socket.
    ///
    /// Equal addresses conflict, and so do a wildcard address (`0.0.0.0`, `[::]`) and any
    /// address of the same family on the same port. Port 0 never conflicts: each bind
    /// gets its own free port.
    pub fn conflicts_with(&self, other: &ListenAddr) -> bool {
        match (self, other) {
            (ListenAddr::Unix(a), ListenAddr::Unix(b)) => a == b,
            (ListenAddr::Tcp(a), ListenAddr::Tcp(b)) => {
                if a.port() == 0 || a.port() != b.port() || a.is_ipv4() != b.is_ipv4() {
                    return false;
                }
                a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified()
            }
            _ => false,
        }
    }
}

/// Why a listen address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ListenAddrParseError(String);

impl FromStr for ListenAddr {
    type Err = ListenAddrParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(ListenAddrParseError(format!(
                    "invalid address `{text}`: the unix socket path is empty (write `unix:/path/to.sock`)"
                )));
            }
            if path.len() > MAX_UNIX_PATH_BYTES {
                return Err(ListenAddrParseError(format!(
                    "invalid address `{text}`: unix socket paths are limited to {MAX_UNIX_PATH_BYTES} bytes, this one has {}",
                    path.len()
                )));
            }
            if path.contains('\0') {
                return Err(ListenAddrParseError(format!(
                    "invalid address `{}`: the unix socket path contains a NUL byte",
                    text.escape_debug()
                )));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        SocketAddr::from_str(text).map(ListenAddr::Tcp).map_err(|_| {
            ListenAddrParseError(format!(
                "invalid address `{}`: expected `IP:PORT` (like `0.0.0.0:8080` or `[::]:8080`) or `unix:/path/to.sock`",
                text.escape_debug()
            ))
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListenAddrVisitor;

        impl Visitor<'_> for ListenAddrVisitor {
            type Value = ListenAddr;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address string like `0.0.0.0:8080` or `unix:/path/to.sock`")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ListenAddr, E> {
                text.parse()
                    .map_err(|err: ListenAddrParseError| E::custom(err))
            }
        }

        deserializer.deserialize_str(ListenAddrVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ListenAddr, String> {
        text.parse::<ListenAddr>().map_err(|e| e.to_string())
    }

    #[test]
    fn parses_tcp_and_unix() {
        assert_eq!(
            parse("0.0.0.0:8080"),
            Ok(ListenAddr::Tcp("0.0.0.0:8080".parse().unwrap()))
        );
        assert_eq!(
            parse("[::]:8443"),
            Ok(ListenAddr::Tcp("[::]:8443".parse().unwrap()))
        );
        assert_eq!(
            parse("unix:/run/p.sock"),
            Ok(ListenAddr::Unix("/run/p.sock".into()))
        );
    }

    #[test]
    fn rejects_bad_addresses() {
        assert!(parse("localhost:80")
            .unwrap_err()
            .contains("expected `IP:PORT`"));
        assert!(parse("1.2.3.4").is_err());
        assert!(parse("1.2.3.4:70000").is_err());
        assert!(parse("::1:80").is_err());
        assert!(parse("unix:").unwrap_err().contains("path is empty"));
        let long = format!("unix:/{}", "a".repeat(200));
        assert!(parse(&long).unwrap_err().contains("limited to 107 bytes"));
    }

    #[test]
    fn display_round_trips() {
        for text in ["127.0.0.1:80", "[::1]:443", "unix:/tmp/x.sock"] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn conflicts() {
        let a = |t: &str| parse(t).unwrap();
        assert!(a("127.0.0.1:80").conflicts_with(&a("127.0.0.1:80")));
        assert!(a("0.0.0.0:80").conflicts_with(&a("127.0.0.1:80")));
        assert!(a("127.0.0.1:80").conflicts_with(&a("0.0.0.0:80")));
        assert!(!a("127.0.0.1:80").conflicts_with(&a("127.0.0.2:80")));
        assert!(!a("127.0.0.1:80").conflicts_with(&a("127.0.0.1:81")));
        assert!(!a("127.0.0.1:0").conflicts_with(&a("127.0.0.1:0")));
        assert!(!a("0.0.0.0:80").conflicts_with(&a("[::]:80")));
        assert!(a("unix:/a").conflicts_with(&a("unix:/a")));
        assert!(!a("unix:/a").conflicts_with(&a("unix:/b")));
    }
}

//! Who an upstream is: [`HttpPeer`] (an address, how to talk to it, and the key its
//! pooled connections are kept under), [`PeerAddress`] and [`PeerOptions`].

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::protocols::http::v1::client::ClientTimeouts;
use crate::protocols::tls::UpstreamTls;
#[cfg(doc)]
use crate::protocols::Stream;

/// Where an upstream peer is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerAddress {
    /// An IP address and port.
    Inet(SocketAddr),
    /// A `host:port` to resolve at connect time.
    Host(String),
    /// A unix-socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddress::Inet(a) => write!(f, "{a}"),
            PeerAddress::Host(h) => f.write_str(h),
            PeerAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl PeerAddress {
    /// The host name or IP address, without the port (`None` for unix sockets): the
    /// default TLS server name (an IP is checked against the certificate but not sent
    /// in SNI).
    pub fn host(&self) -> Option<String> {
        match self {
            PeerAddress::Inet(a) => Some(a.ip().to_string()),
            PeerAddress::Host(h) => {
                let host = h.rsplit_once(':').map_or(h.as_str(), |(host, _)| host);
                Some(
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string(),
                )
            }
            PeerAddress::Unix(_) => None,
        }
    }

    /// Parses `ip:port`, `host:port` or `unix:/path`.
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(path) = s.strip_prefix("unix:") {
            return (!path.is_empty()).then(|| PeerAddress::Unix(PathBuf::from(path)));
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Some(PeerAddress::Inet(a));
        }
        let (host, port) = s.rsplit_once(':')?;
        (!host.is_empty() && port.parse::<u16>().is_ok()).then(|| PeerAddress::Host(s.to_string()))
    }
}

/// Timeouts and limits for talking to one peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerOptions {
    /// Most time for the TCP connect.
    pub connect_timeout: Duration,
    /// Most time between two reads while a response is expected.
    pub read_timeout: Duration,
    /// Most time for one write to complete.
    pub write_timeout: Duration,
    /// How long an idle connection is kept in the pool.
    pub idle_timeout: Duration,
    /// Speak TLS to the peer with these settings (`None`: plain). Built once per
    /// upstream and shared; the TLS handshake counts against `connect_timeout`.
    pub tls: Option<Arc<UpstreamTls>>,
    /// The peer may speak HTTP/2: with TLS, `h2` is offered in ALPN before `http/1.1`
    /// (see [`Stream::alpn`] for the result); without, only `http/1.1` is offered.
    pub http2: bool,
}

impl PeerOptions {
    /// The timeouts a client session on this peer uses.
    pub fn client_timeouts(&self) -> ClientTimeouts {
        ClientTimeouts {
            read: self.read_timeout,
            write: self.write_timeout,
        }
    }
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            tls: None,
            http2: false,
        }
    }
}

/// An upstream HTTP server to send a request to.
#[derive(Debug, Clone)]
pub struct HttpPeer {
    /// Where it is.
    pub address: PeerAddress,
    /// How to talk to it.
    pub options: PeerOptions,
    key: u64,
}

impl HttpPeer {
    /// A peer at `address` with `options`.
    pub fn new(address: PeerAddress, options: PeerOptions) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        address.hash(&mut h);
        // A TLS connection (and one with other TLS settings, such as another SNI name)
        // must never be handed out for a plain one, nor the other way round.
        options.tls.hash(&mut h);
        options.http2.hash(&mut h);
        HttpPeer {
            address,
            options,
            key: h.finish(),
        }
    }

    /// The key idle connections to this peer are pooled under: the address, the TLS
    /// settings and the HTTP/2 flag.
    pub fn pool_key(&self) -> u64 {
        self.key
    }
}

//! Who an upstream is: [`HttpPeer`] (an address, how to talk to it, and the key its
//! pooled connections are kept under), [`PeerAddress`] and [`PeerOptions`].

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::protocols::http::v1::client::ClientTimeouts;
use crate::protocols::proxy_protocol::{ProxyAddresses, ProxyVersion};
use crate::protocols::tls::UpstreamTls;
#[cfg(doc)]
use crate::protocols::Stream;
use crate::protocols::{ClientAddr, ConnectionInfo};

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
    /// Write a PROXY protocol header of this version first on every new connection
    /// (`None`: never). A connection that carried one describes one client, so such
    /// connections are never pooled nor shared: see [`HttpPeer::set_proxy_client`].
    pub proxy_protocol: Option<ProxyVersion>,
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
            proxy_protocol: None,
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
    /// The client a PROXY header on a new connection names (`None`: a `LOCAL` /
    /// `UNKNOWN` header).
    proxy_client: Option<ProxyAddresses>,
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
        options.proxy_protocol.hash(&mut h);
        HttpPeer {
            address,
            options,
            key: h.finish(),
            proxy_client: None,
        }
    }

    /// The key idle connections to this peer are pooled under: the address, the TLS
    /// settings and the HTTP/2 flag.
    pub fn pool_key(&self) -> u64 {
        self.key
    }

    /// Whether new connections to this peer start with a PROXY header, which makes
    /// them private to one client connection: never taken from a pool, never put back
    /// in one, never shared between HTTP/2 requests.
    pub fn sends_proxy_header(&self) -> bool {
        self.options.proxy_protocol.is_some()
    }

    /// Names the client of `conn` in the PROXY header written on the connection made
    /// for this request (when [`PeerOptions::proxy_protocol`] is set): its source is
    /// the client (after the client connection's own PROXY header, if any), its
    /// destination the address the client connected to (the incoming header's
    /// destination, else the local socket address). A client without an IP address
    /// (unix socket) is written as unknown.
    pub fn set_proxy_client(&mut self, conn: &ConnectionInfo) {
        let source = match conn.client() {
            ClientAddr::Tcp(a) => Some(*a),
            ClientAddr::Unix => None,
        };
        let destination = conn
            .proxy_header()
            .and_then(|h| h.destination())
            .or(conn.local_addr());
        self.proxy_client = match (source, destination) {
            (Some(source), Some(destination)) => Some(ProxyAddresses {
                source,
                destination,
            }),
            _ => None,
        };
    }

    /// The client named in the PROXY header of new connections (see
    /// [`HttpPeer::set_proxy_client`]).
    pub fn proxy_client(&self) -> Option<ProxyAddresses> {
        self.proxy_client
    }
}

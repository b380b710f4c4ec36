//! Connecting to upstream peers, and reusing idle connections to them.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream, UnixStream};

use crate::error::{Error, ErrorKind, Result, Side};
use crate::pool::{ConnectionPool, Reusable};
use crate::protocols::http::v1::client::{ClientTimeouts, H1ClientSession};
use crate::protocols::tls::UpstreamTls;
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

/// Local addresses to bind upstream connections to, by address family.
#[derive(Debug, Clone, Default)]
pub struct BindAddrs {
    /// Source addresses for IPv4 upstreams (one is picked per connection).
    pub v4: Vec<IpAddr>,
    /// Source addresses for IPv6 upstreams.
    pub v6: Vec<IpAddr>,
}

/// Opens new connections to peers.
#[derive(Debug, Clone, Default)]
pub struct Connector {
    bind: BindAddrs,
}

impl Connector {
    /// A connector binding to the given local addresses (none: the kernel picks).
    pub fn new(bind: BindAddrs) -> Self {
        Connector { bind }
    }

    /// Connects to `peer` within its connect timeout, with the TLS handshake when the
    /// peer's options ask for TLS.
    pub async fn connect(&self, peer: &HttpPeer) -> Result<Stream> {
        let timeout = peer.options.connect_timeout;
        let what = || format!("connecting to {}", peer.address);
        let fut = async {
            let stream = self.connect_inner(&peer.address).await.map_err(|e| {
                let kind = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
                    std::io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
                    _ => ErrorKind::ConnectError,
                };
                Error::because(kind, Side::Upstream, what(), e).with_retry(true)
            })?;
            match &peer.options.tls {
                None => Ok(stream),
                Some(tls) => {
                    tls.connect(stream, peer.address.host().as_deref(), peer.options.http2)
                        .await
                }
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::ConnectTimeout,
                Side::Upstream,
                format!("{} timed out after {}ms", what(), timeout.as_millis()),
            )
            .with_retry(true)),
        }
    }

    async fn connect_inner(&self, address: &PeerAddress) -> std::io::Result<Stream> {
        match address {
            PeerAddress::Inet(a) => self.connect_tcp(*a).await,
            PeerAddress::Host(h) => {
                let mut last = None;
                for a in tokio::net::lookup_host(h.as_str()).await? {
                    match self.connect_tcp(a).await {
                        Ok(s) => return Ok(s),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no address found")
                }))
            }
            PeerAddress::Unix(p) => Ok(Stream::Unix(UnixStream::connect(p).await?)),
        }
    }

    async fn connect_tcp(&self, addr: SocketAddr) -> std::io::Result<Stream> {
        let sources = if addr.is_ipv4() {
            &self.bind.v4
        } else {
            &self.bind.v6
        };
        let stream = if sources.is_empty() {
            TcpStream::connect(addr).await?
        } else {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            // Spread connections over the source addresses.
            let pick = (addr.port() as usize) % sources.len();
            socket.bind(SocketAddr::new(sources[pick], 0))?;
            socket.connect(addr).await?
        };
        stream.set_nodelay(true)?;
        Ok(Stream::Tcp(stream))
    }
}

impl Reusable for H1ClientSession {
    fn is_reusable(&self) -> bool {
        self.is_idle_and_open()
    }
}

/// Upstream HTTP/1 connections: fresh ones from a [`Connector`], idle ones from a pool.
pub struct HttpConnector {
    connector: Connector,
    pool: ConnectionPool<H1ClientSession>,
}

impl HttpConnector {
    /// A connector keeping at most `pool_size` idle connections.
    pub fn new(connector: Connector, pool_size: usize) -> Self {
        HttpConnector {
            connector,
            pool: ConnectionPool::new(pool_size),
        }
    }

    /// An idle pooled connection to `peer` if one is usable.
    pub fn reused(&self, peer: &HttpPeer) -> Option<H1ClientSession> {
        self.pool.get(peer.pool_key())
    }

    /// A new connection to `peer`.
    pub async fn connect(&self, peer: &HttpPeer) -> Result<H1ClientSession> {
        let stream = self.connector.connect(peer).await?;
        Ok(H1ClientSession::new(stream, peer.options.client_timeouts()))
    }

    /// Gives a connection back after a complete exchange; kept only if reusable.
    pub fn release(&self, peer: &HttpPeer, session: H1ClientSession) {
        if session.is_idle_and_open() {
            self.pool
                .put(peer.pool_key(), session, peer.options.idle_timeout);
        }
    }

    /// How many idle connections are pooled.
    pub fn idle_count(&self) -> usize {
        self.pool.len()
    }
}

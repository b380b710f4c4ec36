//! Opening new connections to upstream peers: [`Connector`] dials TCP (from chosen
//! local addresses, see [`BindAddrs`]) or unix sockets, and runs the TLS handshake when
//! the peer asks for TLS, all within the peer's connect timeout.

use std::net::{IpAddr, SocketAddr};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream, UnixStream};

use super::peer::{HttpPeer, PeerAddress};
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::proxy_protocol::encode;
use crate::protocols::Stream;

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

    /// Connects to `peer` within its connect timeout, with the PROXY header and the TLS
    /// handshake when the peer's options ask for them.
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
            let stream = write_proxy_header(stream, peer).await?;
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

/// Writes the PROXY header first on a new connection to `peer`, when its options ask
/// for one (before TLS: the header is for whoever accepts the TCP connection).
async fn write_proxy_header(mut stream: Stream, peer: &HttpPeer) -> Result<Stream> {
    let Some(version) = peer.options.proxy_protocol else {
        return Ok(stream);
    };
    let header = encode(version, peer.proxy_client());
    stream.write_all(&header).await.map_err(|e| {
        Error::because(
            ErrorKind::ConnectError,
            Side::Upstream,
            format!("writing the PROXY header to {}", peer.address),
            e,
        )
        .with_retry(true)
    })?;
    Ok(stream)
}

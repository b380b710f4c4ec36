//! [`ConnectionInfo`]: what is known about an accepted client connection, beside its
//! byte stream: who the client is, where it connected, whether it speaks TLS, and the
//! PROXY header it came with.

use std::net::SocketAddr;
use std::sync::Arc;

use super::proxy_protocol::ProxyHeader;
use super::{ClientAddr, Stream};

/// An accepted client connection, as the sessions and the application see it. Cheap to
/// clone (every HTTP/2 stream of a connection holds a copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    client: ClientAddr,
    socket_peer: ClientAddr,
    local_addr: Option<SocketAddr>,
    tls: bool,
    proxy_header: Option<Arc<ProxyHeader>>,
}

impl ConnectionInfo {
    /// A connection from `peer`, with nothing else known (no local address, plain, no
    /// PROXY header): for sessions built by hand.
    pub fn new(peer: ClientAddr) -> Self {
        ConnectionInfo {
            socket_peer: peer.clone(),
            client: peer,
            local_addr: None,
            tls: false,
            proxy_header: None,
        }
    }

    /// A connection just accepted from `peer` on `stream`: its local address is asked
    /// of the socket; TLS is not set up yet.
    pub fn accepted(peer: ClientAddr, stream: &Stream) -> Self {
        ConnectionInfo {
            local_addr: stream.local_addr(),
            ..ConnectionInfo::new(peer)
        }
    }

    /// A QUIC connection from `peer` that reached `local`: TLS by definition.
    pub fn quic(peer: ClientAddr, local: Option<SocketAddr>) -> Self {
        ConnectionInfo {
            local_addr: local,
            tls: true,
            ..ConnectionInfo::new(peer)
        }
    }

    /// The connection with its PROXY header: the client becomes the header's source
    /// address, when it names one (a `LOCAL` or `UNKNOWN` header leaves the socket peer).
    pub fn with_proxy_header(mut self, header: ProxyHeader) -> Self {
        if let Some(source) = header.source() {
            self.client = ClientAddr::Tcp(source);
        }
        self.proxy_header = Some(Arc::new(header));
        self
    }

    /// Marks the connection as TLS (or not).
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// The client: the source address of the PROXY header when the connection came
    /// with one that names it, else the socket peer. This is the address that counts
    /// everywhere (`X-Forwarded-For`, logs, access lists, limits, metrics).
    pub fn client(&self) -> &ClientAddr {
        &self.client
    }

    /// The far end of the socket itself (the balancer, when a PROXY header came first).
    pub fn socket_peer(&self) -> &ClientAddr {
        &self.socket_peer
    }

    /// The local address the client connected to (`None` for unix sockets, or when
    /// unknown).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The local port the client connected to (`None` for unix sockets).
    pub fn server_port(&self) -> Option<u16> {
        self.local_addr.map(|a| a.port())
    }

    /// Whether the connection speaks TLS (the handshake is done by now).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The PROXY header the connection started with, if any: its addresses and, for
    /// version 2, its TLVs.
    pub fn proxy_header(&self) -> Option<&ProxyHeader> {
        self.proxy_header.as_deref()
    }
}

impl From<ClientAddr> for ConnectionInfo {
    fn from(peer: ClientAddr) -> Self {
        ConnectionInfo::new(peer)
    }
}

//! The QUIC endpoint of a listener's UDP socket, and the process-wide QUIC counters.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::cid::InstanceCidGenerator;
use super::routing::RoutedUdpSocket;
use crate::error::{Error, ErrorKind, Result, Side};

/// Counters of the QUIC side of every listener of the process.
#[derive(Debug, Default)]
pub struct QuicStats {
    connections: AtomicU64,
    handshake_failures: AtomicU64,
    open: AtomicU64,
    forwarded: AtomicU64,
}

impl QuicStats {
    /// QUIC connections whose handshake completed, since start.
    pub fn connections_total(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// QUIC handshakes that failed or timed out, since start.
    pub fn handshake_failures_total(&self) -> u64 {
        self.handshake_failures.load(Ordering::Relaxed)
    }

    /// QUIC connections open now.
    pub fn open_connections(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Datagrams read here that belonged to another instance's connection and were
    /// passed to it (after an upgrade), since start.
    pub fn datagrams_forwarded_total(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    pub(crate) fn forwarded(&self) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection as opened; it counts as closed when the guard drops.
    pub(crate) fn opened(&'static self) -> OpenConnection {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self)
    }
}

/// Keeps a QUIC connection counted as open.
pub(crate) struct OpenConnection(&'static QuicStats);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The QUIC counters of this process.
pub fn quic_stats() -> &'static QuicStats {
    static STATS: QuicStats = QuicStats {
        connections: AtomicU64::new(0),
        handshake_failures: AtomicU64::new(0),
        open: AtomicU64::new(0),
        forwarded: AtomicU64::new(0),
    };
    &STATS
}

/// A QUIC server endpoint on a listener's UDP socket, whose connections outlive a
/// hand-over of the socket to a new instance (datagrams of other instances'
/// connections are passed to them; see `docs/http3.md`).
#[derive(Debug)]
pub struct ServerEndpoint {
    endpoint: quinn::Endpoint,
    socket: Arc<RoutedUdpSocket>,
}

impl ServerEndpoint {
    /// The quinn endpoint: its connections, and new ones to accept.
    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    /// The socket now belongs to another instance: stop reading it and stop accepting
    /// connections; the open ones go on, their datagrams passed here by the new reader.
    /// Returns whether they can (false when this instance has no inbox; they are then
    /// closed, see docs/http3.md).
    pub fn hand_over(&self) -> bool {
        self.endpoint.set_server_config(None);
        self.socket.set_handed_over(true);
        if !self.socket.routes() {
            let no_error =
                quinn::VarInt::from_u64(h3::error::Code::H3_NO_ERROR.value()).unwrap_or_default();
            self.endpoint.close(no_error, b"server restarting");
        }
        self.socket.routes()
    }

    /// The hand-over did not complete: read the socket and accept with `config` again.
    pub fn take_back(&self, config: quinn::ServerConfig) {
        self.socket.set_handed_over(false);
        self.endpoint.set_server_config(Some(config));
    }
}

/// A QUIC server endpoint reading `socket` (a copy of it: the caller keeps its own),
/// issuing connection IDs that name this instance. Must be called inside a tokio
/// runtime; the endpoint's I/O runs there.
pub fn server_endpoint(socket: &UdpSocket, config: quinn::ServerConfig) -> Result<ServerEndpoint> {
    let ctx = |e: std::io::Error| {
        Error::because(
            ErrorKind::Io,
            Side::Internal,
            "cannot start the QUIC endpoint",
            e,
        )
    };
    let socket = socket.try_clone().map_err(ctx)?;
    socket.set_nonblocking(true).map_err(ctx)?;
    let socket = Arc::new(RoutedUdpSocket::new(socket).map_err(ctx)?);
    let mut endpoint_config = quinn::EndpointConfig::default();
    endpoint_config.cid_generator(|| Box::new(InstanceCidGenerator::new()));
    let endpoint = quinn::Endpoint::new_with_abstract_socket(
        endpoint_config,
        Some(config),
        socket.clone(),
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(ctx)?;
    Ok(ServerEndpoint { endpoint, socket })
}

//! The QUIC endpoint of a listener's UDP socket, and the process-wide QUIC counters.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result, Side};

/// Counters of the QUIC side of every listener of the process.
#[derive(Debug, Default)]
pub struct QuicStats {
    connections: AtomicU64,
    handshake_failures: AtomicU64,
    open: AtomicU64,
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
    };
    &STATS
}

/// A QUIC server endpoint reading `socket` (a copy of it: the caller keeps its own).
/// Must be called inside a tokio runtime; the endpoint's I/O runs there.
pub fn server_endpoint(socket: &UdpSocket, config: quinn::ServerConfig) -> Result<quinn::Endpoint> {
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
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(ctx)
}

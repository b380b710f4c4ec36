//! HTTP/3 downstream (feature `http3`): QUIC on `quinn`, HTTP/3 framing and QPACK on
//! `h3`, TLS 1.3 on `rustls` fed the listener's own certificates ([`tls`]).
//!
//! A TLS listener with [`ListenOptions::http3`](crate::listener::ListenOptions::http3)
//! also binds a UDP socket on its port. [`endpoint`] runs the QUIC endpoint on it and
//! serves each connection as an [`H3ServerConnection`]: every request stream becomes an
//! [`H3ServerStream`], which has the per-request methods of the HTTP/1 and HTTP/2
//! sessions, so the application's phases run unchanged (see
//! [`ServerApp::process_h3_stream`](crate::service::ServerApp::process_h3_stream)).

mod cid;
pub mod endpoint;
mod routing;
pub mod server;
pub mod tls;

use std::time::Duration;

pub use cid::InstanceId;
pub use endpoint::{quic_stats, QuicStats, ServerEndpoint};
pub use server::{H3ServerConnection, H3ServerStream};

/// ALPN identifier of HTTP/3.
pub const ALPN_H3: &[u8] = b"h3";

/// Limits and timeouts of HTTP/3 client connections (QUIC transport and HTTP/3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H3ServerOptions {
    /// Most request streams a client may have open at once (QUIC's bidirectional
    /// stream limit, raised as streams finish).
    pub max_concurrent_streams: u32,
    /// Receive window of each stream, in bytes (QUIC flow control).
    pub stream_receive_window: u32,
    /// Receive window of the whole connection, in bytes.
    pub connection_receive_window: u32,
    /// Most bytes in flight to one client, unacknowledged.
    pub send_window: u64,
    /// A connection with no packet from the client for this long is closed.
    pub idle_timeout: Duration,
    /// Most time for the QUIC (TLS 1.3) handshake.
    pub handshake_timeout: Duration,
    /// Most time for a request's head to arrive once its stream opened.
    pub header_timeout: Duration,
    /// Largest request head accepted, in bytes (SETTINGS_MAX_FIELD_SECTION_SIZE).
    pub max_header_list_size: u64,
    /// Most time between two pieces of a request body.
    pub body_timeout: Duration,
    /// Most time to wait for the client to open window for response bytes.
    pub write_timeout: Duration,
    /// Answer every new client with a Retry packet first, so that its address is
    /// validated before any handshake work (costs one round trip; against spoofed
    /// floods). Before validation the server never sends more than three times what it
    /// received (QUIC's amplification limit), with or without this.
    pub require_retry: bool,
}

impl Default for H3ServerOptions {
    fn default() -> Self {
        H3ServerOptions {
            max_concurrent_streams: 100,
            stream_receive_window: 1 << 20,
            connection_receive_window: 8 << 20,
            send_window: 8 << 20,
            idle_timeout: Duration::from_secs(75),
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(60),
            max_header_list_size: 64 * 1024,
            body_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            require_retry: false,
        }
    }
}

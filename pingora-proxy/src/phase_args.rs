//! What the phases receive and return besides the session and the context:
//! [`UpstreamConnection`] (given to [`crate::ProxyHttp::connected_to_upstream`]) and
//! [`FailureAnswer`] (returned by [`crate::ProxyHttp::fail_to_proxy`]).

use std::time::Duration;

use http::StatusCode;
use pingora_core::connector::HttpPeer;

/// The upstream connection an attempt got, as told to
/// [`crate::ProxyHttp::connected_to_upstream`].
#[derive(Debug)]
#[non_exhaustive]
pub struct UpstreamConnection<'a> {
    /// The peer connected to.
    pub peer: &'a HttpPeer,
    /// Whether the connection came from the keep-alive pool (or, for HTTP/2, is a
    /// stream on a connection already open) rather than opened for this attempt.
    pub reused: bool,
    /// How long getting it took: the TCP connect and TLS handshake for a new
    /// connection, next to nothing for a reused one.
    pub connect_time: Duration,
    /// Which attempt of the request this is (1 for the first; retries count up).
    pub attempt: usize,
}

/// What [`crate::ProxyHttp::fail_to_proxy`] did about a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAnswer {
    /// The client was answered with this status.
    Sent(StatusCode),
    /// Nothing could be sent: the response had started already, or the client is gone.
    NotSent,
}

impl FailureAnswer {
    /// The status sent, if any.
    pub fn status(self) -> Option<StatusCode> {
        match self {
            FailureAnswer::Sent(status) => Some(status),
            FailureAnswer::NotSent => None,
        }
    }
}

impl std::fmt::Display for FailureAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureAnswer::Sent(status) => write!(f, "{}", status.as_u16()),
            FailureAnswer::NotSent => f.write_str("nothing"),
        }
    }
}

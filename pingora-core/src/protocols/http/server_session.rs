//! [`ServerSession`]: one client request, whatever HTTP version carries it.
//!
//! The proxy phases work on this type, so they run unchanged for HTTP/1.x and HTTP/2
//! clients. Connection-level operations (reading the next request of a keep-alive
//! connection, closing, tunnelling) only exist for HTTP/1.x: see
//! [`ServerSession::as_http1_mut`].

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};

use super::detached::DetachedRequest;
use super::v1::server::H1ServerSession;
use super::v1::BodyFraming;
use super::v2::server::H2ServerStream;
#[cfg(feature = "http3")]
use super::v3::server::H3ServerStream;
use super::{RequestHeader, ResponseHeader};
use crate::error::Result;
use crate::protocols::{ClientAddr, ConnectionInfo};

/// The client side of one request: an HTTP/1.x connection, one HTTP/2 stream, or
/// nobody (a request the proxy makes on its own behalf).
// Held by value for the life of a connection: boxing the larger variant would cost an
// allocation per connection and save nothing.
#[allow(clippy::large_enum_variant)]
pub enum ServerSession {
    /// A request on an HTTP/1.x connection.
    H1(H1ServerSession),
    /// A request on one stream of an HTTP/2 connection.
    H2(H2ServerStream),
    /// A request on one stream of an HTTP/3 (QUIC) connection (feature `http3`).
    #[cfg(feature = "http3")]
    H3(H3ServerStream),
    /// A request the proxy makes itself, with no client waiting (its response is dropped).
    Detached(DetachedRequest),
}

/// Runs `$body` with `$s` bound to the session of whichever version `$self` is.
macro_rules! each_version {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            ServerSession::H1($s) => $body,
            ServerSession::H2($s) => $body,
            #[cfg(feature = "http3")]
            ServerSession::H3($s) => $body,
            ServerSession::Detached($s) => $body,
        }
    };
}

impl ServerSession {
    /// The HTTP/1.x session, for connection-level operations.
    pub fn as_http1_mut(&mut self) -> Option<&mut H1ServerSession> {
        match self {
            ServerSession::H1(s) => Some(s),
            _ => None,
        }
    }

    /// The HTTP/1.x session, given up for a tunnel (None for other versions).
    pub fn into_http1(self) -> Option<H1ServerSession> {
        match self {
            ServerSession::H1(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the client connection can carry another request after this one
    /// (HTTP/1.x keep-alive; an HTTP/2 stream never carries another request).
    pub fn can_reuse(&self) -> bool {
        match self {
            ServerSession::H1(s) => s.can_reuse(),
            _ => false,
        }
    }

    /// The protocol version the client speaks.
    pub fn version(&self) -> Version {
        each_version!(self, s => s.req_header().version)
    }

    /// The client's address (the PROXY header's source when the connection came
    /// with one).
    pub fn peer(&self) -> &ClientAddr {
        each_version!(self, s => s.peer())
    }

    /// The client connection: client and socket addresses, the local address it
    /// reached, whether it is TLS, and its PROXY header (TLVs included).
    pub fn connection(&self) -> &ConnectionInfo {
        each_version!(self, s => s.connection())
    }

    /// The current request head.
    pub fn req_header(&self) -> &RequestHeader {
        each_version!(self, s => s.req_header())
    }

    /// The current request head, to edit in place.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        each_version!(self, s => s.req_header_mut())
    }

    /// How the request body is framed.
    pub fn req_body_framing(&self) -> BodyFraming {
        each_version!(self, s => s.req_body_framing())
    }

    /// Sends `100 Continue` when the client waits for it (HTTP/1.1 only); call it before
    /// racing [`ServerSession::read_body`] against other work.
    pub async fn send_continue(&mut self) -> Result<()> {
        each_version!(self, s => s.send_continue().await)
    }

    /// Reads the next piece of the request body; `None` at its end.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        each_version!(self, s => s.read_body().await)
    }

    /// Trailers of the request body, once it was read to its end.
    pub fn req_trailers(&self) -> Option<&HeaderMap> {
        each_version!(self, s => s.req_trailers())
    }

    /// Asks for the connection to be closed after this response (HTTP/1.x; an HTTP/2
    /// stream ends on its own).
    pub fn set_keepalive(&mut self, keepalive: bool) {
        each_version!(self, s => s.set_keepalive(keepalive))
    }

    /// Writes a response head (an interim one for 1xx other than 101).
    pub async fn write_response_header(&mut self, resp: &mut ResponseHeader) -> Result<()> {
        each_version!(self, s => s.write_response_header(resp).await)
    }

    /// The status of the response written, if any.
    pub fn response_status(&self) -> Option<StatusCode> {
        each_version!(self, s => s.response_status())
    }

    /// Whether a final response head was written already.
    pub fn response_started(&self) -> bool {
        each_version!(self, s => s.response_started())
    }

    /// Writes a piece of the response body.
    pub async fn write_body(&mut self, data: &Bytes) -> Result<()> {
        each_version!(self, s => s.write_body(data).await)
    }

    /// Ends the response, with trailers if any.
    pub async fn finish_response(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        each_version!(self, s => s.finish_response(trailers).await)
    }

    /// Sends whatever is buffered.
    pub async fn flush(&mut self) -> Result<()> {
        each_version!(self, s => s.flush().await)
    }

    /// Sends a complete small response (errors and built-in answers).
    pub async fn respond(
        &mut self,
        status: StatusCode,
        content_type: &str,
        body: Bytes,
    ) -> Result<()> {
        each_version!(self, s => s.respond(status, content_type, body).await)
    }

    /// Answers an error status (and, for HTTP/1.x, marks the connection to close).
    pub async fn respond_error(&mut self, status: StatusCode) -> Result<()> {
        each_version!(self, s => s.respond_error(status).await)
    }

    /// Body bytes received and sent for the current request.
    pub fn body_bytes(&self) -> (u64, u64) {
        each_version!(self, s => s.body_bytes())
    }

    /// How many requests the client connection has carried, this one included.
    pub fn requests_served(&self) -> u64 {
        match self {
            ServerSession::H1(s) => s.requests_served(),
            ServerSession::H2(s) => s.requests_served(),
            #[cfg(feature = "http3")]
            ServerSession::H3(s) => s.requests_served(),
            ServerSession::Detached(_) => 1,
        }
    }

    /// Whether the request is an HTTP/2 extended CONNECT (RFC 8441) presented as an
    /// upgrade request (see [`H2ServerStream::is_extended_connect`]).
    pub fn is_extended_connect(&self) -> bool {
        matches!(self, ServerSession::H2(s) if s.is_extended_connect())
    }

    /// Whether this is a request the proxy makes itself, with no client waiting.
    pub fn is_detached(&self) -> bool {
        matches!(self, ServerSession::Detached(_))
    }
}

impl From<H1ServerSession> for ServerSession {
    fn from(s: H1ServerSession) -> Self {
        ServerSession::H1(s)
    }
}

//! [`ClientSession`]: one exchange with an upstream, whatever HTTP version carries it.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;

use super::v1::client::{ClientTimeouts, H1ClientSession};
use super::v1::BodyFraming;
use super::v2::body_writer::H2BodyWriter;
use super::v2::client::H2ClientStream;
use super::v2::tunnel::H2Tunnel;
use super::{RequestHeader, ResponseHeader};
use crate::error::Result;
use crate::protocols::Stream;

/// The upstream side of one request: an HTTP/1.x connection, or one HTTP/2 stream.
// Held by value for one exchange: boxing the larger variant would cost an allocation
// per request and save nothing.
#[allow(clippy::large_enum_variant)]
pub enum ClientSession {
    /// An exchange on an HTTP/1.x connection (pooled whole once it is over).
    H1(H1ClientSession),
    /// One stream of a shared HTTP/2 connection.
    H2(H2ClientStream),
}

/// The upstream side of a tunnel, after the upstream switched protocols.
pub enum UpstreamTunnel {
    /// An HTTP/1.1 connection after its `101`, and the bytes the upstream already sent
    /// past it.
    H1(Stream, BytesMut),
    /// An HTTP/2 stream opened with an extended CONNECT (RFC 8441) and answered 2xx.
    H2(H2Tunnel),
}

/// Runs `$body` with `$s` bound to the session of whichever version `$self` is.
macro_rules! each_version {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            ClientSession::H1($s) => $body,
            ClientSession::H2($s) => $body,
        }
    };
}

impl ClientSession {
    /// The HTTP/1.x session, for pooling or a tunnel (None for other versions).
    pub fn into_http1(self) -> Option<H1ClientSession> {
        match self {
            ClientSession::H1(s) => Some(s),
            ClientSession::H2(_) => None,
        }
    }

    /// The session as a tunnel, once the upstream switched protocols (HTTP/1.1 `101`,
    /// or HTTP/2 2xx to an extended CONNECT); None when it did not.
    pub fn into_tunnel(self) -> Option<UpstreamTunnel> {
        match self {
            ClientSession::H1(s) => {
                let (stream, early) = s.into_tunnel();
                Some(UpstreamTunnel::H1(stream, early))
            }
            ClientSession::H2(s) => s.into_tunnel().map(UpstreamTunnel::H2),
        }
    }

    /// For HTTP/2, the sending half of the request body, taken out so that the body
    /// can be sent while the response is read (see [`H2BodyWriter`]); None for
    /// HTTP/1.x, whose body goes through [`ClientSession::write_body`].
    pub fn take_body_writer(&mut self) -> Option<H2BodyWriter> {
        match self {
            ClientSession::H1(_) => None,
            ClientSession::H2(s) => s.take_body_writer(),
        }
    }

    /// Uses these timeouts from now on.
    pub fn set_timeouts(&mut self, timeouts: ClientTimeouts) {
        each_version!(self, s => s.set_timeouts(timeouts))
    }

    /// Whether any byte of the response arrived (before that, a failure on a reused
    /// connection may be retried on a fresh one).
    pub fn received_any(&self) -> bool {
        each_version!(self, s => s.received_any())
    }

    /// Sends the request head; `body` says how the request body that follows is framed.
    pub async fn write_request_header(
        &mut self,
        req: &mut RequestHeader,
        body: BodyFraming,
    ) -> Result<()> {
        each_version!(self, s => s.write_request_header(req, body).await)
    }

    /// Sends a piece of the request body.
    pub async fn write_body(&mut self, data: &Bytes) -> Result<()> {
        each_version!(self, s => s.write_body(data).await)
    }

    /// Ends the request body, with trailers if any.
    pub async fn finish_body(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        each_version!(self, s => s.finish_body(trailers).await)
    }

    /// Reads the next response head (interim 1xx heads included).
    pub async fn read_response_header(&mut self) -> Result<ResponseHeader> {
        each_version!(self, s => s.read_response_header().await)
    }

    /// Whether response body bytes are already buffered (then no flush is needed
    /// before reading them).
    pub fn has_buffered_body(&self) -> bool {
        each_version!(self, s => s.has_buffered_body())
    }

    /// Reads the next piece of the response body; `None` at its end.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        each_version!(self, s => s.read_body().await)
    }

    /// The response trailers, once the body ended.
    pub fn take_trailers(&mut self) -> Option<HeaderMap> {
        each_version!(self, s => s.take_trailers())
    }

    /// Keeps the connection out of the pool after this exchange.
    pub fn set_no_reuse(&mut self) {
        each_version!(self, s => s.set_no_reuse())
    }
}

impl From<H1ClientSession> for ClientSession {
    fn from(s: H1ClientSession) -> Self {
        ClientSession::H1(s)
    }
}

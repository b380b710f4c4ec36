//! The downstream side of HTTP/3: a QUIC connection carrying many concurrent requests
//! ([`H3ServerConnection`]), each served through an [`H3ServerStream`] that has the same
//! per-request methods as the HTTP/1 and HTTP/2 server sessions.
//!
//! As with HTTP/2, the connection's control streams are only read while
//! [`H3ServerConnection::accept`] is polled: keep calling it and serve the streams it
//! hands out on tasks of their own.

use std::time::Duration;

use bytes::{Buf, Bytes};
use h3::error::{Code, ConnectionError, StreamError};
use http::{header, HeaderMap, Method, StatusCode, Version};

use super::H3ServerOptions;
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::http::header::{error_body, ERROR_CONTENT_TYPE};
use crate::protocols::http::v1::BodyFraming;
use crate::protocols::http::v2::convert::{request_from_h2, response_to_h2};
use crate::protocols::http::{RequestHeader, ResponseHeader};
use crate::protocols::{ClientAddr, ConnectionInfo};
use crate::shutdown::{Phase, ShutdownWatch};

type QuicConn = h3_quinn::Connection;
type RequestStream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;
/// A request stream whose head was not read yet.
type Resolver = h3::server::RequestResolver<QuicConn, Bytes>;

/// An error of the HTTP/3 connection as one of ours.
fn conn_error(context: &str, e: ConnectionError) -> Error {
    let kind = if e.is_h3_no_error() {
        ErrorKind::ConnectionClosed
    } else {
        ErrorKind::ConnectionReset
    };
    Error::because(kind, Side::Downstream, context.to_string(), e)
}

/// An error of one request stream as one of ours.
fn stream_error(context: &str, e: StreamError) -> Error {
    let kind = match &e {
        StreamError::HeaderTooBig { .. } => ErrorKind::HeadTooLarge,
        StreamError::StreamError { .. } => ErrorKind::InvalidHead,
        _ => ErrorKind::ConnectionReset,
    };
    Error::because(kind, Side::Downstream, context.to_string(), e)
}

fn timeout_error(kind: ErrorKind, what: &str) -> Error {
    Error::new(kind, Side::Downstream, format!("{what}: timed out"))
}

/// One client connection speaking HTTP/3.
pub struct H3ServerConnection {
    conn: h3::server::Connection<QuicConn, Bytes>,
    info: ConnectionInfo,
    opts: H3ServerOptions,
    shutdown: ShutdownWatch,
    streams: u64,
    closing: Closing,
    /// The QUIC connection under `conn`, for its round-trip time.
    quic: quinn::Connection,
}

/// Where a connection is in its graceful close (RFC 9114, section 5.2).
#[derive(Debug, Clone, Copy)]
enum Closing {
    /// Serving.
    Open,
    /// A first GOAWAY said the connection is closing without refusing anything: the
    /// client stops opening requests, and those it sent before it saw the GOAWAY are
    /// still accepted until the deadline.
    Announced(tokio::time::Instant),
    /// The final GOAWAY named the last request accepted; no more are.
    Closed,
}

/// Requests the first GOAWAY leaves room for: more than a client can have in flight.
const ANNOUNCED_ROOM: usize = 1 << 20;
/// Least time between the two GOAWAYs; at least twice the round-trip time otherwise.
const MIN_GOAWAY_INTERVAL: Duration = Duration::from_millis(200);
/// Least time a drained connection is kept after its last response, for that response
/// to be acknowledged; at least four round trips otherwise.
const MIN_LINGER: Duration = Duration::from_millis(500);

/// A request whose stream was accepted, its head not read yet: read it with
/// [`H3PendingRequest::resolve`] on the request's own task, so that a slow client
/// holds up no other request.
pub struct H3PendingRequest {
    resolver: Resolver,
    info: ConnectionInfo,
    opts: H3ServerOptions,
    index: u64,
}

impl H3ServerConnection {
    /// Sets up HTTP/3 (SETTINGS, control and QPACK streams) on an established QUIC
    /// connection, within the handshake timeout.
    pub async fn new(
        conn: quinn::Connection,
        info: ConnectionInfo,
        opts: H3ServerOptions,
        shutdown: ShutdownWatch,
    ) -> Result<Self> {
        let mut builder = h3::server::builder();
        builder.max_field_section_size(opts.max_header_list_size);
        let quic = conn.clone();
        let setup = builder.build(h3_quinn::Connection::new(conn));
        let conn = tokio::time::timeout(opts.handshake_timeout, setup)
            .await
            .map_err(|_| timeout_error(ErrorKind::ReadTimeout, "HTTP/3 connection setup"))?
            .map_err(|e| conn_error("HTTP/3 connection setup", e))?;
        Ok(H3ServerConnection {
            conn,
            info,
            opts,
            shutdown,
            streams: 0,
            closing: Closing::Open,
            quic,
        })
    }

    /// The client's address.
    pub fn peer(&self) -> &ClientAddr {
        self.info.client()
    }

    /// The next request, or `None` once the connection is over: the client closed it,
    /// or the server is draining (the shutdown watch reached [`Phase::Draining`]). A
    /// drain closes gracefully: a first GOAWAY announces it, requests the client sent
    /// before seeing it are still accepted for two round trips (at least 200 ms), then
    /// a final GOAWAY names the last one accepted (later ones are refused with
    /// H3_REQUEST_REJECTED, which tells the client they were not processed). The requests accepted still
    /// finish, on their own tasks, while the connection is kept (drop it after them).
    /// An `Err` is a connection failure; the next call returns `None`.
    pub async fn accept(&mut self) -> Option<Result<H3PendingRequest>> {
        loop {
            let next = match self.closing {
                Closing::Closed => return None,
                Closing::Open => tokio::select! {
                    biased;
                    _ = self.shutdown.reached(Phase::Draining) => {
                        if let Err(e) = self.conn.shutdown(ANNOUNCED_ROOM).await {
                            self.closing = Closing::Closed;
                            return Some(Err(conn_error("sending GOAWAY", e)));
                        }
                        let interval = (self.quic.rtt() * 2).max(MIN_GOAWAY_INTERVAL);
                        self.closing = Closing::Announced(tokio::time::Instant::now() + interval);
                        continue;
                    }
                    r = self.conn.accept() => r,
                },
                Closing::Announced(deadline) => tokio::select! {
                    biased;
                    _ = tokio::time::sleep_until(deadline) => {
                        self.closing = Closing::Closed;
                        return match self.conn.shutdown(0).await {
                            Ok(()) => None,
                            Err(e) => Some(Err(conn_error("sending GOAWAY", e))),
                        };
                    }
                    r = self.conn.accept() => r,
                },
            };
            return match next {
                Ok(Some(resolver)) => {
                    self.streams += 1;
                    Some(Ok(H3PendingRequest {
                        resolver,
                        info: self.info.clone(),
                        opts: self.opts,
                        index: self.streams,
                    }))
                }
                Ok(None) => {
                    self.closing = Closing::Closed;
                    None
                }
                Err(e) => {
                    self.closing = Closing::Closed;
                    if e.is_h3_no_error() {
                        None
                    } else {
                        Some(Err(conn_error("HTTP/3 client connection", e)))
                    }
                }
            };
        }
    }

    /// Waits, once every request of the connection has ended, until the client closes
    /// it or its last responses had time to be acknowledged: closing a QUIC connection
    /// discards the data it has not delivered yet.
    /// (The future holds none of `self`: await it beside
    /// [`H3ServerConnection::refuse_late_requests`].)
    pub fn linger(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let quic = self.quic.clone();
        async move {
            let linger = (quic.rtt() * 4).max(MIN_LINGER);
            let _ = tokio::time::timeout(linger, quic.closed()).await;
        }
    }

    /// After the final GOAWAY, refuses the requests the client still opens (it sent
    /// them before it saw the GOAWAY) with H3_REQUEST_REJECTED, which tells it they
    /// were not processed, until the connection is over. Run it while the accepted
    /// requests finish; it never returns.
    pub async fn refuse_late_requests(&mut self) {
        if matches!(self.closing, Closing::Closed) {
            // h3 resets, itself, every stream past the final GOAWAY's.
            while let Ok(Some(_)) = self.conn.accept().await {}
        }
        std::future::pending::<()>().await;
    }
}

impl H3PendingRequest {
    /// Reads the request head (within the header timeout). A head that does not make
    /// a valid request is answered `400` here and an error returned.
    pub async fn resolve(self) -> Result<H3ServerStream> {
        let read = self.resolver.resolve_request();
        let (mut req, mut stream) = tokio::time::timeout(self.opts.header_timeout, read)
            .await
            .map_err(|_| timeout_error(ErrorKind::ReadTimeout, "reading the HTTP/3 request head"))?
            .map_err(|e| stream_error("reading the HTTP/3 request head", e))?;
        let mut head = match request_from_h2(&mut req) {
            Ok(h) => h,
            Err(e) => {
                let mut resp = http::Response::new(());
                *resp.status_mut() = StatusCode::BAD_REQUEST;
                let _ = stream.send_response(resp).await;
                let _ = stream.finish().await;
                return Err(e);
            }
        };
        head.version = Version::HTTP_3;
        let mut s = H3ServerStream {
            req: head,
            info: self.info,
            index: self.index,
            body_timeout: self.opts.body_timeout,
            write_timeout: self.opts.write_timeout,
            stream,
            first: None,
            body_done: false,
            framing: BodyFraming::Empty,
            trailers: None,
            resp_status: None,
            head_only: false,
            resp_done: false,
            bytes_read: 0,
            bytes_sent: 0,
        };
        s.framing = s.find_body_framing().await?;
        Ok(s)
    }
}

/// One request on an HTTP/3 connection and its response: the per-request methods of
/// the HTTP/1 server session, with the same names and meaning.
pub struct H3ServerStream {
    req: RequestHeader,
    info: ConnectionInfo,
    index: u64,
    body_timeout: Duration,
    write_timeout: Duration,
    stream: RequestStream,
    /// A first body piece read early to learn whether there is a body at all.
    first: Option<Bytes>,
    body_done: bool,
    framing: BodyFraming,
    trailers: Option<HeaderMap>,
    resp_status: Option<StatusCode>,
    head_only: bool,
    resp_done: bool,
    bytes_read: u64,
    bytes_sent: u64,
}

impl std::fmt::Debug for H3ServerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H3ServerStream")
            .field("method", &self.req.method)
            .field("uri", &self.req.uri)
            .field("index", &self.index)
            .field("resp_status", &self.resp_status)
            .field("resp_done", &self.resp_done)
            .finish()
    }
}

impl H3ServerStream {
    /// How the body is framed: by `content-length` when the client sent one; else the
    /// first piece is awaited (HTTP/3 has no end-of-stream flag on the head), so that a
    /// request without a body goes upstream without one.
    async fn find_body_framing(&mut self) -> Result<BodyFraming> {
        let length = self
            .req
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().parse::<u64>());
        match length {
            Some(Ok(0)) => {}
            Some(Ok(n)) => return Ok(BodyFraming::Length(n)),
            Some(Err(_)) => {
                return Err(Error::new(
                    ErrorKind::InvalidHead,
                    Side::Downstream,
                    "bad content-length in an HTTP/3 request",
                ))
            }
            None => {
                if let Some(first) = self.recv().await? {
                    self.first = Some(first);
                    return Ok(BodyFraming::Chunked);
                }
            }
        }
        self.body_done = true;
        Ok(BodyFraming::Empty)
    }

    /// The next body piece off the stream (trailers read at its end).
    async fn recv(&mut self) -> Result<Option<Bytes>> {
        let read = tokio::time::timeout(self.body_timeout, self.stream.recv_data())
            .await
            .map_err(|_| timeout_error(ErrorKind::ReadTimeout, "reading the request body"))?
            .map_err(|e| stream_error("reading the request body", e))?;
        match read {
            Some(mut buf) => Ok(Some(buf.copy_to_bytes(buf.remaining()))),
            None => {
                let trailers = tokio::time::timeout(self.body_timeout, self.stream.recv_trailers())
                    .await
                    .map_err(|_| {
                        timeout_error(ErrorKind::ReadTimeout, "reading the request trailers")
                    })?
                    .map_err(|e| stream_error("reading the request trailers", e))?;
                self.trailers = trailers;
                self.body_done = true;
                Ok(None)
            }
        }
    }

    /// The request head (version HTTP/3, origin-form target, `:authority` as `Host`).
    pub fn req_header(&self) -> &RequestHeader {
        &self.req
    }

    /// The request head, to edit in place.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.req
    }

    /// The client's address.
    pub fn peer(&self) -> &ClientAddr {
        self.info.client()
    }

    /// The connection the stream is on (client and local addresses; always TLS).
    pub fn connection(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Which request of its connection this is (1 for the first).
    pub fn requests_served(&self) -> u64 {
        self.index
    }

    /// How the request body is to be forwarded: `Empty`, `Length` when the client gave
    /// `content-length`, else `Chunked` (streamed with no known length).
    pub fn req_body_framing(&self) -> BodyFraming {
        self.framing
    }

    /// Has nothing to do: HTTP/3 clients do not wait for `100 Continue` here (the
    /// body is read as it comes).
    pub async fn send_continue(&mut self) -> Result<()> {
        Ok(())
    }

    /// The next piece of the request body; `None` at its end (then see
    /// [`H3ServerStream::req_trailers`]). Waits at most the body timeout.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if let Some(first) = self.first.take() {
            self.bytes_read += first.len() as u64;
            return Ok(Some(first));
        }
        if self.body_done {
            return Ok(None);
        }
        let piece = self.recv().await?;
        if let Some(p) = &piece {
            self.bytes_read += p.len() as u64;
        }
        Ok(piece)
    }

    /// The request trailers, once the body was read to its end.
    pub fn req_trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }

    /// Has no effect: a stream never carries another request, and closing the
    /// connection would end the client's other streams.
    pub fn set_keepalive(&mut self, _keepalive: bool) {}

    /// Sends a response head, connection-specific fields removed. Interim `1xx` heads
    /// are not forwarded; `101` is refused (HTTP/3 has no protocol switch). No body
    /// follows a response to HEAD, a 204 or a 304.
    pub async fn write_response_header(&mut self, resp: &mut ResponseHeader) -> Result<()> {
        let status = resp.status;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Error::new(
                ErrorKind::InvalidHead,
                Side::Internal,
                "101 Switching Protocols cannot be sent over HTTP/3",
            ));
        }
        if status.is_informational() {
            return Ok(());
        }
        if self.resp_status.is_some() {
            return Err(Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "a second final response head on one HTTP/3 stream",
            ));
        }
        resp.version = Version::HTTP_3;
        let mut out = response_to_h2(resp);
        *out.version_mut() = Version::HTTP_3;
        self.head_only = self.req.method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        tokio::time::timeout(self.write_timeout, self.stream.send_response(out))
            .await
            .map_err(|_| timeout_error(ErrorKind::WriteTimeout, "sending the response head"))?
            .map_err(|e| stream_error("sending the response head", e))?;
        self.resp_status = Some(status);
        if self.head_only {
            self.finish_stream().await?;
        }
        Ok(())
    }

    /// The status of the final response sent, if any.
    pub fn response_status(&self) -> Option<StatusCode> {
        self.resp_status
    }

    /// Whether a final response head was sent.
    pub fn response_started(&self) -> bool {
        self.resp_status.is_some()
    }

    /// Sends a piece of the response body, waiting (up to the write timeout) for the
    /// client's flow-control window. Bytes after a head-only response are dropped.
    pub async fn write_body(&mut self, data: &Bytes) -> Result<()> {
        if data.is_empty() || self.head_only {
            return Ok(());
        }
        if self.resp_status.is_none() || self.resp_done {
            return Err(Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "response body written before its head or after its end",
            ));
        }
        tokio::time::timeout(self.write_timeout, self.stream.send_data(data.clone()))
            .await
            .map_err(|_| timeout_error(ErrorKind::WriteTimeout, "writing the response body"))?
            .map_err(|e| stream_error("writing the response body", e))?;
        self.bytes_sent += data.len() as u64;
        Ok(())
    }

    async fn finish_stream(&mut self) -> Result<()> {
        self.resp_done = true;
        tokio::time::timeout(self.write_timeout, self.stream.finish())
            .await
            .map_err(|_| timeout_error(ErrorKind::WriteTimeout, "ending the response"))?
            .map_err(|e| stream_error("ending the response", e))
    }

    /// Ends the response, with trailers if any.
    pub async fn finish_response(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        if self.resp_done {
            return Ok(());
        }
        if self.resp_status.is_none() {
            return Err(Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "response finished before its head",
            ));
        }
        if let Some(t) = trailers.filter(|t| !t.is_empty()) {
            let send = self.stream.send_trailers(t.clone());
            tokio::time::timeout(self.write_timeout, send)
                .await
                .map_err(|_| timeout_error(ErrorKind::WriteTimeout, "sending trailers"))?
                .map_err(|e| stream_error("sending trailers", e))?;
        }
        self.finish_stream().await
    }

    /// Has nothing to do: QUIC sends as the connection is driven.
    pub async fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Sends a complete small response (used for errors and built-in answers).
    pub async fn respond(
        &mut self,
        status: StatusCode,
        content_type: &str,
        body: Bytes,
    ) -> Result<()> {
        let mut resp = ResponseHeader::for_local_body(status, content_type, body.len());
        self.write_response_header(&mut resp).await?;
        self.write_body(&body).await?;
        self.finish_response(None).await
    }

    /// Answers an error status with a short text body.
    pub async fn respond_error(&mut self, status: StatusCode) -> Result<()> {
        self.respond(status, ERROR_CONTENT_TYPE, error_body(status))
            .await
    }

    /// Body bytes received and sent.
    pub fn body_bytes(&self) -> (u64, u64) {
        (self.bytes_read, self.bytes_sent)
    }

    /// Whether the response was sent to its end.
    pub fn response_finished(&self) -> bool {
        self.resp_done
    }
}

impl Drop for H3ServerStream {
    /// A response not sent to its end is cut with H3_INTERNAL_ERROR, so the client
    /// cannot take it for complete (a QUIC stream dropped unfinished would end cleanly).
    fn drop(&mut self) {
        if !self.resp_done {
            self.stream.stop_stream(Code::H3_INTERNAL_ERROR);
        }
        if !self.body_done {
            self.stream.stop_sending(Code::H3_NO_ERROR);
        }
    }
}

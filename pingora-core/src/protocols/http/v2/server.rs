//! The downstream side of HTTP/2: a client connection carrying many concurrent
//! requests ([`H2ServerConnection`]), each served through an [`H2ServerStream`] that
//! has the same per-request methods as the HTTP/1 server session.
//!
//! # Driving the connection
//!
//! All I/O of a connection happens inside [`H2ServerConnection::accept`]: frames of
//! every stream are read and written only while it is being polled. The owner must
//! therefore keep calling `accept` until it returns `None`, and serve the streams it
//! hands out concurrently (in spawned tasks, or in the same `select!` loop), never
//! awaiting a stream's work while `accept` is not being polled. For example:
//!
//! ```no_run
//! # use pingora_core::protocols::http::v2::server::H2ServerConnection;
//! # async fn serve(mut conn: H2ServerConnection) {
//! while let Some(next) = conn.accept().await {
//!     match next {
//!         Ok(mut stream) => {
//!             tokio::spawn(async move {
//!                 let _ = stream.respond_error(http::StatusCode::NOT_FOUND).await;
//!             });
//!         }
//!         Err(e) => log::debug!("HTTP/2 connection ended: {e}"),
//!     }
//! }
//! # }
//! ```

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{header, HeaderMap, Method, Response, StatusCode, Version};
use tokio::time::{Instant, Sleep};

use super::convert::{
    request_body_framing, request_from_h2, response_to_h2, upgrade_from_extended_connect,
};
use super::flow::{self, flow_error, h2_error};
use super::io::PrefixedIo;
use super::keepalive::{Keepalive, KeepalivePing};
use super::tunnel::H2Tunnel;
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::http::header::{error_body, ERROR_CONTENT_TYPE};
use crate::protocols::http::v1::BodyFraming;
use crate::protocols::http::{RequestHeader, ResponseHeader};
use crate::protocols::{ClientAddr, ConnectionInfo, Stream};
use crate::shutdown::{Phase, ShutdownWatch};

/// Settings, limits and timeouts for serving HTTP/2 client connections.
#[derive(Debug, Clone, Copy)]
pub struct H2ServerOptions {
    /// Most streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Receive window of each stream, in bytes.
    pub initial_stream_window: u32,
    /// Receive window of the whole connection, in bytes.
    pub initial_connection_window: u32,
    /// Largest request head accepted (SETTINGS_MAX_HEADER_LIST_SIZE).
    pub max_header_list_size: u32,
    /// Most header fields in one request (as HTTP/1's `HeadLimits::max_headers`):
    /// more are answered `431`.
    pub max_headers: usize,
    /// Largest frame payload accepted (SETTINGS_MAX_FRAME_SIZE, 16 KiB to 16 MiB).
    pub max_frame_size: u32,
    /// Most time for the client to send its connection preface.
    pub handshake_timeout: Duration,
    /// Most time between two pieces of a request body.
    pub body_timeout: Duration,
    /// Most time to wait for the client to open window for response bytes.
    pub write_timeout: Duration,
    /// How long a connection with no open stream is kept before it is closed
    /// (with a GOAWAY).
    pub idle_timeout: Duration,
    /// PINGs that detect a vanished client; off when `None`.
    pub keepalive_ping: Option<KeepalivePing>,
    /// Accept extended CONNECT (RFC 8441, SETTINGS_ENABLE_CONNECT_PROTOCOL): WebSocket
    /// and other upgrades over HTTP/2, served as HTTP/1.1 upgrade requests (see
    /// [`H2ServerStream::is_extended_connect`]).
    pub enable_connect_protocol: bool,
}

impl Default for H2ServerOptions {
    fn default() -> Self {
        H2ServerOptions {
            max_concurrent_streams: 100,
            initial_stream_window: 1 << 20,
            initial_connection_window: 4 << 20,
            max_header_list_size: 64 * 1024,
            max_headers: 128,
            max_frame_size: 16 * 1024,
            handshake_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            keepalive_ping: None,
            enable_connect_protocol: true,
        }
    }
}

/// One client connection speaking HTTP/2. See the [module docs](self) for how it
/// must be driven.
pub struct H2ServerConnection {
    conn: h2::server::Connection<PrefixedIo<Stream>, Bytes>,
    info: ConnectionInfo,
    opts: H2ServerOptions,
    shutdown: ShutdownWatch,
    streams: u64,
    going_away: bool,
    ended: bool,
    keepalive: Option<Keepalive>,
    idle: Pin<Box<Sleep>>,
    /// Whether streams were open at the last idle check (or one arrived since): the
    /// connection has then not been idle for a whole period yet.
    busy: bool,
}

/// A new request and the handle to answer it.
type Incoming = (http::Request<RecvStream>, SendResponse<Bytes>);

enum ConnEvent {
    Incoming(Box<Incoming>),
    Ended,
    Failed(h2::Error),
    Drain,
    PeerGone,
    IdleCheck,
}

impl H2ServerConnection {
    /// Reads the client's connection preface and exchanges SETTINGS, within
    /// `opts.handshake_timeout`. `prefix` holds bytes already taken off `stream` (for
    /// h2c with prior knowledge, the preface bytes an HTTP/1 reader consumed while
    /// looking at them); they are read again before the stream.
    pub async fn handshake(
        stream: Stream,
        prefix: Bytes,
        conn: impl Into<ConnectionInfo>,
        opts: H2ServerOptions,
        shutdown: ShutdownWatch,
    ) -> Result<Self> {
        let conn_info = conn.into();
        let io = PrefixedIo::new(prefix, stream);
        let mut builder = h2::server::Builder::new();
        builder
            .max_concurrent_streams(opts.max_concurrent_streams)
            .initial_window_size(opts.initial_stream_window)
            .initial_connection_window_size(opts.initial_connection_window)
            .max_header_list_size(opts.max_header_list_size)
            .max_frame_size(opts.max_frame_size.clamp(16 * 1024, (1 << 24) - 1));
        if opts.enable_connect_protocol {
            builder.enable_connect_protocol();
        }
        let mut conn = tokio::time::timeout(opts.handshake_timeout, builder.handshake(io))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::ReadTimeout,
                    Side::Downstream,
                    "HTTP/2 connection preface not received in time",
                )
            })?
            .map_err(|e| h2_error(Side::Downstream, "HTTP/2 handshake with the client", e))?;
        let keepalive = match (opts.keepalive_ping, conn.ping_pong()) {
            (Some(cfg), Some(pings)) => Some(Keepalive::new(pings, cfg)),
            _ => None,
        };
        Ok(H2ServerConnection {
            conn,
            info: conn_info,
            opts,
            shutdown,
            streams: 0,
            going_away: false,
            ended: false,
            keepalive,
            idle: Box::pin(tokio::time::sleep(opts.idle_timeout)),
            busy: false,
        })
    }

    /// The client's address.
    pub fn peer(&self) -> &ClientAddr {
        self.info.client()
    }

    /// The connection: client and socket addresses, local address, TLS, PROXY header.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.info
    }

    /// How many requests this connection has carried so far.
    pub fn requests_served(&self) -> u64 {
        self.streams
    }

    /// The next request, or `None` once the connection is over. Drives the I/O of
    /// every stream of the connection: keep calling it (see the [module docs](self)).
    ///
    /// When the server starts draining (the shutdown watch reaches
    /// [`Phase::Draining`]) a GOAWAY is sent: streams already open finish, then the
    /// connection ends. A connection with no open stream for `idle_timeout` is closed
    /// the same way. An `Err` reports a connection-level failure; the next call
    /// returns `None`. Cancel-safe.
    pub async fn accept(&mut self) -> Option<Result<H2ServerStream>> {
        loop {
            if self.ended {
                return None;
            }
            let event = tokio::select! {
                biased;
                r = self.conn.accept() => match r {
                    Some(Ok(incoming)) => ConnEvent::Incoming(Box::new(incoming)),
                    Some(Err(e)) => ConnEvent::Failed(e),
                    None => ConnEvent::Ended,
                },
                _ = self.shutdown.reached(Phase::Draining), if !self.going_away => ConnEvent::Drain,
                _ = poll_fn(|cx| match self.keepalive.as_mut() {
                    Some(k) => k.poll_dead(cx),
                    None => std::task::Poll::Pending,
                }) => ConnEvent::PeerGone,
                _ = self.idle.as_mut(), if !self.going_away => ConnEvent::IdleCheck,
            };
            match event {
                ConnEvent::Ended => self.ended = true,
                ConnEvent::Failed(e) => {
                    self.ended = true;
                    return Some(Err(h2_error(
                        Side::Downstream,
                        "HTTP/2 client connection failed",
                        e,
                    )));
                }
                ConnEvent::Incoming(incoming) => {
                    let (req, respond) = *incoming;
                    self.streams += 1;
                    self.busy = true;
                    self.rearm_idle();
                    if let Some(stream) = self.new_stream(req, respond) {
                        return Some(Ok(stream));
                    }
                }
                ConnEvent::Drain => self.graceful_shutdown(),
                ConnEvent::PeerGone => {
                    log::debug!(
                        "HTTP/2 client {} stopped answering PINGs",
                        self.info.client()
                    );
                    self.ended = true;
                    return Some(Err(Error::new(
                        ErrorKind::ReadTimeout,
                        Side::Downstream,
                        "the HTTP/2 client did not answer a PING in time",
                    )));
                }
                ConnEvent::IdleCheck => {
                    // Closed only after a whole period with no stream open, so between
                    // one and two periods after the last stream ended.
                    if self.conn.has_streams() || self.busy {
                        self.busy = self.conn.has_streams();
                        self.rearm_idle();
                    } else {
                        self.graceful_shutdown();
                    }
                }
            }
        }
    }

    fn rearm_idle(&mut self) {
        let next = Instant::now() + self.opts.idle_timeout;
        self.idle.as_mut().reset(next);
    }

    /// Builds the stream for a new request; a request that cannot be converted is
    /// answered `400` here and `None` returned.
    fn new_stream(
        &mut self,
        mut req: http::Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
    ) -> Option<H2ServerStream> {
        let refuse = |respond: &mut SendResponse<Bytes>, status| {
            let mut resp = Response::new(());
            *resp.status_mut() = status;
            let _ = respond.send_response(resp, true);
        };
        // The same limit as over HTTP/1 (found by fuzzing the HTTP/2 -> HTTP/1 path:
        // 129 fields became a head that an HTTP/1 origin with that limit refuses).
        if req.headers().len() > self.opts.max_headers {
            log::debug!(
                "HTTP/2 request from {} with more than {} header fields: answered 431",
                self.info.client(),
                self.opts.max_headers
            );
            refuse(&mut respond, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
            return None;
        }
        let protocol = req
            .extensions()
            .get::<h2::ext::Protocol>()
            .map(|p| p.as_str().to_string());
        let converted = match &protocol {
            Some(p) => upgrade_from_extended_connect(&req, p),
            None => request_from_h2(&mut req),
        };
        let head = match converted {
            Ok(h) => h,
            Err(e) => {
                log::debug!("bad HTTP/2 request from {}: {e}", self.info.client());
                refuse(&mut respond, StatusCode::BAD_REQUEST);
                return None;
            }
        };
        let body = req.into_body();
        let extended_connect = protocol.is_some();
        // The stream of an extended CONNECT carries the tunnel, not a request body.
        let framing = if extended_connect {
            BodyFraming::Empty
        } else {
            request_body_framing(&head.headers, body.is_end_stream())
        };
        let continue_pending = framing != BodyFraming::Empty && expects_continue(&head.headers);
        Some(H2ServerStream {
            req: head,
            info: self.info.clone(),
            index: self.streams,
            body_timeout: self.opts.body_timeout,
            write_timeout: self.opts.write_timeout,
            body,
            body_done: framing == BodyFraming::Empty,
            framing,
            trailers: None,
            continue_pending,
            respond,
            send: None,
            resp_status: None,
            head_only: false,
            resp_done: false,
            bytes_read: 0,
            bytes_sent: 0,
            extended_connect,
        })
    }

    /// Sends GOAWAY: no new streams are accepted (after about one round trip); the
    /// streams already open finish, then [`H2ServerConnection::accept`] returns `None`.
    pub fn graceful_shutdown(&mut self) {
        if !self.going_away {
            self.going_away = true;
            self.conn.graceful_shutdown();
        }
    }
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// One request on an HTTP/2 connection and its response: the per-request methods of
/// the HTTP/1 server session, with the same names and meaning.
pub struct H2ServerStream {
    req: RequestHeader,
    info: ConnectionInfo,
    index: u64,
    body_timeout: Duration,
    write_timeout: Duration,
    body: RecvStream,
    body_done: bool,
    framing: BodyFraming,
    trailers: Option<HeaderMap>,
    continue_pending: bool,
    respond: SendResponse<Bytes>,
    send: Option<SendStream<Bytes>>,
    resp_status: Option<StatusCode>,
    head_only: bool,
    resp_done: bool,
    bytes_read: u64,
    bytes_sent: u64,
    /// The request is an extended CONNECT, served as an upgrade.
    extended_connect: bool,
}

impl std::fmt::Debug for H2ServerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2ServerStream")
            .field("method", &self.req.method)
            .field("uri", &self.req.uri)
            .field("index", &self.index)
            .field("resp_status", &self.resp_status)
            .field("resp_done", &self.resp_done)
            .finish()
    }
}

impl H2ServerStream {
    /// The request head (version HTTP/2, origin-form target, `:authority` as `Host`).
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

    /// The connection the stream is on: client and socket addresses, local address,
    /// TLS, PROXY header.
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

    /// Whether the request has a body that was not read to its end yet.
    pub fn has_pending_body(&self) -> bool {
        !self.body_done
    }

    /// Sends an interim `100 Continue` if the client asked for one with
    /// `expect: 100-continue` and it was not sent yet.
    pub async fn send_continue(&mut self) -> Result<()> {
        if self.continue_pending {
            self.continue_pending = false;
            let mut resp = Response::new(());
            *resp.status_mut() = StatusCode::CONTINUE;
            self.respond
                .send_informational(resp)
                .map_err(|e| h2_error(Side::Downstream, "sending 100 Continue", e))?;
        }
        Ok(())
    }

    /// The next piece of the request body; `None` at its end (then see
    /// [`H2ServerStream::req_trailers`]). The flow-control window is given back as
    /// pieces are taken. Waits at most the body timeout. Cancel-safe once
    /// [`H2ServerStream::send_continue`] was called.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        self.send_continue().await?;
        if self.body_done {
            return Ok(None);
        }
        let side = Side::Downstream;
        match flow::recv_data(&mut self.body, self.body_timeout).await {
            Ok(Some(data)) => {
                self.bytes_read += data.len() as u64;
                Ok(Some(data))
            }
            Ok(None) => {
                self.trailers = flow::recv_trailers(&mut self.body, self.body_timeout)
                    .await
                    .map_err(|e| flow_error(side, "reading the request trailers", e))?;
                self.body_done = true;
                Ok(None)
            }
            Err(e) => Err(flow_error(side, "reading the request body", e)),
        }
    }

    /// The request trailers, once the body was read to its end.
    pub fn req_trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }

    /// Has no effect: an HTTP/2 stream never carries another request, and closing the
    /// connection would end the client's other streams.
    pub fn set_keepalive(&mut self, _keepalive: bool) {}

    /// Always true: the connection stays open for the client's other streams.
    pub fn will_keepalive(&self) -> bool {
        true
    }

    /// Whether the request is an extended CONNECT (RFC 8441), presented as the HTTP/1.1
    /// upgrade request it stands for (`GET`, `Connection: upgrade`, `Upgrade:
    /// PROTOCOL`): a `101` response head opens the tunnel (sent as `200`), then
    /// [`H2ServerStream::into_tunnel`] carries its bytes.
    pub fn is_extended_connect(&self) -> bool {
        self.extended_connect
    }

    /// The stream as a byte stream, once a `101` opened the tunnel of an extended
    /// CONNECT; `None` otherwise.
    pub fn into_tunnel(self) -> Option<H2Tunnel> {
        let open = self.extended_connect && self.resp_status == Some(StatusCode::OK);
        match (open, self.send) {
            (true, Some(send)) => Some(H2Tunnel::new(self.body, send)),
            _ => None,
        }
    }

    /// Sends a response head. Connection-specific fields are removed. An interim 1xx
    /// head (such as 103) is sent as an informational response; `101` is refused
    /// (HTTP/2 has no protocol switch) except on an extended CONNECT, where it is sent
    /// as `200` and opens the tunnel; there, a `2xx` that is not a `101` is refused (the
    /// upstream did not switch, and a client would take it for an open tunnel). No body
    /// follows a response to HEAD, a 204 or a 304.
    pub async fn write_response_header(&mut self, resp: &mut ResponseHeader) -> Result<()> {
        resp.version = Version::HTTP_2;
        if self.extended_connect && self.resp_status.is_none() {
            if resp.status.is_success() {
                return Err(Error::new(
                    ErrorKind::InvalidHead,
                    Side::Upstream,
                    format!(
                        "the upstream answered {} to an upgrade (extended CONNECT) instead of \
                         101 Switching Protocols",
                        resp.status.as_u16()
                    ),
                ));
            }
            if resp.status == StatusCode::SWITCHING_PROTOCOLS {
                resp.status = StatusCode::OK;
                for name in [header::UPGRADE, header::SEC_WEBSOCKET_ACCEPT] {
                    resp.headers.remove(name);
                }
                let send = self
                    .respond
                    .send_response(response_to_h2(resp), false)
                    .map_err(|e| h2_error(Side::Downstream, "sending the response head", e))?;
                self.resp_status = Some(StatusCode::OK);
                self.send = Some(send);
                return Ok(());
            }
        }
        let status = resp.status;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Error::new(
                ErrorKind::InvalidHead,
                Side::Internal,
                "101 Switching Protocols cannot be sent over HTTP/2",
            ));
        }
        if self.resp_status.is_some() {
            return Err(Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "a second final response head on one HTTP/2 stream",
            ));
        }
        let h2_resp = response_to_h2(resp);
        if status.is_informational() {
            if status != StatusCode::CONTINUE {
                self.respond
                    .send_informational(h2_resp)
                    .map_err(|e| h2_error(Side::Downstream, "sending an interim response", e))?;
            }
            return Ok(());
        }
        self.continue_pending = false;
        self.head_only = self.req.method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let send = self
            .respond
            .send_response(h2_resp, self.head_only)
            .map_err(|e| h2_error(Side::Downstream, "sending the response head", e))?;
        self.resp_status = Some(status);
        if self.head_only {
            self.resp_done = true;
        } else {
            self.send = Some(send);
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

    /// Sends a piece of the response body, in pieces no larger than the window the
    /// client granted, waiting (up to the write timeout each time) for more window.
    /// Bytes after a head-only response are dropped.
    pub async fn write_body(&mut self, data: &Bytes) -> Result<()> {
        if data.is_empty() || self.head_only {
            return Ok(());
        }
        let send = self.send.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "response body written before its head or after its end",
            )
        })?;
        flow::send_data(send, data, self.write_timeout)
            .await
            .map_err(|e| flow_error(Side::Downstream, "writing the response body", e))?;
        self.bytes_sent += data.len() as u64;
        Ok(())
    }

    /// Ends the response: with `trailers` when there are any, else END_STREAM.
    pub async fn finish_response(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        if self.resp_done {
            return Ok(());
        }
        let send = self.send.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "response finished before its head",
            )
        })?;
        flow::finish(send, trailers)
            .map_err(|e| flow_error(Side::Downstream, "ending the response", e))?;
        self.resp_done = true;
        self.send = None;
        Ok(())
    }

    /// Has nothing to do: frames are written by the connection as it is driven.
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

    /// Always false: a stream carries exactly one request (the connection's next
    /// request comes from [`H2ServerConnection::accept`]).
    pub fn can_reuse(&self) -> bool {
        false
    }

    /// Whether the response was sent to its end.
    pub fn response_finished(&self) -> bool {
        self.resp_done
    }

    /// Ends the stream: a response not sent to its end is cut with RST_STREAM
    /// (INTERNAL_ERROR), so the client cannot take it for complete. The connection
    /// and its other streams go on.
    pub async fn shutdown(&mut self) {
        if !self.resp_done {
            match self.send.as_mut() {
                Some(send) => send.send_reset(Reason::INTERNAL_ERROR),
                None => self.respond.send_reset(Reason::INTERNAL_ERROR),
            }
            self.resp_done = true;
            self.send = None;
        }
    }
}

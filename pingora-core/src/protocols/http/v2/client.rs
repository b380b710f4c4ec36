//! The upstream side of HTTP/2: a shared connection to a server
//! ([`H2ClientConnection`]) carrying many concurrent exchanges, each through an
//! [`H2ClientStream`] that has the same methods as the HTTP/1 client session.
//!
//! The connection's I/O runs in a task spawned at handshake; the handle is cheap to
//! clone. It counts its streams against the server's SETTINGS_MAX_CONCURRENT_STREAMS
//! ([`H2ClientConnection::has_capacity`]) and notices GOAWAY and the end of the
//! connection ([`H2ClientConnection::is_closed`]).
//!
//! # Retrying
//!
//! An exchange the server provably did not process fails with `retry == true` on
//! [`Side::Upstream`]: kind [`ErrorKind::H2StreamRefused`] for a REFUSED_STREAM reset
//! or a GOAWAY whose last stream id is below the stream's, and kind
//! `ConnectionClosed` (or `H2StreamRefused` after a GOAWAY) when the request could not
//! even be sent. Any other failure has `retry == false`.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use http::HeaderMap;
use tokio::sync::watch;

use super::body_writer::H2BodyWriter;
use super::convert::{extended_connect_to_h2, request_to_h2, response_from_h2, websocket_accept};
use super::flow::{self, h2_error, FlowError};
use super::io::{FrameObserver, FrameWatch};
use super::keepalive::{Keepalive, KeepalivePing};
use super::tunnel::H2Tunnel;
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::http::v1::client::ClientTimeouts;
use crate::protocols::http::v1::{is_upgrade_request, upgrade_protocol, BodyFraming};
use crate::protocols::http::{RequestHeader, ResponseHeader};
use crate::protocols::Stream;

/// Settings and timeouts of an HTTP/2 connection to an upstream.
#[derive(Debug, Clone, Copy)]
pub struct H2ClientOptions {
    /// Whether requests say `:scheme: https` (the connection is TLS) or `http`.
    pub https: bool,
    /// Receive window of each stream, in bytes.
    pub initial_stream_window: u32,
    /// Receive window of the whole connection, in bytes.
    pub initial_connection_window: u32,
    /// Largest frame payload accepted (16 KiB to 16 MiB).
    pub max_frame_size: u32,
    /// Largest response head accepted.
    pub max_header_list_size: u32,
    /// Most time for the handshake, including the server's first SETTINGS frame.
    pub handshake_timeout: Duration,
    /// PINGs that detect a vanished server; off when `None`.
    pub keepalive_ping: Option<KeepalivePing>,
}

impl Default for H2ClientOptions {
    fn default() -> Self {
        H2ClientOptions {
            https: false,
            initial_stream_window: 1 << 20,
            initial_connection_window: 4 << 20,
            max_frame_size: 16 * 1024,
            max_header_list_size: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            keepalive_ping: None,
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnPhase {
    /// Handshake sent; the server's SETTINGS not seen yet.
    Starting,
    /// The server's SETTINGS arrived: streams can be opened.
    Ready,
    /// The connection ended.
    Closed,
}

/// Stream limit assumed until the server's SETTINGS says otherwise (RFC 9113 §6.5.2
/// recommends allowing at least 100).
const ASSUMED_MAX_STREAMS: usize = 100;
/// No GOAWAY seen yet.
const NO_GOAWAY: u32 = u32::MAX;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// State shared by a connection's handles, its streams, its driver task and the
/// frame watcher under it.
struct ConnState {
    id: u64,
    in_flight: AtomicUsize,
    opened: AtomicU64,
    peer_max_streams: AtomicUsize,
    goaway_last: AtomicU32,
    phase: watch::Sender<ConnPhase>,
    last_active: Mutex<Instant>,
    end_reason: Mutex<Option<String>>,
    /// Woken when the connection ends or the server sends GOAWAY (see
    /// [`H2ClientConnection::poll_closed`]).
    closed_waker: Mutex<Option<Waker>>,
}

impl ConnState {
    fn goaway_last(&self) -> Option<u32> {
        match self.goaway_last.load(Ordering::Acquire) {
            NO_GOAWAY => None,
            id => Some(id),
        }
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_active.lock() {
            *t = Instant::now();
        }
    }

    /// Wakes whoever waits in [`H2ClientConnection::poll_closed`].
    fn wake_closed(&self) {
        let waker = self.closed_waker.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl FrameObserver for ConnState {
    fn on_settings(&self, max_streams: Option<u32>) {
        if let Some(max) = max_streams {
            self.peer_max_streams.store(
                usize::try_from(max).unwrap_or(usize::MAX),
                Ordering::Release,
            );
        }
        self.phase.send_if_modified(|p| {
            let first = *p == ConnPhase::Starting;
            if first {
                *p = ConnPhase::Ready;
            }
            first
        });
    }

    fn on_goaway(&self, last_stream_id: u32) {
        self.goaway_last.fetch_min(last_stream_id, Ordering::AcqRel);
        self.wake_closed();
    }
}

/// A shared HTTP/2 connection to an upstream server. Cloning gives another handle to
/// the same connection; it closes once every handle and stream is dropped.
#[derive(Clone)]
pub struct H2ClientConnection {
    inner: Arc<ConnInner>,
}

struct ConnInner {
    sender: SendRequest<Bytes>,
    state: Arc<ConnState>,
    https: bool,
}

impl std::fmt::Debug for H2ClientConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2ClientConnection")
            .field("id", &self.id())
            .field("in_flight", &self.in_flight())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl H2ClientConnection {
    /// Speaks HTTP/2 on `stream` (prior knowledge, or after ALPN chose `h2`): sends the
    /// preface, spawns the task driving the connection on the current runtime, and
    /// waits for the server's SETTINGS, all within `opts.handshake_timeout`. Errors are
    /// on [`Side::Upstream`] and never retryable on this connection.
    pub async fn handshake(stream: Stream, opts: H2ClientOptions) -> Result<Self> {
        let deadline = tokio::time::Instant::now() + opts.handshake_timeout;
        let (phase, mut phase_rx) = watch::channel(ConnPhase::Starting);
        let state = Arc::new(ConnState {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicUsize::new(0),
            opened: AtomicU64::new(0),
            peer_max_streams: AtomicUsize::new(ASSUMED_MAX_STREAMS),
            goaway_last: AtomicU32::new(NO_GOAWAY),
            phase,
            last_active: Mutex::new(Instant::now()),
            end_reason: Mutex::new(None),
            closed_waker: Mutex::new(None),
        });
        let io = FrameWatch::new(stream, state.clone());
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(opts.initial_stream_window)
            .initial_connection_window_size(opts.initial_connection_window)
            .max_frame_size(opts.max_frame_size.clamp(16 * 1024, (1 << 24) - 1))
            .max_header_list_size(opts.max_header_list_size)
            .initial_max_send_streams(ASSUMED_MAX_STREAMS)
            .enable_push(false);
        let (sender, mut conn) =
            match tokio::time::timeout_at(deadline, builder.handshake::<_, Bytes>(io)).await {
                Err(_) => return Err(handshake_timeout()),
                Ok(Err(e)) => {
                    return Err(Error::because(
                        ErrorKind::ConnectError,
                        Side::Upstream,
                        "HTTP/2 handshake with the upstream",
                        e,
                    ))
                }
                Ok(Ok(pair)) => pair,
            };
        let keepalive = match (opts.keepalive_ping, conn.ping_pong()) {
            (Some(cfg), Some(pings)) => Some(Keepalive::new(pings, cfg)),
            _ => None,
        };
        tokio::spawn(drive(conn, keepalive, state.clone()));
        match tokio::time::timeout_at(deadline, phase_rx.wait_for(|p| *p != ConnPhase::Starting))
            .await
        {
            Err(_) => return Err(handshake_timeout()),
            Ok(Ok(p)) if *p == ConnPhase::Ready => {}
            Ok(_) => {
                let why = state
                    .end_reason
                    .lock()
                    .ok()
                    .and_then(|r| r.clone())
                    .unwrap_or_else(|| "closed".to_string());
                return Err(Error::new(
                    ErrorKind::ConnectError,
                    Side::Upstream,
                    format!("the upstream ended the connection before its HTTP/2 SETTINGS ({why}); does it speak HTTP/2?"),
                ));
            }
        }
        Ok(H2ClientConnection {
            inner: Arc::new(ConnInner {
                sender,
                state,
                https: opts.https,
            }),
        })
    }

    /// A number telling this connection apart from others in this process.
    pub fn id(&self) -> u64 {
        self.inner.state.id
    }

    /// Streams open on this connection now (created by
    /// [`H2ClientConnection::new_stream`] and not dropped yet).
    pub fn in_flight(&self) -> usize {
        self.inner.state.in_flight.load(Ordering::Acquire)
    }

    /// Most streams the server lets this connection have open at once (at most 100
    /// when the server sets no limit).
    pub fn max_streams(&self) -> usize {
        let announced = self.inner.state.peer_max_streams.load(Ordering::Acquire);
        announced.min(self.inner.sender.current_max_send_streams())
    }

    /// Whether the connection can take another stream now: open, no GOAWAY, and
    /// fewer streams in flight than the server allows.
    pub fn has_capacity(&self) -> bool {
        !self.is_closed() && self.in_flight() < self.max_streams()
    }

    /// Whether the connection can take no more streams: it ended, or the server sent
    /// GOAWAY (streams already open may still finish).
    pub fn is_closed(&self) -> bool {
        self.received_goaway() || *self.inner.state.phase.borrow() == ConnPhase::Closed
    }

    /// Whether the server sent GOAWAY.
    pub fn received_goaway(&self) -> bool {
        self.inner.state.goaway_last().is_some()
    }

    /// How long the connection has had no stream in flight; `None` while it has some.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight() > 0 {
            return None;
        }
        self.inner
            .state
            .last_active
            .lock()
            .ok()
            .map(|t| t.elapsed())
    }

    /// Registers `cx`'s waker to be woken when the connection can take no more streams
    /// (it ended, or the server sent GOAWAY; see [`H2ClientConnection::is_closed`]),
    /// and returns `Ready` once that happened. Never waits. Only the waker of the last
    /// call is woken: this is for the one owner watching the connection (its pool).
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_closed() {
            return Poll::Ready(());
        }
        if let Ok(mut w) = self.inner.state.closed_waker.lock() {
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        // Closed between the first look and the registration: nobody wakes us.
        if self.is_closed() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Whether `self` and `other` are handles to the same connection.
    pub fn same_connection(&self, other: &H2ClientConnection) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Opens a stream for one exchange, waiting (up to `timeouts.write`) until the
    /// connection may open another. Fails with `retry == true` when the connection is
    /// closed or going away (nothing was sent).
    pub async fn new_stream(&self, timeouts: ClientTimeouts) -> Result<H2ClientStream> {
        if self.is_closed() {
            return Err(Error::new(
                ErrorKind::ConnectionClosed,
                Side::Upstream,
                "the HTTP/2 connection to the upstream is closed or going away",
            )
            .with_retry(true));
        }
        let guard = InFlight::enter(self.inner.state.clone());
        let sender = tokio::time::timeout(timeouts.write, self.inner.sender.clone().ready())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::WriteTimeout,
                    Side::Upstream,
                    "no HTTP/2 stream could be opened in time",
                )
            })?
            .map_err(|e| unsent_error(&guard.state, "opening an HTTP/2 stream", e))?;
        let previous = self.inner.state.opened.fetch_add(1, Ordering::AcqRel);
        Ok(H2ClientStream {
            guard,
            sender: Some(sender),
            https: self.inner.https,
            timeouts,
            previous,
            stream_id: None,
            response: None,
            body: None,
            send: None,
            req_done: false,
            resp_done: false,
            trailers: None,
            received_any: false,
            upgrade: None,
        })
    }
}

/// Waits (briefly, for a new connection's SETTINGS) until the upstream allows
/// extended CONNECT; fails if it does not.
async fn wait_for_connect_protocol(sender: &SendRequest<Bytes>) -> Result<()> {
    let deadline = Instant::now() + CONNECT_PROTOCOL_WAIT;
    while !sender.is_extended_connect_protocol_enabled() {
        if Instant::now() >= deadline {
            return Err(Error::new(
                ErrorKind::NotImplemented,
                Side::Upstream,
                "the HTTP/2 upstream does not accept extended CONNECT (RFC 8441), which \
                 an upgrade (WebSocket) to it needs",
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Presents the 2xx answer to an extended CONNECT as the `101 Switching Protocols` of
/// the HTTP/1.1 upgrade it stands for.
fn switched_protocols(head: &mut ResponseHeader, upgrade: &Upgrade) {
    head.status = http::StatusCode::SWITCHING_PROTOCOLS;
    head.headers.remove(http::header::CONTENT_LENGTH);
    head.headers
        .insert(http::header::UPGRADE, upgrade.protocol.clone());
    head.headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("upgrade"),
    );
    if let Some(key) = &upgrade.key {
        head.headers
            .insert(http::header::SEC_WEBSOCKET_ACCEPT, websocket_accept(key));
    }
}

fn handshake_timeout() -> Error {
    Error::new(
        ErrorKind::ConnectTimeout,
        Side::Upstream,
        "HTTP/2 handshake with the upstream did not complete in time",
    )
}

/// Runs a connection until it ends, then marks it closed.
async fn drive(
    conn: h2::client::Connection<FrameWatch<Stream>, Bytes>,
    mut keepalive: Option<Keepalive>,
    state: Arc<ConnState>,
) {
    tokio::pin!(conn);
    let reason = tokio::select! {
        r = &mut conn => match r {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        },
        _ = poll_fn(|cx| match keepalive.as_mut() {
            Some(k) => k.poll_dead(cx),
            None => Poll::Pending,
        }) => Some("the upstream did not answer a PING in time".to_string()),
    };
    if let Some(why) = reason {
        log::debug!("HTTP/2 upstream connection {} ended: {why}", state.id);
        if let Ok(mut r) = state.end_reason.lock() {
            *r = Some(why);
        }
    }
    state.phase.send_replace(ConnPhase::Closed);
    state.wake_closed();
}

/// Counts a stream as in flight until dropped.
struct InFlight {
    state: Arc<ConnState>,
}

impl InFlight {
    fn enter(state: Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight { state }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.touch();
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The error for a request that could not be sent at all: retryable unless this
/// process asked for something invalid.
fn unsent_error(state: &ConnState, what: &str, e: h2::Error) -> Error {
    let err = h2_error(Side::Upstream, what, e);
    if err.kind == ErrorKind::Internal {
        return err;
    }
    let kind = if state.goaway_last().is_some() {
        ErrorKind::H2StreamRefused
    } else {
        ErrorKind::ConnectionClosed
    };
    Error {
        kind,
        side: Side::Upstream,
        ..err
    }
    .with_retry(true)
}

/// A response head, interim or final.
enum Head {
    Interim(std::result::Result<http::Response<()>, h2::Error>),
    Final(std::result::Result<http::Response<RecvStream>, h2::Error>),
}

/// One exchange on an HTTP/2 upstream connection: the methods of the HTTP/1 client
/// session, with the same names and meaning. Dropping it before the exchange ended
/// resets the stream; the connection goes on.
pub struct H2ClientStream {
    guard: InFlight,
    sender: Option<SendRequest<Bytes>>,
    https: bool,
    timeouts: ClientTimeouts,
    previous: u64,
    stream_id: Option<u32>,
    response: Option<ResponseFuture>,
    body: Option<RecvStream>,
    send: Option<SendStream<Bytes>>,
    req_done: bool,
    resp_done: bool,
    trailers: Option<HeaderMap>,
    received_any: bool,
    /// Set when the request was an upgrade, sent as an extended CONNECT.
    upgrade: Option<Upgrade>,
}

/// An HTTP/1.1-style upgrade carried by an extended CONNECT (RFC 8441).
struct Upgrade {
    /// The `Upgrade` protocol, such as `websocket`.
    protocol: http::HeaderValue,
    /// The client's `Sec-WebSocket-Key`, to answer with its `Sec-WebSocket-Accept`.
    key: Option<http::HeaderValue>,
    /// The sending half of the stream, for the tunnel.
    send: Option<SendStream<Bytes>>,
}

/// How long a new connection may take to announce SETTINGS_ENABLE_CONNECT_PROTOCOL
/// before an upgrade on it is given up.
const CONNECT_PROTOCOL_WAIT: Duration = Duration::from_millis(200);

impl std::fmt::Debug for H2ClientStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2ClientStream")
            .field("connection", &self.guard.state.id)
            .field("stream_id", &self.stream_id)
            .field("req_done", &self.req_done)
            .field("resp_done", &self.resp_done)
            .finish()
    }
}

impl H2ClientStream {
    /// Uses these timeouts from now on.
    pub fn set_timeouts(&mut self, timeouts: ClientTimeouts) {
        self.timeouts = timeouts;
    }

    /// How many streams the connection carried before this one.
    pub fn previous_exchanges(&self) -> u64 {
        self.previous
    }

    /// The HTTP/2 stream id, once the request head was sent.
    pub fn stream_id(&self) -> Option<u32> {
        self.stream_id
    }

    /// Whether the response head arrived.
    pub fn received_any(&self) -> bool {
        self.received_any
    }

    /// Sends the request head as HTTP/2 (see [`super::convert::request_to_h2`]);
    /// END_STREAM goes with it when `body` is `Empty`. Fails with `retry == true`
    /// when the connection could not take the stream (nothing was sent).
    pub async fn write_request_header(
        &mut self,
        req: &mut RequestHeader,
        body: BodyFraming,
    ) -> Result<()> {
        let mut sender = self.sender.take().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "a second request head on one HTTP/2 stream",
            )
        })?;
        let request = if is_upgrade_request(req) {
            let protocol = upgrade_protocol(req).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidHead,
                    Side::Internal,
                    "an upgrade request without an Upgrade protocol",
                )
            })?;
            wait_for_connect_protocol(&sender).await?;
            let request = extended_connect_to_h2(req, protocol, self.https)?;
            self.upgrade = Some(Upgrade {
                protocol: http::HeaderValue::from_str(protocol).map_err(|e| {
                    Error::because(ErrorKind::InvalidHead, Side::Internal, "bad Upgrade", e)
                })?,
                key: req.headers.get(http::header::SEC_WEBSOCKET_KEY).cloned(),
                send: None,
            });
            request
        } else {
            request_to_h2(req, body, self.https)?
        };
        // An extended CONNECT leaves the stream open: it carries the tunnel.
        let end = self.upgrade.is_none() && body == BodyFraming::Empty;
        let (response, send) = sender
            .send_request(request, end)
            .map_err(|e| unsent_error(&self.guard.state, "sending the request head", e))?;
        self.stream_id = Some(response.stream_id().as_u32());
        self.response = Some(response);
        if let Some(upgrade) = &mut self.upgrade {
            self.req_done = true;
            upgrade.send = Some(send);
        } else if end {
            self.req_done = true;
        } else {
            self.send = Some(send);
        }
        Ok(())
    }

    /// Sends a piece of the request body under flow control (pieces no larger than
    /// the window granted, waiting up to the write timeout for more).
    pub async fn write_body(&mut self, data: &Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let Some(send) = self.send.as_mut() else {
            return Err(Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "request body written before its head or after its end",
            ));
        };
        let r = flow::send_data(send, data, self.timeouts.write).await;
        r.map_err(|e| self.flow_failure("writing the request body", e))
    }

    /// Takes the sending half of the request body out of the stream (after the request
    /// head, before the body ended), so that the body can be sent while the response
    /// is read. The stream then only reads.
    pub fn take_body_writer(&mut self) -> Option<H2BodyWriter> {
        let send = self.send.take()?;
        self.req_done = true;
        Some(H2BodyWriter::new(send, self.timeouts.write))
    }

    /// Ends the request body: with `trailers` when there are any, else END_STREAM.
    pub async fn finish_body(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        if self.req_done {
            return Ok(());
        }
        let Some(send) = self.send.as_mut() else {
            return Err(Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "request body ended before its head",
            ));
        };
        let r = flow::finish(send, trailers);
        r.map_err(|e| self.flow_failure("ending the request body", e))?;
        self.req_done = true;
        self.send = None;
        Ok(())
    }

    /// Reads a response head (version HTTP/2). Interim 1xx heads are returned too:
    /// call again for the final one. Waits at most the read timeout. Cancel-safe.
    pub async fn read_response_header(&mut self) -> Result<ResponseHeader> {
        let Some(fut) = self.response.as_mut() else {
            return Err(Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "response head read before the request was sent, or twice",
            ));
        };
        let next = poll_fn(|cx| {
            if let Poll::Ready(Some(r)) = fut.poll_informational(cx) {
                return Poll::Ready(Head::Interim(r));
            }
            Pin::new(&mut *fut).poll(cx).map(Head::Final)
        });
        let head = tokio::time::timeout(self.timeouts.read, next)
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::ReadTimeout,
                    Side::Upstream,
                    "no response head from the upstream in time",
                )
            })?;
        match head {
            Head::Interim(Ok(resp)) => {
                self.received_any = true;
                Ok(response_from_h2(&resp))
            }
            Head::Final(Ok(resp)) => {
                self.received_any = true;
                self.response = None;
                let mut head = response_from_h2(&resp);
                let body = resp.into_body();
                self.resp_done = body.is_end_stream();
                self.body = Some(body);
                if let Some(upgrade) = &self.upgrade {
                    if head.status.is_success() && !self.resp_done {
                        switched_protocols(&mut head, upgrade);
                    }
                }
                Ok(head)
            }
            Head::Interim(Err(e)) | Head::Final(Err(e)) => {
                self.response = None;
                Err(self.stream_failure("reading the response head", e))
            }
        }
    }

    /// Whether the response body already ended (a read would not wait).
    pub fn has_buffered_body(&self) -> bool {
        self.resp_done || self.body.as_ref().is_some_and(RecvStream::is_end_stream)
    }

    /// The next piece of the response body; `None` at its end. The window is given
    /// back as pieces are taken. Waits at most the read timeout. Cancel-safe.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.resp_done {
            return Ok(None);
        }
        let Some(body) = self.body.as_mut() else {
            return Err(Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "response body read before its head",
            ));
        };
        let read = self.timeouts.read;
        match flow::recv_data(body, read).await {
            Ok(Some(data)) => Ok(Some(data)),
            Ok(None) => {
                let t = flow::recv_trailers(body, read).await;
                self.trailers =
                    t.map_err(|e| self.flow_failure("reading the response trailers", e))?;
                self.resp_done = true;
                Ok(None)
            }
            Err(e) => Err(self.flow_failure("reading the response body", e)),
        }
    }

    /// The response trailers, once the body was read to its end.
    pub fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take()
    }

    /// The stream as a tunnel, once an upgrade request was answered (presented as
    /// `101 Switching Protocols`, see [`H2ClientStream::read_response_header`]); None
    /// for any other exchange.
    pub fn into_tunnel(mut self) -> Option<H2Tunnel> {
        let send = self.upgrade.as_mut()?.send.take()?;
        let recv = self.body.take()?;
        Some(H2Tunnel::new(recv, send).holding(Box::new(self.guard)))
    }

    /// Has no effect on the connection, which other streams share: a stream dropped
    /// before its exchange ended is reset on its own.
    pub fn set_no_reuse(&mut self) {}

    /// Whether the request and the response were both sent and read to their end.
    pub fn is_done(&self) -> bool {
        self.req_done && self.resp_done
    }

    /// Whether the server provably did not process this stream: a GOAWAY's last
    /// stream id is below it.
    fn beyond_goaway(&self) -> bool {
        match (self.stream_id, self.guard.state.goaway_last()) {
            (Some(id), Some(last)) => id > last,
            _ => false,
        }
    }

    fn refused(&self, what: &str, detail: String) -> Error {
        Error::new(
            ErrorKind::H2StreamRefused,
            Side::Upstream,
            format!("{what}: the upstream did not process the stream ({detail})"),
        )
        .with_retry(true)
    }

    fn stream_failure(&self, what: &str, e: h2::Error) -> Error {
        let refused = e.is_reset() && e.reason() == Some(Reason::REFUSED_STREAM);
        if refused || self.beyond_goaway() {
            return self.refused(what, e.to_string());
        }
        h2_error(Side::Upstream, what, e)
    }

    fn flow_failure(&self, what: &str, e: FlowError) -> Error {
        match e {
            FlowError::H2(e) => self.stream_failure(what, e),
            FlowError::Closed(Some(Reason::REFUSED_STREAM)) => {
                self.refused(what, "REFUSED_STREAM".to_string())
            }
            FlowError::Closed(_) if self.beyond_goaway() => {
                self.refused(what, "GOAWAY".to_string())
            }
            other => flow::flow_error(Side::Upstream, what, other),
        }
    }
}

//! The downstream side of HTTP/1.x: reading requests from a client and writing responses.

use std::io::IoSlice;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Version};

use super::idle::{log_keepalive_timeout, H1IdleConnection};
use super::io::{
    read_more, readable_within, shrink_idle, write_all, ReadTimer, BODY_CHUNK, HEAD_CHUNK,
};
use super::{
    expects_continue, parse_request, request_framing, wants_keepalive, write_response_head,
    BodyDecoder, BodyEncoder, BodyEvent, BodyFraming, HeadLimits,
};
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::http::header::{error_body, ERROR_CONTENT_TYPE};
use crate::protocols::http::v2::{sniff_h2c_preface, H2cPreface};
use crate::protocols::http::{RequestHeader, ResponseHeader};
use crate::protocols::{ClientAddr, ConnectionInfo, Stream};
use crate::shutdown::{Phase, ShutdownWatch};

/// Limits and timeouts for serving one client connection.
#[derive(Debug, Clone, Copy)]
pub struct ServerSessionOptions {
    /// Head size and header count limits.
    pub limits: HeadLimits,
    /// Most time to receive a whole request head once it started (slowloris guard).
    pub header_timeout: Duration,
    /// Most time between two reads of a request body.
    pub body_timeout: Duration,
    /// How long an idle keep-alive connection waits for its next request.
    pub keepalive_timeout: Duration,
    /// Most time for one write to the client to complete.
    pub write_timeout: Duration,
    /// Recognise the HTTP/2 preface at the start of a connection and report
    /// [`NextRequest::Http2`] instead of answering 400.
    pub h2c_prior_knowledge: bool,
}

impl Default for ServerSessionOptions {
    fn default() -> Self {
        ServerSessionOptions {
            limits: HeadLimits::default(),
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(60),
            h2c_prior_knowledge: false,
        }
    }
}

/// Most request body bytes read and dropped to keep a connection after a local answer.
const DISCARD_LIMIT: u64 = 64 * 1024;
/// Most time spent doing so.
const DISCARD_TIME: Duration = Duration::from_secs(1);

/// What reading the next request produced.
#[derive(Debug)]
pub enum NextRequest {
    /// A request head was read; see [`H1ServerSession::req_header`].
    Request,
    /// The client opened the connection with the HTTP/2 preface (h2c with prior
    /// knowledge; only when [`ServerSessionOptions::h2c_prior_knowledge`] is set). Take
    /// the stream and the bytes read so far, preface included, with
    /// [`H1ServerSession::into_tunnel`] and serve them as HTTP/2.
    Http2,
    /// The connection ended cleanly between requests (closed, idle timeout, or shutdown).
    Closed,
}

/// One client connection speaking HTTP/1.x, one request at a time.
///
/// The connection's state (the stream, its buffers, the client's address, the shutdown
/// watch, the options and the request count) lives here; everything about the current
/// request and its response is in a private per-exchange part, replaced whole when the next
/// request starts.
pub struct H1ServerSession {
    stream: Stream,
    conn: ConnectionInfo,
    shutdown: ShutdownWatch,
    opts: ServerSessionOptions,
    /// Bytes read from the client and not consumed yet.
    buf: BytesMut,
    /// Bytes of the response waiting to be written (a head, a chunk end).
    out: BytesMut,
    /// The timeout of every read from the client.
    read_timer: ReadTimer,
    requests: u64,
    /// The socket was seen readable before this session began (see
    /// [`H1IdleConnection::wait`]): read without asking again.
    client_readable: bool,
    exchange: H1Exchange,
}

/// The state of one request/response exchange on an HTTP/1.x connection.
struct H1Exchange {
    req: Option<RequestHeader>,
    req_body: BodyDecoder,
    req_framing: BodyFraming,
    req_trailers: Option<HeaderMap>,
    /// The client asked for `100 Continue` and has not had it yet.
    continue_pending: bool,
    /// The connection stays open after this response.
    keepalive: bool,
    resp_encoder: Option<BodyEncoder>,
    resp_status: Option<StatusCode>,
    resp_done: bool,
    body_bytes_read: u64,
    body_bytes_sent: u64,
}

impl H1Exchange {
    /// No request yet: nothing read, nothing answered.
    fn idle() -> Self {
        H1Exchange {
            req: None,
            req_body: BodyDecoder::new(BodyFraming::Empty),
            req_framing: BodyFraming::Empty,
            req_trailers: None,
            continue_pending: false,
            keepalive: false,
            resp_encoder: None,
            resp_status: None,
            resp_done: false,
            body_bytes_read: 0,
            body_bytes_sent: 0,
        }
    }

    /// The exchange of the request with head `req`.
    fn begin(req: RequestHeader) -> Result<Self> {
        let framing = request_framing(&req)?;
        Ok(H1Exchange {
            keepalive: wants_keepalive(req.version, &req.headers),
            continue_pending: framing != BodyFraming::Empty && expects_continue(&req),
            req_body: BodyDecoder::new(framing).with_side(Side::Downstream),
            req_framing: framing,
            req: Some(req),
            ..H1Exchange::idle()
        })
    }
}

impl H1ServerSession {
    /// Starts serving `stream` from `peer`. Once `shutdown` reaches [`Phase::Draining`],
    /// every response says `Connection: close`; at [`Phase::Closing`] an idle
    /// connection ends.
    pub fn new(
        stream: Stream,
        conn: impl Into<ConnectionInfo>,
        opts: ServerSessionOptions,
        shutdown: ShutdownWatch,
    ) -> Self {
        let conn = conn.into();
        Self::from_parts(stream, conn, opts, shutdown, ReadTimer::default(), 0, false)
    }

    /// A session on a connection that carried `requests` already; `client_readable`
    /// when its socket was just seen readable (see [`H1IdleConnection::resume`]).
    pub(super) fn from_parts(
        stream: Stream,
        conn: ConnectionInfo,
        opts: ServerSessionOptions,
        shutdown: ShutdownWatch,
        read_timer: ReadTimer,
        requests: u64,
        client_readable: bool,
    ) -> Self {
        H1ServerSession {
            stream,
            conn,
            shutdown,
            opts,
            // Allocated when the first bytes arrive (see `wait_first_byte`).
            buf: BytesMut::new(),
            out: BytesMut::new(),
            read_timer,
            requests,
            client_readable,
            exchange: H1Exchange::idle(),
        }
    }

    /// Whether the connection can wait for its next request as an
    /// [`H1IdleConnection`]: it can carry another request, the response is finished, and
    /// the client has sent nothing more yet (a pipelined request is read by
    /// [`H1ServerSession::read_request`] at once).
    pub fn can_idle(&self) -> bool {
        self.can_reuse() && self.buf.is_empty() && self.out.is_empty()
    }

    /// The connection reduced to what it needs between requests (see
    /// [`H1IdleConnection`]); `None` when it cannot wait for another request (see
    /// [`H1ServerSession::can_idle`]), and the connection is closed.
    pub fn into_idle(self) -> Option<H1IdleConnection> {
        if !self.can_idle() {
            return None;
        }
        Some(H1IdleConnection::new(
            self.stream,
            self.conn,
            self.read_timer,
            self.requests,
        ))
    }

    /// The client's address.
    pub fn peer(&self) -> &ClientAddr {
        self.conn.client()
    }

    /// The connection: client and socket addresses, local address, TLS, PROXY header.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.conn
    }

    /// The server's shutdown watch this connection follows (for what outlives the
    /// session, such as a tunnel after `101 Switching Protocols`).
    pub fn shutdown_watch(&self) -> &ShutdownWatch {
        &self.shutdown
    }

    /// Reads the next request head. Between requests it waits up to the keep-alive
    /// timeout and returns [`NextRequest::Closed`] if the client leaves, the timeout
    /// passes, or the server reaches [`Phase::Closing`] while the connection is idle.
    /// Once the first byte of a head arrived, the whole head must arrive within the
    /// header timeout.
    pub async fn read_request(&mut self) -> Result<NextRequest> {
        self.exchange = H1Exchange::idle();
        self.out.clear();
        shrink_idle(&mut self.buf);
        if self.buf.is_empty() && !self.wait_first_byte().await? {
            return Ok(NextRequest::Closed);
        }
        self.read_rest_of_head().await
    }

    /// Waits for the first byte of the next request: up to the header timeout on a
    /// new connection, up to the keep-alive timeout between requests. False when the
    /// connection ended cleanly meanwhile (closed by the client, idle past the
    /// keep-alive timeout, or the server reached [`Phase::Closing`]).
    async fn wait_first_byte(&mut self) -> Result<bool> {
        let first = self.requests == 0;
        let wait = if first {
            self.opts.header_timeout
        } else {
            self.opts.keepalive_timeout
        };
        let (stream, buf, out) = (&mut self.stream, &mut self.buf, &mut self.out);
        let timer = &mut self.read_timer;
        let client_readable = std::mem::take(&mut self.client_readable);
        let read = async move {
            // One deadline for the wait and the read together.
            let deadline = tokio::time::Instant::now() + wait;
            if !client_readable && buf.is_empty() && !stream.read_waiting().unwrap_or(true) {
                // Nothing buffered and nothing arrived: wait without buffers, so that an
                // idle connection holds no more than its socket and its task. Once
                // bytes arrive, `read_more` allocates the head buffer again; a client
                // whose next request is already there never gets here.
                *buf = BytesMut::new();
                *out = BytesMut::new();
                let arrived = readable_within(stream, timer, deadline)
                    .await
                    .map_err(|e| Error::from_io(Side::Downstream, "reading", e))?;
                if !arrived {
                    return Err(Error::new(
                        ErrorKind::ReadTimeout,
                        Side::Downstream,
                        format!("no data for {}ms", wait.as_millis()),
                    ));
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            read_more(stream, buf, HEAD_CHUNK, timer, left, Side::Downstream).await
        };
        let read = tokio::select! {
            biased;
            r = read => r,
            _ = self.shutdown.reached(Phase::Closing) => return Ok(false),
        };
        match read {
            Ok(n) => Ok(n > 0),
            Err(e) if e.kind == ErrorKind::ReadTimeout && !first => {
                log_keepalive_timeout(self.conn.client(), wait);
                Ok(false)
            }
            Err(e) if e.kind == ErrorKind::ReadTimeout => Err(Error::new(
                ErrorKind::ReadTimeout,
                Side::Downstream,
                format!(
                    "header timeout: no request within client_header_timeout_ms ({}ms) of the connection opening",
                    wait.as_millis()
                ),
            )),
            Err(e) => Err(e),
        }
    }

    /// Reads until the buffered bytes make a whole request head (or the HTTP/2
    /// preface), all within the header timeout counted from now.
    async fn read_rest_of_head(&mut self) -> Result<NextRequest> {
        let started = Instant::now();
        loop {
            if let Some(next) = self.parse_head()? {
                return Ok(next);
            }
            let left = self.opts.header_timeout.saturating_sub(started.elapsed());
            let n = if left.is_zero() {
                Err(self.header_timeout_error())
            } else {
                read_more(
                    &mut self.stream,
                    &mut self.buf,
                    HEAD_CHUNK,
                    &mut self.read_timer,
                    left,
                    Side::Downstream,
                )
                .await
                .map_err(|e| match e.kind {
                    ErrorKind::ReadTimeout => self.header_timeout_error(),
                    _ => e,
                })
            }?;
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::ConnectionClosed,
                    Side::Downstream,
                    "client closed the connection in the middle of a request head",
                ));
            }
        }
    }

    /// What the buffered bytes make: a request head (then its exchange begins), the
    /// HTTP/2 preface (only at the start of a connection with h2c prior knowledge on),
    /// or nothing complete yet.
    fn parse_head(&mut self) -> Result<Option<NextRequest>> {
        let preface = if self.requests == 0 && self.opts.h2c_prior_knowledge {
            sniff_h2c_preface(&self.buf)
        } else {
            H2cPreface::Absent
        };
        match preface {
            H2cPreface::Complete => Ok(Some(NextRequest::Http2)),
            H2cPreface::Partial => Ok(None),
            H2cPreface::Absent => match parse_request(&mut self.buf, &self.opts.limits)? {
                Some(req) => {
                    self.exchange = H1Exchange::begin(req)?;
                    self.requests += 1;
                    Ok(Some(NextRequest::Request))
                }
                None => Ok(None),
            },
        }
    }

    fn header_timeout_error(&self) -> Error {
        Error::new(
            ErrorKind::ReadTimeout,
            Side::Downstream,
            format!(
                "header timeout: the whole request head did not arrive within client_header_timeout_ms ({}ms) of its first byte",
                self.opts.header_timeout.as_millis()
            ),
        )
    }

    /// The current request head.
    ///
    /// # Panics
    /// Never after [`H1ServerSession::read_request`] returned `Request`; before that the
    /// head is a placeholder `GET /`.
    pub fn req_header(&self) -> &RequestHeader {
        self.exchange
            .req
            .as_ref()
            .unwrap_or_else(|| placeholder_request())
    }

    /// The current request head, to edit in place.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        self.exchange
            .req
            .get_or_insert_with(|| RequestHeader::new(Method::GET, http::Uri::from_static("/")))
    }

    /// How many requests this connection has carried, this one included.
    pub fn requests_served(&self) -> u64 {
        self.requests
    }

    /// Whether the request has a body that was not read to its end yet.
    pub fn has_pending_body(&self) -> bool {
        !self.exchange.req_body.is_done()
    }

    /// How the request body is framed on the wire.
    pub fn req_body_framing(&self) -> BodyFraming {
        self.exchange.req_framing
    }

    /// Sends `100 Continue` if the client asked for it and has not started sending
    /// the body yet. [`H1ServerSession::read_body`] calls it; call it yourself before
    /// racing `read_body` against other work, since a write cannot be cancelled safely.
    pub async fn send_continue(&mut self) -> Result<()> {
        if self.exchange.continue_pending {
            self.exchange.continue_pending = false;
            if self.buf.is_empty() {
                const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
                let t = self.opts.write_timeout;
                write_all(
                    &mut self.stream,
                    &mut [IoSlice::new(CONTINUE)],
                    t,
                    Side::Downstream,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Reads the next piece of the request body; `None` at its end. Sends
    /// `100 Continue` first when the client asked for it. Cancel-safe once
    /// [`H1ServerSession::send_continue`] was called.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        self.send_continue().await?;
        loop {
            if self.exchange.req_body.is_done() {
                return Ok(None);
            }
            match self.exchange.req_body.decode(&mut self.buf)? {
                Some(BodyEvent::Data(b)) => {
                    self.exchange.body_bytes_read += b.len() as u64;
                    return Ok(Some(b));
                }
                Some(BodyEvent::Trailers(t)) => self.exchange.req_trailers = Some(t),
                Some(BodyEvent::End) => return Ok(None),
                None => {
                    let t = self.opts.body_timeout;
                    let n = read_more(
                        &mut self.stream,
                        &mut self.buf,
                        BODY_CHUNK,
                        &mut self.read_timer,
                        t,
                        Side::Downstream,
                    )
                    .await
                    .map_err(|e| match e.kind {
                        ErrorKind::ReadTimeout => Error::new(
                            ErrorKind::ReadTimeout,
                            Side::Downstream,
                            format!(
                                "body timeout: no request body data for client_body_timeout_ms ({}ms)",
                                t.as_millis()
                            ),
                        ),
                        _ => e,
                    })?;
                    if n == 0 {
                        match self.exchange.req_body.on_eof()? {
                            Some(BodyEvent::Data(b)) => return Ok(Some(b)),
                            _ => return Ok(None),
                        }
                    }
                }
            }
        }
    }

    /// Trailers of a chunked request body, once it was read to its end.
    pub fn req_trailers(&self) -> Option<&HeaderMap> {
        self.exchange.req_trailers.as_ref()
    }

    /// Asks for the connection to be closed after this response.
    pub fn set_keepalive(&mut self, keepalive: bool) {
        self.exchange.keepalive = self.exchange.keepalive && keepalive;
    }

    /// Whether the connection will be kept open after this response.
    pub fn will_keepalive(&self) -> bool {
        self.exchange.keepalive
    }

    /// Writes a response head. A 1xx other than 101 is written at once as an interim
    /// response; otherwise the head is buffered and sent with the first body bytes.
    ///
    /// Framing follows the head: none for HEAD, 204 and 304; `Content-Length` when set;
    /// otherwise chunked for HTTP/1.1 clients and close-delimited for HTTP/1.0 ones.
    /// `Connection` is set to match whether the connection stays open.
    pub async fn write_response_header(&mut self, resp: &mut ResponseHeader) -> Result<()> {
        let req_version = self.req_header().version;
        let head_request = self.req_header().method == Method::HEAD;
        let status = resp.status;
        resp.version = Version::HTTP_11;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            if req_version == Version::HTTP_11 {
                self.out.clear();
                write_response_head(resp, &mut self.out);
                self.flush().await?;
            }
            return Ok(());
        }
        // Once draining, or while the request body is not read to its end, this
        // response is the connection's last.
        if self.shutdown.is_draining() || !self.exchange.req_body.is_done() {
            self.exchange.keepalive = false;
        }
        let framing = if status == StatusCode::SWITCHING_PROTOCOLS {
            BodyFraming::UntilClose
        } else if head_request
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            BodyFraming::Empty
        } else if let Some(len) = content_length(&resp.headers) {
            resp.headers.remove(header::TRANSFER_ENCODING);
            BodyFraming::Length(len)
        } else if req_version == Version::HTTP_11 {
            resp.headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            BodyFraming::Chunked
        } else {
            self.exchange.keepalive = false;
            BodyFraming::UntilClose
        };
        if status == StatusCode::SWITCHING_PROTOCOLS {
            // The connection becomes a tunnel; Connection/Upgrade were set by the caller.
            self.exchange.keepalive = false;
        } else {
            resp.headers.remove(header::CONNECTION);
            if !self.exchange.keepalive {
                resp.headers
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            } else if req_version == Version::HTTP_10 {
                resp.headers
                    .insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
            }
        }
        self.out.clear();
        write_response_head(resp, &mut self.out);
        self.exchange.resp_status = Some(status);
        self.exchange.resp_encoder = Some(BodyEncoder::new(framing));
        Ok(())
    }

    /// The status of the response written, if any.
    pub fn response_status(&self) -> Option<StatusCode> {
        self.exchange.resp_status
    }

    /// Whether a final response head was written (or buffered) already.
    pub fn response_started(&self) -> bool {
        self.exchange.resp_encoder.is_some()
    }

    /// Writes a piece of the response body (with the head, if still buffered).
    pub async fn write_body(&mut self, data: &Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let enc = self.exchange.resp_encoder.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "body written before head",
            )
        })?;
        let frame = enc.frame_data(data.len())?;
        let t = self.opts.write_timeout;
        let mut bufs = [
            IoSlice::new(&self.out),
            IoSlice::new(frame.prefix()),
            IoSlice::new(data),
            IoSlice::new(frame.suffix()),
        ];
        write_all(&mut self.stream, &mut bufs, t, Side::Downstream).await?;
        self.out.clear();
        self.exchange.body_bytes_sent += data.len() as u64;
        Ok(())
    }

    /// Ends the response: writes the last chunk and trailers if chunked, and flushes.
    pub async fn finish_response(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        if self.exchange.resp_done {
            return Ok(());
        }
        let enc = self.exchange.resp_encoder.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "response finished before head",
            )
        })?;
        enc.finish(trailers, &mut self.out)?;
        self.flush().await?;
        self.exchange.resp_done = true;
        Ok(())
    }

    /// Sends whatever is buffered (for example a head with no body yet).
    pub async fn flush(&mut self) -> Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let t = self.opts.write_timeout;
        write_all(
            &mut self.stream,
            &mut [IoSlice::new(&self.out)],
            t,
            Side::Downstream,
        )
        .await?;
        self.out.clear();
        Ok(())
    }

    /// Sends a complete small response (used for errors and built-in answers). A request
    /// body nobody read is read and discarded first (up to a small limit), so that the
    /// connection can carry the next request; past the limit the response says
    /// `Connection: close`.
    pub async fn respond(
        &mut self,
        status: StatusCode,
        content_type: &str,
        body: Bytes,
    ) -> Result<()> {
        if self.exchange.keepalive
            && !self.exchange.continue_pending
            && !self.exchange.req_body.is_done()
        {
            self.discard_body(DISCARD_LIMIT, DISCARD_TIME.min(self.opts.body_timeout))
                .await;
        }
        let mut resp = ResponseHeader::for_local_body(status, content_type, body.len());
        self.write_response_header(&mut resp).await?;
        if self
            .exchange
            .resp_encoder
            .as_ref()
            .is_some_and(|e| !e.is_done())
        {
            self.write_body(&body).await?;
        }
        self.finish_response(None).await
    }

    /// Reads and drops the rest of the request body, up to `limit` bytes and `within`;
    /// true when the body ended.
    async fn discard_body(&mut self, limit: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut seen = 0u64;
        while !self.exchange.req_body.is_done() {
            match self.exchange.req_body.decode(&mut self.buf) {
                Ok(Some(BodyEvent::Data(b))) => {
                    seen += b.len() as u64;
                    if seen > limit {
                        return false;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    match read_more(
                        &mut self.stream,
                        &mut self.buf,
                        HEAD_CHUNK,
                        &mut self.read_timer,
                        left,
                        Side::Downstream,
                    )
                    .await
                    {
                        Ok(n) if n > 0 => {}
                        _ => return false,
                    }
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Answers an error status and marks the connection to close.
    pub async fn respond_error(&mut self, status: StatusCode) -> Result<()> {
        self.exchange.keepalive = false;
        self.respond(status, ERROR_CONTENT_TYPE, error_body(status))
            .await
    }

    /// Body bytes received and sent for the current request.
    pub fn body_bytes(&self) -> (u64, u64) {
        (self.exchange.body_bytes_read, self.exchange.body_bytes_sent)
    }

    /// Whether the connection can carry another request: keep-alive was agreed, the
    /// request body was read to its end and the response was finished.
    pub fn can_reuse(&self) -> bool {
        self.exchange.keepalive && self.exchange.resp_done && self.exchange.req_body.is_done()
    }

    /// Gives up the connection for a tunnel (after a `101`): the stream and any bytes
    /// the client already sent past the request head.
    pub fn into_tunnel(self) -> (Stream, BytesMut) {
        (self.stream, self.buf)
    }

    /// Closes the connection gently: ends the write side, then reads and discards what
    /// the client still sends (bounded in time and bytes), so that closing with unread
    /// data does not reset the connection before the client read our response.
    pub async fn shutdown(&mut self) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const LINGER: Duration = Duration::from_secs(2);
        const LINGER_BYTES: usize = 1 << 20;
        let deadline = tokio::time::Instant::now() + LINGER;
        if tokio::time::timeout_at(deadline, self.stream.shutdown())
            .await
            .is_err()
        {
            return;
        }
        let mut discarded = self.buf.len();
        self.buf.clear();
        let mut scratch = [0u8; 4096];
        while discarded < LINGER_BYTES {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut scratch)).await {
                Ok(Ok(n)) if n > 0 => discarded += n,
                _ => break,
            }
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::CONTENT_LENGTH)?;
    v.to_str().ok()?.trim().parse().ok()
}

fn placeholder_request() -> &'static RequestHeader {
    static PLACEHOLDER: std::sync::OnceLock<RequestHeader> = std::sync::OnceLock::new();
    PLACEHOLDER.get_or_init(|| RequestHeader::new(Method::GET, http::Uri::from_static("/")))
}

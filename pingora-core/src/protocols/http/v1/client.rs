//! The upstream side of HTTP/1.x: writing requests to a server and reading its responses.

use std::io::IoSlice;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};

use super::io::{
    read_more, write_all, write_all_taking_replies, ReadTimer, BODY_CHUNK, HEAD_CHUNK,
};
use super::{
    parse_response, response_framing, set_request_framing_headers, wants_keepalive,
    write_request_head, BodyDecoder, BodyEncoder, BodyEvent, BodyFraming, HeadLimits,
};
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::http::{RequestHeader, ResponseHeader};
use crate::protocols::Stream;

/// How long the client session waits on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// Most time between two reads while a response is expected.
    pub read: Duration,
    /// Most time for one write to complete.
    pub write: Duration,
}

/// One connection to an upstream server speaking HTTP/1.x, one exchange at a time.
pub struct H1ClientSession {
    stream: Stream,
    timeouts: ClientTimeouts,
    limits: HeadLimits,
    buf: BytesMut,
    out: BytesMut,
    /// The timeout of every read from the server.
    read_timer: ReadTimer,
    req_method: Method,
    req_encoder: Option<BodyEncoder>,
    req_done: bool,
    resp_body: BodyDecoder,
    resp_started: bool,
    resp_done: bool,
    resp_trailers: Option<HeaderMap>,
    keepalive: bool,
    received_any: bool,
    exchanges: u64,
}

impl H1ClientSession {
    /// Wraps a fresh connection.
    pub fn new(stream: Stream, timeouts: ClientTimeouts) -> Self {
        H1ClientSession {
            stream,
            timeouts,
            limits: HeadLimits::default(),
            buf: BytesMut::with_capacity(HEAD_CHUNK),
            out: BytesMut::with_capacity(1024),
            read_timer: ReadTimer::default(),
            req_method: Method::GET,
            req_encoder: None,
            req_done: true,
            resp_body: BodyDecoder::new(BodyFraming::Empty),
            resp_started: false,
            resp_done: true,
            resp_trailers: None,
            keepalive: true,
            received_any: false,
            exchanges: 0,
        }
    }

    /// Uses these timeouts from now on (a pooled connection may serve another route).
    pub fn set_timeouts(&mut self, timeouts: ClientTimeouts) {
        self.timeouts = timeouts;
    }

    /// How many exchanges this connection carried before the current one.
    pub fn previous_exchanges(&self) -> u64 {
        self.exchanges.saturating_sub(1)
    }

    /// Whether any byte of the current response arrived. A reused connection that
    /// fails before that may be retried on a fresh one.
    pub fn received_any(&self) -> bool {
        self.received_any
    }

    /// Starts an exchange by writing the request head. `body` says how the request body
    /// that follows is framed (`Transfer-Encoding: chunked` is added for chunked ones).
    /// A head without a body is sent at once; otherwise it goes with the first body bytes.
    pub async fn write_request_header(
        &mut self,
        req: &mut RequestHeader,
        body: BodyFraming,
    ) -> Result<()> {
        self.exchanges += 1;
        self.received_any = false;
        self.resp_started = false;
        self.resp_done = false;
        self.resp_trailers = None;
        self.req_method = req.method.clone();
        set_request_framing_headers(&mut req.headers, body);
        let framing = match body {
            BodyFraming::UntilClose => BodyFraming::Chunked,
            other => other,
        };
        self.out.clear();
        write_request_head(req, &mut self.out);
        let encoder = BodyEncoder::new(framing);
        self.req_done = encoder.is_done();
        self.req_encoder = Some(encoder);
        if framing == BodyFraming::Empty {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes a piece of the request body.
    pub async fn write_body(&mut self, data: &Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let enc = self.req_encoder.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                Side::Internal,
                "request body before head",
            )
        })?;
        let frame = enc.frame_data(data.len())?;
        let mut bufs = [
            IoSlice::new(&self.out),
            IoSlice::new(frame.prefix()),
            IoSlice::new(data),
            IoSlice::new(frame.suffix()),
        ];
        // The server may answer before it has read the whole body: take its answer in
        // while it does not read, rather than both sides waiting on each other.
        write_all_taking_replies(
            &mut self.stream,
            &mut bufs,
            &mut self.buf,
            self.timeouts.write,
            Side::Upstream,
        )
        .await?;
        self.out.clear();
        Ok(())
    }

    /// Ends the request body (last chunk and trailers when chunked) and flushes.
    pub async fn finish_body(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        if let Some(enc) = self.req_encoder.as_mut() {
            enc.finish(trailers, &mut self.out)?;
        }
        self.flush().await?;
        self.req_done = true;
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        write_all(
            &mut self.stream,
            &mut [IoSlice::new(&self.out)],
            self.timeouts.write,
            Side::Upstream,
        )
        .await?;
        self.out.clear();
        Ok(())
    }

    /// Reads a response head. Interim (1xx other than 101) heads are returned too: call
    /// again for the final one. Cancel-safe.
    pub async fn read_response_header(&mut self) -> Result<ResponseHeader> {
        loop {
            if !self.buf.is_empty() {
                self.received_any = true;
                if let Some(resp) = parse_response(&mut self.buf, &self.limits)? {
                    if resp.status.is_informational()
                        && resp.status != StatusCode::SWITCHING_PROTOCOLS
                    {
                        return Ok(resp);
                    }
                    let framing = response_framing(&self.req_method, &resp)?;
                    self.keepalive = self.keepalive
                        && framing != BodyFraming::UntilClose
                        && resp.status != StatusCode::SWITCHING_PROTOCOLS
                        && wants_keepalive(resp.version, &resp.headers);
                    self.resp_body = BodyDecoder::new(framing).with_side(Side::Upstream);
                    self.resp_started = true;
                    self.resp_done = self.resp_body.is_done();
                    return Ok(resp);
                }
            }
            let n = read_more(
                &mut self.stream,
                &mut self.buf,
                HEAD_CHUNK,
                &mut self.read_timer,
                self.timeouts.read,
                Side::Upstream,
            )
            .await?;
            if n == 0 {
                self.keepalive = false;
                return Err(Error::new(
                    ErrorKind::ConnectionClosed,
                    Side::Upstream,
                    if self.buf.is_empty() {
                        "upstream closed the connection before responding"
                    } else {
                        "upstream closed the connection in the middle of a response head"
                    },
                ));
            }
        }
    }

    /// Whether response body bytes are already buffered (a read would not wait).
    pub fn has_buffered_body(&self) -> bool {
        !self.buf.is_empty() || self.resp_body.is_done()
    }

    /// Reads the next piece of the response body; `None` at its end. Cancel-safe.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        loop {
            if self.resp_body.is_done() {
                self.resp_done = true;
                return Ok(None);
            }
            match self.resp_body.decode(&mut self.buf)? {
                Some(BodyEvent::Data(b)) => return Ok(Some(b)),
                Some(BodyEvent::Trailers(t)) => self.resp_trailers = Some(t),
                Some(BodyEvent::End) => {
                    self.resp_done = true;
                    return Ok(None);
                }
                None => {
                    let n = read_more(
                        &mut self.stream,
                        &mut self.buf,
                        BODY_CHUNK,
                        &mut self.read_timer,
                        self.timeouts.read,
                        Side::Upstream,
                    )
                    .await?;
                    if n == 0 {
                        self.keepalive = false;
                        match self.resp_body.on_eof()? {
                            Some(BodyEvent::Data(b)) => return Ok(Some(b)),
                            _ => {
                                self.resp_done = true;
                                return Ok(None);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Trailers of a chunked response, once its body was read to the end.
    pub fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.resp_trailers.take()
    }

    /// Whether the connection sits between exchanges, agreed to stay open, and the
    /// server has neither closed it nor sent anything unexpected. Never waits.
    pub fn is_idle_and_open(&self) -> bool {
        if !(self.keepalive && self.req_done && self.resp_done && self.buf.is_empty()) {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// For a connection waiting idle in a pool: registers `cx`'s waker to be woken when
    /// the server closes the connection or sends anything (either way it can no longer
    /// be reused), and returns `Ready` once that happened, or when the connection is
    /// not idle and open at all ([`H1ClientSession::is_idle_and_open`]). Never waits;
    /// makes no system call while nothing arrived. The next exchange's reads replace
    /// the waker.
    pub fn poll_idle_end(&self, cx: &mut Context<'_>) -> Poll<()> {
        // A readiness left over from the last response is cleared by the probe in
        // `is_idle_and_open`; then the runtime is asked again (which registers the
        // waker). Readiness that keeps coming back without bytes ends the connection.
        for _ in 0..3 {
            if self.stream.poll_read_ready(cx).is_pending() {
                return Poll::Pending;
            }
            if !self.is_idle_and_open() {
                return Poll::Ready(());
            }
        }
        Poll::Ready(())
    }

    /// Marks the connection as not reusable.
    pub fn set_no_reuse(&mut self) {
        self.keepalive = false;
    }

    /// Gives up the connection for a tunnel (after a `101`): the stream and any bytes
    /// the server already sent past the response head.
    pub fn into_tunnel(self) -> (Stream, BytesMut) {
        (self.stream, self.buf)
    }
}

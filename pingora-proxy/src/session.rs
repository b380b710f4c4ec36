//! [`Session`]: one client request as the proxy phases see it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use pingora_core::connector::PeerAddress;
use pingora_core::protocols::http::header::{error_body, ERROR_CONTENT_TYPE};
use pingora_core::protocols::http::{RequestHeader, ResponseHeader, ServerSession};
use pingora_core::protocols::tls::ClientCertInfo;
use pingora_core::protocols::{ClientAddr, ConnectionInfo};
use pingora_core::{Error, ErrorKind};

use crate::phase_args::FailureAnswer;
use crate::status;

/// An upstream attempt of the current request that failed (see
/// [`Session::upstream_failures`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFailure {
    /// The peer it went to.
    pub peer: PeerAddress,
    /// What went wrong ([`ErrorKind::HttpStatus`] for a status the retry rule lists).
    pub kind: ErrorKind,
}

/// The client connection and what is known about its current request.
pub struct Session {
    /// The client side of the request (an HTTP/1.x connection or an HTTP/2 stream).
    pub downstream: ServerSession,
    started: Instant,
    upstream_status: Option<StatusCode>,
    /// The last upstream address chosen on this connection, as text (kept across its
    /// requests: formatted again only when the peer changes).
    upstream_addr: Option<(PeerAddress, String)>,
    /// Whether `upstream_addr` is the current request's.
    upstream_chosen: bool,
    upstream_reused: Option<bool>,
    upstream_attempts: usize,
    /// Empty unless an attempt failed: no allocation for a request that succeeds.
    upstream_failures: Vec<UpstreamFailure>,
    upstream_connect_time: Option<Duration>,
    /// The client's address as an `X-Forwarded-For` entry, made on first use and kept
    /// for the connection's later requests.
    forwarded_for: Option<HeaderValue>,
}

/// What a client connection's [`Session`] keeps between its requests while the
/// connection is idle: the addresses it formatted once.
#[derive(Default)]
pub(crate) struct SessionMemo {
    upstream_addr: Option<(PeerAddress, String)>,
    forwarded_for: Option<HeaderValue>,
}

impl Session {
    pub(crate) fn new(downstream: ServerSession) -> Self {
        Session::resume(downstream, SessionMemo::default())
    }

    /// The session of a connection's next request, with what its earlier ones made.
    pub(crate) fn resume(downstream: ServerSession, memo: SessionMemo) -> Self {
        Session {
            downstream,
            started: Instant::now(),
            upstream_status: None,
            upstream_addr: memo.upstream_addr,
            upstream_chosen: false,
            upstream_reused: None,
            upstream_attempts: 0,
            upstream_failures: Vec::new(),
            upstream_connect_time: None,
            forwarded_for: memo.forwarded_for,
        }
    }

    pub(crate) fn into_downstream(self) -> ServerSession {
        self.downstream
    }

    /// The client side and what the next request's session keeps (see [`SessionMemo`]).
    pub(crate) fn into_parts(self) -> (ServerSession, SessionMemo) {
        let memo = SessionMemo {
            upstream_addr: self.upstream_addr,
            forwarded_for: self.forwarded_for,
        };
        (self.downstream, memo)
    }

    pub(crate) fn begin_request(&mut self) {
        self.started = Instant::now();
        self.upstream_status = None;
        self.upstream_chosen = false;
        self.upstream_reused = None;
        self.upstream_attempts = 0;
        self.upstream_failures.clear();
        self.upstream_connect_time = None;
    }

    /// The request head as the client sent it.
    pub fn req_header(&self) -> &RequestHeader {
        self.downstream.req_header()
    }

    /// The request head, to change before it is proxied.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        self.downstream.req_header_mut()
    }

    /// The client's address: the source of the connection's PROXY header when it came
    /// with one, else the socket peer.
    pub fn client_addr(&self) -> &ClientAddr {
        self.downstream.peer()
    }

    /// The client connection: its socket peer, the local address it reached, whether
    /// it is TLS, and its PROXY header (with the v2 TLVs).
    pub fn connection(&self) -> &ConnectionInfo {
        self.downstream.connection()
    }

    /// What the client's TLS certificate showed, on a listener that asks for one
    /// (`None` on plain connections and TLS listeners without client certificates).
    pub fn client_cert(&self) -> Option<&ClientCertInfo> {
        self.connection().client_cert()
    }

    /// Whether the client connected from loopback (127.0.0.0/8, ::1, or an IPv4-mapped
    /// loopback address). Unix-socket clients are not.
    pub fn client_is_loopback(&self) -> bool {
        self.client_addr().ip().is_some_and(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        })
    }

    /// The client's IP address as an `X-Forwarded-For` entry (`None` for a unix-socket
    /// client): formatted once per connection, then a cheap clone per request.
    pub(crate) fn forwarded_for(&mut self) -> Option<&HeaderValue> {
        if self.forwarded_for.is_none() {
            let ip = self.client_addr().ip()?;
            self.forwarded_for = Some(crate::headers::forwarded_for_value(ip));
        }
        self.forwarded_for.as_ref()
    }

    /// When the current request head was read.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The status the upstream answered with, once it did.
    pub fn upstream_status(&self) -> Option<StatusCode> {
        self.upstream_status
    }

    /// The upstream address the request went to, once chosen.
    pub fn upstream_addr(&self) -> Option<&str> {
        match &self.upstream_addr {
            Some((_, text)) if self.upstream_chosen => Some(text),
            _ => None,
        }
    }

    pub(crate) fn set_upstream(&mut self, peer: &PeerAddress) {
        self.upstream_chosen = true;
        if self.upstream_addr.as_ref().is_some_and(|(p, _)| p == peer) {
            return;
        }
        self.upstream_addr = Some((peer.clone(), peer.to_string()));
    }

    /// Whether the upstream connection of the last attempt came from the keep-alive
    /// pool (`Some(true)`) or was opened for it (`Some(false)`); `None` if none was used.
    pub fn upstream_reused(&self) -> Option<bool> {
        self.upstream_reused
    }

    /// How many upstream attempts the request took so far (connections asked for,
    /// pooled or new; retries included); 0 if it never went upstream.
    pub fn upstream_attempts(&self) -> usize {
        self.upstream_attempts
    }

    pub(crate) fn set_upstream_attempts(&mut self, attempts: usize) {
        self.upstream_attempts = attempts;
    }

    pub(crate) fn set_upstream_status(&mut self, status: StatusCode) {
        self.upstream_status = Some(status);
    }

    /// The upstream attempts of this request that failed so far, oldest first (empty on
    /// the first call of `upstream_peer`): a balancer asked again picks another peer.
    pub fn upstream_failures(&self) -> &[UpstreamFailure] {
        &self.upstream_failures
    }

    pub(crate) fn push_upstream_failure(&mut self, peer: PeerAddress, kind: ErrorKind) {
        self.upstream_failures.push(UpstreamFailure { peer, kind });
    }

    /// How long getting the upstream connection of the last attempt took (connect and
    /// TLS handshake; next to nothing when reused); `None` if none was got.
    pub fn upstream_connect_time(&self) -> Option<Duration> {
        self.upstream_connect_time
    }

    pub(crate) fn set_upstream_connected(&mut self, reused: bool, took: Duration) {
        self.upstream_reused = Some(reused);
        self.upstream_connect_time = Some(took);
    }

    /// The status sent to the client, once a response head was written.
    pub fn response_status(&self) -> Option<StatusCode> {
        self.downstream.response_status()
    }

    /// Whether a response head went to the client already (then a failure can no
    /// longer be answered with an error status, nor retried).
    pub fn response_started(&self) -> bool {
        self.downstream.response_started()
    }

    /// The request's story so far in one line (for [`crate::ProxyHttp::logging`]):
    /// see [`Summary`].
    pub fn summary(&self) -> Summary<'_> {
        Summary(self)
    }

    /// Answers the request with a complete small response.
    pub async fn respond(
        &mut self,
        status: StatusCode,
        content_type: &str,
        body: Bytes,
    ) -> pingora_core::Result<()> {
        self.downstream.respond(status, content_type, body).await
    }

    /// Answers with a full response head and body (the head's framing headers are set
    /// from the body length).
    pub async fn respond_with(
        &mut self,
        mut head: ResponseHeader,
        body: Bytes,
    ) -> pingora_core::Result<()> {
        head.headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(body.len()),
        );
        self.downstream.write_response_header(&mut head).await?;
        self.downstream.write_body(&body).await?;
        self.downstream.finish_response(None).await
    }

    /// Marks the client connection to close after the answer to `error`, unless the
    /// error leaves it sound ([`status::keeps_client_connection`]): for a
    /// [`ProxyHttp::fail_to_proxy`](crate::ProxyHttp::fail_to_proxy) that writes its
    /// own answer, before writing it (so that the answer says `Connection: close`).
    pub fn close_after_error(&mut self, error: &Error) {
        if !status::keeps_client_connection(error) {
            self.downstream.set_keepalive(false);
        }
    }

    /// Answers with the status [`status::for_error`] maps `error` to, unless a response
    /// was already started; says what was sent. A status a phase raised on purpose
    /// ([`ErrorKind::HttpStatus`]) and a failure of the upstream side (502, 503, 504:
    /// nothing wrong with the client's connection) keep the connection open for the
    /// next request, as long as the request body was read; any other error closes it
    /// after the answer.
    pub async fn respond_error_for(&mut self, error: &Error) -> FailureAnswer {
        if self.downstream.response_started() {
            return FailureAnswer::NotSent;
        }
        let status = status::for_error(error);
        self.close_after_error(error);
        let sent = self
            .downstream
            .respond(status, ERROR_CONTENT_TYPE, error_body(status))
            .await;
        match sent {
            Ok(()) => FailureAnswer::Sent(status),
            Err(_) => FailureAnswer::NotSent,
        }
    }
}

/// One line about a request, for logs: client, method, path, status sent, time since
/// the head was read, bytes of body in and out, and the upstream side (peer, status,
/// attempts, whether the connection was reused). Borrowed from the session: formatting
/// it allocates nothing beyond the output.
///
/// `127.0.0.1:50312 GET /a 200 3ms in=0 out=12 upstream=127.0.0.1:9000 upstream_status=200 attempts=1 reused=false`
pub struct Summary<'a>(&'a Session);

impl std::fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        let req = s.req_header();
        let (body_in, body_out) = s.downstream.body_bytes();
        write!(
            f,
            "{} {} {} ",
            s.client_addr(),
            req.method,
            req.path_and_query()
        )?;
        match s.response_status() {
            Some(status) => write!(f, "{}", status.as_u16())?,
            None => f.write_str("-")?,
        }
        write!(
            f,
            " {}ms in={body_in} out={body_out}",
            s.started.elapsed().as_millis()
        )?;
        if let Some(addr) = s.upstream_addr() {
            write!(f, " upstream={addr}")?;
            if let Some(status) = s.upstream_status {
                write!(f, " upstream_status={}", status.as_u16())?;
            }
            write!(f, " attempts={}", s.upstream_attempts)?;
            if let Some(reused) = s.upstream_reused {
                write!(f, " reused={reused}")?;
            }
        }
        Ok(())
    }
}

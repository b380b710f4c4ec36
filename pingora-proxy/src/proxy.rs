//! [`HttpProxy`]: serves client connections by running the [`ProxyHttp`] phases.

use std::sync::Arc;

use bytes::Bytes;

use pingora_core::connector::{Connector, HttpConnector};
use pingora_core::protocols::http::v1::server::{
    H1ServerSession, NextRequest, ServerSessionOptions,
};
use pingora_core::protocols::http::v1::H1IdleConnection;
use pingora_core::protocols::http::v2::server::{H2ServerConnection, H2ServerOptions};
use pingora_core::protocols::http::{ServerSession, UpstreamTunnel};
use pingora_core::protocols::{ConnectionInfo, Stream};
use pingora_core::service::ServerApp;
use pingora_core::shutdown::ShutdownWatch;
use pingora_core::{Error, ErrorKind, Side};

use crate::exchange::{Exchange, Outcome};
use crate::phase_args::FailureAnswer;
use crate::phases::ProxyHttp;
use crate::session::{Session, SessionMemo};
use crate::tunnel;

/// Settings of an [`HttpProxy`].
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Client-side limits and timeouts of HTTP/1.x connections, and whether to serve
    /// HTTP/2 to clients that open a plain connection with the HTTP/2 preface
    /// (`h2c_prior_knowledge`, on by default here; over TLS, HTTP/2 is chosen by ALPN).
    pub downstream: ServerSessionOptions,
    /// Client-side limits and timeouts of HTTP/2 connections.
    pub downstream_h2: H2ServerOptions,
    /// Most retries after a retryable upstream failure (a connect failure is retried
    /// only on another peer; see `docs/proxy-behaviour.md`).
    pub max_retries: usize,
    /// Idle upstream connections kept for reuse.
    pub upstream_keepalive_pool_size: usize,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            downstream: ServerSessionOptions {
                h2c_prior_knowledge: true,
                ..ServerSessionOptions::default()
            },
            downstream_h2: H2ServerOptions::default(),
            max_retries: 16,
            upstream_keepalive_pool_size: 128,
        }
    }
}

/// An HTTP reverse proxy running the phases of `P` for every request.
///
/// Cloning is cheap and gives another handle on the same proxy (the background work
/// of a request, such as a cache refresh, holds one).
pub struct HttpProxy<P> {
    shared: Arc<Shared<P>>,
}

struct Shared<P> {
    inner: P,
    opts: ProxyOptions,
    /// Sessions to the upstreams, pooled.
    upstream: HttpConnector,
}

impl<P> Clone for HttpProxy<P> {
    fn clone(&self) -> Self {
        HttpProxy {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<P: ProxyHttp> HttpProxy<P> {
    /// A proxy with `opts`, connecting upstream with `connector`.
    pub fn new(inner: P, opts: ProxyOptions, connector: Connector) -> Self {
        let upstream = HttpConnector::new(connector, opts.upstream_keepalive_pool_size);
        HttpProxy {
            shared: Arc::new(Shared {
                inner,
                opts,
                upstream,
            }),
        }
    }

    /// The user's phase implementation.
    pub fn inner(&self) -> &P {
        &self.shared.inner
    }

    /// Idle upstream connections currently pooled.
    pub fn idle_upstream_connections(&self) -> usize {
        self.shared.upstream.idle_count()
    }

    /// Serves one request; returns what to do with the connection afterwards.
    async fn serve_request(&self, session: &mut Session) -> AfterRequest {
        session.begin_request();
        let mut ctx = self.shared.inner.new_ctx();
        let result = self.run_phases(session, &mut ctx).await;
        let (after, error) = match result {
            Ok(Outcome::Done) => (AfterRequest::Continue, None),
            Ok(Outcome::Tunnel(up)) => (AfterRequest::Tunnel(up), None),
            Err(e) => {
                let sent = self.shared.inner.fail_to_proxy(session, &e, &mut ctx).await;
                // A client that went away, or a request a phase refused on purpose, is
                // routine; anything else deserves attention.
                let refused = e.http_status_code().is_some_and(|s| s.is_client_error());
                let level = if e.side == Side::Downstream || refused {
                    log::Level::Info
                } else {
                    log::Level::Warn
                };
                log::log!(
                    level,
                    "{} {} {} from {}: answered {sent}{}: {e}",
                    session.req_header().method,
                    session.req_header().path_and_query(),
                    session.upstream_addr().unwrap_or("-"),
                    session.client_addr(),
                    Attempts(session.upstream_attempts()),
                );
                // A status a phase chose, or an upstream failure, answered in full,
                // keeps the connection (the session still closes it when the request
                // body was not read), as nginx does; after any other failure the
                // connection's state is unknown.
                let answered_soundly =
                    crate::status::keeps_client_connection(&e) && sent != FailureAnswer::NotSent;
                if answered_soundly {
                    (AfterRequest::Continue, Some(e))
                } else {
                    session.downstream.set_keepalive(false);
                    (AfterRequest::Close, Some(e))
                }
            }
        };
        self.shared
            .inner
            .logging(session, error.as_ref(), &mut ctx)
            .await;
        match after {
            AfterRequest::Continue if session.downstream.can_reuse() => AfterRequest::Continue,
            AfterRequest::Continue => AfterRequest::Close,
            other => other,
        }
    }

    async fn run_phases(
        &self,
        session: &mut Session,
        ctx: &mut P::Ctx,
    ) -> pingora_core::Result<Outcome> {
        self.shared.inner.early_request_filter(session, ctx).await?;
        if session.req_header().method == http::Method::CONNECT {
            // A reverse proxy is no forward proxy: CONNECT is implemented for no
            // resource (RFC 9110 §15.6.2). Extended CONNECT (RFC 8441) never gets here:
            // it arrives as the upgrade request it stands for.
            session
                .respond(
                    http::StatusCode::NOT_IMPLEMENTED,
                    "text/plain",
                    Bytes::from_static(b"501 Not Implemented: CONNECT is not supported\n"),
                )
                .await?;
            return Ok(Outcome::Done);
        }
        if self.shared.inner.request_filter(session, ctx).await? {
            if !session.downstream.response_started() {
                return Err(Error::new(
                    ErrorKind::Internal,
                    Side::Internal,
                    "request_filter returned true without answering",
                ));
            }
            return Ok(Outcome::Done);
        }
        #[cfg(feature = "cache")]
        if let Some(cache) = self.shared.inner.request_cache_filter(session, ctx)? {
            return crate::cache::run(self, session, ctx, cache).await;
        }
        Exchange::new(self, session, ctx, ()).run().await
    }

    pub(crate) fn phases(&self) -> &P {
        &self.shared.inner
    }

    /// The sessions to the upstreams.
    pub(crate) fn upstream(&self) -> &HttpConnector {
        &self.shared.upstream
    }

    pub(crate) fn max_retries(&self) -> usize {
        self.shared.opts.max_retries
    }
}

/// " after N upstream attempts" in the failure line of a request that went upstream.
struct Attempts(usize);

impl std::fmt::Display for Attempts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            0 => Ok(()),
            1 => f.write_str(" after 1 upstream attempt"),
            n => write!(f, " after {n} upstream attempts"),
        }
    }
}

enum AfterRequest {
    Continue,
    Close,
    Tunnel(Box<UpstreamTunnel>),
}

/// A client connection between the boxed futures that serve it: all its task holds.
enum ConnectionState {
    /// Accepted, to be served as HTTP/1.x (or as HTTP/2 if it opens with the preface).
    NewHttp1(Stream, ConnectionInfo),
    /// HTTP/2, chosen by ALPN or by the preface: the stream and the bytes read so far.
    Http2(Stream, Bytes, ConnectionInfo),
    /// An HTTP/1.x connection between requests, nothing buffered.
    Idle(H1IdleConnection, SessionMemo),
    /// Over.
    Closed,
}

impl<P: ProxyHttp> ServerApp for HttpProxy<P> {
    fn process_connection(
        &self,
        stream: Stream,
        conn: ConnectionInfo,
        shutdown: ShutdownWatch,
    ) -> impl std::future::Future<Output = ()> + Send {
        let mut state = if stream.alpn() == Some(b"h2".as_slice()) {
            ConnectionState::Http2(stream, Bytes::new(), conn)
        } else {
            ConnectionState::NewHttp1(stream, conn)
        };
        let mut shutdown = shutdown;
        let keepalive = self.shared.opts.downstream.keepalive_timeout;
        // `state` is the task's one large value, kept in place: serving is a boxed future
        // (dropped when the connection goes idle), and the idle wait borrows `state`.
        async move {
            loop {
                let serving = match std::mem::replace(&mut state, ConnectionState::Closed) {
                    ConnectionState::Http2(stream, read, conn) => {
                        // Boxed (once per connection): the HTTP/2 connection's state
                        // machine must not size the task of every HTTP/1 connection.
                        Box::pin(self.serve_h2(stream, read, conn, shutdown)).await;
                        return;
                    }
                    ConnectionState::Closed => return,
                    http1 => Box::pin(self.serve_http1(http1, shutdown.clone())),
                };
                state = serving.await;
                if let ConnectionState::Idle(idle, _) = &mut state {
                    if !idle.wait(keepalive, &mut shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// One HTTP/3 request: the same phases as any other request.
    #[cfg(feature = "http3")]
    fn process_h3_stream(
        &self,
        stream: pingora_core::protocols::http::v3::H3ServerStream,
    ) -> impl std::future::Future<Output = ()> + Send {
        // The session is made before the future, which then holds the stream once.
        let mut session = Session::new(ServerSession::H3(stream));
        async move {
            // One stream, one request; no tunnel (HTTP/3 has no upgrade).
            if let AfterRequest::Tunnel(upstream) = self.serve_request(&mut session).await {
                drop(upstream);
            }
        }
    }
}

impl<P: ProxyHttp> HttpProxy<P> {
    /// Serves the requests of an HTTP/1.x connection, one after the other, until the
    /// connection goes idle (no request in progress and none buffered), ends, or turns
    /// out to be HTTP/2 with prior knowledge.
    ///
    /// The caller boxes this future and drops it while the connection is idle, so that
    /// an idle keep-alive connection costs its [`H1IdleConnection`] and a small task,
    /// not the session and the whole exchange's state machine (see
    /// docs/reliability.md). The rare endings (a rejection, a close, a tunnel) are
    /// boxed again: they do not size the common path.
    async fn serve_http1(
        &self,
        start: ConnectionState,
        shutdown: ShutdownWatch,
    ) -> ConnectionState {
        let opts = self.shared.opts.downstream;
        let (h1, memo) = match start {
            ConnectionState::NewHttp1(stream, conn) => (
                H1ServerSession::new(stream, conn, opts, shutdown),
                SessionMemo::default(),
            ),
            ConnectionState::Idle(idle, memo) => (idle.resume(opts, shutdown), memo),
            // Not an HTTP/1.x connection to serve.
            other => return other,
        };
        let mut session = Session::resume(ServerSession::H1(h1), memo);
        loop {
            let Some(h1) = session.downstream.as_http1_mut() else {
                return ConnectionState::Closed;
            };
            match h1.read_request().await {
                Ok(NextRequest::Request) => {}
                Ok(NextRequest::Closed) => return ConnectionState::Closed,
                Ok(NextRequest::Http2) => {
                    let Some(h1) = session.into_downstream().into_http1() else {
                        return ConnectionState::Closed;
                    };
                    let conn = h1.connection().clone();
                    let (stream, read) = h1.into_tunnel();
                    return ConnectionState::Http2(stream, read.freeze(), conn);
                }
                Err(e) => {
                    if let Some(status) = Box::pin(bad_request(h1, &e)).await {
                        self.shared.inner.request_rejected(h1.peer(), status, &e);
                    }
                    return ConnectionState::Closed;
                }
            }
            match self.serve_request(&mut session).await {
                AfterRequest::Continue => {
                    // With a pipelined request already buffered, it is read at once.
                    if session
                        .downstream
                        .as_http1_mut()
                        .is_some_and(|h1| h1.can_idle())
                    {
                        let (downstream, memo) = session.into_parts();
                        return match downstream.into_http1().and_then(|h1| h1.into_idle()) {
                            Some(idle) => ConnectionState::Idle(idle, memo),
                            None => ConnectionState::Closed,
                        };
                    }
                }
                AfterRequest::Close => {
                    if let Some(h1) = session.downstream.as_http1_mut() {
                        Box::pin(h1.shutdown()).await;
                    }
                    return ConnectionState::Closed;
                }
                AfterRequest::Tunnel(upstream) => {
                    let carried = tunnel::Carried::of(session.req_header());
                    if let Some(h1) = session.into_downstream().into_http1() {
                        Box::pin(tunnel::run(h1, *upstream, carried)).await;
                    }
                    return ConnectionState::Closed;
                }
            }
        }
    }

    /// Serves an HTTP/2 connection: each stream is a request of its own, served on a
    /// task of its own, until the client or a drain ends the connection. `prefix` holds
    /// bytes already read from `stream`.
    async fn serve_h2(
        &self,
        stream: Stream,
        prefix: Bytes,
        info: ConnectionInfo,
        shutdown: ShutdownWatch,
    ) {
        let opts = self.shared.opts.downstream_h2;
        let mut conn =
            match H2ServerConnection::handshake(stream, prefix, info, opts, shutdown.clone()).await
            {
                Ok(conn) => conn,
                Err(e) => {
                    log::debug!("HTTP/2 handshake failed: {e}");
                    return;
                }
            };
        let mut requests = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                next = conn.accept() => match next {
                    Some(Ok(stream)) => {
                        let session = Session::new(ServerSession::H2(stream));
                        // Boxed: the task then holds a pointer, and spawning it, and
                        // storing its end, do not copy the whole request's state machine.
                        requests.spawn(Box::pin(self.clone().serve_h2_stream(session, shutdown.clone())));
                    }
                    Some(Err(e)) => log::debug!("client {}: HTTP/2 connection failed: {e}", conn.peer()),
                    None => break,
                },
                Some(_) = requests.join_next(), if !requests.is_empty() => {}
            }
        }
        // The connection is over; streams still running end with its errors.
        while requests.join_next().await.is_some() {}
    }

    /// One HTTP/2 stream: one request, nothing to keep; a tunnel only for an extended
    /// CONNECT whose upstream switched protocols. It takes a handle on the proxy and the
    /// whole session by value, so that the spawned future holds each once.
    async fn serve_h2_stream(self, mut session: Session, shutdown: ShutdownWatch) {
        if let AfterRequest::Tunnel(upstream) = self.serve_request(&mut session).await {
            let carried = tunnel::Carried::of(session.req_header());
            if let ServerSession::H2(stream) = session.into_downstream() {
                Box::pin(tunnel::run_h2(stream, *upstream, carried, shutdown)).await;
            }
        }
    }
}

/// Answers a request that could not be read (400, 431, 408), logs why and closes the
/// connection; returns the status the request was rejected with (None when the client
/// just went away).
async fn bad_request(downstream: &mut H1ServerSession, e: &Error) -> Option<http::StatusCode> {
    let quiet = matches!(
        e.kind,
        ErrorKind::ConnectionClosed | ErrorKind::ConnectionReset
    );
    if quiet {
        log::debug!("client {}: {e}", downstream.peer());
        return None;
    }
    let status = crate::status::for_error(e);
    log::warn!(
        "client {}: bad request, answered {}: {e}",
        downstream.peer(),
        status.as_u16()
    );
    // A keep-alive connection that went quiet mid-head is just closed.
    let answered = e.kind != ErrorKind::ReadTimeout || downstream.requests_served() == 0;
    if answered {
        let _ = downstream.respond_error(status).await;
    }
    downstream.shutdown().await;
    answered.then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use pingora_core::protocols::ClientAddr;
    use pingora_core::shutdown::ShutdownController;

    struct Unused;

    impl ProxyHttp for Unused {
        type Ctx = ();
        fn new_ctx(&self) {}
        async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<HttpPeer> {
            Err(Error::new(ErrorKind::NoUpstream, Side::Internal, "unused"))
        }
    }

    /// Largest accepted size of one request's future, in bytes. It is part of the boxed
    /// future that serves an HTTP/1 connection while it is busy (so an idle connection
    /// does not hold it) and of each HTTP/2 stream's: its size is allocated per request
    /// and held per open stream. 16 KiB of buffer inside it once cost 40% more CPU per
    /// request.
    const MAX_REQUEST_FUTURE: usize = 12 * 1024;

    #[tokio::test]
    async fn a_request_s_future_holds_no_buffer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let shutdown = ShutdownController::new();
        let downstream = H1ServerSession::new(
            Stream::Tcp(client),
            ConnectionInfo::new(ClientAddr::Tcp(addr)),
            ServerSessionOptions::default(),
            shutdown.watch(),
        );
        let mut session = Session::new(ServerSession::H1(downstream));
        let proxy = HttpProxy::new(Unused, ProxyOptions::default(), Default::default());
        let request = proxy.serve_request(&mut session);
        let size = std::mem::size_of_val(&request);
        eprintln!("a request's future: {size} bytes");
        assert!(
            size <= MAX_REQUEST_FUTURE,
            "a request's future is {size} bytes: a large value is held inline in the exchange"
        );
    }
}

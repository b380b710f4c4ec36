//! [`HttpProxy`]: serves client connections by running the [`ProxyHttp`] phases.

use std::sync::Arc;

use pingora_core::connector::{Connector, HttpConnector, HttpPeer};
use pingora_core::protocols::http::v1::client::HttpClientSession;
use pingora_core::protocols::http::v1::server::{
    HttpServerSession, NextRequest, ServerSessionOptions,
};
use pingora_core::protocols::http::{ClientSession, ServerSession};
use pingora_core::protocols::{PeerAddr, Stream};
use pingora_core::service::ServerApp;
use pingora_core::shutdown::ShutdownWatch;
use pingora_core::{Error, ErrorKind, Side};

use crate::exchange::{Exchange, Outcome};
use crate::phases::ProxyHttp;
use crate::session::Session;
use crate::tunnel;

/// Settings of an [`HttpProxy`].
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Client-side limits and timeouts.
    pub downstream: ServerSessionOptions,
    /// Most retries after a retryable upstream failure.
    pub max_retries: usize,
    /// Idle upstream connections kept for reuse.
    pub upstream_keepalive_pool_size: usize,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            downstream: ServerSessionOptions::default(),
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
    upstreams: HttpConnector,
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
        let upstreams = HttpConnector::new(connector, opts.upstream_keepalive_pool_size);
        HttpProxy {
            shared: Arc::new(Shared {
                inner,
                opts,
                upstreams,
            }),
        }
    }

    /// The user's phase implementation.
    pub fn inner(&self) -> &P {
        &self.shared.inner
    }

    /// Idle upstream connections currently pooled.
    pub fn idle_upstream_connections(&self) -> usize {
        self.shared.upstreams.idle_count()
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
                // A client that went away is routine; anything else deserves attention.
                let level = if e.side == Side::Downstream {
                    log::Level::Info
                } else {
                    log::Level::Warn
                };
                log::log!(
                    level,
                    "{} {} {} from {}: answered {}: {e}",
                    session.req_header().method,
                    session.req_header().path_and_query(),
                    session.upstream_addr().unwrap_or("-"),
                    session.client_addr(),
                    if sent == 0 {
                        "nothing".to_string()
                    } else {
                        sent.to_string()
                    },
                );
                session.downstream.set_keepalive(false);
                (AfterRequest::Close, Some(e))
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
        Exchange::new(self, session, ctx).run().await
    }

    pub(crate) fn phases(&self) -> &P {
        &self.shared.inner
    }

    /// Gives an upstream session back once its exchange is over: an HTTP/1.x
    /// connection goes to the keep-alive pool.
    pub(crate) fn release(&self, peer: &HttpPeer, upstream: ClientSession) {
        if let Some(h1) = upstream.into_http1() {
            self.shared.upstreams.release(peer, h1);
        }
    }

    pub(crate) fn max_retries(&self) -> usize {
        self.shared.opts.max_retries
    }

    /// A connection to `peer`: an idle pooled one when `allow_reuse` and one is there
    /// (the flag in the result says so), else a new one.
    pub(crate) async fn connect(
        &self,
        peer: &HttpPeer,
        allow_reuse: bool,
    ) -> pingora_core::Result<(ClientSession, bool)> {
        if allow_reuse {
            if let Some(mut s) = self.shared.upstreams.reused(peer) {
                s.set_timeouts(peer.options.client_timeouts());
                return Ok((s.into(), true));
            }
        }
        Ok((self.shared.upstreams.connect(peer).await?.into(), false))
    }
}

enum AfterRequest {
    Continue,
    Close,
    Tunnel(Box<HttpClientSession>),
}

impl<P: ProxyHttp> ServerApp for HttpProxy<P> {
    async fn process_connection(&self, stream: Stream, peer: PeerAddr, shutdown: ShutdownWatch) {
        let downstream =
            HttpServerSession::new(stream, peer, self.shared.opts.downstream, shutdown);
        self.serve_http1(downstream).await;
    }
}

impl<P: ProxyHttp> HttpProxy<P> {
    /// Serves the requests of an HTTP/1.x connection, one after the other.
    async fn serve_http1(&self, downstream: HttpServerSession) {
        let mut session = Session::new(ServerSession::H1(downstream));
        loop {
            let Some(h1) = session.downstream.as_http1_mut() else {
                return;
            };
            match h1.read_request().await {
                Ok(NextRequest::Request) => {}
                Ok(NextRequest::Closed) => return,
                Err(e) => {
                    bad_request(h1, e).await;
                    return;
                }
            }
            match self.serve_request(&mut session).await {
                AfterRequest::Continue => continue,
                AfterRequest::Close => {
                    if let Some(h1) = session.downstream.as_http1_mut() {
                        h1.shutdown().await;
                    }
                    return;
                }
                AfterRequest::Tunnel(upstream) => {
                    if let Some(h1) = session.into_downstream().into_http1() {
                        tunnel::run(h1, *upstream).await;
                    }
                    return;
                }
            }
        }
    }
}

/// Answers a request that could not be read (400, 431, 408) and logs why.
async fn bad_request(downstream: &mut HttpServerSession, e: Error) {
    let quiet = matches!(
        e.kind,
        ErrorKind::ConnectionClosed | ErrorKind::ConnectionReset
    );
    if quiet {
        log::debug!("client {}: {e}", downstream.peer());
        return;
    }
    let status = crate::status::for_error(&e);
    log::warn!(
        "client {}: bad request, answered {}: {e}",
        downstream.peer(),
        status.as_u16()
    );
    if e.kind != ErrorKind::ReadTimeout || downstream.requests_served() == 0 {
        let _ = downstream.respond_error(status).await;
    }
    downstream.shutdown().await;
}

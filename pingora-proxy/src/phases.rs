//! The [`ProxyHttp`] trait: what a proxy decides at each phase of a request.

use std::future::Future;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use pingora_core::connector::HttpPeer;
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};
use pingora_core::protocols::ClientAddr;
use pingora_core::{Error, Result};

use crate::phase_args::{FailureAnswer, UpstreamConnection};
use crate::retry_rule::RetryRule;
use crate::session::Session;

#[cfg(feature = "cache")]
use pingora_cache::{CacheKey, Cacheability, HttpCache, ResponseTiming};
#[cfg(feature = "cache")]
use std::sync::Arc;

/// The phases of proxying one request. Implement [`ProxyHttp::upstream_peer`] at least;
/// every other phase has a default that proxies the request unchanged.
///
/// In order (`docs/library.md` has the chart): [`ProxyHttp::new_ctx`],
/// [`ProxyHttp::early_request_filter`], [`ProxyHttp::request_filter`], (the cache),
/// [`ProxyHttp::upstream_peer`], [`ProxyHttp::retry_rule`],
/// [`ProxyHttp::upstream_request_filter`], [`ProxyHttp::connected_to_upstream`],
/// [`ProxyHttp::request_body_filter`], [`ProxyHttp::upstream_response_filter`],
/// [`ProxyHttp::response_filter`], [`ProxyHttp::upstream_response_body_filter`] and
/// [`ProxyHttp::response_body_filter`] per piece, [`ProxyHttp::response_trailer_filter`],
/// [`ProxyHttp::logging`]. On failure: [`ProxyHttp::fail_to_connect`] or
/// [`ProxyHttp::error_while_proxy`] (retry or not), then [`ProxyHttp::fail_to_proxy`]
/// (the error response).
///
/// # Shapes (async or sync)
///
/// Every phase takes `&self`, then the [`Session`], then what it is about, then the
/// request's context last. A phase is **async** when it is a step on the request's
/// path: it sees or produces the request or the response (heads, body pieces,
/// trailers), picks the peer, answers, or logs, so it may wait (a lookup, a remote
/// rate-limit store, an authorization service) before the request goes on. A phase is
/// **sync** when it only judges something in place, without waiting: [`ProxyHttp::new_ctx`],
/// [`ProxyHttp::retry_rule`], what to do with an error ([`ProxyHttp::fail_to_connect`],
/// [`ProxyHttp::error_while_proxy`]), [`ProxyHttp::request_rejected`], and the cache's
/// decisions. An async phase returns `impl Future`; write it as `async fn`.
///
/// The four body filters have one shape: `(session, body: &mut Option<Bytes>,
/// end_of_stream: bool, ctx) -> Result<()>`. Each piece of the body comes as
/// `Some(piece)` with `end_of_stream == false`; then exactly one last call comes with
/// `end_of_stream == true` and `body == None` (even for an empty body), where a filter
/// may put a last piece. A filter may replace, empty (`None`) or grow a piece. When it
/// changes the body's length, it removes `Content-Length` in the head phase before it
/// (`upstream_request_filter` for the request, `upstream_response_filter` or
/// `response_filter` for the response): the body then goes chunked (HTTP/1.1) or
/// without a declared length (HTTP/2).
pub trait ProxyHttp: Send + Sync + 'static {
    /// Per-request state shared by the phases.
    type Ctx: Send;

    /// Creates the state for a new request. Sync.
    fn new_ctx(&self) -> Self::Ctx;

    /// Sees the request first, before any module and before the cache: the place for
    /// what every later phase should see (normalizing the request, filling the
    /// context). An error ends the request (answered by [`ProxyHttp::fail_to_proxy`]).
    fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (session, ctx);
        async { Ok(()) }
    }

    /// Decides about the request. Return `Ok(true)` after answering it yourself (for
    /// example with [`Session::respond`]); `Ok(false)` to go on proxying; or an error:
    /// [`Error::http_status`] answers the client with that status (a 403, a 429...).
    fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<bool>> + Send {
        let _ = (session, ctx);
        async { Ok(false) }
    }

    /// Chooses the upstream server. Called again before each retry, so a load balancer
    /// can pick another server: [`Session::upstream_failures`] lists the peers that
    /// failed during this request. A retry goes ahead only if this names an address
    /// that has not failed: naming one that did (or failing) ends the request with the
    /// error of the last attempt.
    fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<HttpPeer>> + Send;

    /// Which failures of an attempt are retried on another peer, how many times, and
    /// the time bound of one attempt. Called once, after the first
    /// [`ProxyHttp::upstream_peer`]. The default (`None`) retries connect failures
    /// only, within the proxy's `max_retries`. Sync.
    fn retry_rule(&self, session: &Session, ctx: &mut Self::Ctx) -> Option<RetryRule> {
        let _ = (session, ctx);
        None
    }

    /// Edits the request head sent upstream (hop-by-hop headers are already removed
    /// and `X-Forwarded-For` appended). Called once, before the first attempt; retries
    /// send the same head. Removing `Content-Length` sends the body chunked (do it
    /// when [`ProxyHttp::request_body_filter`] changes the body's length).
    fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (session, upstream_request, ctx);
        async { Ok(()) }
    }

    /// An attempt got its upstream connection: which peer, whether it was reused, how
    /// long it took. Called once per attempt that connected. An error ends the request.
    fn connected_to_upstream(
        &self,
        session: &mut Session,
        connection: &UpstreamConnection<'_>,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (session, connection, ctx);
        async { Ok(()) }
    }

    /// Edits or replaces a piece of the request body on its way upstream (see [`ProxyHttp`] for the body filters' contract). Called only for a
    /// request that has a body.
    fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (session, body, end_of_stream, ctx);
        async { Ok(()) }
    }

    /// Edits the response head as received from upstream (hop-by-hop headers
    /// removed), before the cache sees it. Not called for interim (1xx) heads.
    fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (session, upstream_response, ctx);
        async { Ok(()) }
    }

    /// Decides whether this request goes through a cache, and which one (feature
    /// `cache`). Called after [`ProxyHttp::request_filter`]. The default uses none: the
    /// cache does nothing unless an implementation returns a cache here.
    #[cfg(feature = "cache")]
    fn request_cache_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::Ctx,
    ) -> Result<Option<Arc<HttpCache>>> {
        let _ = (session, ctx);
        Ok(None)
    }

    /// The cache key of the request (feature `cache`). The default is method, host,
    /// path and query ([`CacheKey::from_request`]); `Vary` variants are derived from it.
    #[cfg(feature = "cache")]
    fn cache_key(&self, session: &Session, ctx: &mut Self::Ctx) -> CacheKey {
        let _ = ctx;
        CacheKey::from_request(session.req_header())
    }

    /// Decides whether an upstream response may be stored in `cache`, and for how long
    /// it is fresh (feature `cache`). `response` is the head after
    /// [`ProxyHttp::upstream_response_filter`]; after a `304` it is the stored head
    /// updated by it. The default follows RFC 9111 for a shared cache with the cache's
    /// own storing rules, such as `store_set_cookie`
    /// ([`HttpCache::response_cacheability`]).
    #[cfg(feature = "cache")]
    fn response_cache_filter(
        &self,
        session: &Session,
        cache: &HttpCache,
        response: &ResponseHeader,
        timing: &ResponseTiming,
        ctx: &mut Self::Ctx,
    ) -> Cacheability {
        let _ = ctx;
        cache.response_cacheability(session.req_header(), response, timing)
    }

    /// Whether this client may remove entries with the `PURGE` method (feature
    /// `cache`). The default allows loopback clients only (127.0.0.0/8 and ::1).
    #[cfg(feature = "cache")]
    fn purge_allowed(&self, session: &Session, ctx: &mut Self::Ctx) -> bool {
        let _ = ctx;
        session.client_is_loopback()
    }

    /// Edits the response head just before it is sent to the client (also for a
    /// response from the cache).
    fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (session, response, ctx);
        async { Ok(()) }
    }

    /// Edits or replaces a piece of the response body as received from upstream,
    /// before the cache stores it (see [`ProxyHttp`] for the body filters' contract). Not called for a response from the cache.
    fn upstream_response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (session, body, end_of_stream, ctx);
        async { Ok(()) }
    }

    /// Edits or replaces a piece of the response body on its way to the client (also
    /// for a response from the cache; see [`ProxyHttp`] for the body filters' contract).
    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (session, body, end_of_stream, ctx);
        async { Ok(()) }
    }

    /// Edits the response trailers on their way to the client; called after the last
    /// body filter call, only for a response that has trailers. Emptying the map
    /// drops them.
    fn response_trailer_filter(
        &self,
        session: &mut Session,
        trailers: &mut HeaderMap,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (session, trailers, ctx);
        async { Ok(()) }
    }

    /// Decides what to do after connecting to `peer` failed: return the error, with
    /// [`Error::retry`] set to try again on another peer (from a new call to
    /// [`ProxyHttp::upstream_peer`]), within the retry rule and the proxy's
    /// `max_retries`. `retry` comes set as the [`ProxyHttp::retry_rule`] (or, without
    /// one, the connector) judged. Sync.
    fn fail_to_connect(
        &self,
        session: &mut Session,
        peer: &HttpPeer,
        error: Error,
        ctx: &mut Self::Ctx,
    ) -> Error {
        let _ = (session, peer, ctx);
        error
    }

    /// Decides what to do after an attempt failed on an established connection to
    /// `peer`: a read or write error or timeout, a reset, or a status the retry rule
    /// lists (an error of kind [`pingora_core::ErrorKind::HttpStatus`], side
    /// upstream). Also called when the response had started towards the client (see
    /// [`Session::response_started`]): then nothing can be retried or answered, and
    /// this is the place to notice it. Return the error with [`Error::retry`] set to
    /// try again on another peer; it comes set as the [`ProxyHttp::retry_rule`] judged
    /// (false without one). The proxy retries only what is safe whatever this says:
    /// nothing after the response started, nothing but connect failures for a partly
    /// sent body or a non-idempotent method. Sync.
    fn error_while_proxy(
        &self,
        session: &mut Session,
        peer: &HttpPeer,
        error: Error,
        ctx: &mut Self::Ctx,
    ) -> Error {
        let _ = (session, peer, ctx);
        error
    }

    /// Answers the client after a failure, if a response can still be sent, and says
    /// what was sent. The default answers an [`pingora_core::ErrorKind::HttpStatus`]
    /// error with its status, and maps the others to 400, 431, 413, 502, 503, 504 or
    /// 500 (see [`crate::status::for_error`]).
    fn fail_to_proxy(
        &self,
        session: &mut Session,
        error: &Error,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = FailureAnswer> + Send {
        let _ = ctx;
        async move { session.respond_error_for(error).await }
    }

    /// Called when a request could not be read and the proxy answered it itself with
    /// `status` (400 malformed, 408 too slow, 431 head too large) before closing the
    /// connection. Such a request has no head, so it reaches no other phase (not even
    /// [`ProxyHttp::logging`]). The default does nothing. Sync.
    fn request_rejected(&self, client: &ClientAddr, status: StatusCode, error: &Error) {
        let _ = (client, status, error);
    }

    /// Called exactly once at the end of every request that was read, whatever became
    /// of it (proxied, answered by a phase, refused with an error, failed), with the
    /// error that ended it, if any. [`Session::summary`] has the request's story in
    /// one line.
    fn logging(
        &self,
        session: &mut Session,
        error: Option<&Error>,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = ()> + Send {
        let _ = (session, error, ctx);
        async {}
    }
}

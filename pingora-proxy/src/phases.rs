//! The [`ProxyHttp`] trait: what a proxy decides at each phase of a request.

use std::future::Future;

use bytes::Bytes;
use http::StatusCode;
use pingora_core::connector::HttpPeer;
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};
use pingora_core::protocols::ClientAddr;
use pingora_core::{Error, Result};

use crate::session::Session;

#[cfg(feature = "cache")]
use pingora_cache::{CacheKey, Cacheability, HttpCache, ResponseTiming};
#[cfg(feature = "cache")]
use std::sync::Arc;

/// The phases of proxying one request. Implement [`ProxyHttp::upstream_peer`] at least;
/// every other phase has a default that proxies the request unchanged.
///
/// Methods returning `impl Future` may be written as `async fn` in an implementation.
pub trait ProxyHttp: Send + Sync + 'static {
    /// Per-request state shared by the phases.
    type Ctx: Send;

    /// Creates the state for a new request.
    fn new_ctx(&self) -> Self::Ctx;

    /// Looks at the request first. Return `Ok(true)` after answering it yourself
    /// (for example with [`Session::respond`]); `Ok(false)` to go on proxying.
    fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<bool>> + Send {
        let _ = (session, ctx);
        async { Ok(false) }
    }

    /// Chooses the upstream server. Called again before each retry, so a load balancer
    /// can pick another server. After a failed connect, a retry goes ahead only if this
    /// names another address: naming the one that just failed (or failing) ends the
    /// request with the connect error.
    fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<HttpPeer>> + Send;

    /// Edits the request head sent upstream (hop-by-hop headers are already removed
    /// and `X-Forwarded-For` appended).
    fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (session, upstream_request, ctx);
        async { Ok(()) }
    }

    /// Edits or replaces a piece of the request body on its way upstream.
    /// `end_of_stream` is true for the last call, where `body` may be `None`.
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

    /// Edits the response head as received from upstream (hop-by-hop headers removed).
    fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::Ctx,
    ) -> Result<()> {
        let _ = (session, upstream_response, ctx);
        Ok(())
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

    /// Edits the response head just before it is sent to the client.
    fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (session, response, ctx);
        async { Ok(()) }
    }

    /// Edits or replaces a piece of the response body on its way to the client.
    /// `end_of_stream` is true for the last call, where `body` may be `None`.
    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::Ctx,
    ) -> Result<()> {
        let _ = (session, body, end_of_stream, ctx);
        Ok(())
    }

    /// Decides what to do after connecting to `peer` failed: return the error, with
    /// [`Error::retry`] set to try again on another peer (from a new call to
    /// [`ProxyHttp::upstream_peer`]), within the proxy's `max_retries`. An address whose
    /// connect failed is never tried again during the same request.
    fn fail_to_connect(
        &self,
        session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Self::Ctx,
        error: Error,
    ) -> Error {
        let _ = (session, peer, ctx);
        error
    }

    /// Answers the client after a failure, if a response can still be sent, and returns
    /// the status sent (0 when none could be). The default maps the error to 400, 431,
    /// 502, 503 or 504 (see [`crate::status::for_error`]).
    fn fail_to_proxy(
        &self,
        session: &mut Session,
        error: &Error,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = u16> + Send {
        let _ = ctx;
        async move { session.respond_error_for(error).await }
    }

    /// Called when a request could not be read and the proxy answered it itself with
    /// `status` (400 malformed, 408 too slow, 431 head too large) before closing the
    /// connection. Such a request reaches no other phase. The default does nothing.
    fn request_rejected(&self, client: &ClientAddr, status: StatusCode, error: &Error) {
        let _ = (client, status, error);
    }

    /// Called once at the end of every request, with the error that ended it, if any.
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

//! [`CacheRun`]: the cache's part in one fetch from the origin, attached to the
//! exchange as its [`ExchangeHooks`]: it makes the request conditional when
//! revalidating, judges the response head (answer from the cache after a `304`, store
//! or not), and fills the entry with the body.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, StatusCode};
use pingora_cache::revalidate::{make_conditional, merge_not_modified, strip_conditionals};
use pingora_cache::{
    CacheKey, CacheStatus, Cacheability, CachedResponse, Fill, Found, HttpCache, ResponseTiming,
    WritePermit,
};
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};

use crate::exchange::hooks::{AfterHead, ExchangeHooks};
use crate::phases::ProxyHttp;
use crate::session::Session;

/// What a fetch from the origin is for.
pub(super) enum Fetch {
    /// Forward the request and store nothing; label the response with this status.
    Forward(CacheStatus),
    /// Nothing usable stored: fetch, and store the response if it may be stored.
    Miss,
    /// A stale entry is being revalidated (conditionally when it has validators).
    Revalidate(Found),
}

/// The cache's part in one upstream exchange: the exchange's hooks, called at the
/// request head, the response head and each body piece.
pub(crate) struct CacheRun {
    cache: Arc<HttpCache>,
    /// The request's key (the entry is stored under it, or a variant of it).
    pub(super) primary: CacheKey,
    /// What the fetch is for.
    pub(super) fetch: Fetch,
    permit: Option<WritePermit>,
    fill: Option<Fill>,
    request_time: SystemTime,
    /// Set when the answer comes from the cache after all (a `304`, or an origin error
    /// covered by `stale-if-error`).
    pub(super) answer_from_cache: Option<(Arc<CachedResponse>, CacheStatus)>,
}

impl CacheRun {
    pub(super) fn new(
        cache: Arc<HttpCache>,
        primary: CacheKey,
        fetch: Fetch,
        permit: Option<WritePermit>,
    ) -> Self {
        CacheRun {
            cache,
            primary,
            fetch,
            permit,
            fill: None,
            request_time: SystemTime::now(),
            answer_from_cache: None,
        }
    }
}

impl<P: ProxyHttp> ExchangeHooks<P> for CacheRun {
    /// Adjusts the request sent upstream: the cache's own conditionals when
    /// revalidating, none of the client's when filling.
    fn upstream_request(&mut self, req: &mut RequestHeader) {
        self.request_time = SystemTime::now();
        match &self.fetch {
            Fetch::Forward(_) => {}
            Fetch::Miss => strip_conditionals(&mut req.headers),
            Fetch::Revalidate(found) => {
                make_conditional(&found.response.head, &mut req.headers);
            }
        }
    }

    /// Looks at the upstream response head (after `upstream_response_filter`): answers
    /// from the cache instead after a `304` or an error covered by `stale-if-error`;
    /// otherwise starts storing the response if it may be stored, and labels it with
    /// `X-Cache-Status`.
    fn response_head(
        &mut self,
        phases: &P,
        session: &Session,
        ctx: &mut P::Ctx,
        resp: &mut ResponseHeader,
    ) -> AfterHead {
        let timing = ResponseTiming::received_now(self.request_time);
        if let Fetch::Revalidate(found) = &self.fetch {
            if resp.status == StatusCode::NOT_MODIFIED {
                let merged = merge_not_modified(&found.response.head, resp);
                let refreshed = match phases.response_cache_filter(session, &merged, &timing, ctx) {
                    Cacheability::Store(meta) => self.cache.refresh(found, merged, meta),
                    Cacheability::NoStore(why) => {
                        log::debug!("cache: {} no longer stored after 304: {why}", found.key);
                        self.cache.remove(&found.key);
                        Arc::new(CachedResponse {
                            head: merged,
                            ..(*found.response).clone()
                        })
                    }
                };
                self.answer_from_cache = Some((refreshed, CacheStatus::Revalidated));
                self.permit = None;
                return AfterHead::AnsweredElsewhere;
            }
            if resp.status.is_server_error()
                && found.response.meta.serve_stale_on_error(Instant::now())
            {
                log::info!(
                    "cache: origin answered {}; serving stale {}",
                    resp.status,
                    found.key
                );
                self.answer_from_cache = Some((Arc::clone(&found.response), CacheStatus::Stale));
                self.permit = None;
                return AfterHead::AnsweredElsewhere;
            }
        }
        let (status, store) = match &self.fetch {
            Fetch::Forward(status) => (*status, false),
            Fetch::Miss => (CacheStatus::Miss, true),
            Fetch::Revalidate(_) => (CacheStatus::Expired, true),
        };
        if store {
            match phases.response_cache_filter(session, resp, &timing, ctx) {
                Cacheability::Store(meta) => {
                    self.fill = Some(self.cache.start_fill(
                        &self.primary,
                        &session.req_header().headers,
                        resp.clone(),
                        meta,
                        self.permit.take(),
                    ));
                }
                Cacheability::NoStore(why) => {
                    log::debug!("cache: {} not stored: {why}", self.primary);
                    if let Fetch::Revalidate(found) = &self.fetch {
                        self.cache.remove(&found.key);
                    }
                }
            }
        }
        // Waiters need not wait for a response that will not be stored.
        self.permit = None;
        resp.headers.insert(
            CacheStatus::HEADER,
            HeaderValue::from_static(status.as_str()),
        );
        AfterHead::Relay
    }

    /// A piece of the upstream response body, before the body filter.
    fn body(&mut self, chunk: &Bytes) {
        if let Some(fill) = self.fill.as_mut() {
            fill.push(chunk);
        }
    }

    /// The upstream body ended: store what was filled.
    fn body_end(&mut self, trailers: Option<&HeaderMap>) {
        if let Some(fill) = self.fill.take() {
            if fill.finish(trailers).is_some() {
                log::debug!("cache: stored {}", self.primary);
            }
        }
    }
}

//! [`CacheRun`]: the cache's part in one fetch from the origin, attached to the
//! exchange as its [`ExchangeHooks`]: it makes the request conditional when
//! revalidating (and asks for the whole response when filling), judges the response
//! head (answer from the cache after a `304`, refetch after a `304` for another
//! response, store or not, invalidate after an unsafe request), cuts the client's range
//! out of a response fetched whole, and fills the entry with the body.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, IF_RANGE, RANGE};
use http::{HeaderMap, Method, StatusCode};
use pingora_cache::range::{applicable_range, unsatisfiable_content_range, RangeAnswer};
use pingora_cache::revalidate::{
    make_conditional, merge_not_modified, not_modified_matches, strip_conditionals,
};
use pingora_cache::surrogate::strip_surrogate_control;
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
    /// `invalidates`: the request is unsafe, and a success invalidates what it names.
    Forward {
        /// The `X-Cache-Status` of the answer.
        status: CacheStatus,
        /// A `2xx`/`3xx` answer removes the stored responses of the URI and of its
        /// same-origin `Location`/`Content-Location` (RFC 9111 §4.4).
        invalidates: bool,
    },
    /// Nothing usable stored: fetch, and store the response if it may be stored.
    Miss,
    /// A stale entry is being revalidated (conditionally when it has validators).
    Revalidate(Found),
    /// The origin's `304` for a revalidation named another response: fetch the whole
    /// response again, unconditionally, to replace the entry.
    Refetch(Found),
}

impl Fetch {
    /// A fetch that may store its response: it asks the origin for the whole response.
    fn fills(&self) -> bool {
        matches!(self, Fetch::Miss | Fetch::Revalidate(_) | Fetch::Refetch(_))
    }
}

/// The part of a response body the client gets when the proxy answers its range from a
/// response fetched whole: bytes `start..end` of the body.
struct Cut {
    start: u64,
    end: u64,
    /// Body bytes seen so far.
    at: u64,
}

impl Cut {
    /// The client's part of the next `chunk` of the body.
    fn apply(&mut self, chunk: &mut Option<Bytes>) {
        let Some(data) = chunk.take() else { return };
        let (from, to) = (self.at, self.at + data.len() as u64);
        self.at = to;
        let (lo, hi) = (self.start.max(from), self.end.min(to));
        if lo < hi {
            *chunk = Some(data.slice((lo - from) as usize..(hi - from) as usize));
        }
    }
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
    /// Set when the client's range is answered from a response fetched whole.
    cut: Option<Cut>,
    request_time: SystemTime,
    /// Set when the answer comes from the cache after all (a `304`, or an origin error
    /// covered by `stale-if-error`).
    pub(super) answer_from_cache: Option<(Arc<CachedResponse>, CacheStatus)>,
    /// Set when the origin's `304` was for another response than the stored one: the
    /// stored one cannot be used, the response must be fetched again in full.
    pub(super) refetch: bool,
    /// Set when the client's `Range` was removed from the request sent upstream.
    range_removed: bool,
    /// Set when the whole response was asked for the client's range but will not be
    /// stored (not storable, or announced too large): rather than relay all of it to
    /// cut out the range, ask the origin again for the range alone.
    pub(super) forward_range: bool,
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
            cut: None,
            request_time: SystemTime::now(),
            answer_from_cache: None,
            refetch: false,
            range_removed: false,
            forward_range: false,
        }
    }

    /// The fetch that replaces this one when the client's range is better asked of the
    /// origin directly: forwarded as the client sent it, nothing stored.
    pub(super) fn into_range_forward(self) -> CacheRun {
        let fetch = Fetch::Forward {
            status: CacheStatus::Miss,
            invalidates: false,
        };
        CacheRun::new(self.cache, self.primary, fetch, None)
    }

    /// The fetch that replaces this one after a `304` that did not match: a plain fetch
    /// of the whole response, holding the same lock.
    pub(super) fn into_refetch(self) -> CacheRun {
        let fetch = match self.fetch {
            Fetch::Revalidate(found) | Fetch::Refetch(found) => Fetch::Refetch(found),
            other => other,
        };
        CacheRun::new(self.cache, self.primary, fetch, self.permit)
    }

    /// After a `304` during a revalidation: the answer from the refreshed entry, or a
    /// refetch when the `304` is for another response.
    fn not_modified<P: ProxyHttp>(
        &mut self,
        phases: &P,
        session: &Session,
        ctx: &mut P::Ctx,
        resp: &ResponseHeader,
        timing: &ResponseTiming,
    ) -> AfterHead {
        let Fetch::Revalidate(found) = &self.fetch else {
            return AfterHead::Relay;
        };
        if !not_modified_matches(&found.response.head, resp) {
            log::info!(
                "cache: the origin's 304 for {} names another response (its validators differ); fetching it again",
                found.key
            );
            self.refetch = true;
            return AfterHead::AnsweredElsewhere;
        }
        let merged = merge_not_modified(&found.response.head, resp);
        let cache = &self.cache;
        let refreshed = match phases.response_cache_filter(session, cache, &merged, timing, ctx) {
            Cacheability::Store(meta) => cache.refresh(found, merged, meta),
            Cacheability::NoStore(why) => {
                log::debug!("cache: {} no longer stored after 304: {why}", found.key);
                cache.remove(&found.key);
                Arc::new(CachedResponse {
                    head: merged,
                    ..(*found.response).clone()
                })
            }
        };
        self.answer_from_cache = Some((refreshed, CacheStatus::Revalidated));
        self.permit = None;
        AfterHead::AnsweredElsewhere
    }

    /// Answers the client's range from a `200` fetched whole (the range was not sent
    /// upstream): `206` with the range, `416` when it lies past the end; the whole
    /// response when the length is not announced or the range does not apply.
    fn cut_range(&mut self, req: &RequestHeader, resp: &mut ResponseHeader) {
        let Some(range) = applicable_range(req, resp) else {
            return;
        };
        let Some(len) = resp
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return;
        };
        match range.resolve(len) {
            RangeAnswer::Whole => {}
            RangeAnswer::Partial(r) => {
                set_status(resp, StatusCode::PARTIAL_CONTENT);
                resp.headers.insert(CONTENT_RANGE, r.content_range(len));
                resp.headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(r.len()));
                self.cut = Some(Cut {
                    start: r.start,
                    end: r.end + 1,
                    at: 0,
                });
            }
            RangeAnswer::Unsatisfiable => {
                set_status(resp, StatusCode::RANGE_NOT_SATISFIABLE);
                resp.headers
                    .insert(CONTENT_RANGE, unsatisfiable_content_range(len));
                resp.headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
                self.cut = Some(Cut {
                    start: 0,
                    end: 0,
                    at: 0,
                });
            }
        }
    }
}

/// Gives `resp` another status (and the standard reason phrase).
fn set_status(resp: &mut ResponseHeader, status: StatusCode) {
    resp.status = status;
    resp.reason = None;
}

impl<P: ProxyHttp> ExchangeHooks<P> for CacheRun {
    /// Adjusts the request sent upstream: the cache's own conditionals when
    /// revalidating, none of the client's when filling, and no `Range` when filling (the
    /// cache needs the whole response; the client's range is cut out of it).
    fn upstream_request(&mut self, req: &mut RequestHeader) {
        self.request_time = SystemTime::now();
        if self.fetch.fills() && req.method == Method::GET {
            self.range_removed = req.headers.remove(RANGE).is_some();
            req.headers.remove(IF_RANGE);
        }
        match &self.fetch {
            Fetch::Forward { .. } => {}
            Fetch::Miss | Fetch::Refetch(_) => strip_conditionals(&mut req.headers),
            Fetch::Revalidate(found) => {
                make_conditional(&found.response.head, &mut req.headers);
            }
        }
    }

    /// Looks at the upstream response head (after `upstream_response_filter`): answers
    /// from the cache instead after a `304` or an error covered by `stale-if-error`;
    /// otherwise starts storing the response if it may be stored, invalidates after a
    /// successful unsafe request, answers the client's range, removes
    /// `Surrogate-Control` (meant for this cache only) and labels the response with
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
                return self.not_modified(phases, session, ctx, resp, &timing);
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
        let status = match &self.fetch {
            Fetch::Forward {
                status,
                invalidates,
            } => {
                let succeeded = resp.status.is_success() || resp.status.is_redirection();
                if *invalidates && succeeded {
                    let removed = self
                        .cache
                        .invalidate_after_unsafe(session.req_header(), &resp.headers);
                    if removed > 0 {
                        log::debug!(
                            "cache: {} {} invalidated {removed} entries",
                            session.req_header().method,
                            self.primary
                        );
                    }
                }
                *status
            }
            Fetch::Miss => CacheStatus::Miss,
            Fetch::Revalidate(_) | Fetch::Refetch(_) => CacheStatus::Expired,
        };
        if self.fetch.fills() {
            let cache = Arc::clone(&self.cache);
            match phases.response_cache_filter(session, &cache, resp, &timing, ctx) {
                Cacheability::Store(meta) => {
                    self.fill = Some(cache.start_fill(
                        &self.primary,
                        &session.req_header().headers,
                        resp.clone(),
                        meta,
                        self.permit.take(),
                    ));
                }
                Cacheability::NoStore(why) => {
                    log::debug!("cache: {} not stored: {why}", self.primary);
                    if let Fetch::Revalidate(found) | Fetch::Refetch(found) = &self.fetch {
                        cache.remove(&found.key);
                    }
                }
            }
            let storing = self.fill.as_ref().is_some_and(Fill::is_alive);
            if !storing
                && self.range_removed
                && applicable_range(session.req_header(), resp).is_some()
            {
                log::debug!(
                    "cache: {} will not be stored; asking the origin for the range alone",
                    self.primary
                );
                self.fill = None;
                self.permit = None;
                self.forward_range = true;
                return AfterHead::AnsweredElsewhere;
            }
            self.cut_range(session.req_header(), resp);
        }
        // Waiters need not wait for a response that will not be stored.
        self.permit = None;
        strip_surrogate_control(&mut resp.headers);
        resp.headers.insert(
            CacheStatus::HEADER,
            HeaderValue::from_static(status.as_str()),
        );
        AfterHead::Relay
    }

    /// A piece of the upstream response body, before the body filter: stored whole, and
    /// cut down to the client's range when one is answered.
    fn body(&mut self, chunk: &mut Option<Bytes>) {
        if let (Some(fill), Some(data)) = (self.fill.as_mut(), chunk.as_ref()) {
            fill.push_bytes(data.clone());
        }
        if let Some(cut) = self.cut.as_mut() {
            cut.apply(chunk);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cut_all(start: u64, end: u64, chunks: &[&'static [u8]]) -> Vec<u8> {
        let mut cut = Cut { start, end, at: 0 };
        let mut out = Vec::new();
        for c in chunks {
            let mut chunk = Some(Bytes::from_static(c));
            cut.apply(&mut chunk);
            if let Some(d) = chunk {
                out.extend_from_slice(&d);
            }
        }
        out
    }

    #[test]
    fn a_cut_keeps_the_range_across_chunks() {
        let chunks: &[&[u8]] = &[b"0123", b"4567", b"89"];
        assert_eq!(cut_all(2, 7, chunks), b"23456");
        assert_eq!(cut_all(0, 10, chunks), b"0123456789");
        assert_eq!(cut_all(9, 10, chunks), b"9");
        assert_eq!(cut_all(4, 8, chunks), b"4567");
        assert_eq!(cut_all(0, 0, chunks), b"");
    }
}

//! The cache flow of a request (feature `cache`): lookup, the lock that collapses
//! concurrent misses, the fetch that fills or revalidates, answers from the cache
//! (`HIT`, `STALE`, `REVALIDATED`), `PURGE`, and `X-Cache-Status`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, AGE, CONTENT_LENGTH};
use http::{HeaderMap, Method, StatusCode};
use pingora_cache::revalidate::{make_conditional, merge_not_modified, strip_conditionals};
use pingora_cache::rules::{self, RequestPolicy};
use pingora_cache::{
    CacheKey, CacheStatus, Cacheability, CachedResponse, Fill, Found, HttpCache, Locked, Lookup,
    ResponseTiming, WritePermit,
};
use pingora_core::protocols::http::detached::DetachedRequest;
use pingora_core::protocols::http::v1::{is_upgrade_request, BodyFraming};
use pingora_core::protocols::http::{RequestHeader, ResponseHeader, ServerSession};
use pingora_core::Result;

use crate::exchange::{Exchange, Outcome};
use crate::phases::ProxyHttp;
use crate::proxy::HttpProxy;
use crate::session::Session;

/// What a fetch from the origin is for.
enum Fetch {
    /// Forward the request and store nothing; label the response with this status.
    Forward(CacheStatus),
    /// Nothing usable stored: fetch, and store the response if it may be stored.
    Miss,
    /// A stale entry is being revalidated (conditionally when it has validators).
    Revalidate(Found),
}

/// The cache's part in one upstream exchange; [`Exchange`] calls it at the request
/// head, the response head and each body piece.
pub(crate) struct CacheRun {
    cache: Arc<HttpCache>,
    primary: CacheKey,
    fetch: Fetch,
    permit: Option<WritePermit>,
    fill: Option<Fill>,
    request_time: SystemTime,
    /// Set when the answer comes from the cache after all (a `304`, or an origin error
    /// covered by `stale-if-error`).
    answer_from_cache: Option<(Arc<CachedResponse>, CacheStatus)>,
}

impl CacheRun {
    fn new(
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

    /// Adjusts the request sent upstream: the cache's own conditionals when
    /// revalidating, none of the client's when filling.
    pub(crate) fn prepare_upstream_request(&mut self, req: &mut RequestHeader) {
        self.request_time = SystemTime::now();
        match &self.fetch {
            Fetch::Forward(_) => {}
            Fetch::Miss => strip_conditionals(&mut req.headers),
            Fetch::Revalidate(found) => {
                make_conditional(&found.response.head, &mut req.headers);
            }
        }
    }

    /// Looks at the upstream response head (after `upstream_response_filter`). Returns
    /// true when the client is to be answered from the cache instead; otherwise starts
    /// storing the response if it may be stored, and labels it with `X-Cache-Status`.
    pub(crate) fn on_response_head<P: ProxyHttp>(
        &mut self,
        phases: &P,
        session: &Session,
        ctx: &mut P::Ctx,
        resp: &mut ResponseHeader,
    ) -> bool {
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
                return true;
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
                return true;
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
        false
    }

    /// A piece of the upstream response body, before the body filter.
    pub(crate) fn on_body(&mut self, chunk: &Bytes) {
        if let Some(fill) = self.fill.as_mut() {
            fill.push(chunk);
        }
    }

    /// The upstream body ended: store what was filled.
    pub(crate) fn on_body_end(&mut self, trailers: Option<&HeaderMap>) {
        if let Some(fill) = self.fill.take() {
            if fill.finish(trailers).is_some() {
                log::debug!("cache: stored {}", self.primary);
            }
        }
    }
}

/// Runs a request through `cache`.
pub(crate) async fn run<P: ProxyHttp>(
    proxy: &HttpProxy<P>,
    session: &mut Session,
    ctx: &mut P::Ctx,
    cache: Arc<HttpCache>,
) -> Result<Outcome> {
    let phases = proxy.phases();
    let key = phases.cache_key(session, ctx);
    if session.req_header().method.as_str() == "PURGE" {
        purge(phases, session, ctx, &cache, &key).await?;
        return Ok(Outcome::Done);
    }
    let has_body = session.downstream.req_body_framing() != BodyFraming::Empty;
    let policy = if is_upgrade_request(session.req_header()) {
        RequestPolicy::Bypass {
            reason: "protocol upgrade",
            invalidates: false,
        }
    } else {
        rules::request_policy(session.req_header(), has_body)
    };
    let revalidate = match policy {
        RequestPolicy::Lookup { revalidate } => revalidate,
        RequestPolicy::Bypass {
            reason,
            invalidates,
        } => {
            log::debug!("cache: bypassed for {key}: {reason}");
            let run = CacheRun::new(
                Arc::clone(&cache),
                key,
                Fetch::Forward(CacheStatus::Miss),
                None,
            );
            let outcome = fetch(proxy, session, ctx, run).await?;
            let succeeded = session
                .upstream_status()
                .is_some_and(|s| s.is_success() || s.is_redirection());
            if invalidates && succeeded {
                // RFC 9111 §4.4: a successful unsafe request invalidates the URI.
                let req = session.req_header();
                let get = CacheKey::from_parts(
                    &Method::GET,
                    req.host().unwrap_or(""),
                    req.path_and_query(),
                );
                cache.purge(&get);
            }
            return Ok(outcome);
        }
    };
    let head_request = session.req_header().method == Method::HEAD;
    let mut waited = false;
    loop {
        let now = Instant::now();
        let lookup = cache.lookup(&key, &session.req_header().headers);
        let run = match lookup {
            Lookup::Found(found)
                if rules::may_answer(session.req_header(), &found.response.meta) =>
            {
                let meta = &found.response.meta;
                if !revalidate && meta.is_fresh(now) {
                    serve_stored(phases, session, ctx, &found.response, CacheStatus::Hit).await?;
                    return Ok(Outcome::Done);
                }
                if head_request {
                    // A HEAD cannot refresh a stored GET: forward it, store nothing.
                    CacheRun::new(
                        Arc::clone(&cache),
                        key.clone(),
                        Fetch::Forward(CacheStatus::Expired),
                        None,
                    )
                } else if waited {
                    CacheRun::new(
                        Arc::clone(&cache),
                        key.clone(),
                        Fetch::Revalidate(found),
                        None,
                    )
                } else {
                    match cache.lock(&found.key) {
                        Locked::Writer(permit)
                            if !revalidate && meta.serve_stale_while_revalidating(now) =>
                        {
                            // RFC 5861: answer at once with the stale entry, refresh it
                            // behind the client's back.
                            serve_stored(phases, session, ctx, &found.response, CacheStatus::Stale)
                                .await?;
                            let run = CacheRun::new(
                                Arc::clone(&cache),
                                key.clone(),
                                Fetch::Revalidate(found),
                                Some(permit),
                            );
                            refresh_in_background(proxy, session, run);
                            return Ok(Outcome::Done);
                        }
                        Locked::Writer(permit) => CacheRun::new(
                            Arc::clone(&cache),
                            key.clone(),
                            Fetch::Revalidate(found),
                            Some(permit),
                        ),
                        Locked::Reader(wait) => {
                            if !revalidate && meta.serve_stale_while_revalidating(now) {
                                serve_stored(
                                    phases,
                                    session,
                                    ctx,
                                    &found.response,
                                    CacheStatus::Stale,
                                )
                                .await?;
                                return Ok(Outcome::Done);
                            }
                            wait.wait(cache.lock_timeout()).await;
                            waited = true;
                            continue;
                        }
                    }
                }
            }
            // Stored, but not for a request with Authorization.
            Lookup::Found(_) => CacheRun::new(Arc::clone(&cache), key.clone(), Fetch::Miss, None),
            Lookup::Miss { lock_key } => {
                if head_request {
                    CacheRun::new(
                        Arc::clone(&cache),
                        key.clone(),
                        Fetch::Forward(CacheStatus::Miss),
                        None,
                    )
                } else if waited {
                    CacheRun::new(Arc::clone(&cache), key.clone(), Fetch::Miss, None)
                } else {
                    match cache.lock(&lock_key) {
                        Locked::Writer(permit) => CacheRun::new(
                            Arc::clone(&cache),
                            key.clone(),
                            Fetch::Miss,
                            Some(permit),
                        ),
                        Locked::Reader(wait) => {
                            wait.wait(cache.lock_timeout()).await;
                            waited = true;
                            continue;
                        }
                    }
                }
            }
        };
        return fetch(proxy, session, ctx, run).await;
    }
}

/// Fetches from the origin with `run` watching, then answers from the cache if the
/// fetch said so (a `304`, or `stale-if-error`).
async fn fetch<P: ProxyHttp>(
    proxy: &HttpProxy<P>,
    session: &mut Session,
    ctx: &mut P::Ctx,
    mut run: CacheRun,
) -> Result<Outcome> {
    let result = Exchange::with_cache(proxy, session, ctx, &mut run)
        .run()
        .await;
    let phases = proxy.phases();
    match result {
        Ok(outcome) => {
            if let Some((response, status)) = run.answer_from_cache.take() {
                serve_stored(phases, session, ctx, &response, status).await?;
            }
            Ok(outcome)
        }
        Err(e) => {
            // The failed fill (if any) is dropped with `run`: never stored.
            if !session.downstream.response_started() {
                if let Fetch::Revalidate(found) = &run.fetch {
                    if found.response.meta.serve_stale_on_error(Instant::now()) {
                        log::info!("cache: origin failed ({e}); serving stale {}", found.key);
                        let response = Arc::clone(&found.response);
                        drop(run);
                        serve_stored(phases, session, ctx, &response, CacheStatus::Stale).await?;
                        return Ok(Outcome::Done);
                    }
                }
            }
            Err(e)
        }
    }
}

/// Revalidates or refetches a stale entry on a task of its own, as a request with no
/// client (the phases choose the route and upstream as they did for the client's
/// request). Concurrent requests are answered from the stale entry meanwhile, since
/// `run` holds the key's lock.
fn refresh_in_background<P: ProxyHttp>(proxy: &HttpProxy<P>, session: &Session, mut run: CacheRun) {
    let proxy = proxy.clone();
    let detached =
        DetachedRequest::new(session.req_header().clone(), session.client_addr().clone());
    tokio::spawn(async move {
        let mut session = Session::new(ServerSession::Detached(detached));
        let phases = proxy.phases();
        let mut ctx = phases.new_ctx();
        match phases.request_filter(&mut session, &mut ctx).await {
            Ok(false) => {}
            Ok(true) => return,
            Err(e) => {
                log::warn!(
                    "cache: background refresh of {} not started: {e}",
                    run.primary
                );
                return;
            }
        }
        let result = Exchange::with_cache(&proxy, &mut session, &mut ctx, &mut run)
            .run()
            .await;
        match result {
            Ok(_) => log::debug!(
                "cache: refreshed {} in the background (origin answered {})",
                run.primary,
                session.upstream_status().map_or(0, |s| s.as_u16())
            ),
            Err(e) => log::warn!("cache: background refresh of {} failed: {e}", run.primary),
        }
    });
}

/// Answers the request with a stored response, through the response phases.
async fn serve_stored<P: ProxyHttp>(
    phases: &P,
    session: &mut Session,
    ctx: &mut P::Ctx,
    response: &CachedResponse,
    status: CacheStatus,
) -> Result<()> {
    let mut head = response.head.clone();
    let age = response.meta.age(Instant::now()).as_secs();
    head.headers.insert(AGE, HeaderValue::from(age));
    head.headers.insert(
        CacheStatus::HEADER,
        HeaderValue::from_static(status.as_str()),
    );
    if response.trailers.is_some() {
        // Trailers need chunked framing.
        head.headers.remove(CONTENT_LENGTH);
    } else {
        head.headers
            .insert(CONTENT_LENGTH, HeaderValue::from(response.body.len()));
    }
    phases.response_filter(session, &mut head, ctx).await?;
    session.downstream.write_response_header(&mut head).await?;
    let bodyless = session.req_header().method == Method::HEAD
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED;
    if !bodyless {
        let mut chunk = Some(response.body.clone());
        phases.response_body_filter(session, &mut chunk, false, ctx)?;
        if let Some(data) = chunk {
            session.downstream.write_body(&data).await?;
        }
        let mut last = None;
        phases.response_body_filter(session, &mut last, true, ctx)?;
        if let Some(data) = last {
            session.downstream.write_body(&data).await?;
        }
    }
    session
        .downstream
        .finish_response(response.trailers.as_ref())
        .await
}

/// `PURGE`: removes the entry of `key` if the client may; 200 removed, 404 absent,
/// 403 not allowed.
async fn purge<P: ProxyHttp>(
    phases: &P,
    session: &mut Session,
    ctx: &mut P::Ctx,
    cache: &HttpCache,
    key: &CacheKey,
) -> Result<()> {
    let (status, body) = if !phases.purge_allowed(session, ctx) {
        log::info!(
            "cache: PURGE of {key} from {} refused",
            session.client_addr()
        );
        (
            StatusCode::FORBIDDEN,
            "403 Forbidden: PURGE is only allowed from loopback\n",
        )
    } else if cache.purge(key) {
        log::info!("cache: purged {key}");
        (StatusCode::OK, "purged\n")
    } else {
        (StatusCode::NOT_FOUND, "404 Not Found: not in the cache\n")
    };
    session
        .respond(
            status,
            "text/plain; charset=utf-8",
            Bytes::from_static(body.as_bytes()),
        )
        .await
}

//! The cache flow of a request (feature `cache`): lookup in every tier, the lock that
//! collapses concurrent misses, the fetch that fills or revalidates, answers from the
//! cache (`HIT`, `STALE`, `REVALIDATED`; whole, `304`, `206`, `416`), `PURGE`, and
//! `X-Cache-Status`.
//!
//! - [`decide`]: what to do next, as pure functions (table-tested).
//! - this module: the executor that does it.
//! - [`hooks`]: the cache's part in a fetch from the origin ([`CacheRun`]).
//! - [`answer`]: answers from a stored response or a fill in progress, and `PURGE`.

mod answer;
mod decide;
mod hooks;

use std::sync::Arc;
use std::time::Instant;

use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH, RANGE};
use http::Method;
use pingora_cache::{
    CacheKey, CacheStatus, FillWait, Found, HttpCache, LockWait, Locked, Lookup, WritePermit,
};
use pingora_core::protocols::http::detached::DetachedRequest;
use pingora_core::protocols::http::v1::BodyFraming;
use pingora_core::protocols::http::ServerSession;
use pingora_core::{Error, ErrorKind, Result, Side};

use crate::exchange::{Exchange, Outcome};
use crate::phases::ProxyHttp;
use crate::proxy::HttpProxy;
use crate::session::Session;
use answer::{purge, serve_from_fill, serve_stored, FromFill};
use decide::{decide, start, LockState, Situation, Start, Step, Stored};
use hooks::{CacheRun, Fetch};

/// Runs a request through `cache`.
pub(crate) async fn run<P: ProxyHttp>(
    proxy: &HttpProxy<P>,
    session: &mut Session,
    ctx: &mut P::Ctx,
    cache: Arc<HttpCache>,
) -> Result<Outcome> {
    let phases = proxy.phases();
    let key = phases.cache_key(session, ctx);
    let has_body = session.downstream.req_body_framing() != BodyFraming::Empty;
    let revalidate = match start(session.req_header(), has_body) {
        Start::Purge => {
            purge(phases, session, ctx, &cache, &key).await?;
            return Ok(Outcome::Done);
        }
        Start::Bypass {
            reason,
            invalidates,
        } => {
            log::debug!("cache: bypassed for {key}: {reason}");
            return bypass(proxy, session, ctx, cache, key, invalidates).await;
        }
        Start::Lookup { revalidate } => revalidate,
    };
    look_up(proxy, session, ctx, cache, key, revalidate).await
}

/// Looks the request up and does what [`decide`] says: answers from the cache, waits
/// for another request's fetch and looks up again, or fetches from the origin.
async fn look_up<P: ProxyHttp>(
    proxy: &HttpProxy<P>,
    session: &mut Session,
    ctx: &mut P::Ctx,
    cache: Arc<HttpCache>,
    key: CacheKey,
    revalidate: bool,
) -> Result<Outcome> {
    let phases = proxy.phases();
    let mut waited = false;
    loop {
        let lookup = cache
            .lookup_async(&key, &session.req_header().headers)
            .await;
        let situation = Situation {
            stored: Stored::of(&lookup, session.req_header(), Instant::now()),
            head_request: session.req_header().method == Method::HEAD,
            revalidate,
            waited,
            lock: LockState::NotTried,
        };
        let (step, lock) = decide_with_lock(&cache, &lookup, situation);
        let run = match (step, lookup, lock) {
            (Step::Wait, _, Lock::Reader(wait)) => {
                if wait_for_fetch(phases, session, ctx, &cache, &key, wait).await? {
                    return Ok(Outcome::Done);
                }
                waited = true;
                continue;
            }
            (Step::Hit, Lookup::Found(found), _) => {
                serve_stored(phases, session, ctx, &found.response, CacheStatus::Hit).await?;
                return Ok(Outcome::Done);
            }
            (Step::ServeStale, Lookup::Found(found), _) => {
                serve_stored(phases, session, ctx, &found.response, CacheStatus::Stale).await?;
                return Ok(Outcome::Done);
            }
            (Step::ServeStaleAndRefresh, Lookup::Found(found), Lock::Writer(permit)) => {
                serve_stored(phases, session, ctx, &found.response, CacheStatus::Stale).await?;
                let run = CacheRun::new(cache, key, Fetch::Revalidate(found), Some(permit));
                refresh_in_background(proxy, session, run);
                return Ok(Outcome::Done);
            }
            (Step::Revalidate, Lookup::Found(found), lock) => {
                CacheRun::new(cache, key, Fetch::Revalidate(found), lock.permit())
            }
            (Step::Fill, _, lock) => CacheRun::new(cache, key, Fetch::Miss, lock.permit()),
            (Step::Forward(status), _, lock) => {
                let fetch = Fetch::Forward {
                    status,
                    invalidates: false,
                };
                CacheRun::new(cache, key, fetch, lock.permit())
            }
            (step, _, _) => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    Side::Internal,
                    format!("cache: step {step:?} does not fit what was found for {key}"),
                ))
            }
        };
        return fetch(proxy, session, ctx, run).await;
    }
}

/// The lock as the executor holds it.
enum Lock {
    NotTaken,
    Writer(WritePermit),
    Reader(LockWait),
}

impl Lock {
    /// The permit to hand to the fetch, if this request holds the lock.
    fn permit(self) -> Option<WritePermit> {
        match self {
            Lock::Writer(permit) => Some(permit),
            Lock::NotTaken | Lock::Reader(_) => None,
        }
    }
}

/// Decides in `situation`; when the decision is to take the lock, takes it (on the
/// stored entry's key, or the miss's lock key) and decides again.
fn decide_with_lock(cache: &HttpCache, lookup: &Lookup, mut situation: Situation) -> (Step, Lock) {
    let step = decide(&situation);
    if step != Step::TakeLock {
        return (step, Lock::NotTaken);
    }
    let lock_key = match lookup {
        Lookup::Found(Found { key, .. }) => key,
        Lookup::Miss { lock_key } => lock_key,
    };
    let lock = match cache.lock(lock_key) {
        Locked::Writer(permit) => {
            situation.lock = LockState::Writer;
            Lock::Writer(permit)
        }
        Locked::Reader(wait) => {
            situation.lock = LockState::Reader;
            Lock::Reader(wait)
        }
    };
    (decide(&situation), lock)
}

/// Waits for the request fetching `key`. A request that needs only part of the response
/// (a `Range`) or may be answered by its head (`If-None-Match`, `If-Modified-Since`) is
/// answered from the response being filled as soon as it can; true when it was.
/// Otherwise the wait lasts until the fetch stored its response (or gave up), or the
/// lock timeout.
async fn wait_for_fetch<P: ProxyHttp>(
    phases: &P,
    session: &mut Session,
    ctx: &mut P::Ctx,
    cache: &HttpCache,
    key: &CacheKey,
    mut wait: LockWait,
) -> Result<bool> {
    let deadline = Instant::now() + cache.lock_timeout();
    let headers = &session.req_header().headers;
    let early = [RANGE, IF_NONE_MATCH, IF_MODIFIED_SINCE]
        .iter()
        .any(|h| headers.contains_key(h));
    if early {
        if let FillWait::Filling(partial) = wait.wait_for_fill(cache.lock_timeout()).await {
            match serve_from_fill(phases, session, ctx, key, &partial, deadline).await? {
                FromFill::Answered => return Ok(true),
                FromFill::Gone => return Ok(false),
                FromFill::NotForThisRequest => {}
            }
        }
    }
    wait.wait(deadline.saturating_duration_since(Instant::now()))
        .await;
    Ok(false)
}

/// Forwards a request that does not use the cache; a successful unsafe request
/// (`invalidates`) removes the stored responses of its URI and of the same-origin
/// URIs its response names in `Location` and `Content-Location` (RFC 9111 §4.4).
async fn bypass<P: ProxyHttp>(
    proxy: &HttpProxy<P>,
    session: &mut Session,
    ctx: &mut P::Ctx,
    cache: Arc<HttpCache>,
    key: CacheKey,
    invalidates: bool,
) -> Result<Outcome> {
    let forward = Fetch::Forward {
        status: CacheStatus::Miss,
        invalidates,
    };
    fetch(
        proxy,
        session,
        ctx,
        CacheRun::new(cache, key, forward, None),
    )
    .await
}

/// Fetches from the origin with `run` watching, then answers from the cache if the
/// fetch said so (a `304`, or `stale-if-error`); fetches again in full after a `304`
/// that named another response, and asks for the client's range alone when the whole
/// response asked for it will not be stored. When the origin fails (refused, reset, dropped the
/// connection, timed out) before any of the response went to the client, a stale entry
/// within its `stale-if-error` window is served instead.
async fn fetch<P: ProxyHttp>(
    proxy: &HttpProxy<P>,
    session: &mut Session,
    ctx: &mut P::Ctx,
    mut run: CacheRun,
) -> Result<Outcome> {
    let phases = proxy.phases();
    let mut refetched = false;
    loop {
        // Boxed: the exchange's state machine is large, and inline it would size every
        // request's future by the cache path (a lookup answered from the cache needs none).
        let result = Box::pin(Exchange::new(proxy, session, ctx, &mut run).run()).await;
        match result {
            Ok(outcome) => {
                if run.refetch && !refetched {
                    refetched = true;
                    run = run.into_refetch();
                    continue;
                }
                if run.forward_range {
                    run = run.into_range_forward();
                    continue;
                }
                if let Some((response, status)) = run.answer_from_cache.take() {
                    serve_stored(phases, session, ctx, &response, status).await?;
                }
                return Ok(outcome);
            }
            Err(e) => {
                // The failed fill (if any) is dropped with `run`: never stored.
                if !session.downstream.response_started() {
                    if let Fetch::Revalidate(found) = &run.fetch {
                        if found.response.meta.serve_stale_on_error(Instant::now()) {
                            log::info!("cache: origin failed ({e}); serving stale {}", found.key);
                            let response = Arc::clone(&found.response);
                            drop(run);
                            serve_stored(phases, session, ctx, &response, CacheStatus::Stale)
                                .await?;
                            return Ok(Outcome::Done);
                        }
                    }
                }
                return Err(e);
            }
        }
    }
}

/// Revalidates or refetches a stale entry on a task of its own, as a request with no
/// client (the phases choose the route and upstream as they did for the client's
/// request). Concurrent requests are answered from the stale entry meanwhile, since
/// `run` holds the key's lock.
fn refresh_in_background<P: ProxyHttp>(proxy: &HttpProxy<P>, session: &Session, mut run: CacheRun) {
    let proxy = proxy.clone();
    let detached = DetachedRequest::new(session.req_header().clone(), session.connection().clone());
    tokio::spawn(async move {
        let mut session = Session::new(ServerSession::Detached(detached));
        let phases = proxy.phases();
        let mut ctx = phases.new_ctx();
        let early = phases.early_request_filter(&mut session, &mut ctx).await;
        let filtered = match early {
            Ok(()) => phases.request_filter(&mut session, &mut ctx).await,
            Err(e) => Err(e),
        };
        match filtered {
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
        let mut result = Exchange::new(&proxy, &mut session, &mut ctx, &mut run)
            .run()
            .await;
        if result.is_ok() && run.refetch {
            run = run.into_refetch();
            result = Exchange::new(&proxy, &mut session, &mut ctx, &mut run)
                .run()
                .await;
        }
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

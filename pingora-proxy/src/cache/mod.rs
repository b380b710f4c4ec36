//! The cache flow of a request (feature `cache`): lookup, the lock that collapses
//! concurrent misses, the fetch that fills or revalidates, answers from the cache
//! (`HIT`, `STALE`, `REVALIDATED`), `PURGE`, and `X-Cache-Status`.
//!
//! - [`decide`]: what to do next, as pure functions (table-tested).
//! - this module: the executor that does it.
//! - [`hooks`]: the cache's part in a fetch from the origin ([`CacheRun`]).
//! - [`answer`]: answers from a stored response, and `PURGE`.

mod answer;
mod decide;
mod hooks;

use std::sync::Arc;
use std::time::Instant;

use http::Method;
use pingora_cache::{
    CacheKey, CacheStatus, Found, HttpCache, LockWait, Locked, Lookup, WritePermit,
};
use pingora_core::protocols::http::detached::DetachedRequest;
use pingora_core::protocols::http::v1::BodyFraming;
use pingora_core::protocols::http::ServerSession;
use pingora_core::{Error, ErrorKind, Result, Side};

use crate::exchange::{Exchange, Outcome};
use crate::phases::ProxyHttp;
use crate::proxy::HttpProxy;
use crate::session::Session;
use answer::{purge, serve_stored};
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
        let lookup = cache.lookup(&key, &session.req_header().headers);
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
                wait.wait(cache.lock_timeout()).await;
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
                CacheRun::new(cache, key, Fetch::Forward(status), lock.permit())
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

/// Forwards a request that does not use the cache; a successful unsafe request
/// (`invalidates`) removes the stored `GET` of its URI (RFC 9111 §4.4).
async fn bypass<P: ProxyHttp>(
    proxy: &HttpProxy<P>,
    session: &mut Session,
    ctx: &mut P::Ctx,
    cache: Arc<HttpCache>,
    key: CacheKey,
    invalidates: bool,
) -> Result<Outcome> {
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
        let req = session.req_header();
        let get =
            CacheKey::from_parts(&Method::GET, req.host().unwrap_or(""), req.path_and_query());
        cache.purge(&get);
    }
    Ok(outcome)
}

/// Fetches from the origin with `run` watching, then answers from the cache if the
/// fetch said so (a `304`, or `stale-if-error`).
async fn fetch<P: ProxyHttp>(
    proxy: &HttpProxy<P>,
    session: &mut Session,
    ctx: &mut P::Ctx,
    mut run: CacheRun,
) -> Result<Outcome> {
    let result = Exchange::new(proxy, session, ctx, &mut run).run().await;
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
    let detached = DetachedRequest::new(session.req_header().clone(), session.connection().clone());
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
        let result = Exchange::new(&proxy, &mut session, &mut ctx, &mut run)
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

//! Answers the cache gives by itself: a stored response, and `PURGE`.

use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, AGE, CONTENT_LENGTH};
use http::{Method, StatusCode};
use pingora_cache::{CacheKey, CacheStatus, CachedResponse, HttpCache};
use pingora_core::Result;

use crate::phases::ProxyHttp;
use crate::session::Session;

/// Answers the request with a stored response, through the response phases.
pub(super) async fn serve_stored<P: ProxyHttp>(
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
pub(super) async fn purge<P: ProxyHttp>(
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

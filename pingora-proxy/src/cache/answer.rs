//! Answers the cache gives by itself: a stored response (whole, `304` to a client's
//! own conditional, `206`/`416` to its `Range`), a range of a response still being
//! filled, and `PURGE`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, AGE, CONTENT_LENGTH, CONTENT_RANGE};
use http::{HeaderMap, Method, StatusCode};
use pingora_cache::conditional::{client_copy_is_current, not_modified_head};
use pingora_cache::range::{range_answer, unsatisfiable_content_range, RangeAnswer};
use pingora_cache::surrogate::strip_surrogate_control;
use pingora_cache::{rules, CacheKey, CacheMeta, CacheStatus, CachedResponse, HttpCache};
use pingora_cache::{PartialResponse, Progress};
use pingora_core::protocols::http::ResponseHeader;
use pingora_core::Result;

use crate::phases::ProxyHttp;
use crate::session::Session;

/// How a stored response answers the current request.
enum Shape {
    /// The whole response.
    Whole,
    /// `304 Not Modified`: the client's copy is current.
    NotModified,
    /// `206` with bytes `start..=end`.
    Range(pingora_cache::range::ByteRange),
    /// `416`: the range lies past the end.
    Unsatisfiable,
}

/// The shape of the answer to `session`'s request from `head` with a body of `len`
/// bytes: the client's conditionals first (RFC 9110 §13.2.2), then its range.
fn shape(session: &Session, head: &ResponseHeader, len: u64) -> Shape {
    let req = session.req_header();
    if client_copy_is_current(req, head) {
        return Shape::NotModified;
    }
    match range_answer(req, head, len) {
        RangeAnswer::Whole => Shape::Whole,
        RangeAnswer::Partial(r) => Shape::Range(r),
        RangeAnswer::Unsatisfiable => Shape::Unsatisfiable,
    }
}

/// The head sent for `shape` from the stored `head` (with `meta`) of a body of `len`
/// bytes: `Age`, `X-Cache-Status`, framing, and no `Surrogate-Control`.
fn answer_head(
    head: &ResponseHeader,
    meta: &CacheMeta,
    len: u64,
    shape: &Shape,
    status: CacheStatus,
    chunked: bool,
) -> ResponseHeader {
    let mut out = match shape {
        Shape::NotModified => not_modified_head(head),
        Shape::Unsatisfiable => {
            let mut h = ResponseHeader::new(StatusCode::RANGE_NOT_SATISFIABLE);
            h.headers
                .insert(CONTENT_RANGE, unsatisfiable_content_range(len));
            h.headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
            h
        }
        Shape::Whole | Shape::Range(_) => head.clone(),
    };
    match shape {
        Shape::Whole if chunked => {
            // Trailers need chunked framing.
            out.headers.remove(CONTENT_LENGTH);
        }
        Shape::Whole => {
            out.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        Shape::Range(r) => {
            out.status = StatusCode::PARTIAL_CONTENT;
            out.reason = None;
            out.headers.insert(CONTENT_RANGE, r.content_range(len));
            out.headers
                .insert(CONTENT_LENGTH, HeaderValue::from(r.len()));
        }
        Shape::NotModified | Shape::Unsatisfiable => {}
    }
    if !matches!(shape, Shape::Unsatisfiable) {
        out.headers
            .insert(AGE, HeaderValue::from(meta.age(Instant::now()).as_secs()));
    }
    strip_surrogate_control(&mut out.headers);
    out.headers.insert(
        CacheStatus::HEADER,
        HeaderValue::from_static(status.as_str()),
    );
    out
}

/// Answers the request with a stored response, through the response phases: whole,
/// `304` when the client's own `If-None-Match`/`If-Modified-Since` say its copy is
/// current, `206`/`416` for its `Range`.
pub(super) async fn serve_stored<P: ProxyHttp>(
    phases: &P,
    session: &mut Session,
    ctx: &mut P::Ctx,
    response: &CachedResponse,
    status: CacheStatus,
) -> Result<()> {
    let len = response.body.len() as u64;
    let shape = shape(session, &response.head, len);
    let whole_with_trailers = matches!(shape, Shape::Whole) && response.trailers.is_some();
    let head = answer_head(
        &response.head,
        &response.meta,
        len,
        &shape,
        status,
        whole_with_trailers,
    );
    let body = match shape {
        Shape::Whole => Some(response.body.clone()),
        Shape::Range(r) => Some(response.body.slice(r.start as usize..=r.end as usize)),
        Shape::NotModified | Shape::Unsatisfiable => None,
    };
    let trailers = response.trailers.as_ref().filter(|_| whole_with_trailers);
    send(phases, session, ctx, head, body.as_slice(), trailers).await
}

/// What came of answering from a response still being filled.
pub(super) enum FromFill {
    /// The client was answered.
    Answered,
    /// This fill cannot answer the request (another variant, not fresh, not a range):
    /// wait for it to be stored.
    NotForThisRequest,
    /// The fill failed or took too long: look the cache up again.
    Gone,
}

/// Answers a `Range` request from `partial`, the response another request is filling,
/// once the bytes of the range have arrived (within `deadline`); a `304` or `416` at
/// once. Only a fresh `200` for the same variant answers this way; anything else is
/// left to the stored entry.
pub(super) async fn serve_from_fill<P: ProxyHttp>(
    phases: &P,
    session: &mut Session,
    ctx: &mut P::Ctx,
    primary: &CacheKey,
    partial: &PartialResponse,
    deadline: Instant,
) -> Result<FromFill> {
    let req = session.req_header();
    let suitable = partial.head().status == StatusCode::OK
        && partial.answers(primary, &req.headers)
        && rules::may_answer(req, partial.meta())
        && partial.meta().is_fresh(Instant::now());
    if !suitable {
        return Ok(FromFill::NotForThisRequest);
    }
    let remaining = || deadline.saturating_duration_since(Instant::now());
    // The length decides the range: announced, or known once the body is complete.
    let len = match partial.expected_len() {
        Some(len) => len,
        None => match wait(partial, u64::MAX, remaining()).await {
            Some(Progress::Complete { len }) => len,
            _ => return Ok(FromFill::Gone),
        },
    };
    let shape = shape(session, partial.head(), len);
    let body = match &shape {
        Shape::Whole => return Ok(FromFill::NotForThisRequest),
        Shape::NotModified | Shape::Unsatisfiable => Vec::new(),
        Shape::Range(r) => {
            match wait(partial, r.end + 1, remaining()).await {
                Some(p) if p.available() > r.end => {}
                _ => return Ok(FromFill::Gone),
            }
            let pieces = partial.slice(*r);
            if pieces.is_empty() {
                return Ok(FromFill::Gone);
            }
            pieces
        }
    };
    let head = answer_head(
        partial.head(),
        partial.meta(),
        len,
        &shape,
        CacheStatus::Hit,
        false,
    );
    send(phases, session, ctx, head, &body, None).await?;
    Ok(FromFill::Answered)
}

/// Waits up to `timeout` for `bytes` bytes of `partial` (or its end).
async fn wait(partial: &PartialResponse, bytes: u64, timeout: Duration) -> Option<Progress> {
    tokio::time::timeout(timeout, partial.wait_for(bytes))
        .await
        .ok()
}

/// Sends `head` and the `body` pieces (none for `HEAD`, `304`, `416`) through the
/// response phases, then `trailers`.
async fn send<P: ProxyHttp>(
    phases: &P,
    session: &mut Session,
    ctx: &mut P::Ctx,
    mut head: ResponseHeader,
    body: &[Bytes],
    trailers: Option<&HeaderMap>,
) -> Result<()> {
    phases.response_filter(session, &mut head, ctx).await?;
    session.downstream.write_response_header(&mut head).await?;
    let bodyless = session.req_header().method == Method::HEAD
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED;
    if !bodyless {
        for piece in body {
            let mut chunk = Some(piece.clone());
            phases
                .response_body_filter(session, &mut chunk, false, ctx)
                .await?;
            if let Some(data) = chunk {
                session.downstream.write_body(&data).await?;
            }
        }
        let mut last = None;
        phases
            .response_body_filter(session, &mut last, true, ctx)
            .await?;
        if let Some(data) = last {
            session.downstream.write_body(&data).await?;
        }
    }
    let mut trailers = trailers.cloned();
    if let Some(fields) = trailers.as_mut() {
        phases.response_trailer_filter(session, fields, ctx).await?;
    }
    let trailers = trailers.filter(|t| !t.is_empty());
    session.downstream.finish_response(trailers.as_ref()).await
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

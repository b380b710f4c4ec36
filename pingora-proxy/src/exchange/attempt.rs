//! One attempt of an exchange: get a connection to the peer, send the request head
//! (and the body as it comes), read the response head, all within the retry rule's
//! per-try timeout; then judge the outcome with the phases (`fail_to_connect`,
//! `error_while_proxy`) and the retry policy.

use std::future::Future;
use std::pin::{pin, Pin};
use std::time::{Duration, Instant};

use http::{header, StatusCode};
use pingora_core::connector::HttpPeer;
use pingora_core::protocols::http::v1::BodyFraming;
use pingora_core::protocols::http::{ClientSession, RequestHeader, ResponseHeader};
use pingora_core::{Error, ErrorKind, Result, Side};

use super::body::RequestBodyPump;
use super::hooks::ExchangeHooks;
use super::retry::{Decision, ExchangeFailure};
use super::Exchange;
use crate::phase_args::UpstreamConnection;
use crate::phases::ProxyHttp;
use crate::retry_rule::RetryOn;

/// A response head read on an attempt, with what it takes to relay it.
pub(super) struct HeldResponse {
    /// The peer that answered.
    pub peer: HttpPeer,
    /// The connection it came on.
    pub up: ClientSession,
    /// The request body on its way to that peer.
    pub body: RequestBodyPump,
    /// The final response head (or a `101`), as received.
    pub head: ResponseHeader,
}

/// How an attempt ended.
pub(super) enum AttemptEnd {
    /// A response to relay.
    Answered(HeldResponse),
    /// Make another attempt; this one failed with the error. A response whose status
    /// the rule retries is kept: it is the answer when there is no other peer.
    Retry(Error, Option<HeldResponse>),
    /// The request fails with this error.
    Failed(Error),
}

impl<P: ProxyHttp, H: ExchangeHooks<P>> Exchange<'_, P, H> {
    /// Makes one attempt on `peer`.
    pub(super) async fn attempt(
        &mut self,
        peer: HttpPeer,
        up_req: &mut RequestHeader,
    ) -> AttemptEnd {
        let bound = self.rule.and_then(|r| r.attempt_timeout());
        let deadline = bound.map(|t| (Instant::now() + t, t));
        let started = Instant::now();
        let allow_reuse = self.retry.allow_reuse();
        let connected = {
            let connecting = pin!(self.upstream.session(&peer, allow_reuse));
            within(deadline, ErrorKind::ConnectTimeout, connecting).await
        };
        let (mut up, reused) = match connected {
            Ok(connected) => connected,
            Err(e) => return self.connect_failed(&peer, e),
        };
        let took = started.elapsed();
        self.session.set_upstream_connected(reused, took);
        let connection = UpstreamConnection {
            peer: &peer,
            reused,
            connect_time: took,
            attempt: self.retry.attempts(),
        };
        let connected = (self.phases).connected_to_upstream(self.session, &connection, self.ctx);
        if let Err(e) = connected.await {
            return AttemptEnd::Failed(e);
        }
        let framing = self.upstream_framing(up_req);
        let mut body = RequestBodyPump::new(framing);
        // Pinned here, where it lives once: `within` only holds a pointer to it (a
        // future moved into another is stored twice in a debug build's state machine).
        let head = {
            let sending = pin!(self.send_and_read_head(&mut up, &mut body, up_req, framing));
            within(deadline, ErrorKind::ReadTimeout, sending).await
        };
        self.body_started |= body.started();
        match head {
            Ok(head) => self.judge_head(HeldResponse {
                peer,
                up,
                body,
                head,
            }),
            Err(e) => self.exchange_failed(&peer, &up, reused, e),
        }
    }

    /// How the request body goes upstream: as the client framed it, but chunked when
    /// `upstream_request_filter` removed `Content-Length` (a body filter changes the
    /// body's length).
    fn upstream_framing(&self, up_req: &RequestHeader) -> BodyFraming {
        match self.session.downstream.req_body_framing() {
            BodyFraming::Length(_) if !up_req.headers.contains_key(header::CONTENT_LENGTH) => {
                BodyFraming::Chunked
            }
            framing => framing,
        }
    }

    /// A response head arrived: relay it, unless the rule retries its status and the
    /// policy (after `error_while_proxy`) agrees.
    fn judge_head(&mut self, response: HeldResponse) -> AttemptEnd {
        let status = response.head.status;
        self.session.set_upstream_status(status);
        let listed = self
            .rule
            .is_some_and(|r| r.retries_on(RetryOn::Status(status)));
        if !listed || status == StatusCode::SWITCHING_PROTOCOLS {
            return AttemptEnd::Answered(response);
        }
        let e = Error::new(
            ErrorKind::HttpStatus(status),
            Side::Upstream,
            format!("upstream answered {}", status.as_u16()),
        )
        .with_retry(true);
        let e = (self.phases).error_while_proxy(self.session, &response.peer, e, self.ctx);
        let failure = ExchangeFailure {
            kind: e.kind,
            side: e.side,
            reused: false,
            received_any: true,
            body_started: self.body_started,
            response_started: self.session.response_started(),
            idempotent: self.idempotent,
            retry: e.retry,
        };
        match self
            .retry
            .on_failure(&failure, response.peer.address.clone())
        {
            Decision::Retry => {
                log::debug!("attempt {} failed: {e}", self.retry.attempts());
                (self.session).push_upstream_failure(response.peer.address.clone(), e.kind);
                AttemptEnd::Retry(e, Some(response))
            }
            Decision::GiveUp => AttemptEnd::Answered(response),
        }
    }

    /// Connecting to `peer` failed: the rule's verdict, then `fail_to_connect`'s, then
    /// the policy's.
    fn connect_failed(&mut self, peer: &HttpPeer, mut e: Error) -> AttemptEnd {
        if let Some(rule) = &self.rule {
            e.retry = e.retry && rule.retries_connect_error(&e);
        }
        let e = (self.phases).fail_to_connect(self.session, peer, e, self.ctx);
        (self.session).push_upstream_failure(peer.address.clone(), e.kind);
        match self.retry.on_connect_error(peer.address.clone(), e.retry) {
            Decision::Retry => {
                log::debug!("attempt {} failed: {e}", self.retry.attempts());
                AttemptEnd::Retry(e, None)
            }
            Decision::GiveUp => AttemptEnd::Failed(e),
        }
    }

    /// The attempt failed on its connection before a response head came: resent at
    /// once when the connection is to blame (a dead pooled one, a refused HTTP/2
    /// stream); else the rule's verdict, then `error_while_proxy`'s, then the policy's.
    fn exchange_failed(
        &mut self,
        peer: &HttpPeer,
        up: &ClientSession,
        reused: bool,
        mut e: Error,
    ) -> AttemptEnd {
        let mut failure = ExchangeFailure {
            kind: e.kind,
            side: e.side,
            reused,
            received_any: up.received_any(),
            body_started: self.body_started,
            response_started: self.session.response_started(),
            idempotent: self.idempotent,
            retry: false,
        };
        if self.retry.resend(&failure) == Decision::Retry {
            log::debug!("attempt {} failed, sent again: {e}", self.retry.attempts());
            return AttemptEnd::Retry(e, None);
        }
        if e.side == Side::Internal {
            // A phase's own error (a body filter's): not the connection's failure.
            return AttemptEnd::Failed(e);
        }
        e.retry = self.rule.is_some_and(|r| r.retries_exchange_error(&e));
        let e = (self.phases).error_while_proxy(self.session, peer, e, self.ctx);
        if e.side == Side::Upstream {
            (self.session).push_upstream_failure(peer.address.clone(), e.kind);
        }
        failure.retry = e.retry;
        match self.retry.on_failure(&failure, peer.address.clone()) {
            Decision::Retry => {
                log::debug!("attempt {} failed: {e}", self.retry.attempts());
                AttemptEnd::Retry(e, None)
            }
            Decision::GiveUp => AttemptEnd::Failed(e),
        }
    }

    /// Relaying a response failed (the response may have started towards the client):
    /// `error_while_proxy` hears of it unless a phase raised it; nothing is retried.
    pub(super) fn relay_failed(&mut self, peer: &HttpPeer, e: Error) -> Error {
        if e.side == Side::Internal {
            return e;
        }
        let e = (self.phases).error_while_proxy(self.session, peer, e, self.ctx);
        if e.side == Side::Upstream {
            (self.session).push_upstream_failure(peer.address.clone(), e.kind);
        }
        e
    }
}

/// Runs `fut` within `deadline` (the end of the attempt and the per-try timeout), if
/// any: past it, an upstream error of `kind`.
async fn within<T>(
    deadline: Option<(Instant, Duration)>,
    kind: ErrorKind,
    fut: Pin<&mut impl Future<Output = Result<T>>>,
) -> Result<T> {
    let Some((end, bound)) = deadline else {
        return fut.await;
    };
    match tokio::time::timeout_at(end.into(), fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            kind,
            Side::Upstream,
            format!(
                "the attempt took longer than the retry rule's per-try timeout ({} ms)",
                bound.as_millis()
            ),
        )
        .with_retry(true)),
    }
}

//! One request/response exchange with an upstream: choose a peer and connect (retrying
//! as [`retry`] decides), send the request head and body, relay the response, all while
//! both sides may talk.
//!
//! - [`retry`]: the retry policy (pure, table-tested).
//! - [`attempt`]: one attempt (connect, send, read the head) and what a failure means.
//! - [`body`]: the request-body pump, one for both HTTP versions upstream.
//! - [`response`]: the response head and body relay.
//! - [`hooks`]: how the cache (or anything else) watches an exchange.

mod attempt;
mod body;
pub(crate) mod hooks;
mod response;
mod retry;

use http::{header, HeaderValue, Version};
use pingora_core::connector::{HttpConnector, HttpPeer, PeerAddress};
use pingora_core::protocols::http::v1::is_upgrade_request;
use pingora_core::protocols::http::{ClientSession, RequestHeader, UpstreamTunnel};
use pingora_core::{Error, ErrorKind, Result, Side};

use crate::headers::{append_forwarded_for_value, strip_hop_by_hop};
use crate::phases::ProxyHttp;
use crate::proxy::HttpProxy;
use crate::retry_rule::{is_idempotent, RetryRule};
use crate::session::Session;
use attempt::{AttemptEnd, HeldResponse};
use hooks::ExchangeHooks;
use response::ExchangeEnd;
use retry::{PeerChoice, RetryPolicy};

/// How an exchange ended, when it did not fail.
pub(crate) enum Outcome {
    /// The response was sent in full.
    Done,
    /// The upstream switched protocols: relay raw bytes from now on.
    Tunnel(Box<UpstreamTunnel>),
}

/// The state of proxying one request; `H` watches it (`()`: nothing does).
pub(crate) struct Exchange<'a, P: ProxyHttp, H> {
    phases: &'a P,
    upstream: &'a HttpConnector,
    session: &'a mut Session,
    ctx: &'a mut P::Ctx,
    hooks: H,
    retry: RetryPolicy<PeerAddress>,
    /// The retry rule of the request (from `retry_rule`, after the first peer).
    rule: Option<RetryRule>,
    /// Whether the request may be sent twice (its method is idempotent).
    idempotent: bool,
    /// Whether any request body was taken from the client (then only a connect
    /// failure can be retried).
    body_started: bool,
}

impl<'a, P: ProxyHttp, H: ExchangeHooks<P>> Exchange<'a, P, H> {
    /// The exchange of the current request of `session`, watched by `hooks`.
    pub(crate) fn new(
        proxy: &'a HttpProxy<P>,
        session: &'a mut Session,
        ctx: &'a mut P::Ctx,
        hooks: H,
    ) -> Self {
        let idempotent = is_idempotent(&session.req_header().method);
        Exchange {
            phases: proxy.phases(),
            upstream: proxy.upstream(),
            session,
            ctx,
            hooks,
            retry: RetryPolicy::new(proxy.max_retries()),
            rule: None,
            idempotent,
            body_started: false,
        }
    }

    /// Proxies the request: attempts until one succeeds or the retry policy gives up.
    pub(crate) async fn run(mut self) -> Result<Outcome> {
        // An HTTP/2 extended CONNECT is presented as the HTTP/1.1 upgrade it stands for.
        let upgrade = is_upgrade_request(self.session.req_header())
            || self.session.downstream.is_extended_connect();
        let mut up_req = self.upstream_request(upgrade);
        self.hooks.upstream_request(&mut up_req);
        // Two steps, each its own future: the attempts' state and the relay's are never
        // alive together, and the request's future is sized by the larger alone.
        let response = self.answer(&mut up_req).await?;
        drop(up_req);
        self.finish(response, upgrade).await
    }

    /// Attempts peers until one gives the response that answers the request.
    async fn answer(&mut self, up_req: &mut RequestHeader) -> Result<HeldResponse> {
        let mut last_error = None;
        // A response with a status the rule retries, kept until another peer is found
        // (else it is the answer).
        let mut held: Option<HeldResponse> = None;
        loop {
            let peer = match self.next_peer(up_req, last_error.take()).await {
                Ok(peer) => peer,
                Err(e) => return held.ok_or(e),
            };
            // Another peer will answer: the kept response is dropped with its connection.
            drop(held.take());
            match self.attempt(peer, up_req).await {
                AttemptEnd::Answered(response) => return Ok(response),
                AttemptEnd::Retry(error, kept) => {
                    last_error = Some(error);
                    held = kept;
                }
                AttemptEnd::Failed(e) => return Err(e),
            }
        }
    }

    /// Relays `response` (the head read on an attempt) to the client.
    async fn finish(&mut self, mut response: HeldResponse, upgrade: bool) -> Result<Outcome> {
        // The parts are used in place, not moved into locals: this future is part of
        // every request's, and a second copy of the response would grow it.
        let head = response.head;
        match self
            .relay(&mut response.up, &mut response.body, head, upgrade)
            .await
        {
            Ok(ExchangeEnd::Done) => {
                self.upstream.release(&response.peer, response.up);
                Ok(Outcome::Done)
            }
            Ok(ExchangeEnd::Tunnel) => tunnel(response.up),
            Err(e) => {
                self.body_started |= response.body.started();
                Err(self.relay_failed(&response.peer, e))
            }
        }
    }

    /// Asks `upstream_peer` for the peer of the next attempt (and, before the first,
    /// `retry_rule` and `upstream_request_filter`). On a retry (`last_error` is the
    /// failure of the previous attempt), a routing that has no other peer to offer ends
    /// the request with that failure.
    async fn next_peer(
        &mut self,
        up_req: &mut RequestHeader,
        last_error: Option<Error>,
    ) -> Result<HttpPeer> {
        let mut peer = match self.phases.upstream_peer(self.session, self.ctx).await {
            Ok(peer) => peer,
            Err(e) => match last_error {
                Some(last) => {
                    log::debug!("no peer for a retry ({e}); giving up");
                    return Err(last);
                }
                None => return Err(e),
            },
        };
        let choice = self.retry.on_peer(&peer.address);
        if let (PeerChoice::NoOtherPeer, Some(last)) = (choice, last_error) {
            return Err(last);
        }
        if peer.sends_proxy_header() {
            peer.set_proxy_client(self.session.downstream.connection());
        }
        self.session.set_upstream(&peer.address);
        self.session.set_upstream_attempts(self.retry.attempts());
        if self.retry.attempts() == 1 {
            self.rule = self.phases.retry_rule(self.session, self.ctx);
            if let Some(rule) = &self.rule {
                self.retry.limit_retries(rule.retries());
            }
            if !up_req.headers.contains_key(header::HOST) {
                // An HTTP/1.0 client may send none; HTTP/1.1 and HTTP/2 need one.
                set_host_from_peer(up_req, &peer);
            }
            (self.phases)
                .upstream_request_filter(self.session, up_req, self.ctx)
                .await?;
        }
        Ok(peer)
    }

    /// The request head to send upstream: hop-by-hop headers removed, `X-Forwarded-For`
    /// appended, `Expect` dropped (the proxy answers `100 Continue` itself).
    fn upstream_request(&mut self, upgrade: bool) -> RequestHeader {
        let mut req = self.session.req_header().clone();
        strip_hop_by_hop(&mut req.headers, upgrade);
        req.headers.remove(header::EXPECT);
        if let Some(client) = self.session.forwarded_for() {
            append_forwarded_for_value(&mut req.headers, client);
        }
        req.version = Version::HTTP_11;
        req
    }
}

/// The upstream side of a `101` (or of an extended CONNECT's 2xx) as a tunnel.
fn tunnel(up: ClientSession) -> Result<Outcome> {
    match up.into_tunnel() {
        Some(t) => Ok(Outcome::Tunnel(Box::new(t))),
        None => Err(Error::new(
            ErrorKind::InvalidHead,
            Side::Upstream,
            "the upstream switched protocols on a stream that cannot carry a tunnel",
        )),
    }
}

/// Names the upstream peer in `Host` (as nginx's `proxy_pass` does): its `host:port`,
/// or `localhost` for a unix socket.
fn set_host_from_peer(req: &mut RequestHeader, peer: &HttpPeer) {
    let host = match &peer.address {
        PeerAddress::Unix(_) => HeaderValue::from_static("localhost"),
        other => match HeaderValue::try_from(other.to_string()) {
            Ok(v) => v,
            Err(_) => return,
        },
    };
    req.headers.insert(header::HOST, host);
}

//! One request/response exchange with an upstream: choose a peer and connect (retrying
//! as [`retry`] decides), send the request head and body, relay the response, all while
//! both sides may talk.
//!
//! - [`retry`]: the retry policy (pure, table-tested).
//! - [`body`]: the request-body pump, one for both HTTP versions upstream.
//! - [`response`]: the response head and body relay.
//! - [`hooks`]: how the cache (or anything else) watches an exchange.

mod body;
pub(crate) mod hooks;
mod response;
mod retry;

use http::{header, HeaderValue, Version};
use pingora_core::connector::{HttpPeer, PeerAddress};
use pingora_core::protocols::http::v1::client::H1ClientSession;
use pingora_core::protocols::http::v1::is_upgrade_request;
use pingora_core::protocols::http::{ClientSession, RequestHeader};
use pingora_core::{Error, ErrorKind, Result, Side};

use crate::headers::{append_forwarded_for, strip_hop_by_hop};
use crate::phases::ProxyHttp;
use crate::proxy::HttpProxy;
use crate::session::Session;
use body::RequestBodyPump;
use hooks::ExchangeHooks;
use response::ExchangeEnd;
use retry::{Decision, ExchangeFailure, PeerChoice, RetryPolicy};

/// How an exchange ended, when it did not fail.
pub(crate) enum Outcome {
    /// The response was sent in full.
    Done,
    /// The upstream switched protocols: relay raw bytes from now on.
    Tunnel(Box<H1ClientSession>),
}

/// The state of proxying one request; `H` watches it (`()`: nothing does).
pub(crate) struct Exchange<'a, P: ProxyHttp, H> {
    proxy: &'a HttpProxy<P>,
    session: &'a mut Session,
    ctx: &'a mut P::Ctx,
    hooks: H,
    /// Whether any request body was taken from the client (then no retry is possible).
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
        Exchange {
            proxy,
            session,
            ctx,
            hooks,
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
        let mut retry = RetryPolicy::new(self.proxy.max_retries());
        let mut last_error = None;
        loop {
            let peer = self
                .next_peer(&mut retry, &mut up_req, last_error.take())
                .await?;
            let (mut up, reused) = match self.proxy.connect(&peer, retry.allow_reuse()).await {
                Ok(connected) => connected,
                Err(e) => {
                    let e = (self.proxy.phases()).fail_to_connect(self.session, &peer, self.ctx, e);
                    match retry.on_connect_error(peer.address, e.retry) {
                        Decision::Retry => log::debug!("attempt {} failed: {e}", retry.attempts()),
                        Decision::GiveUp => return Err(e),
                    }
                    last_error = Some(e);
                    continue;
                }
            };
            self.session.set_upstream_reused(reused);
            let mut body = RequestBodyPump::new(self.session.downstream.req_body_framing());
            let result = self
                .exchange(&mut up, &mut body, &mut up_req, upgrade)
                .await;
            self.body_started |= body.started();
            let e = match result {
                Ok(ExchangeEnd::Done) => {
                    self.proxy.release(&peer, up);
                    return Ok(Outcome::Done);
                }
                Ok(ExchangeEnd::Tunnel) => return tunnel(up),
                Err(e) => e,
            };
            let failure = ExchangeFailure {
                kind: e.kind,
                side: e.side,
                reused,
                received_any: up.received_any(),
                body_started: self.body_started,
            };
            match retry.on_exchange_error(&failure) {
                Decision::Retry => log::debug!("attempt {} failed: {e}", retry.attempts()),
                Decision::GiveUp => return Err(e),
            }
            last_error = Some(e);
        }
    }

    /// Asks `upstream_peer` for the peer of the next attempt (and, before the first,
    /// runs `upstream_request_filter`). On a retry (`last_error` is the failure of the
    /// previous attempt), a routing that has no other peer to offer ends the request
    /// with that failure.
    async fn next_peer(
        &mut self,
        retry: &mut RetryPolicy<PeerAddress>,
        up_req: &mut RequestHeader,
        last_error: Option<Error>,
    ) -> Result<HttpPeer> {
        let peer = match self
            .proxy
            .phases()
            .upstream_peer(self.session, self.ctx)
            .await
        {
            Ok(peer) => peer,
            Err(e) => match last_error {
                Some(last) => {
                    log::debug!("no peer for a retry ({e}); giving up");
                    return Err(last);
                }
                None => return Err(e),
            },
        };
        if let (PeerChoice::NoOtherPeer, Some(last)) = (retry.on_peer(&peer.address), last_error) {
            return Err(last);
        }
        self.session.set_upstream(peer.address.to_string());
        self.session.set_upstream_attempts(retry.attempts());
        if retry.attempts() == 1 {
            if !up_req.headers.contains_key(header::HOST) {
                // An HTTP/1.0 client may send none; HTTP/1.1 and HTTP/2 need one.
                set_host_from_peer(up_req, &peer);
            }
            (self.proxy.phases())
                .upstream_request_filter(self.session, up_req, self.ctx)
                .await?;
        }
        Ok(peer)
    }

    /// The request head to send upstream: hop-by-hop headers removed, `X-Forwarded-For`
    /// appended, `Expect` dropped (the proxy answers `100 Continue` itself).
    fn upstream_request(&self, upgrade: bool) -> RequestHeader {
        let mut req = self.session.req_header().clone();
        strip_hop_by_hop(&mut req.headers, upgrade);
        req.headers.remove(header::EXPECT);
        if let Some(ip) = self.session.client_addr().ip() {
            append_forwarded_for(&mut req.headers, ip);
        }
        req.version = Version::HTTP_11;
        req
    }
}

/// The upstream connection of a `101` as a tunnel (HTTP/1 only).
fn tunnel(up: ClientSession) -> Result<Outcome> {
    match up.into_http1() {
        Some(h1) => Ok(Outcome::Tunnel(Box::new(h1))),
        None => Err(Error::new(
            ErrorKind::InvalidHead,
            Side::Upstream,
            "switching protocols over HTTP/2 is not supported",
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

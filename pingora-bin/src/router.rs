//! The binary's proxy logic: routes requests (host, path, regex, methods, headers,
//! query) to upstreams, fixed answers or redirects, applies each route's policy
//! (access, body limit, rewrite, header edits, timeouts, request ids) with the
//! pingora-proxy modules, and answers the per-service health path.
//!
//! Order per request: access (403) -> rate limit (429, or 503 when a shared store fails
//! with `on_error: deny`) -> body limit (413)
//! -> redirect / respond -> rewrite -> request headers -> upstream. The route's response
//! headers and the request id go on every response of the route, the proxy's own
//! errors included.

use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use pingora_core::connector::HttpPeer;
use pingora_core::protocols::http::v1::BodyFraming;
use pingora_core::protocols::ClientAddr;
use pingora_core::{Error, ErrorKind, Result, Side};
use pingora_proxy::modules::rate_limit::{Decision, LimitInput, Verdict, TOO_MANY_REQUESTS_BODY};
use pingora_proxy::modules::{BodyCount, BodyLimit, Captures, Redirect, RequestVars, RouteTable};
use pingora_proxy::{FailureAnswer, ProxyHttp, RequestHeader, ResponseHeader, RetryRule, Session};

use crate::access_log::ServiceAccessLog;
use crate::metrics::{Finished, RouteSlot, ServiceMetrics};
use crate::policy::{RoutePolicy, ServicePolicy};
use crate::upstreams::{InFlight, Upstream};

/// What a matching route does.
#[derive(Debug)]
pub enum Action {
    /// Proxy to the upstream at this index of [`ServiceRoutes::upstreams`].
    Upstream(usize),
    /// Answer directly.
    Respond {
        /// Response status.
        status: StatusCode,
        /// Content-Type header value.
        content_type: String,
        /// Response body.
        body: Bytes,
    },
    /// Answer with a redirect.
    Redirect(Redirect),
}

/// One route: what it does and its policy (its conditions are in the table).
#[derive(Debug)]
pub struct Route {
    /// What to do.
    pub action: Action,
    /// Access, limits, rewrites and header edits.
    pub policy: RoutePolicy,
}

/// A service's routing table.
pub struct ServiceRoutes {
    /// Answered with 200 "ok" by the proxy itself.
    pub health_path: Option<String>,
    /// First match wins.
    pub table: RouteTable<Route>,
    /// Upstreams the routes refer to (shared with the admin endpoint).
    pub upstreams: Vec<std::sync::Arc<Upstream>>,
    /// What applies to every request of the service.
    pub policy: ServicePolicy,
}

impl ServiceRoutes {
    fn route(&self, slot: RouteSlot) -> Option<&Route> {
        match slot {
            RouteSlot::Route(i) => self.table.get(i).map(|(_, r)| r),
            _ => None,
        }
    }
}

/// Per-request state of [`RouterProxy`].
#[derive(Debug, Default)]
pub struct RequestCtx {
    /// The client's address (after trusted `X-Forwarded-For`).
    client_ip: Option<IpAddr>,
    /// The request id, when the service has them.
    request_id: Option<HeaderValue>,
    /// The captures of the route's `path_regex`, when something renders them.
    captures: Option<Captures>,
    /// The body limit of the route, and the body seen so far.
    body_limit: Option<BodyLimit>,
    body_seen: BodyCount,
    upstream: Option<usize>,
    /// The backend chosen for the current attempt, and its in-flight guard.
    backend: Option<(usize, InFlight)>,
    /// Which route answered (metrics and access log).
    route: RouteSlot,
    /// The `X-Cache-Status` sent, when the route caches (metrics).
    cache_status: Option<&'static str>,
    /// When the upstream response head arrived.
    upstream_head_at: Option<Instant>,
    /// The rate limit's decision: its `RateLimit-*` headers go on every response.
    rate: Option<Decision>,
    /// The compressor of the response body, when it is compressed.
    #[cfg(feature = "compression")]
    compressor: Option<pingora_proxy::modules::compression::BodyCompressor>,
}

/// The binary's [`ProxyHttp`]: routes requests per the YAML service.
pub struct RouterProxy {
    routes: ServiceRoutes,
    metrics: Option<ServiceMetrics>,
    access_log: Option<ServiceAccessLog>,
    /// The service's cache, and which routes (by index) use it.
    #[cfg(feature = "cache")]
    cache: Option<(crate::cache::ServiceCache, Vec<bool>)>,
    /// Who may `PURGE` besides loopback.
    #[cfg(feature = "cache")]
    purge_allow: Vec<pingora_config::IpNet>,
    /// `Alt-Svc` values by local port, for the listeners that also serve HTTP/3.
    alt_svc: Vec<(u16, http::HeaderValue)>,
}

impl RouterProxy {
    /// A proxy following `routes`.
    pub fn new(routes: ServiceRoutes) -> Self {
        RouterProxy {
            routes,
            metrics: None,
            access_log: None,
            #[cfg(feature = "cache")]
            cache: None,
            #[cfg(feature = "cache")]
            purge_allow: Vec::new(),
            alt_svc: Vec::new(),
        }
    }

    /// Advertises HTTP/3 with `Alt-Svc` on the TCP responses of connections that came
    /// in on one of `ports` (the listeners with `http3: true`).
    pub fn with_http3_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.alt_svc = ports
            .into_iter()
            .filter(|p| *p != 0)
            .filter_map(|p| {
                let v = http::HeaderValue::from_str(&format!("h3=\":{p}\"; ma=86400")).ok()?;
                Some((p, v))
            })
            .collect();
        self
    }

    /// Serves the routes flagged in `cached_routes` (by index) through `cache`, and lets
    /// clients in `purge_allow` (besides loopback) purge it.
    #[cfg(feature = "cache")]
    pub fn cached(
        mut self,
        cache: Option<crate::cache::ServiceCache>,
        cached_routes: Vec<bool>,
        purge_allow: Vec<pingora_config::IpNet>,
    ) -> Self {
        self.cache = cache.map(|c| (c, cached_routes));
        self.purge_allow = purge_allow;
        self
    }

    /// The service's cache, if it has one.
    #[cfg(feature = "cache")]
    pub fn cache(&self) -> Option<&crate::cache::ServiceCache> {
        self.cache.as_ref().map(|(cache, _)| cache)
    }

    /// Records every finished request in `metrics` and `access_log` (each optional).
    pub fn observed(
        mut self,
        metrics: Option<ServiceMetrics>,
        access_log: Option<ServiceAccessLog>,
    ) -> Self {
        self.metrics = metrics;
        self.access_log = access_log;
        self
    }
}

impl RouterProxy {
    /// What the templates of a request read.
    fn vars<'a>(&'a self, session: &'a Session, ctx: &'a RequestCtx) -> RequestVars<'a> {
        let req = session.req_header();
        // Per connection: a service may listen on several ports, TLS and plain.
        let conn = session.connection();
        RequestVars {
            req,
            client_ip: ctx.client_ip,
            scheme: if conn.is_tls() { "https" } else { "http" },
            server_port: conn.server_port(),
            request_id: ctx.request_id.as_ref().and_then(|v| v.to_str().ok()),
            captures: ctx.captures.as_ref().map(|c| (c, req.uri.path())),
            client_cert: session.client_cert(),
        }
    }

    /// Adds the request id and the route's response headers to a response head.
    fn decorate(&self, session: &Session, ctx: &RequestCtx, head: &mut ResponseHeader) {
        if !self.alt_svc.is_empty() && session.downstream.version() != http::Version::HTTP_3 {
            let port = session.downstream.connection().server_port();
            if let Some((_, v)) = self.alt_svc.iter().find(|(p, _)| Some(*p) == port) {
                head.headers.insert(http::header::ALT_SVC, v.clone());
            }
        }
        if let (Some(ids), Some(id)) = (&self.routes.policy.request_ids, &ctx.request_id) {
            head.headers.insert(ids.header().clone(), id.clone());
        }
        if let Some(decision) = &ctx.rate {
            decision.add_headers(&mut head.headers);
        }
        if let Some(rules) = self
            .routes
            .route(ctx.route)
            .and_then(|r| r.policy.response_headers.as_ref())
        {
            rules.apply(&mut head.headers, &self.vars(session, ctx));
        }
    }

    /// Answers the request with `head` and `body`, decorated like every response of the
    /// route. A request body not read yet closes the connection after the answer.
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        mut head: ResponseHeader,
        body: Bytes,
    ) -> Result<()> {
        self.decorate(session, ctx, &mut head);
        if session.downstream.req_body_framing() != BodyFraming::Empty {
            session.downstream.set_keepalive(false);
        }
        session.downstream.write_response_header(&mut head).await?;
        if session.req_header().method != Method::HEAD {
            session.downstream.write_body(&body).await?;
        }
        session.downstream.finish_response(None).await
    }

    /// Answers with a small text body.
    async fn answer_text(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        status: StatusCode,
        content_type: &str,
        body: Bytes,
    ) -> Result<()> {
        let head = ResponseHeader::for_local_body(status, content_type, body.len());
        self.answer(session, ctx, head, body).await
    }

    /// Answers with the proxy's own error page for `status`.
    async fn answer_error(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        status: StatusCode,
    ) -> Result<()> {
        let body = Bytes::from(format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        ));
        self.answer_text(session, ctx, status, TEXT, body).await
    }

    /// The route's rate limit: answers `429` when the request is over it (or `503` when
    /// its shared store failed and `on_error` is `deny`) and returns true; otherwise
    /// keeps the decision for the `RateLimit-*` headers of the response.
    async fn rate_limited(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let RouteSlot::Route(index) = ctx.route else {
            return Ok(false);
        };
        let Some(limiter) = self
            .routes
            .route(ctx.route)
            .and_then(|r| r.policy.limits.rate_limit.as_deref())
        else {
            return Ok(false);
        };
        let input = LimitInput {
            client_ip: ctx.client_ip,
            route: index,
            headers: &session.req_header().headers,
        };
        match limiter.check(&input).await {
            Verdict::Allow(decision) => {
                ctx.rate = Some(decision);
                Ok(false)
            }
            Verdict::Unchecked => Ok(false),
            Verdict::Limit(decision) => {
                if let Some(metrics) = &self.metrics {
                    metrics.record_rate_limited(limiter.key_label());
                }
                ctx.rate = Some(decision);
                let body = Bytes::from_static(TOO_MANY_REQUESTS_BODY);
                self.answer(session, ctx, decision.too_many_requests(), body)
                    .await?;
                Ok(true)
            }
            Verdict::Unavailable => {
                self.answer_error(session, ctx, StatusCode::SERVICE_UNAVAILABLE)
                    .await?;
                Ok(true)
            }
        }
    }
}

/// Most picks asked of an upstream's algorithm for one retry, while it names backends
/// that failed during the request.
const MAX_RESELECTIONS: u8 = 16;

/// The content type of the proxy's own text answers.
const TEXT: &str = "text/plain; charset=utf-8";

impl ProxyHttp for RouterProxy {
    type Ctx = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if let Some(health) = &self.routes.health_path {
            if session.req_header().uri.path() == health {
                ctx.route = RouteSlot::Health;
                session
                    .respond(StatusCode::OK, TEXT, Bytes::from_static(b"ok"))
                    .await?;
                return Ok(true);
            }
        }
        let policy = &self.routes.policy;
        let peer = session.client_addr().ip();
        ctx.client_ip = if policy.trusted.is_empty() {
            peer
        } else {
            policy
                .trusted
                .client_ip(peer, &session.req_header().headers)
        };
        if let Some(ids) = &policy.request_ids {
            ctx.request_id = Some(ids.resolve(peer, &session.req_header().headers));
        }
        let Some((index, route)) = self.routes.table.find(session.req_header()) else {
            ctx.route = RouteSlot::Unmatched;
            let body = Bytes::from_static(b"404 Not Found: no route matches\n");
            self.answer_text(session, ctx, StatusCode::NOT_FOUND, TEXT, body)
                .await?;
            return Ok(true);
        };
        ctx.route = RouteSlot::Route(index);
        if route.policy.needs_captures {
            ctx.captures = self
                .routes
                .table
                .get(index)
                .and_then(|(m, _)| m.captures(session.req_header()));
        }
        if let Some(access) = &route.policy.access {
            if !access.allows_client(ctx.client_ip, session.client_cert()) {
                self.answer_error(session, ctx, StatusCode::FORBIDDEN)
                    .await?;
                return Ok(true);
            }
        }
        if self.rate_limited(session, ctx).await? {
            return Ok(true);
        }
        if let Some(limit) = route.policy.body_limit {
            if limit.check_head(session.req_header()).is_err() {
                self.answer_error(session, ctx, StatusCode::PAYLOAD_TOO_LARGE)
                    .await?;
                return Ok(true);
            }
            ctx.body_limit = Some(limit);
        }
        match &route.action {
            Action::Upstream(i) => {
                ctx.upstream = Some(*i);
                Ok(false)
            }
            Action::Respond {
                status,
                content_type,
                body,
            } => {
                self.answer_text(session, ctx, *status, content_type, body.clone())
                    .await?;
                Ok(true)
            }
            Action::Redirect(redirect) => {
                let head = redirect.response(&self.vars(session, ctx));
                self.answer(session, ctx, head, Bytes::new()).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<HttpPeer> {
        let upstream = ctx.upstream.and_then(|i| self.routes.upstreams.get(i));
        ctx.backend = None;
        let failed = session.upstream_failures();
        let mut selected = upstream.and_then(|u| u.select(session, ctx.client_ip, 0));
        if let Some(u) = upstream {
            // A retry: the backends that failed during this request are skipped while
            // the algorithm offers another (passive marking keeps a refused one out of
            // a balanced upstream; asking again moves a rotation on; a hash is salted).
            // If it still names one, there is no other (the retry policy stops).
            let mut salt = 0u8;
            while salt < MAX_RESELECTIONS
                && (selected.as_ref())
                    .is_some_and(|(_, peer, _)| failed.iter().any(|f| f.peer == peer.address))
            {
                salt += 1;
                selected = u.select(session, ctx.client_ip, salt);
            }
        }
        match selected {
            Some((i, peer, guard)) => {
                ctx.backend = Some((i, guard));
                let mut peer = peer;
                if let Some(t) = self
                    .routes
                    .route(ctx.route)
                    .and_then(|r| r.policy.timeouts.as_ref())
                {
                    let o = &mut peer.options;
                    o.connect_timeout = t.connect.unwrap_or(o.connect_timeout);
                    o.read_timeout = t.read.unwrap_or(o.read_timeout);
                    o.write_timeout = t.write.unwrap_or(o.write_timeout);
                }
                Ok(peer)
            }
            None => Err(Error::new(
                ErrorKind::NoUpstream,
                Side::Internal,
                format!(
                    "no healthy peer in upstream {}",
                    upstream.map_or("?", |u| u.name.as_str())
                ),
            )),
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(ids), Some(id)) = (&self.routes.policy.request_ids, &ctx.request_id) {
            upstream_request
                .headers
                .insert(ids.header().clone(), id.clone());
        }
        let Some(route) = self.routes.route(ctx.route) else {
            return Ok(());
        };
        let vars = self.vars(session, ctx);
        if let Some(rewrite) = &route.policy.rewrite {
            rewrite.apply(upstream_request, &vars)?;
        }
        if let Some(rules) = &route.policy.request_headers {
            rules.apply(&mut upstream_request.headers, &vars);
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        match ctx.body_limit {
            Some(limit) => limit.count(&mut ctx.body_seen, body),
            None => Ok(()),
        }
    }

    #[cfg(feature = "cache")]
    fn purge_allowed(&self, session: &Session, _ctx: &mut RequestCtx) -> bool {
        session.client_is_loopback()
            || session
                .client_addr()
                .ip()
                .is_some_and(|ip| self.purge_allow.iter().any(|n| n.contains(ip)))
    }

    #[cfg(feature = "cache")]
    fn request_cache_filter(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::sync::Arc<pingora_cache::HttpCache>>> {
        match (&self.cache, ctx.route) {
            (Some((cache, routes)), RouteSlot::Route(i)) if routes.get(i) == Some(&true) => {
                Ok(cache.get().cloned())
            }
            _ => Ok(None),
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        error: Error,
        ctx: &mut RequestCtx,
    ) -> Error {
        let upstream = ctx.upstream.and_then(|i| self.routes.upstreams.get(i));
        if let (Some(u), Some((_, in_flight))) = (upstream, &ctx.backend) {
            u.connect_failed(in_flight);
        }
        error
    }

    fn retry_rule(&self, _session: &Session, ctx: &mut RequestCtx) -> Option<RetryRule> {
        let upstream = ctx.upstream.and_then(|i| self.routes.upstreams.get(i))?;
        upstream.retry_rule()
    }

    fn error_while_proxy(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        error: Error,
        ctx: &mut RequestCtx,
    ) -> Error {
        // Counted on its backend: a failure of the upstream (a status the retry rule
        // lists included), whether it is retried or ends the request.
        if let (Side::Upstream, Some((_, in_flight))) = (error.side, &ctx.backend) {
            in_flight.record_error();
        }
        error
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        error: &Error,
        ctx: &mut RequestCtx,
    ) -> FailureAnswer {
        if session.response_started() {
            return FailureAnswer::NotSent;
        }
        let status = pingora_proxy::status::for_error(error);
        session.close_after_error(error);
        match self.answer_error(session, ctx, status).await {
            Ok(()) => FailureAnswer::Sent(status),
            Err(_) => FailureAnswer::NotSent,
        }
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if self.metrics.is_some() {
            ctx.cache_status = response
                .headers
                .get("x-cache-status")
                .and_then(|v| {
                    crate::metrics::CACHE_STATUSES
                        .iter()
                        .find(|s| v.as_bytes() == s.as_bytes())
                })
                .copied();
        }
        self.decorate(session, ctx, response);
        #[cfg(feature = "compression")]
        if let Some(compression) = self
            .routes
            .route(ctx.route)
            .and_then(|r| r.policy.limits.compression.as_deref())
        {
            ctx.compressor = compression.start(session.req_header(), response)?;
        }
        Ok(())
    }

    #[cfg(feature = "compression")]
    async fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        match &mut ctx.compressor {
            Some(compressor) => compressor.filter(body, end_of_stream),
            None => Ok(()),
        }
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_head_at = Some(Instant::now());
        Ok(())
    }

    fn request_rejected(&self, client: &ClientAddr, status: StatusCode, error: &Error) {
        let done = Finished::rejected(status.as_u16(), error);
        if let Some(metrics) = &self.metrics {
            metrics.record(&done);
        }
        if let Some(log) = &self.access_log {
            log.write_rejected(client, &done);
        }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        if self.metrics.is_none() && self.access_log.is_none() {
            return;
        }
        let mut done = Finished::new(session, error, ctx.route, ctx.upstream_head_at);
        done.cache_status = ctx.cache_status;
        if let Some(metrics) = &self.metrics {
            metrics.record(&done);
            #[cfg(feature = "compression")]
            if let Some(c) = &ctx.compressor {
                metrics.record_compression(c.encoding(), c.bytes_in(), c.bytes_out());
            }
        }
        if let Some(log) = &self.access_log {
            let id = ctx.request_id.as_ref().map(|v| v.as_bytes());
            log.write(session, &done, id);
        }
    }
}

//! The binary's proxy logic: routes by host and path prefix to upstreams or to
//! built-in answers, and the per-service health path.

use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use pingora_core::connector::HttpPeer;
use pingora_core::protocols::ClientAddr;
use pingora_core::{Error, ErrorKind, Result, Side};
use pingora_proxy::{ProxyHttp, RequestHeader, ResponseHeader, Session};

use crate::access_log::ServiceAccessLog;
use crate::metrics::{Finished, RouteSlot, ServiceMetrics};
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
}

/// One route: conditions (all must hold; none means "match everything") and an action.
#[derive(Debug)]
pub struct Route {
    /// Required host (compared without port, case-insensitively).
    pub host: Option<String>,
    /// Required path prefix.
    pub path_prefix: Option<String>,
    /// What to do.
    pub action: Action,
}

impl Route {
    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(want) = &self.host {
            match host {
                Some(h) if strip_port(h).eq_ignore_ascii_case(want) => {}
                _ => return false,
            }
        }
        match &self.path_prefix {
            Some(p) => path.starts_with(p.as_str()),
            None => true,
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// A service's routing table.
pub struct ServiceRoutes {
    /// Answered with 200 "ok" by the proxy itself.
    pub health_path: Option<String>,
    /// First match wins.
    pub routes: Vec<Route>,
    /// Upstreams the routes refer to (shared with the admin endpoint).
    pub upstreams: Vec<std::sync::Arc<Upstream>>,
}

impl ServiceRoutes {
    /// The index of the first route matching `req`.
    pub fn route_index(&self, req: &RequestHeader) -> Option<usize> {
        let host = req.host();
        let path = req.uri.path();
        self.routes.iter().position(|r| r.matches(host, path))
    }
}

/// Per-request state of [`RouterProxy`].
#[derive(Debug, Default)]
pub struct RequestCtx {
    upstream: Option<usize>,
    /// The backend chosen for the current attempt, and its in-flight guard.
    backend: Option<(usize, InFlight)>,
    /// The backend a connect failed to during this request (avoided on the retry).
    failed_backend: Option<usize>,
    /// Which route answered (metrics and access log).
    route: RouteSlot,
    /// The `X-Cache-Status` sent, when the route caches (metrics).
    cache_status: Option<&'static str>,
    /// When the upstream response head arrived.
    upstream_head_at: Option<Instant>,
}

/// The binary's [`ProxyHttp`]: routes requests per the YAML service.
pub struct RouterProxy {
    routes: ServiceRoutes,
    metrics: Option<ServiceMetrics>,
    access_log: Option<ServiceAccessLog>,
    /// The service's cache, and which routes (by index) use it.
    #[cfg(feature = "cache")]
    cache: Option<(std::sync::Arc<pingora_cache::HttpCache>, Vec<bool>)>,
    /// Who may `PURGE` besides loopback.
    #[cfg(feature = "cache")]
    purge_allow: Vec<pingora_config::IpNet>,
}

/// The cache of a service's `cache:` section: in memory, within `max_bytes`.
#[cfg(feature = "cache")]
pub fn service_cache(conf: &pingora_config::CacheConf) -> std::sync::Arc<pingora_cache::HttpCache> {
    std::sync::Arc::new(pingora_cache::HttpCache::in_memory(
        conf.max_bytes,
        std::time::Duration::from_millis(conf.lock_timeout_ms),
    ))
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
        }
    }

    /// Serves the routes flagged in `cached_routes` (by index) through `cache`, and lets
    /// clients in `purge_allow` (besides loopback) purge it.
    #[cfg(feature = "cache")]
    pub fn cached(
        mut self,
        cache: Option<std::sync::Arc<pingora_cache::HttpCache>>,
        cached_routes: Vec<bool>,
        purge_allow: Vec<pingora_config::IpNet>,
    ) -> Self {
        self.cache = cache.map(|c| (c, cached_routes));
        self.purge_allow = purge_allow;
        self
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
                    .respond(
                        StatusCode::OK,
                        "text/plain; charset=utf-8",
                        Bytes::from_static(b"ok"),
                    )
                    .await?;
                return Ok(true);
            }
        }
        let index = self.routes.route_index(session.req_header());
        ctx.route = index.map_or(RouteSlot::Unmatched, RouteSlot::Route);
        match index
            .and_then(|i| self.routes.routes.get(i))
            .map(|r| &r.action)
        {
            Some(Action::Upstream(i)) => {
                ctx.upstream = Some(*i);
                Ok(false)
            }
            Some(Action::Respond {
                status,
                content_type,
                body,
            }) => {
                session.respond(*status, content_type, body.clone()).await?;
                Ok(true)
            }
            None => {
                session
                    .respond(
                        StatusCode::NOT_FOUND,
                        "text/plain; charset=utf-8",
                        Bytes::from_static(b"404 Not Found: no route matches\n"),
                    )
                    .await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<HttpPeer> {
        let upstream = ctx.upstream.and_then(|i| self.routes.upstreams.get(i));
        ctx.backend = None;
        let mut selected = upstream.and_then(|u| u.select(session));
        if let (Some(u), Some((i, ..))) = (upstream, &selected) {
            if Some(*i) == ctx.failed_backend {
                // A retry after a failed connect: passive marking keeps that backend
                // out of a balanced upstream; asking again moves a plain rotation on.
                // If it is still the one, there is no other (the retry policy stops).
                selected = u.select(session);
            }
        }
        match selected {
            Some((i, peer, guard)) => {
                ctx.backend = Some((i, guard));
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
                Ok(Some(std::sync::Arc::clone(cache)))
            }
            _ => Ok(None),
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        error: Error,
    ) -> Error {
        let upstream = ctx.upstream.and_then(|i| self.routes.upstreams.get(i));
        if let (Some(u), Some((i, in_flight))) = (upstream, &ctx.backend) {
            u.connect_failed(in_flight);
            ctx.failed_backend = Some(*i);
        }
        error
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
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
        Ok(())
    }

    fn upstream_response_filter(
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
        // A failed connect was counted on its backend already (fail_to_connect).
        if let (Some(e), Some((_, in_flight))) = (error, &ctx.backend) {
            let connect_failure = matches!(
                e.kind,
                ErrorKind::ConnectRefused
                    | ErrorKind::ConnectTimeout
                    | ErrorKind::ConnectError
                    | ErrorKind::TlsHandshake
            );
            if e.side == Side::Upstream && !connect_failure {
                in_flight.record_error();
            }
        }
        if self.metrics.is_none() && self.access_log.is_none() {
            return;
        }
        let mut done = Finished::new(session, error, ctx.route, ctx.upstream_head_at);
        done.cache_status = ctx.cache_status;
        if let Some(metrics) = &self.metrics {
            metrics.record(&done);
        }
        if let Some(log) = &self.access_log {
            log.write(session, &done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("[::1]"), "::1");
    }

    fn route(host: Option<&str>, prefix: Option<&str>) -> Route {
        Route {
            host: host.map(String::from),
            path_prefix: prefix.map(String::from),
            action: Action::Upstream(0),
        }
    }

    #[test]
    fn route_matching() {
        let r = route(Some("api.example.com"), Some("/v1"));
        assert!(r.matches(Some("API.example.com:443"), "/v1/users"));
        assert!(!r.matches(Some("api.example.com"), "/v2"));
        assert!(!r.matches(None, "/v1"));
        assert!(route(None, None).matches(None, "/anything"));
    }
}

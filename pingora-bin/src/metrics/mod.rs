//! Prometheus metrics of the binary: the registry, per-service handles resolved once at
//! start-up (so recording a request is a few atomic adds, with no allocation and no
//! label lookup), and the text exposition served by the admin listener.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora_core::protocols::proxy_protocol::{ProxyProtocolRejects, RejectReason};
use pingora_proxy::{Error, ErrorKind, Session, Side};

mod backends;
#[cfg(feature = "cache")]
mod cache;
mod policy;
#[cfg(feature = "http3")]
mod quic;
mod totals;

use crate::error::BinError;
use crate::upstreams::BackendStatus;
use backends::{BackendFamilies, PolledBackends};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
pub use totals::ServiceTotals;

/// Which route answered a request, as the `route` label sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteSlot {
    /// The route at this index of the service's `routes` (label: the index).
    Route(usize),
    /// The service's `health_path` (label `health_path`).
    Health,
    /// No route matched (label `unmatched`).
    #[default]
    Unmatched,
    /// The request could not be read and was answered 400/408/431 before routing
    /// (label `rejected`).
    Rejected,
}

/// The `status_class` label values, indexed by [`status_class_index`].
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Error kinds that get their own `kind` label in `pingora_upstream_errors_total`;
/// any other upstream failure is counted as `other`.
const UPSTREAM_ERROR_KINDS: [ErrorKind; 12] = [
    ErrorKind::ConnectRefused,
    ErrorKind::ConnectTimeout,
    ErrorKind::ConnectError,
    ErrorKind::TlsHandshake,
    ErrorKind::H2StreamRefused,
    ErrorKind::ReadTimeout,
    ErrorKind::WriteTimeout,
    ErrorKind::ConnectionClosed,
    ErrorKind::ConnectionReset,
    ErrorKind::InvalidHead,
    ErrorKind::InvalidBody,
    ErrorKind::NoUpstream,
];

/// Upper bounds (seconds) of the request-duration histogram buckets.
const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Index into [`STATUS_CLASSES`] of a response status (`None`: no response was sent).
fn status_class_index(status: Option<u16>) -> usize {
    match status {
        Some(s @ 100..=599) => usize::from(s / 100 - 1),
        _ => STATUS_CLASSES.len() - 1,
    }
}

/// The values of `X-Cache-Status` counted by `pingora_cache_responses_total`.
pub const CACHE_STATUSES: [&str; 5] = ["HIT", "MISS", "STALE", "EXPIRED", "REVALIDATED"];

/// What the end of one request looked like: what both metrics and the access log need.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    /// Which route handled it.
    pub route: RouteSlot,
    /// The status sent to the client, if any.
    pub status: Option<u16>,
    /// From the request head being read to now.
    pub total: Duration,
    /// From the request head being read to the upstream response head, when proxied.
    pub upstream: Option<Duration>,
    /// Request body bytes read from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// The failure that ended the request, if any.
    pub error: Option<(ErrorKind, Side)>,
    /// Whether the upstream connection came from the pool, when one was used.
    pub upstream_reused: Option<bool>,
    /// The `X-Cache-Status` of a caching route's response.
    pub cache_status: Option<&'static str>,
}

impl Finished {
    /// Sums up the request `session` just finished. `upstream_head_at` is when the
    /// upstream response head arrived, if one did.
    pub fn new(
        session: &Session,
        error: Option<&Error>,
        route: RouteSlot,
        upstream_head_at: Option<Instant>,
    ) -> Finished {
        let started = session.started();
        let (bytes_in, bytes_out) = session.downstream.body_bytes();
        Finished {
            route,
            status: session.response_status().map(|s| s.as_u16()),
            total: started.elapsed(),
            upstream: upstream_head_at.map(|t| t.saturating_duration_since(started)),
            bytes_in,
            bytes_out,
            error: error.map(|e| (e.kind, e.side)),
            upstream_reused: session.upstream_reused(),
            cache_status: None,
        }
    }

    /// Sums up a request rejected with `status` before it could be read in full.
    pub fn rejected(status: u16, error: &Error) -> Finished {
        Finished {
            route: RouteSlot::Rejected,
            status: Some(status),
            total: Duration::ZERO,
            upstream: None,
            bytes_in: 0,
            bytes_out: 0,
            error: Some((error.kind, error.side)),
            upstream_reused: None,
            cache_status: None,
        }
    }

    /// The upstream failure kind, when the request failed because of the upstream.
    fn upstream_error(&self) -> Option<ErrorKind> {
        match self.error {
            Some((kind, Side::Upstream)) => Some(kind),
            Some((ErrorKind::NoUpstream, _)) => Some(ErrorKind::NoUpstream),
            _ => None,
        }
    }
}

/// Figures read from the server at scrape time rather than counted per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerSnapshot {
    /// Client connections open right now, over all services.
    pub live_connections: usize,
    /// Whether the server is draining (shutting down or handed over).
    pub draining: bool,
    /// Access-log lines dropped so far because the writer fell behind.
    pub access_log_dropped: u64,
    /// Error-log lines held back by the rate limit since start.
    pub log_lines_suppressed: u64,
}

/// A service's PROXY protocol refusals, counted by pingora-core and copied into the
/// counters (one per reason) each time metrics are rendered.
struct PolledRejects {
    source: Arc<ProxyProtocolRejects>,
    counters: [IntCounter; RejectReason::ALL.len()],
}

impl PolledRejects {
    fn update(&self) {
        for (reason, counter) in RejectReason::ALL.iter().zip(&self.counters) {
            let (now, shown) = (self.source.get(*reason), counter.get());
            if now > shown {
                counter.inc_by(now - shown);
            }
        }
    }
}

/// A gauge whose value is read from elsewhere each time metrics are rendered.
struct PolledGauge {
    gauge: IntGauge,
    read: Box<dyn Fn() -> i64 + Send + Sync>,
}

/// Every metric of the process, in one registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_errors: IntCounterVec,
    upstream_connections: IntCounterVec,
    cache_responses: IntCounterVec,
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    upstream_idle: IntGaugeVec,
    proxy_protocol_rejects: IntCounterVec,
    backends: BackendFamilies,
    policy: policy::PolicyFamilies,
    live_connections: IntGauge,
    draining: IntGauge,
    access_log_dropped: IntCounter,
    log_lines_suppressed: IntCounter,
    polled: Mutex<Vec<PolledGauge>>,
    polled_counters: Mutex<Vec<PolledCounter>>,
    polled_backends: Mutex<Vec<PolledBackends>>,
    #[cfg(feature = "cache")]
    caches: cache::CacheFamilies,
    #[cfg(feature = "cache")]
    polled_caches: Mutex<Vec<cache::PolledCache>>,

    polled_rejects: Mutex<Vec<PolledRejects>>,
}

/// A counter whose total is read from elsewhere each time metrics are rendered.
struct PolledCounter {
    counter: IntCounter,
    read: Box<dyn Fn() -> u64 + Send + Sync>,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: C,
) -> Result<C, BinError> {
    registry
        .register(Box::new(metric.clone()))
        .map_err(BinError::MetricRegister)?;
    Ok(metric)
}

fn metric_error(e: prometheus::Error) -> BinError {
    BinError::MetricCreate(e)
}

impl Metrics {
    /// A registry with every metric of the binary, and no services yet.
    pub fn new() -> Result<Metrics, BinError> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).map_err(metric_error)
        };
        let requests = register(
            &registry,
            counter_vec(
                "pingora_requests_total",
                "Requests answered, by service, route and status class of the response.",
                &["service", "route", "status_class"],
            )?,
        )?;
        let duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "pingora_request_duration_seconds",
                    "Time from reading a request head to the end of its response.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["service"],
            )
            .map_err(metric_error)?,
        )?;
        let upstream_errors = register(
            &registry,
            counter_vec(
                "pingora_upstream_errors_total",
                "Requests that failed because of the upstream, by kind of failure.",
                &["service", "kind"],
            )?,
        )?;
        let upstream_connections = register(
            &registry,
            counter_vec(
                "pingora_upstream_connections_total",
                "Upstream connections used by requests: reused from the keep-alive pool (reused=\"true\") or newly opened (reused=\"false\").",
                &["service", "reused"],
            )?,
        )?;
        let bytes_in = register(
            &registry,
            counter_vec(
                "pingora_request_body_bytes_total",
                "Request body bytes received from clients.",
                &["service"],
            )?,
        )?;
        let bytes_out = register(
            &registry,
            counter_vec(
                "pingora_response_body_bytes_total",
                "Response body bytes sent to clients.",
                &["service"],
            )?,
        )?;
        let cache_responses = register(
            &registry,
            counter_vec(
                "pingora_cache_responses_total",
                "Responses of caching routes by X-Cache-Status.",
                &["service", "status"],
            )?,
        )?;
        let proxy_protocol_rejects = register(
            &registry,
            counter_vec(
                "pingora_proxy_protocol_rejects_total",
                "Client connections closed by the PROXY protocol step of a listener, by reason: missing (proxy_protocol: on, no header), malformed, untrusted (sender outside trusted_proxies), timeout (no whole header within client_header_timeout_ms), closed (the sender closed within the header).",
                &["service", "reason"],
            )?,
        )?;
        let backends = BackendFamilies::new(&registry)?;
        #[cfg(feature = "cache")]
        let caches = cache::CacheFamilies::new(&registry)?;
        let policy = policy::PolicyFamilies::new(&registry)?;
        let upstream_idle = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "pingora_upstream_idle_connections",
                    "Idle upstream connections kept in the service's pool for reuse.",
                ),
                &["service"],
            )
            .map_err(metric_error)?,
        )?;
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).map_err(metric_error);
        let live_connections = register(
            &registry,
            gauge(
                "pingora_downstream_connections_active",
                "Client connections open now, over all services.",
            )?,
        )?;
        let draining = register(
            &registry,
            gauge(
                "pingora_draining",
                "1 while the server drains (shutting down or handed over), else 0.",
            )?,
        )?;
        let access_log_dropped = register(
            &registry,
            IntCounter::new(
                "pingora_access_log_dropped_lines_total",
                "Access-log lines dropped because the writer fell behind.",
            )
            .map_err(metric_error)?,
        )?;
        let log_lines_suppressed = register(
            &registry,
            IntCounter::new(
                "pingora_log_lines_suppressed_total",
                "Error-log lines held back because their call site logged more than 10 in a second.",
            )
            .map_err(metric_error)?,
        )?;
        let build_info = register(
            &registry,
            IntGaugeVec::new(
                Opts::new("pingora_build_info", "Always 1; the version is a label."),
                &["version"],
            )
            .map_err(metric_error)?,
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        #[cfg(feature = "http3")]
        let (polled_counters, polled) = quic::polled(&registry)?;
        #[cfg(not(feature = "http3"))]
        let (polled_counters, polled) = (Vec::new(), Vec::new());
        Ok(Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                duration,
                upstream_errors,
                upstream_connections,
                cache_responses,
                bytes_in,
                bytes_out,
                upstream_idle,
                proxy_protocol_rejects,
                backends,
                policy,
                live_connections,
                draining,
                access_log_dropped,
                log_lines_suppressed,
                polled: Mutex::new(polled),
                polled_counters: Mutex::new(polled_counters),
                polled_backends: Mutex::new(Vec::new()),
                #[cfg(feature = "cache")]
                caches,
                #[cfg(feature = "cache")]
                polled_caches: Mutex::new(Vec::new()),

                polled_rejects: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The handles of service `name` with `routes` routes and rate limits keyed
    /// `limit_keys`, every label combination created now (so each series shows from the
    /// start, at 0).
    pub fn service(&self, name: &str, routes: usize, limit_keys: &[String]) -> ServiceMetrics {
        let i = &self.inner;
        let mut route_labels: Vec<String> = (0..routes).map(|r| r.to_string()).collect();
        route_labels.push("health_path".to_string());
        route_labels.push("unmatched".to_string());
        route_labels.push("rejected".to_string());
        let requests = route_labels
            .iter()
            .map(|route| {
                STATUS_CLASSES.map(|class| i.requests.with_label_values(&[name, route, class]))
            })
            .collect();
        let mut upstream_errors: Vec<IntCounter> = UPSTREAM_ERROR_KINDS
            .iter()
            .map(|k| i.upstream_errors.with_label_values(&[name, k.as_str()]))
            .collect();
        upstream_errors.push(i.upstream_errors.with_label_values(&[name, "other"]));
        ServiceMetrics {
            routes,
            requests,
            upstream_errors: upstream_errors.into(),
            upstream_reused: i.upstream_connections.with_label_values(&[name, "true"]),
            upstream_new: i.upstream_connections.with_label_values(&[name, "false"]),
            cache: CACHE_STATUSES.map(|st| i.cache_responses.with_label_values(&[name, st])),
            duration: i.duration.with_label_values(&[name]),
            bytes_in: i.bytes_in.with_label_values(&[name]),
            bytes_out: i.bytes_out.with_label_values(&[name]),
            policy: i.policy.service(name, limit_keys),
        }
    }

    /// Reports the failed Redis calls of service `name`'s rate limits, read by `read`
    /// (a running total) at each scrape.
    pub fn poll_redis_errors(&self, name: &str, read: impl Fn() -> u64 + Send + Sync + 'static) {
        let counter = self.inner.policy.redis_errors.with_label_values(&[name]);
        self.inner
            .polled_counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PolledCounter {
                counter,
                read: Box::new(read),
            });
    }

    /// Reports the backends of `upstream` (health, drain, load, counters): `read`
    /// lists the current set at each scrape, so backends that discovery adds get
    /// series and those it removes lose theirs.
    pub fn poll_backends(
        &self,
        service: &str,
        upstream: &str,
        read: impl Fn() -> Vec<BackendStatus> + Send + Sync + 'static,
    ) {
        self.inner
            .polled_backends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PolledBackends {
                labels: [service.to_string(), upstream.to_string()],
                read: Box::new(read),
                shown: Vec::new(),
            });
    }

    /// Reports the figures of a service's cache (hits and bytes by tier, misses, hit
    /// ratio, entries, evictions, refused admissions, disk writes and errors), read from
    /// it at each scrape.
    #[cfg(feature = "cache")]
    pub fn poll_cache(&self, cache: crate::cache::ServiceCache) {
        let polled = self.inner.caches.polled(cache);
        self.inner
            .polled_caches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(polled);
    }

    /// Reports the idle upstream connections of service `name`, read by `read` at each scrape.
    pub fn poll_upstream_idle(&self, name: &str, read: impl Fn() -> usize + Send + Sync + 'static) {
        let gauge = self.inner.upstream_idle.with_label_values(&[name]);
        let read = Box::new(move || i64::try_from(read()).unwrap_or(i64::MAX));
        self.inner
            .polled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PolledGauge { gauge, read });
    }

    /// Reports the PROXY protocol refusals of service `name`, counted in `rejects` (every
    /// reason shows from the start, at 0).
    pub fn poll_proxy_protocol_rejects(&self, name: &str, rejects: Arc<ProxyProtocolRejects>) {
        let counters = RejectReason::ALL.map(|r| {
            self.inner
                .proxy_protocol_rejects
                .with_label_values(&[name, r.as_str()])
        });
        self.inner
            .polled_rejects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PolledRejects {
                source: rejects,
                counters,
            });
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn render(&self, server: &ServerSnapshot) -> Vec<u8> {
        let i = &self.inner;
        i.live_connections
            .set(i64::try_from(server.live_connections).unwrap_or(i64::MAX));
        i.draining.set(i64::from(server.draining));
        let counted = i.access_log_dropped.get();
        if server.access_log_dropped > counted {
            i.access_log_dropped
                .inc_by(server.access_log_dropped - counted);
        }
        let counted = i.log_lines_suppressed.get();
        if server.log_lines_suppressed > counted {
            i.log_lines_suppressed
                .inc_by(server.log_lines_suppressed - counted);
        }
        for p in i.polled.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            p.gauge.set((p.read)());
        }
        for p in i
            .polled_rejects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            p.update();
        }
        for p in i
            .polled_counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let (now, counted) = ((p.read)(), p.counter.get());
            if now > counted {
                p.counter.inc_by(now - counted);
            }
        }
        for p in i
            .polled_backends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
        {
            p.update(&i.backends);
        }
        #[cfg(feature = "cache")]
        for c in i
            .polled_caches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            c.update();
        }
        let mut out = Vec::with_capacity(8192);
        if let Err(e) = TextEncoder::new().encode(&i.registry.gather(), &mut out) {
            log::error!("cannot encode metrics: {e}");
        }
        out
    }
}

/// One service's metric handles, resolved at start-up.
#[derive(Clone)]
pub struct ServiceMetrics {
    routes: usize,
    /// Per route slot (routes, then health_path, then unmatched), per status class.
    requests: Arc<[[IntCounter; STATUS_CLASSES.len()]]>,
    /// Per [`UPSTREAM_ERROR_KINDS`], then `other`.
    upstream_errors: Arc<[IntCounter]>,
    upstream_reused: IntCounter,
    upstream_new: IntCounter,
    /// Per [`CACHE_STATUSES`].
    cache: [IntCounter; CACHE_STATUSES.len()],
    duration: Histogram,
    bytes_in: IntCounter,
    bytes_out: IntCounter,
    policy: policy::PolicyCounters,
}

impl ServiceMetrics {
    /// Counts one response compressed with `algorithm`: `bytes_in` taken, `bytes_out`
    /// given out.
    #[cfg(feature = "compression")]
    pub fn record_compression(
        &self,
        algorithm: pingora_config::CompressionAlgorithm,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        self.policy
            .compression(algorithm.as_str(), bytes_in, bytes_out);
    }

    /// Counts one request refused by the rate limit keyed `key`.
    pub fn record_rate_limited(&self, key: &str) {
        self.policy.rate_limited(key);
    }

    /// Counts one finished request.
    pub fn record(&self, done: &Finished) {
        let slot = match done.route {
            RouteSlot::Route(r) if r < self.routes => r,
            RouteSlot::Health => self.routes,
            RouteSlot::Rejected => self.routes + 2,
            _ => self.routes + 1,
        };
        if let Some(row) = self.requests.get(slot) {
            row[status_class_index(done.status)].inc();
        }
        if done.route != RouteSlot::Rejected {
            // A rejected request has no start to measure from.
            self.duration.observe(done.total.as_secs_f64());
        }
        self.bytes_in.inc_by(done.bytes_in);
        self.bytes_out.inc_by(done.bytes_out);
        if let Some(st) = done.cache_status {
            if let Some(i) = CACHE_STATUSES.iter().position(|s| *s == st) {
                self.cache[i].inc();
            }
        }
        match done.upstream_reused {
            Some(true) => self.upstream_reused.inc(),
            Some(false) => self.upstream_new.inc(),
            None => {}
        }
        if let Some(kind) = done.upstream_error() {
            let i = UPSTREAM_ERROR_KINDS
                .iter()
                .position(|k| *k == kind)
                .unwrap_or(UPSTREAM_ERROR_KINDS.len());
            if let Some(c) = self.upstream_errors.get(i) {
                c.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(
        route: RouteSlot,
        status: Option<u16>,
        error: Option<(ErrorKind, Side)>,
    ) -> Finished {
        Finished {
            route,
            status,
            total: Duration::from_millis(3),
            upstream: None,
            bytes_in: 10,
            bytes_out: 20,
            error,
            upstream_reused: Some(status.is_some()),
            cache_status: None,
        }
    }

    fn text(m: &Metrics) -> String {
        String::from_utf8(m.render(&ServerSnapshot::default())).unwrap()
    }

    #[test]
    fn backend_series_follow_the_current_set() {
        fn backend(addr: &str, healthy: bool, requests: u64) -> BackendStatus {
            BackendStatus {
                addr: addr.to_string(),
                weight: 1,
                healthy,
                backoff_remaining: None,
                draining: !healthy,
                in_flight: 2,
                requests,
                errors: 1,
                last_check: None,
            }
        }
        let m = Metrics::new().unwrap();
        let set = Arc::new(Mutex::new(vec![
            backend("a:1", true, 5),
            backend("b:1", false, 7),
        ]));
        let read = Arc::clone(&set);
        m.poll_backends("web", "api", move || read.lock().unwrap().clone());
        let series = |t: &str, name: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .map(String::from)
                .collect()
        };
        let t = text(&m);
        assert_eq!(
            series(&t, "pingora_upstream_backend_healthy"),
            [
                r#"pingora_upstream_backend_healthy{backend="a:1",service="web",upstream="api"} 1"#,
                r#"pingora_upstream_backend_healthy{backend="b:1",service="web",upstream="api"} 0"#,
            ]
        );
        assert_eq!(
            series(&t, "pingora_upstream_backend_requests_total"),
            [
                r#"pingora_upstream_backend_requests_total{backend="a:1",service="web",upstream="api"} 5"#,
                r#"pingora_upstream_backend_requests_total{backend="b:1",service="web",upstream="api"} 7"#,
            ]
        );
        assert!(t.contains(
            r#"pingora_upstream_backend_draining{backend="b:1",service="web",upstream="api"} 1"#
        ));
        assert!(t.contains(
            r#"pingora_upstream_backend_in_flight{backend="a:1",service="web",upstream="api"} 2"#
        ));
        *set.lock().unwrap() = vec![backend("b:1", true, 9), backend("c:1", true, 0)];
        let t = text(&m);
        assert_eq!(
            series(&t, "pingora_upstream_backend_healthy"),
            [
                r#"pingora_upstream_backend_healthy{backend="b:1",service="web",upstream="api"} 1"#,
                r#"pingora_upstream_backend_healthy{backend="c:1",service="web",upstream="api"} 1"#,
            ]
        );
        assert!(t.contains(
            r#"pingora_upstream_backend_requests_total{backend="b:1",service="web",upstream="api"} 9"#
        ));
        assert!(!t.contains(r#"backend="a:1""#));
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class_index(Some(101)), 0);
        assert_eq!(status_class_index(Some(204)), 1);
        assert_eq!(status_class_index(Some(599)), 4);
        assert_eq!(status_class_index(Some(600)), 5);
        assert_eq!(status_class_index(None), 5);
    }

    #[test]
    fn records_by_route_status_and_error_kind() {
        let m = Metrics::new().unwrap();
        let s = m.service("web", 2, &[]);
        s.record(&finished(RouteSlot::Route(1), Some(200), None));
        s.record(&finished(RouteSlot::Route(1), Some(201), None));
        s.record(&finished(RouteSlot::Health, Some(200), None));
        s.record(&finished(RouteSlot::Route(7), Some(404), None));
        s.record(&finished(
            RouteSlot::Route(0),
            Some(502),
            Some((ErrorKind::ConnectRefused, Side::Upstream)),
        ));
        s.record(&finished(
            RouteSlot::Route(0),
            None,
            Some((ErrorKind::ConnectionClosed, Side::Downstream)),
        ));
        s.record(&finished(
            RouteSlot::Route(0),
            Some(502),
            Some((ErrorKind::TlsHandshake, Side::Upstream)),
        ));
        s.record(&Finished::rejected(
            431,
            &Error::new(ErrorKind::HeadTooLarge, Side::Downstream, "too large"),
        ));
        let t = text(&m);
        for line in [
            r#"pingora_requests_total{route="1",service="web",status_class="2xx"} 2"#,
            r#"pingora_requests_total{route="health_path",service="web",status_class="2xx"} 1"#,
            r#"pingora_requests_total{route="unmatched",service="web",status_class="4xx"} 1"#,
            r#"pingora_requests_total{route="0",service="web",status_class="5xx"} 2"#,
            r#"pingora_requests_total{route="rejected",service="web",status_class="4xx"} 1"#,
            r#"pingora_requests_total{route="0",service="web",status_class="none"} 1"#,
            r#"pingora_requests_total{route="0",service="web",status_class="2xx"} 0"#,
            r#"pingora_upstream_errors_total{kind="connect_refused",service="web"} 1"#,
            r#"pingora_upstream_errors_total{kind="connection_closed",service="web"} 0"#,
            r#"pingora_upstream_errors_total{kind="tls_handshake",service="web"} 1"#,
            r#"pingora_request_body_bytes_total{service="web"} 70"#,
            r#"pingora_response_body_bytes_total{service="web"} 140"#,
            r#"pingora_request_duration_seconds_count{service="web"} 7"#,
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line} in\n{t}");
        }
    }

    #[test]
    fn snapshot_and_polled_gauges() {
        let m = Metrics::new().unwrap();
        m.poll_upstream_idle("web", || 3);
        let snap = ServerSnapshot {
            live_connections: 4,
            draining: true,
            access_log_dropped: 5,
            log_lines_suppressed: 6,
        };
        m.render(&snap);
        let t = String::from_utf8(m.render(&snap)).unwrap();
        for line in [
            r#"pingora_upstream_idle_connections{service="web"} 3"#,
            "pingora_downstream_connections_active 4",
            "pingora_draining 1",
            "pingora_access_log_dropped_lines_total 5",
            "pingora_log_lines_suppressed_total 6",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line} in\n{t}");
        }
    }
}

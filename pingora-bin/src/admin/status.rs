//! What `GET /status.json` answers and the status page shows: the server, each service
//! with its recent traffic, upstreams, backends and cache, and the recent changes.
//! The schema is documented in docs/observability.md and docs/status.schema.json.

use std::time::Duration;

use serde::Serialize;

use super::history::Point;
use super::{AdminState, ServiceSource};
use crate::metrics::ServiceTotals;
use crate::upstreams::BackendStatus;

/// Over how long the request rate is averaged.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Over how long the latency percentiles are computed.
const LATENCY_WINDOW: Duration = Duration::from_secs(60);

/// The whole status.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The binary's version.
    pub version: &'static str,
    /// The serving process.
    pub pid: u32,
    /// Seconds since this process started.
    pub uptime_seconds: u64,
    /// When it started (UTC, RFC 3339).
    pub started_at: String,
    /// The configuration file, as given with `-c` (none: built-in defaults).
    pub config_file: Option<String>,
    /// When the configuration was loaded (at start; a reload starts a new process).
    pub config_loaded_at: String,
    /// Whether the server drains (shutting down, or handed over to a new instance).
    pub draining: bool,
    /// Client connections open now, over all services.
    pub connections_active: usize,
    /// Whether changes need the bearer token (`admin.token_file` is set).
    pub token_required: bool,
    /// The services, in configuration order.
    pub services: Vec<ServiceStatus>,
    /// The latest changes made through the admin endpoint, newest first.
    pub events: Vec<super::control::Event>,
}

/// One service.
#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    /// Its name.
    pub name: String,
    /// Its listening addresses.
    pub listeners: Vec<String>,
    /// Requests answered since start.
    pub requests_total: u64,
    /// Requests answered per second over the last 10 seconds.
    pub requests_per_second: f64,
    /// Requests answered since start, by status class.
    pub status_classes: StatusClasses,
    /// Latency percentiles over the last minute.
    pub latency_seconds: Latency,
    /// Its upstreams, in configuration order.
    pub upstreams: Vec<UpstreamStatus>,
    /// Its cache, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStatus>,
    /// Request and 5xx rates between consecutive samples, oldest first (the charts).
    pub history: Vec<Point>,
}

/// Requests by status class.
#[derive(Debug, Default, Serialize)]
#[allow(missing_docs)]
pub struct StatusClasses {
    #[serde(rename = "1xx")]
    pub c1: u64,
    #[serde(rename = "2xx")]
    pub c2: u64,
    #[serde(rename = "3xx")]
    pub c3: u64,
    #[serde(rename = "4xx")]
    pub c4: u64,
    #[serde(rename = "5xx")]
    pub c5: u64,
    /// No response could be sent.
    pub none: u64,
}

/// Latency percentiles (seconds; `null` without requests in the window).
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    /// The median.
    pub p50: Option<f64>,
    /// The 90th percentile.
    pub p90: Option<f64>,
    /// The 99th percentile.
    pub p99: Option<f64>,
    /// The seconds the percentiles cover.
    pub window_seconds: f64,
}

/// One upstream.
#[derive(Debug, Serialize)]
pub struct UpstreamStatus {
    /// Its name.
    pub name: String,
    /// Its `lb:` algorithm.
    pub lb: &'static str,
    /// Its backends (the current set of a discovered upstream).
    pub backends: Vec<BackendJson>,
}

/// One backend.
#[derive(Debug, Serialize)]
pub struct BackendJson {
    /// The address as written in `peers` (or as discovered): the `{backend}` of the
    /// drain and enable paths.
    pub addr: String,
    /// Its weight.
    pub weight: u32,
    /// `up`, `down` (failing its health checks), `backed_off` (after a failed
    /// connection) or `draining` (taken out by an operator).
    pub state: &'static str,
    /// Passes its health checks and is not backed off.
    pub healthy: bool,
    /// Taken out of rotation by an operator.
    pub draining: bool,
    /// Skipped for now after a failed connection (passive health).
    pub backed_off: bool,
    /// Seconds the back-off still lasts (0 when not backed off).
    pub backoff_remaining_seconds: f64,
    /// Requests in flight on it now.
    pub in_flight: usize,
    /// Requests sent to it since start (each attempt counts).
    pub requests_total: u64,
    /// Of those, the ones that failed (connect failures, timeouts, resets, bad responses).
    pub errors_total: u64,
    /// The last active health check, if one ran.
    pub last_check: Option<CheckJson>,
}

/// The last active health check of a backend.
#[derive(Debug, Serialize)]
pub struct CheckJson {
    /// Whether it passed.
    pub passed: bool,
    /// How long ago it ended, in seconds.
    pub age_seconds: f64,
}

/// A service's cache.
#[derive(Debug, Serialize)]
pub struct CacheStatus {
    /// Entries stored (responses and variant indexes): the disk tier's count when
    /// there is one (every stored entry is written there), else memory's.
    pub entries: u64,
    /// Bytes those entries take: on disk when there is a disk tier, else in memory.
    pub bytes: u64,
    /// Lookups that found an entry (in memory or on disk) over all lookups since
    /// start; 0 before the first.
    pub hit_ratio: f64,
    /// The memory tier.
    pub memory: TierStatus,
    /// The disk tier, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<TierStatus>,
}

/// One tier of a cache.
#[derive(Debug, Serialize)]
pub struct TierStatus {
    /// Entries held.
    pub entries: u64,
    /// Bytes held (memory: counted against `max_bytes`; disk: file sizes).
    pub bytes: u64,
    /// Lookups it answered since start.
    pub hits: u64,
    /// Entries it removed to stay within its budget since start.
    pub evictions: u64,
}

impl BackendJson {
    fn new(b: BackendStatus) -> Self {
        let backed_off = b.backoff_remaining.is_some();
        let state = if b.draining {
            "draining"
        } else if !b.healthy {
            "down"
        } else if backed_off {
            "backed_off"
        } else {
            "up"
        };
        BackendJson {
            state,
            healthy: b.healthy && !backed_off,
            draining: b.draining,
            backed_off,
            backoff_remaining_seconds: b.backoff_remaining.map_or(0.0, |d| d.as_secs_f64()),
            in_flight: b.in_flight,
            requests_total: b.requests,
            errors_total: b.errors,
            last_check: b.last_check.map(|c| CheckJson {
                passed: c.passed,
                age_seconds: c.age.as_secs_f64(),
            }),
            weight: b.weight,
            addr: b.addr,
        }
    }
}

/// What the server says of itself beside the services.
pub struct ServerFacts {
    /// Whether it drains.
    pub draining: bool,
    /// Client connections open now.
    pub connections_active: usize,
}

/// The status now.
pub fn status(state: &AdminState, server: ServerFacts) -> Status {
    let history = state.history.lock().unwrap_or_else(|p| p.into_inner());
    let services = (state.sources.services.iter().enumerate())
        .map(|(i, s)| {
            let totals = s.metrics.totals();
            let rate = history
                .recent(i, RATE_WINDOW)
                .map_or(0.0, |(d, secs)| d.requests() as f64 / secs.max(0.001));
            let latency = history
                .recent(i, LATENCY_WINDOW)
                .map(|(d, secs)| Latency {
                    p50: d.latency_quantile(0.5),
                    p90: d.latency_quantile(0.9),
                    p99: d.latency_quantile(0.99),
                    window_seconds: secs,
                })
                .unwrap_or_default();
            service_status(s, &totals, rate, latency, history.points(i))
        })
        .collect();
    drop(history);
    let started_at = crate::log::utc_timestamp(state.started_at);
    Status {
        version: env!("CARGO_PKG_VERSION"),
        pid: std::process::id(),
        uptime_seconds: state.started.elapsed().as_secs(),
        config_loaded_at: started_at.clone(),
        started_at,
        config_file: state.config_file.clone(),
        draining: server.draining,
        connections_active: server.connections_active,
        token_required: state.access.has_token(),
        services,
        events: state.events.latest(),
    }
}

fn service_status(
    s: &ServiceSource,
    totals: &ServiceTotals,
    rate: f64,
    latency: Latency,
    history: Vec<Point>,
) -> ServiceStatus {
    let [c1, c2, c3, c4, c5, none] = totals.by_class;
    ServiceStatus {
        name: s.name.clone(),
        listeners: s.listeners.clone(),
        requests_total: totals.requests(),
        requests_per_second: rate,
        status_classes: StatusClasses {
            c1,
            c2,
            c3,
            c4,
            c5,
            none,
        },
        latency_seconds: latency,
        upstreams: (s.upstreams.iter())
            .map(|u| UpstreamStatus {
                name: u.name.clone(),
                lb: u.algorithm(),
                backends: u.statuses().into_iter().map(BackendJson::new).collect(),
            })
            .collect(),
        cache: cache_status(s, totals),
        history,
    }
}

#[cfg(feature = "cache")]
fn cache_status(s: &ServiceSource, _: &ServiceTotals) -> Option<CacheStatus> {
    let cache = s.cache.as_ref()?;
    let has_disk = cache.has_disk();
    let stats = cache.get()?.stats();
    let st = &stats.storage;
    let memory = TierStatus {
        entries: st.memory_entries,
        bytes: st.memory_bytes,
        hits: stats.hits_memory,
        evictions: st.memory_evictions,
    };
    let disk = has_disk.then_some(TierStatus {
        entries: st.disk_entries,
        bytes: st.disk_bytes,
        hits: stats.hits_disk,
        evictions: st.disk_evictions,
    });
    let (entries, bytes) = match &disk {
        Some(d) => (d.entries, d.bytes),
        None => (memory.entries, memory.bytes),
    };
    Some(CacheStatus {
        entries,
        bytes,
        hit_ratio: stats.hit_ratio(),
        memory,
        disk,
    })
}

#[cfg(not(feature = "cache"))]
fn cache_status(_: &ServiceSource, _: &ServiceTotals) -> Option<CacheStatus> {
    None
}

//! The per-backend series: read from the upstreams at each scrape, so that they follow
//! the current set of a discovered upstream (a backend that joins gets its series, one
//! that leaves loses them).

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{metric_error, register};
use crate::error::BinError;
use crate::upstreams::BackendStatus;

/// Reads the backends of one upstream.
pub type ReadBackends = Box<dyn Fn() -> Vec<BackendStatus> + Send + Sync>;

/// The metric families of the backends.
pub(super) struct BackendFamilies {
    healthy: IntGaugeVec,
    draining: IntGaugeVec,
    in_flight: IntGaugeVec,
    requests: IntCounterVec,
    errors: IntCounterVec,
}

const LABELS: &[&str] = &["service", "upstream", "backend"];

impl BackendFamilies {
    /// Creates the families in `registry`.
    pub(super) fn new(registry: &Registry) -> Result<Self, BinError> {
        let gauge = |name: &str, help: &str| -> Result<IntGaugeVec, BinError> {
            let g = IntGaugeVec::new(Opts::new(name, help), LABELS).map_err(metric_error)?;
            register(registry, g)
        };
        let counter = |name: &str, help: &str| -> Result<IntCounterVec, BinError> {
            let c = IntCounterVec::new(Opts::new(name, help), LABELS).map_err(metric_error)?;
            register(registry, c)
        };
        Ok(BackendFamilies {
            healthy: gauge(
                "pingora_upstream_backend_healthy",
                "1 while a backend may be picked (healthy and not backed off after a failure), else 0.",
            )?,
            draining: gauge(
                "pingora_upstream_backend_draining",
                "1 while a backend is drained by an operator (no new requests), else 0.",
            )?,
            in_flight: gauge(
                "pingora_upstream_backend_in_flight",
                "Requests in flight on a backend now.",
            )?,
            requests: counter(
                "pingora_upstream_backend_requests_total",
                "Requests sent to a backend (each attempt counts).",
            )?,
            errors: counter(
                "pingora_upstream_backend_errors_total",
                "Requests to a backend that failed (connect failures, timeouts, resets, bad responses).",
            )?,
        })
    }
}

/// The backends of one upstream, listed from elsewhere each time metrics are rendered.
pub(super) struct PolledBackends {
    /// `service` and `upstream` label values.
    pub(super) labels: [String; 2],
    pub(super) read: ReadBackends,
    /// The backends that have series now.
    pub(super) shown: Vec<String>,
}

impl PolledBackends {
    /// Sets the series of each current backend, and removes those of departed ones.
    pub(super) fn update(&mut self, f: &BackendFamilies) {
        let [service, upstream] = &self.labels;
        let now = (self.read)();
        for gone in self
            .shown
            .iter()
            .filter(|s| !now.iter().any(|b| &b.addr == *s))
        {
            let labels = [service.as_str(), upstream.as_str(), gone.as_str()];
            let _ = f.healthy.remove_label_values(&labels);
            let _ = f.draining.remove_label_values(&labels);
            let _ = f.in_flight.remove_label_values(&labels);
            let _ = f.requests.remove_label_values(&labels);
            let _ = f.errors.remove_label_values(&labels);
        }
        for b in &now {
            let labels = [service.as_str(), upstream.as_str(), b.addr.as_str()];
            let usable = b.healthy && b.backoff_remaining.is_none();
            f.healthy.with_label_values(&labels).set(i64::from(usable));
            f.draining
                .with_label_values(&labels)
                .set(i64::from(b.draining));
            f.in_flight
                .with_label_values(&labels)
                .set(i64::try_from(b.in_flight).unwrap_or(i64::MAX));
            // The counts live in the balancer; the counters catch up with them.
            for (family, value) in [(&f.requests, b.requests), (&f.errors, b.errors)] {
                let c = family.with_label_values(&labels);
                if value > c.get() {
                    c.inc_by(value - c.get());
                }
            }
        }
        self.shown = now.into_iter().map(|b| b.addr).collect();
    }
}

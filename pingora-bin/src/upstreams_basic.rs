//! A configured upstream without the `lb` feature: its peers used in turn, no health
//! checks (the configuration validation refuses `lb` and `health_check` in this build).

use std::sync::atomic::{AtomicUsize, Ordering};

use pingora_config::UpstreamConf;
use pingora_core::connector::{HttpPeer, PeerOptions};
use pingora_core::shutdown::ShutdownWatch;
use pingora_proxy::Session;

/// Tells whether a backend may be picked now (for metrics).
pub type BackendProbe = Box<dyn Fn() -> Vec<(String, bool)> + Send + Sync>;

/// Nothing to count without load balancing.
#[derive(Debug)]
pub struct InFlight;

/// Never built without the `lb` feature.
pub enum HealthChecker {}

/// One `upstreams:` entry.
#[derive(Debug)]
pub struct Upstream {
    /// The name from the config.
    pub name: String,
    peers: Vec<HttpPeer>,
    next: AtomicUsize,
}

impl Upstream {
    /// Builds the upstream `name` over its resolved `peers` (built with `_options`).
    pub fn new(
        name: String,
        _conf: &UpstreamConf,
        peers: Vec<HttpPeer>,
        _options: PeerOptions,
    ) -> Self {
        Upstream {
            name,
            peers,
            next: AtomicUsize::new(0),
        }
    }

    /// The next peer in turn.
    pub fn select(&self, _session: &Session) -> Option<(usize, &HttpPeer, InFlight)> {
        if self.peers.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.peers.len();
        Some((i, self.peers.get(i)?, InFlight))
    }

    /// No passive marking without load balancing.
    pub fn connect_failed(&self, _i: usize) {}

    /// No backend health without load balancing.
    pub fn backend_health(&self) -> Option<BackendProbe> {
        None
    }

    /// No health checks without load balancing.
    pub fn health_checker(&self) -> Option<HealthChecker> {
        None
    }
}

/// Nothing to run without load balancing (no [`HealthChecker`] can exist).
pub async fn run_background(checkers: Vec<HealthChecker>, _shutdown: ShutdownWatch) {
    debug_assert!(checkers.is_empty());
}

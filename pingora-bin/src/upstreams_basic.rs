//! A configured upstream without the `lb` feature: its peers used in turn, no health
//! checks (the configuration validation refuses `lb` and `health_check` in this build),
//! but the same counters and runtime draining as with it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pingora_config::UpstreamConf;
use pingora_core::connector::{HttpPeer, PeerAddress, PeerOptions};
use pingora_core::service::BackgroundService;
use pingora_proxy::{RetryRule, Session};

use crate::error::BinError;

/// Never built without the `lb` feature.
pub enum HealthChecker {}

/// The outcome of a backend's last health check (none run in this build).
#[derive(Debug, Clone, Copy)]
pub struct CheckResult {
    /// Whether it passed.
    pub passed: bool,
    /// How long ago it ended.
    pub age: Duration,
}

/// A snapshot of one backend (the fields of `pingora_lb::BackendStatus`).
#[derive(Debug, Clone)]
pub struct BackendStatus {
    /// The address, as listed.
    pub addr: String,
    /// Its weight (unused by the plain rotation).
    pub weight: u32,
    /// Always true: no health checks in this build.
    pub healthy: bool,
    /// Always `None`: no passive back-off in this build.
    pub backoff_remaining: Option<Duration>,
    /// Taken out of rotation by an operator.
    pub draining: bool,
    /// Requests in flight on it now.
    pub in_flight: usize,
    /// Requests sent to it so far.
    pub requests: u64,
    /// Requests to it that failed so far.
    pub errors: u64,
    /// Always `None`: no health checks in this build.
    pub last_check: Option<CheckResult>,
}

/// The counters of one peer.
#[derive(Debug, Default)]
struct PeerState {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    errors: AtomicU64,
}

/// Counts a request in flight on a peer until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<PeerState>);

impl InFlight {
    fn start(state: &Arc<PeerState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        state.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(state))
    }

    /// Counts a failed request on the peer.
    pub fn record_error(&self) {
        self.0.errors.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One `upstreams:` entry.
#[derive(Debug)]
pub struct Upstream {
    /// The name from the config.
    pub name: String,
    peers: Vec<(String, HttpPeer, Arc<PeerState>)>,
    next: AtomicUsize,
    retry: Option<RetryRule>,
}

impl Upstream {
    /// Builds the upstream `name` over its listed peers, built with `options`.
    pub fn new(name: String, conf: &UpstreamConf, options: PeerOptions) -> Result<Self, BinError> {
        let mut peers = Vec::with_capacity(conf.peers.len());
        for p in &conf.peers {
            let addr = PeerAddress::parse(&p.addr)
                .ok_or_else(|| BinError::PeerAddress(p.addr.clone()).in_upstream(&name))?;
            let peer = HttpPeer::new(addr, options.clone());
            peers.push((p.addr.clone(), peer, Arc::default()));
        }
        Ok(Upstream {
            name,
            peers,
            next: AtomicUsize::new(0),
            retry: conf.retry.as_ref().map(crate::retry::rule),
        })
    }

    /// The `retry:` rule, if the upstream has one.
    pub fn retry_rule(&self) -> Option<RetryRule> {
        self.retry
    }

    /// The next peer in turn that is not drained (the client address, which
    /// `hash_key: client_ip` uses with the `lb` feature, and `salt`, for hashing
    /// algorithms, play no part here).
    pub fn select(
        &self,
        _session: &Session,
        _client_ip: Option<std::net::IpAddr>,
        _salt: u8,
    ) -> Option<(usize, HttpPeer, InFlight)> {
        let n = self.peers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|k| start.wrapping_add(k) % n).find_map(|i| {
            let (_, peer, state) = self.peers.get(i)?;
            (!state.draining.load(Ordering::Relaxed))
                .then(|| (i, peer.clone(), InFlight::start(state)))
        })
    }

    /// No passive marking without load balancing; the failure is counted.
    pub fn connect_failed(&self, in_flight: &InFlight) {
        in_flight.record_error();
    }

    /// The peers with their counters.
    pub fn statuses(&self) -> Vec<BackendStatus> {
        (self.peers.iter())
            .map(|(addr, _, s)| BackendStatus {
                addr: addr.clone(),
                weight: 1,
                healthy: true,
                backoff_remaining: None,
                draining: s.draining.load(Ordering::Relaxed),
                in_flight: s.in_flight.load(Ordering::Relaxed),
                requests: s.requests.load(Ordering::Relaxed),
                errors: s.errors.load(Ordering::Relaxed),
                last_check: None,
            })
            .collect()
    }

    /// Takes the peer at `addr` out of rotation or puts it back; whether it changed,
    /// `None` when there is no such peer.
    pub fn set_draining(&self, addr: &str, drain: bool) -> Option<bool> {
        let (_, _, state) = self.peers.iter().find(|(a, _, _)| a == addr)?;
        let changed = state.draining.swap(drain, Ordering::Relaxed) != drain;
        Some(changed)
    }

    /// The rotation used in this build.
    pub fn algorithm(&self) -> &'static str {
        "round_robin"
    }

    /// No health checks without load balancing.
    pub fn health_checker(&self) -> Option<HealthChecker> {
        None
    }
}

/// Nothing to run without load balancing (no [`HealthChecker`] can exist).
pub fn background(checkers: Vec<HealthChecker>) -> impl BackgroundService {
    debug_assert!(checkers.is_empty());
    |_shutdown| async {}
}

//! A load balancer: backends, their health, their load, and a selector.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::selection::Selector;

/// One server requests can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// `host:port` (or `unix:/path`).
    pub addr: String,
    /// Relative share of requests for weighted algorithms (at least 1).
    pub weight: u32,
}

#[derive(Debug, Default)]
struct BackendState {
    healthy: AtomicBool,
    /// Milliseconds since [`epoch`] until which the backend is skipped after a failure.
    backoff_until_ms: AtomicU64,
    in_flight: Arc<AtomicUsize>,
}

/// Backends with health and load, and the algorithm that picks among them.
/// Selection takes no lock and allocates nothing.
pub struct LoadBalancer {
    backends: Vec<Backend>,
    state: Vec<BackendState>,
    selector: Box<dyn Selector>,
}

/// Counts a request in flight on a backend until dropped (for least-connections and
/// power-of-two choices).
#[derive(Debug)]
pub struct InFlight {
    counter: Arc<AtomicUsize>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl LoadBalancer {
    /// A balancer over `backends` (all healthy at first) using `selector`, which must
    /// have been built for the same backends in the same order.
    pub fn new(backends: Vec<Backend>, selector: Box<dyn Selector>) -> Self {
        let state = backends
            .iter()
            .map(|_| BackendState {
                healthy: AtomicBool::new(true),
                ..BackendState::default()
            })
            .collect();
        LoadBalancer {
            backends,
            state,
            selector,
        }
    }

    /// The backends, in configuration order.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Picks a usable backend for a request with hash key `key`: its index and a guard
    /// counting the request in flight. `None` when every backend is down or backed off.
    pub fn select(&self, key: &[u8]) -> Option<(usize, InFlight)> {
        let now = now_ms();
        let usable = |i: usize| self.is_usable_at(i, now);
        let load = |i: usize| self.state[i].in_flight.load(Ordering::Relaxed);
        let i = self.selector.select(key, &usable, &load)?;
        let counter = self.state[i].in_flight.clone();
        counter.fetch_add(1, Ordering::Relaxed);
        Some((i, InFlight { counter }))
    }

    fn is_usable_at(&self, i: usize, now: u64) -> bool {
        let s = &self.state[i];
        s.healthy.load(Ordering::Relaxed) && s.backoff_until_ms.load(Ordering::Relaxed) <= now
    }

    /// Whether backend `i` may be chosen now.
    pub fn is_usable(&self, i: usize) -> bool {
        self.is_usable_at(i, now_ms())
    }

    /// Whether the last health checks found backend `i` healthy.
    pub fn is_healthy(&self, i: usize) -> bool {
        self.state
            .get(i)
            .is_some_and(|s| s.healthy.load(Ordering::Relaxed))
    }

    /// Records the result of health checks for backend `i`.
    pub fn set_healthy(&self, i: usize, healthy: bool) {
        if let Some(s) = self.state.get(i) {
            let was = s.healthy.swap(healthy, Ordering::Relaxed);
            if healthy {
                s.backoff_until_ms.store(0, Ordering::Relaxed);
            }
            if was != healthy {
                log::warn!(
                    "backend {} is now {}",
                    self.backends[i].addr,
                    if healthy { "healthy" } else { "unhealthy" }
                );
            }
        }
    }

    /// Passive health: skips backend `i` for `backoff` after a failed connection
    /// (a passing health check ends it early).
    pub fn mark_failed(&self, i: usize, backoff: Duration) {
        if let Some(s) = self.state.get(i) {
            s.backoff_until_ms
                .store(now_ms() + backoff.as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// Requests in flight on backend `i`.
    pub fn in_flight(&self, i: usize) -> usize {
        self.state
            .get(i)
            .map_or(0, |s| s.in_flight.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::{LeastConn, RoundRobin};

    fn backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend {
                addr: format!("127.0.0.1:{}", 1000 + i),
                weight: 1,
            })
            .collect()
    }

    #[test]
    fn unhealthy_and_backed_off_backends_are_skipped() {
        let lb = LoadBalancer::new(backends(2), Box::new(RoundRobin::new(2)));
        lb.set_healthy(0, false);
        assert!((0..5).all(|_| lb.select(b"").map(|(i, _)| i) == Some(1)));
        lb.mark_failed(1, Duration::from_secs(60));
        assert!(lb.select(b"").is_none());
        lb.set_healthy(1, true);
        assert_eq!(lb.select(b"").map(|(i, _)| i), Some(1));
    }

    #[test]
    fn in_flight_guards_count_and_release() {
        let lb = LoadBalancer::new(backends(2), Box::new(LeastConn::new(2)));
        let (a, ga) = lb.select(b"").unwrap();
        let (b, gb) = lb.select(b"").unwrap();
        assert_ne!(a, b, "least-conn spreads concurrent requests");
        assert_eq!(lb.in_flight(a), 1);
        drop(ga);
        drop(gb);
        assert_eq!(lb.in_flight(a) + lb.in_flight(b), 0);
    }
}

//! A backend, the health and load kept for it, and the guard that counts a request
//! in flight on it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// One server requests can be sent to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Backend {
    /// `host:port` (or `unix:/path`); identifies the backend across updates of the set.
    pub addr: String,
    /// Relative share of requests for weighted algorithms (at least 1).
    pub weight: u32,
}

impl Backend {
    /// A backend at `addr` with weight 1.
    pub fn new(addr: impl Into<String>) -> Self {
        Backend {
            addr: addr.into(),
            weight: 1,
        }
    }

    /// The same backend with weight `weight`.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }
}

/// What is known of one backend: health, back-off and load. Shared (by `Arc`) between
/// the backend sets that contain the backend, so an update of the set keeps it.
#[derive(Debug)]
pub(crate) struct BackendState {
    healthy: AtomicBool,
    /// Milliseconds since [`epoch`] until which the backend is skipped after a failure.
    backoff_until_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Consecutive passing health checks (0 after a failing one).
    streak_ok: AtomicU32,
    /// Consecutive failing health checks (0 after a passing one).
    streak_failed: AtomicU32,
}

impl Default for BackendState {
    fn default() -> Self {
        BackendState {
            healthy: AtomicBool::new(true),
            backoff_until_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            streak_ok: AtomicU32::new(0),
            streak_failed: AtomicU32::new(0),
        }
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds on a process-wide monotonic clock.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The clock read at most once, and only if needed (most backends are not backed off,
/// and reading the clock is a good part of a selection's cost).
#[derive(Debug, Default)]
pub(crate) struct LazyNow(std::cell::Cell<Option<u64>>);

impl LazyNow {
    fn get(&self) -> u64 {
        match self.0.get() {
            Some(now) => now,
            None => {
                let now = now_ms();
                self.0.set(Some(now));
                now
            }
        }
    }
}

impl BackendState {
    /// Healthy and not backed off now.
    pub(crate) fn is_usable(&self, now: &LazyNow) -> bool {
        if !self.healthy.load(Ordering::Relaxed) {
            return false;
        }
        let until = self.backoff_until_ms.load(Ordering::Relaxed);
        until == 0 || until <= now.get()
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Sets the health; returns whether it changed. Healthy ends any back-off.
    pub(crate) fn set_healthy(&self, healthy: bool) -> bool {
        if healthy {
            self.backoff_until_ms.store(0, Ordering::Relaxed);
        }
        self.healthy.swap(healthy, Ordering::Relaxed) != healthy
    }

    pub(crate) fn back_off(&self, backoff: Duration) {
        let ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
        self.backoff_until_ms
            .store(now_ms().saturating_add(ms), Ordering::Relaxed);
    }

    pub(crate) fn clear_backoff(&self) {
        self.backoff_until_ms.store(0, Ordering::Relaxed);
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Records one health-check result; returns the length of the current streak of
    /// equal results.
    pub(crate) fn record_check(&self, ok: bool) -> u32 {
        let (same, other) = if ok {
            (&self.streak_ok, &self.streak_failed)
        } else {
            (&self.streak_failed, &self.streak_ok)
        };
        other.store(0, Ordering::Relaxed);
        same.fetch_add(1, Ordering::Relaxed).saturating_add(1)
    }
}

/// Counts a request in flight on a backend until dropped (least connections and power
/// of two choices read these counts). Returned with every selection; keep it for the
/// whole request.
#[derive(Debug)]
pub struct InFlight {
    state: Arc<BackendState>,
}

impl InFlight {
    pub(crate) fn start(state: &Arc<BackendState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            state: Arc::clone(state),
        }
    }

    /// Passive health: skips this backend for `backoff` (a passing health check ends
    /// the back-off early). Works even if the backend set was updated since selection.
    pub fn mark_failed(&self, backoff: Duration) {
        self.state.back_off(backoff);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

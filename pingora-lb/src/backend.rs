//! A backend, the health and load kept for it, and the guard that counts a request
//! in flight on it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pingora_core::connector::HttpPeer;

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
    /// Taken out of rotation by an operator: no new requests, in-flight ones finish.
    draining: AtomicBool,
    /// Requests sent to the backend (each selection counts one).
    requests: AtomicU64,
    /// Requests to the backend that failed (see [`InFlight::record_error`]).
    errors: AtomicU64,
    /// The last health-check result: [`CHECK_NONE`], [`CHECK_PASSED`] or [`CHECK_FAILED`].
    last_check: AtomicU8,
    /// When the last health check ended, in [`now_ms`] milliseconds.
    last_check_ms: AtomicU64,
    /// The connection target an [`crate::Upstream`] built for this backend, built on
    /// its first selection (`None`: the address is not one a peer can be made of).
    pub(crate) peer: OnceLock<Option<HttpPeer>>,
}

const CHECK_NONE: u8 = 0;
const CHECK_PASSED: u8 = 1;
const CHECK_FAILED: u8 = 2;

impl Default for BackendState {
    fn default() -> Self {
        BackendState {
            healthy: AtomicBool::new(true),
            backoff_until_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            streak_ok: AtomicU32::new(0),
            streak_failed: AtomicU32::new(0),
            draining: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_check: AtomicU8::new(CHECK_NONE),
            last_check_ms: AtomicU64::new(0),
            peer: OnceLock::new(),
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
    /// Healthy, not backed off and not drained now.
    pub(crate) fn is_usable(&self, now: &LazyNow) -> bool {
        if !self.healthy.load(Ordering::Relaxed) || self.draining.load(Ordering::Relaxed) {
            return false;
        }
        !self.is_backed_off(now)
    }

    /// Skipped now after a failure (passive health).
    fn is_backed_off(&self, now: &LazyNow) -> bool {
        let until = self.backoff_until_ms.load(Ordering::Relaxed);
        until != 0 && until > now.get()
    }

    /// Takes the backend out of rotation (or puts it back); returns whether it changed.
    pub(crate) fn set_draining(&self, draining: bool) -> bool {
        self.draining.swap(draining, Ordering::Relaxed) != draining
    }

    /// What is known of the backend now, for status pages.
    pub(crate) fn status(&self, backend: &Backend) -> BackendStatus {
        let now_ms = now_ms();
        let until = self.backoff_until_ms.load(Ordering::Relaxed);
        let last_check = match self.last_check.load(Ordering::Relaxed) {
            CHECK_NONE => None,
            result => Some(CheckResult {
                passed: result == CHECK_PASSED,
                age: Duration::from_millis(
                    now_ms.saturating_sub(self.last_check_ms.load(Ordering::Relaxed)),
                ),
            }),
        };
        BackendStatus {
            addr: backend.addr.clone(),
            weight: backend.weight,
            healthy: self.healthy.load(Ordering::Relaxed),
            backoff_remaining: (until > now_ms).then(|| Duration::from_millis(until - now_ms)),
            draining: self.draining.load(Ordering::Relaxed),
            in_flight: self.in_flight(),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_check,
        }
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
        self.last_check.store(
            if ok { CHECK_PASSED } else { CHECK_FAILED },
            Ordering::Relaxed,
        );
        self.last_check_ms.store(now_ms(), Ordering::Relaxed);
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
    /// Counts a request (in flight, and in the backend's request count).
    pub(crate) fn start(state: &Arc<BackendState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        state.requests.fetch_add(1, Ordering::Relaxed);
        InFlight {
            state: Arc::clone(state),
        }
    }

    /// Passive health: skips this backend for `backoff` (a passing health check ends
    /// the back-off early). Works even if the backend set was updated since selection.
    pub fn mark_failed(&self, backoff: Duration) {
        self.state.back_off(backoff);
    }

    /// Counts a failed request in the backend's error count (shown by
    /// [`BackendStatus::errors`]): call it once per request that failed on it.
    pub fn record_error(&self) {
        self.state.errors.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A snapshot of one backend for status pages and metrics
/// ([`LoadBalancer::statuses`](crate::LoadBalancer::statuses)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    /// The backend's address, as listed or discovered.
    pub addr: String,
    /// Its weight.
    pub weight: u32,
    /// Healthy per the active health checks (always true without checks).
    pub healthy: bool,
    /// How much longer it is skipped after a failed connection (passive health).
    pub backoff_remaining: Option<Duration>,
    /// Taken out of rotation by an operator (no new requests).
    pub draining: bool,
    /// Requests in flight on it now.
    pub in_flight: usize,
    /// Requests sent to it so far (each attempt counts, retries included).
    pub requests: u64,
    /// Requests to it that failed so far (failed connections, and whatever the
    /// caller reported with [`InFlight::record_error`]).
    pub errors: u64,
    /// The last health check, if one ran.
    pub last_check: Option<CheckResult>,
}

impl BackendStatus {
    /// Whether a request may be sent to it now: healthy, not backed off, not draining.
    pub fn is_usable(&self) -> bool {
        self.healthy && self.backoff_remaining.is_none() && !self.draining
    }
}

/// The outcome of a backend's last health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckResult {
    /// Whether it passed.
    pub passed: bool,
    /// How long ago it ended.
    pub age: Duration,
}

//! A load balancer: a set of backends that can be replaced while requests are being
//! served, their health and load, and the algorithm that picks among them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::backend::{Backend, BackendState, BackendStatus, InFlight, LazyNow};
use crate::selection::{
    ConsistentHash, LeastConn, PowerOfTwo, Random, RoundRobin, Selector, Weighted,
};

/// Builds a [`Selector`] for a set of backends; called again each time the set changes.
/// Implemented by [`Algorithm`] and by any `Fn(&[Backend]) -> Box<dyn Selector>`, so a
/// library user can plug in an algorithm of their own.
pub trait SelectorBuilder: Send + Sync {
    /// A selector over `backends` (indices into this slice).
    fn build(&self, backends: &[Backend]) -> Box<dyn Selector>;
}

impl<F> SelectorBuilder for F
where
    F: Fn(&[Backend]) -> Box<dyn Selector> + Send + Sync,
{
    fn build(&self, backends: &[Backend]) -> Box<dyn Selector> {
        self(backends)
    }
}

/// The built-in selection algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// [`RoundRobin`]: each backend in turn, weights ignored.
    RoundRobin,
    /// [`Weighted`]: smooth weighted round robin.
    Weighted,
    /// [`Random`]: at random, in proportion to the weights.
    Random,
    /// [`ConsistentHash`]: by hash of the key on a ring of virtual nodes.
    ConsistentHash,
    /// [`LeastConn`]: the fewest requests in flight.
    LeastConn,
    /// [`PowerOfTwo`]: the less loaded of two random backends.
    PowerOfTwo,
}

impl SelectorBuilder for Algorithm {
    fn build(&self, backends: &[Backend]) -> Box<dyn Selector> {
        let n = backends.len();
        let weights = || backends.iter().map(|b| b.weight).collect::<Vec<_>>();
        match self {
            Algorithm::RoundRobin => Box::new(RoundRobin::new(n)),
            Algorithm::Weighted => Box::new(Weighted::new(&weights())),
            Algorithm::Random => Box::new(Random::new(&weights())),
            Algorithm::ConsistentHash => {
                let names: Vec<&str> = backends.iter().map(|b| b.addr.as_str()).collect();
                Box::new(ConsistentHash::new(&names, &weights()))
            }
            Algorithm::LeastConn => Box::new(LeastConn::new(n)),
            Algorithm::PowerOfTwo => Box::new(PowerOfTwo::new(n)),
        }
    }
}

/// One version of the backend set, with the selector built for it. Never changed once
/// published; an update publishes a new one.
pub(crate) struct BackendSet {
    pub(crate) backends: Vec<Backend>,
    pub(crate) states: Vec<Arc<BackendState>>,
    selector: Box<dyn Selector>,
    /// The [`BackendId`] of the first backend; the others follow. Each version of the
    /// set starts where the previous one ended, so ids are never reused.
    first_id: usize,
}

impl BackendSet {
    /// Runs the selector: a usable backend's index and state.
    fn pick(&self, key: &[u8]) -> Option<(usize, &Arc<BackendState>)> {
        let now = LazyNow::default();
        let states = &self.states;
        let usable = |i: usize| states.get(i).is_some_and(|s| s.is_usable(&now));
        let load = |i: usize| states.get(i).map_or(usize::MAX, |s| s.in_flight());
        let i = self.selector.select(key, &usable, &load)?;
        // A custom selector may return an index that is not usable: do not trust it.
        let state = states.get(i).filter(|s| s.is_usable(&now))?;
        Some((i, state))
    }

    /// The index in this set of the backend `id` names, if it belongs to this version.
    fn index_of(&self, id: BackendId) -> Option<usize> {
        let i = id.0.wrapping_sub(self.first_id);
        (i < self.backends.len()).then_some(i)
    }
}

/// Names one backend of one version of the set (from [`LoadBalancer::select_with`]).
/// Unlike an index, it cannot name another backend after [`LoadBalancer::update`]:
/// ids of an older version name nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendId(usize);

impl BackendId {
    /// The id as a number (to keep it where only a `usize` fits).
    pub fn get(self) -> usize {
        self.0
    }

    /// The id from a number given by [`BackendId::get`].
    pub fn from_raw(raw: usize) -> Self {
        BackendId(raw)
    }
}

/// Backends with health and load, and the algorithm that picks among them.
///
/// The backend set lives behind an [`ArcSwap`]: a selection reads the current set
/// without a lock (an atomic load, no allocation) and [`LoadBalancer::update`] publishes
/// a new set atomically while requests are being served. Requests that already picked
/// a backend of the old set finish on it; health, back-off and in-flight counts carry
/// over to the new set for backends with the same address.
pub struct LoadBalancer {
    current: ArcSwap<BackendSet>,
    builder: Box<dyn SelectorBuilder>,
}

impl std::fmt::Debug for LoadBalancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadBalancer")
            .field("backends", &self.current.load().backends)
            .finish_non_exhaustive()
    }
}

impl LoadBalancer {
    /// A balancer over `backends` (all healthy at first) picking with `algorithm`.
    pub fn new(backends: Vec<Backend>, algorithm: impl SelectorBuilder + 'static) -> Self {
        let builder: Box<dyn SelectorBuilder> = Box::new(algorithm);
        let states = backends.iter().map(|_| Arc::default()).collect();
        let selector = builder.build(&backends);
        LoadBalancer {
            current: ArcSwap::from_pointee(BackendSet {
                backends,
                states,
                selector,
                first_id: 0,
            }),
            builder,
        }
    }

    /// Replaces the backend set (for example from [`crate::Discovery`]); returns
    /// whether it changed. Backends keeping their address keep their health, back-off
    /// and in-flight count; new ones start healthy.
    pub fn update(&self, backends: Vec<Backend>) -> bool {
        let old = self.current.load_full();
        if old.backends == backends {
            return false;
        }
        let known: HashMap<&str, &Arc<BackendState>> = old
            .backends
            .iter()
            .map(|b| b.addr.as_str())
            .zip(&old.states)
            .collect();
        let states = backends
            .iter()
            .map(|b| {
                known
                    .get(b.addr.as_str())
                    .map_or_else(Arc::default, |s| Arc::clone(s))
            })
            .collect();
        let selector = self.builder.build(&backends);
        log::info!(
            "load balancer: backend set changed from {} to {} backends",
            old.backends.len(),
            backends.len()
        );
        let first_id = old.first_id.wrapping_add(old.backends.len());
        self.current.store(Arc::new(BackendSet {
            backends,
            states,
            selector,
            first_id,
        }));
        true
    }

    /// A copy of the current backends, in order (indices match [`LoadBalancer::select`]).
    pub fn backends(&self) -> Vec<Backend> {
        self.current.load().backends.clone()
    }

    /// How many backends the current set has.
    pub fn len(&self) -> usize {
        self.current.load().backends.len()
    }

    /// Whether the current set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current set (for the health checker).
    pub(crate) fn snapshot(&self) -> Arc<BackendSet> {
        self.current.load_full()
    }

    /// Picks a usable backend for a request with hash key `key` (ignored by algorithms
    /// that do not hash): its index in the current set and a guard counting the
    /// request in flight. `None` when every backend is unhealthy or backed off.
    /// Takes no lock and allocates nothing.
    pub fn select(&self, key: &[u8]) -> Option<(usize, InFlight)> {
        let set = self.current.load();
        let (i, state) = set.pick(key)?;
        Some((i, InFlight::start(state)))
    }

    /// Like [`LoadBalancer::select`], and calls `f` with the chosen backend while the
    /// set it was chosen from is held (to map it to data of your own, like a connection
    /// target, with no risk of an update in between). Returns the backend's id (for
    /// [`LoadBalancer::mark_failed_id`]), what `f` returned and the in-flight guard.
    pub fn select_with<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&Backend) -> R,
    ) -> Option<(BackendId, R, InFlight)> {
        self.select_state_with(key, |backend, _| f(backend))
    }

    /// Like [`LoadBalancer::select_with`], with the chosen backend's state too.
    pub(crate) fn select_state_with<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&Backend, &BackendState) -> R,
    ) -> Option<(BackendId, R, InFlight)> {
        let set = self.current.load();
        let (i, state) = set.pick(key)?;
        let backend = set.backends.get(i)?;
        let id = BackendId(set.first_id.wrapping_add(i));
        Some((id, f(backend, state), InFlight::start(state)))
    }

    /// Takes the backend at `addr` out of rotation (`draining: true`: it gets no new
    /// requests, those in flight finish) or puts it back. `None` when no backend of
    /// the current set has that address; else whether its state changed. The state
    /// follows the backend across updates of the set (while it stays in it).
    pub fn set_draining(&self, addr: &str, draining: bool) -> Option<bool> {
        let set = self.current.load();
        let i = set.backends.iter().position(|b| b.addr == addr)?;
        let changed = set.states.get(i)?.set_draining(draining);
        if changed {
            if draining {
                log::info!("backend {addr} is draining: no new requests");
            } else {
                log::info!("backend {addr} is back in rotation");
            }
        }
        Some(changed)
    }

    /// Health, load and counters of every backend of the current set, in order.
    pub fn statuses(&self) -> Vec<BackendStatus> {
        let set = self.current.load();
        (set.backends.iter().zip(&set.states))
            .map(|(b, s)| s.status(b))
            .collect()
    }

    /// Passive health by id: skips the backend `id` names for `backoff`. Returns false
    /// (and does nothing) when the set changed since the id was given out.
    pub fn mark_failed_id(&self, id: BackendId, backoff: Duration) -> bool {
        let set = self.current.load();
        match set.index_of(id).and_then(|i| set.states.get(i)) {
            Some(state) => {
                state.back_off(backoff);
                true
            }
            None => false,
        }
    }

    /// Whether the backend at `addr` is in the current set and may be chosen now.
    pub fn is_usable_addr(&self, addr: &str) -> bool {
        let set = self.current.load();
        let now = LazyNow::default();
        set.backends
            .iter()
            .zip(&set.states)
            .any(|(b, s)| b.addr == addr && s.is_usable(&now))
    }

    /// Whether backend `i` of the current set may be chosen now.
    pub fn is_usable(&self, i: usize) -> bool {
        self.current
            .load()
            .states
            .get(i)
            .is_some_and(|s| s.is_usable(&LazyNow::default()))
    }

    /// Whether health checks last found backend `i` of the current set healthy.
    pub fn is_healthy(&self, i: usize) -> bool {
        self.current
            .load()
            .states
            .get(i)
            .is_some_and(|s| s.is_healthy())
    }

    /// Sets the health of backend `i` of the current set (healthy ends a back-off).
    pub fn set_healthy(&self, i: usize, healthy: bool) {
        let set = self.current.load();
        if let (Some(state), Some(backend)) = (set.states.get(i), set.backends.get(i)) {
            if state.set_healthy(healthy) {
                log_health_change(backend, healthy);
            }
        }
    }

    /// Passive health: skips backend `i` of the current set for `backoff` after a
    /// failed connection (a passing health check ends it early). Prefer
    /// [`InFlight::mark_failed`], which cannot hit another backend after an update.
    pub fn mark_failed(&self, i: usize, backoff: Duration) {
        if let Some(s) = self.current.load().states.get(i) {
            s.back_off(backoff);
        }
    }

    /// Requests in flight on backend `i` of the current set.
    pub fn in_flight(&self, i: usize) -> usize {
        self.current
            .load()
            .states
            .get(i)
            .map_or(0, |s| s.in_flight())
    }
}

/// Logs a backend going up or down.
pub(crate) fn log_health_change(backend: &Backend, healthy: bool) {
    if healthy {
        log::warn!("backend {} is healthy again", backend.addr);
    } else {
        log::warn!("backend {} is unhealthy", backend.addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend::new(format!("127.0.0.1:{}", 1000 + i)))
            .collect()
    }

    #[test]
    fn unhealthy_and_backed_off_backends_are_skipped() {
        let lb = LoadBalancer::new(backends(2), Algorithm::RoundRobin);
        lb.set_healthy(0, false);
        assert!((0..5).all(|_| lb.select(b"").map(|(i, _)| i) == Some(1)));
        lb.mark_failed(1, Duration::from_secs(60));
        assert!(lb.select(b"").is_none());
        lb.set_healthy(1, true);
        assert_eq!(lb.select(b"").map(|(i, _)| i), Some(1));
    }

    #[test]
    fn drained_backends_get_no_new_requests_and_keep_their_state() {
        let lb = LoadBalancer::new(backends(2), Algorithm::RoundRobin);
        let (_, in_flight) = lb.select(b"").unwrap();
        assert_eq!(lb.set_draining("127.0.0.1:1000", true), Some(true));
        assert_eq!(lb.set_draining("127.0.0.1:1000", true), Some(false));
        assert_eq!(lb.set_draining("10.9.9.9:1", true), None);
        assert!((0..4).all(|_| lb.select(b"").map(|(i, _)| i) == Some(1)));
        let st = lb.statuses();
        assert!(st[0].draining && !st[0].is_usable() && st[0].healthy);
        assert_eq!(
            (st[0].in_flight, st[0].requests),
            (1, 1),
            "in flight goes on"
        );
        assert_eq!(st[1].requests, 4);
        in_flight.record_error();
        drop(in_flight);
        // An update keeps the drain of a backend that stays.
        lb.update(backends(3));
        let st = lb.statuses();
        assert!(st[0].draining && !st[1].draining && !st[2].draining);
        assert_eq!((st[0].in_flight, st[0].errors), (0, 1));
        assert_eq!(lb.set_draining("127.0.0.1:1000", false), Some(true));
        assert!(lb.statuses().iter().all(|s| s.is_usable()));
    }

    #[test]
    fn in_flight_guards_count_and_release() {
        let lb = LoadBalancer::new(backends(2), Algorithm::LeastConn);
        let (a, ga) = lb.select(b"").unwrap();
        let (b, gb) = lb.select(b"").unwrap();
        assert_ne!(a, b, "least-conn spreads concurrent requests");
        assert_eq!(lb.in_flight(a), 1);
        drop(ga);
        drop(gb);
        assert_eq!(lb.in_flight(a) + lb.in_flight(b), 0);
    }

    #[test]
    fn update_keeps_state_of_known_backends() {
        let lb = LoadBalancer::new(backends(2), Algorithm::RoundRobin);
        lb.set_healthy(0, false);
        let (_, guard) = lb.select(b"").unwrap();
        assert_eq!(lb.in_flight(1), 1);
        // Backend 1 moves to index 0, backend 0 to index 2, a new one comes in.
        let mut next = backends(3);
        next.swap(0, 1);
        next.swap(1, 2);
        assert!(lb.update(next.clone()));
        assert!(!lb.update(next), "same set: no change");
        assert_eq!(lb.in_flight(0), 1, "in-flight count followed the backend");
        assert!(lb.is_healthy(0) && lb.is_healthy(1) && !lb.is_healthy(2));
        drop(guard);
        assert_eq!(lb.in_flight(0), 0);
        // The guard of a selection made before the update marks the right backend.
        let (i, guard) = lb.select(b"").unwrap();
        let addr = lb.backends()[i].addr.clone();
        lb.update(backends(3));
        guard.mark_failed(Duration::from_secs(60));
        let now_at = lb.backends().iter().position(|b| b.addr == addr).unwrap();
        assert!(!lb.is_usable(now_at));
    }

    #[test]
    fn ids_never_name_a_backend_of_another_version() {
        let lb = LoadBalancer::new(backends(2), Algorithm::RoundRobin);
        let (id, addr, guard) = lb.select_with(b"", |b| b.addr.clone()).unwrap();
        drop(guard);
        assert_eq!(lb.backends()[id.get()].addr, addr);
        let same = BackendId::from_raw(id.get());
        // Another version: the old id names nothing, even though an index would.
        lb.update(backends(3));
        assert!(!lb.mark_failed_id(same, Duration::from_secs(60)));
        assert!((0..3).all(|i| lb.is_usable(i)));
        let (new_id, new_addr, _g) = lb.select_with(b"", |b| b.addr.clone()).unwrap();
        assert_ne!(new_id, id, "ids are not reused");
        assert!(lb.mark_failed_id(new_id, Duration::from_secs(60)));
        assert!(!lb.is_usable_addr(&new_addr));
        assert!(lb.is_usable_addr(&lb.backends()[0].addr) || new_addr == lb.backends()[0].addr);
        assert!(!lb.is_usable_addr("10.9.9.9:1"), "not in the set");
    }

    #[test]
    fn custom_selector_plugs_in_and_is_not_trusted_blindly() {
        struct Last;
        impl Selector for Last {
            fn select(
                &self,
                _: &[u8],
                _: &dyn Fn(usize) -> bool,
                _: &dyn Fn(usize) -> usize,
            ) -> Option<usize> {
                Some(41)
            }
        }
        let lb = LoadBalancer::new(backends(2), |_: &[Backend]| -> Box<dyn Selector> {
            Box::new(Last)
        });
        assert!(lb.select(b"").is_none(), "out-of-range index is refused");
        let lb = LoadBalancer::new(backends(3), |b: &[Backend]| -> Box<dyn Selector> {
            let n = b.len();
            Box::new(
                move |_: &[u8], ok: &dyn Fn(usize) -> bool, _: &dyn Fn(usize) -> usize| {
                    (0..n).rev().find(|&i| ok(i))
                },
            )
        });
        assert_eq!(lb.select(b"").map(|(i, _)| i), Some(2));
    }
}

//! A keep-alive pool of idle upstream connections, keyed by peer, bounded in size.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A connection the pool can keep.
pub trait Reusable: Send + 'static {
    /// Whether the connection can still carry a request: not closed by the peer,
    /// with no unexpected bytes waiting. Must not block.
    fn is_reusable(&self) -> bool;
}

/// Idle connections by peer key. Bounded in total: when full, the connection idle the
/// longest is closed. The lock is never held across an await.
pub struct ConnectionPool<T> {
    max_idle: usize,
    inner: Mutex<PoolInner<T>>,
}

struct PoolInner<T> {
    /// Per peer, oldest first.
    by_peer: HashMap<u64, VecDeque<Idle<T>>>,
    len: usize,
}

struct Idle<T> {
    conn: T,
    since: Instant,
    max_idle: Duration,
}

impl<T: Reusable> ConnectionPool<T> {
    /// A pool keeping at most `max_idle` idle connections in all.
    pub fn new(max_idle: usize) -> Self {
        ConnectionPool {
            max_idle,
            inner: Mutex::new(PoolInner {
                by_peer: HashMap::new(),
                len: 0,
            }),
        }
    }

    /// Takes the most recently returned idle connection to `peer` that is still usable.
    /// Connections idle past their timeout or closed by the peer are dropped on the way.
    pub fn get(&self, peer: u64) -> Option<T> {
        let now = Instant::now();
        let mut stale = Vec::new();
        let found = {
            let mut inner = self.lock();
            let mut found = None;
            if let Some(list) = inner.by_peer.get_mut(&peer) {
                while let Some(idle) = list.pop_back() {
                    if now.duration_since(idle.since) < idle.max_idle && idle.conn.is_reusable() {
                        found = Some(idle.conn);
                        break;
                    }
                    stale.push(idle.conn);
                }
                let taken = stale.len() + usize::from(found.is_some());
                inner.len -= taken;
            }
            found
        };
        // Close dead connections outside the lock.
        drop(stale);
        found
    }

    /// Returns an idle connection to the pool for `peer`, to be kept at most `max_idle_time`.
    pub fn put(&self, peer: u64, conn: T, max_idle_time: Duration) {
        if self.max_idle == 0 || max_idle_time.is_zero() {
            return;
        }
        let evicted = {
            let mut inner = self.lock();
            inner.by_peer.entry(peer).or_default().push_back(Idle {
                conn,
                since: Instant::now(),
                max_idle: max_idle_time,
            });
            inner.len += 1;
            if inner.len > self.max_idle {
                inner.evict_oldest()
            } else {
                None
            }
        };
        drop(evicted);
    }

    /// How many idle connections are kept.
    pub fn len(&self) -> usize {
        self.lock().len
    }

    /// Whether no idle connection is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolInner<T>> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way
        // that matters for a cache of idle connections, so recover from poisoning.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> PoolInner<T> {
    /// Removes the connection idle the longest, across peers (only runs when full).
    fn evict_oldest(&mut self) -> Option<T> {
        let peer = self
            .by_peer
            .iter()
            .filter_map(|(k, l)| l.front().map(|i| (*k, i.since)))
            .min_by_key(|(_, since)| *since)
            .map(|(k, _)| k)?;
        let list = self.by_peer.get_mut(&peer)?;
        let idle = list.pop_front()?;
        if list.is_empty() {
            self.by_peer.remove(&peer);
        }
        self.len -= 1;
        Some(idle.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    struct Conn(u32, Arc<AtomicBool>);
    impl Reusable for Conn {
        fn is_reusable(&self) -> bool {
            self.1.load(Ordering::Relaxed)
        }
    }
    fn conn(n: u32) -> Conn {
        Conn(n, Arc::new(AtomicBool::new(true)))
    }
    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn returns_most_recent_for_peer() {
        let pool = ConnectionPool::new(10);
        pool.put(1, conn(1), LONG);
        pool.put(1, conn(2), LONG);
        pool.put(2, conn(3), LONG);
        assert_eq!(pool.get(1).map(|c| c.0), Some(2));
        assert_eq!(pool.get(1).map(|c| c.0), Some(1));
        assert!(pool.get(1).is_none());
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn evicts_oldest_when_full() {
        let pool = ConnectionPool::new(2);
        pool.put(1, conn(1), LONG);
        pool.put(2, conn(2), LONG);
        pool.put(3, conn(3), LONG);
        assert_eq!(pool.len(), 2);
        assert!(pool.get(1).is_none());
        assert!(pool.get(2).is_some());
        assert!(pool.get(3).is_some());
    }

    #[test]
    fn skips_dead_and_expired() {
        let pool = ConnectionPool::new(10);
        let dead = conn(1);
        dead.1.store(false, Ordering::Relaxed);
        pool.put(1, conn(0), LONG);
        pool.put(1, dead, LONG);
        assert_eq!(pool.get(1).map(|c| c.0), Some(0));
        pool.put(2, conn(2), Duration::from_nanos(1));
        std::thread::sleep(Duration::from_millis(2));
        assert!(pool.get(2).is_none());
        assert!(pool.is_empty());
    }

    #[test]
    fn stays_bounded_under_churn() {
        let pool = ConnectionPool::new(4);
        for i in 0..10_000 {
            pool.put(i % 7, conn(i as u32), LONG);
            if i % 3 == 0 {
                let _ = pool.get(i % 7);
            }
        }
        pool.put(1, conn(0), LONG);
        assert_eq!(pool.len(), 4);
        let counted: usize = pool.lock().by_peer.values().map(|l| l.len()).sum();
        assert_eq!(counted, 4);
    }

    #[test]
    fn zero_size_pool_keeps_nothing() {
        let pool = ConnectionPool::new(0);
        pool.put(1, conn(1), LONG);
        assert!(pool.get(1).is_none());
    }
}

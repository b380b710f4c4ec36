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

/// Idle connections by peer key. Bounded in total: when full, the least recently
/// returned connection is closed. The lock is never held across an await.
pub struct ConnectionPool<T> {
    max_idle: usize,
    inner: Mutex<PoolInner<T>>,
}

struct PoolInner<T> {
    by_peer: HashMap<u64, Vec<Idle<T>>>,
    /// Return order, oldest first; entries whose id is gone are skipped.
    order: VecDeque<(u64, u64)>,
    next_id: u64,
    len: usize,
}

struct Idle<T> {
    id: u64,
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
                order: VecDeque::new(),
                next_id: 0,
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
                while let Some(idle) = list.pop() {
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
            let id = inner.next_id;
            inner.next_id += 1;
            inner.by_peer.entry(peer).or_default().push(Idle {
                id,
                conn,
                since: Instant::now(),
                max_idle: max_idle_time,
            });
            inner.order.push_back((peer, id));
            inner.len += 1;
            let mut evicted = Vec::new();
            while inner.len > self.max_idle {
                match inner.evict_oldest() {
                    Some(c) => evicted.push(c),
                    None => break,
                }
            }
            if inner.order.len() > 2 * self.max_idle + 16 {
                inner.compact_order();
            }
            evicted
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
    fn evict_oldest(&mut self) -> Option<T> {
        while let Some((peer, id)) = self.order.pop_front() {
            if let Some(list) = self.by_peer.get_mut(&peer) {
                if let Some(pos) = list.iter().position(|i| i.id == id) {
                    let idle = list.remove(pos);
                    self.len -= 1;
                    return Some(idle.conn);
                }
            }
        }
        None
    }

    fn compact_order(&mut self) {
        let by_peer = &self.by_peer;
        self.order.retain(|(peer, id)| {
            by_peer
                .get(peer)
                .is_some_and(|l| l.iter().any(|i| i.id == *id))
        });
        self.by_peer.retain(|_, l| !l.is_empty());
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
    fn order_list_stays_bounded() {
        let pool = ConnectionPool::new(4);
        for i in 0..10_000 {
            pool.put(i % 3, conn(i as u32), LONG);
            let _ = pool.get(i % 3);
        }
        assert!(pool.lock().order.len() <= 2 * 4 + 16 + 1);
    }

    #[test]
    fn zero_size_pool_keeps_nothing() {
        let pool = ConnectionPool::new(0);
        pool.put(1, conn(1), LONG);
        assert!(pool.get(1).is_none());
    }
}

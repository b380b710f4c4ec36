//! A keep-alive pool of idle upstream connections, keyed by peer, bounded in size, that
//! closes each idle connection when its idle timeout passes or its peer closes it (see
//! the reaper in `reaper.rs` for how, and what it costs).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::reaper::{Reap, Reaper};

/// A connection the pool can keep.
pub trait Reusable: Send + 'static {
    /// Whether the connection can still carry a request: not closed by the peer,
    /// with no unexpected bytes waiting. Must not block.
    fn is_reusable(&self) -> bool;

    /// For an idle connection: registers `cx`'s waker to be woken when it stops being
    /// reusable (the peer closed it or sent something), and returns `Ready` once it
    /// has. Must not block; should make no system call while nothing happened.
    fn poll_unusable(&self, cx: &mut Context<'_>) -> Poll<()>;
}

/// Idle connections by peer key. Bounded in total: when full, the connection idle the
/// longest is closed. Idle connections are closed when their timeout passes or their
/// peer closes them, by one background task per pool (started on the runtime that
/// gives back the first connection; outside a runtime they are dropped only when
/// found by [`ConnectionPool::get`]). The lock is never held across an await.
pub struct ConnectionPool<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    max_idle: usize,
    inner: Mutex<PoolInner<T>>,
    reaper: Reaper,
}

struct PoolInner<T> {
    /// Per peer, oldest first.
    by_peer: HashMap<u64, VecDeque<Idle<T>>>,
    len: usize,
    /// When the reaper wakes next by itself (`None`: only when woken).
    reaper_due: Option<Instant>,
}

struct Idle<T> {
    conn: T,
    since: Instant,
    deadline: Instant,
}

impl<T: Reusable> ConnectionPool<T> {
    /// A pool keeping at most `max_idle` idle connections in all.
    pub fn new(max_idle: usize) -> Self {
        ConnectionPool {
            shared: Arc::new(Shared {
                max_idle,
                inner: Mutex::new(PoolInner {
                    by_peer: HashMap::new(),
                    len: 0,
                    reaper_due: None,
                }),
                reaper: Reaper::new(),
            }),
        }
    }

    /// Takes the most recently returned idle connection to `peer` that is still usable.
    /// Connections idle past their timeout or closed by the peer are dropped on the way.
    pub fn get(&self, peer: u64) -> Option<T> {
        let now = Instant::now();
        let mut stale = Vec::new();
        let found = {
            let mut inner = self.shared.lock();
            let mut found = None;
            if let Some(list) = inner.by_peer.get_mut(&peer) {
                while let Some(idle) = list.pop_back() {
                    if now < idle.deadline && idle.conn.is_reusable() {
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

    /// Returns an idle connection to the pool for `peer`, to be kept at most
    /// `max_idle_time` (and only while the peer keeps it open).
    pub fn put(&self, peer: u64, conn: T, max_idle_time: Duration) {
        if self.shared.max_idle == 0 || max_idle_time.is_zero() {
            return;
        }
        let now = Instant::now();
        let deadline = now + max_idle_time;
        let mut cx = Context::from_waker(self.shared.reaper.waker());
        let (dropped, wake) = {
            let mut inner = self.shared.lock();
            // Watched from now on. Registered under the lock, so that a wake cannot
            // reach the reaper before it can see the connection.
            if conn.poll_unusable(&mut cx).is_ready() {
                (Some(conn), false)
            } else {
                inner.by_peer.entry(peer).or_default().push_back(Idle {
                    conn,
                    since: now,
                    deadline,
                });
                inner.len += 1;
                let evicted = if inner.len > self.shared.max_idle {
                    inner.evict_oldest()
                } else {
                    None
                };
                // The reaper sleeps towards an earlier deadline already, or must
                // now sleep towards this one.
                let wake = inner.reaper_due.is_none_or(|due| deadline < due);
                if wake {
                    inner.reaper_due = Some(deadline);
                }
                (evicted, wake)
            }
        };
        drop(dropped);
        if wake {
            self.shared.reaper.wake();
        }
        self.shared.reaper.ensure_running(&self.shared);
    }

    /// How many idle connections are kept.
    pub fn len(&self) -> usize {
        self.shared.lock().len
    }

    /// Whether no idle connection is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolInner<T>> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way
        // that matters for a cache of idle connections, so recover from poisoning.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Reusable> Reap for Shared<T> {
    fn reap(&self, now: Instant, cx: &mut Context<'_>) -> Option<Instant> {
        let mut dead = Vec::new();
        let mut next: Option<Instant> = None;
        let mut inner = self.lock();
        inner.by_peer.retain(|_, list| {
            // Rotate through the list once, keeping the order (oldest first).
            for _ in 0..list.len() {
                let Some(idle) = list.pop_front() else { break };
                if now < idle.deadline && idle.conn.poll_unusable(cx).is_pending() {
                    next = Some(next.map_or(idle.deadline, |n| n.min(idle.deadline)));
                    list.push_back(idle);
                } else {
                    dead.push(idle.conn);
                }
            }
            !list.is_empty()
        });
        inner.len -= dead.len();
        inner.reaper_due = next;
        drop(inner);
        // Close them outside the lock.
        drop(dead);
        next
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
    use std::task::Waker;

    /// A stand-in connection: usable while its flag is set; the waker registered
    /// by the pool is kept, so a test can "close" it as a socket would.
    struct Conn(u32, Arc<AtomicBool>, Arc<Mutex<Option<Waker>>>);
    impl Reusable for Conn {
        fn is_reusable(&self) -> bool {
            self.1.load(Ordering::Relaxed)
        }
        fn poll_unusable(&self, cx: &mut Context<'_>) -> Poll<()> {
            *self.2.lock().unwrap() = Some(cx.waker().clone());
            if self.is_reusable() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }
    }
    fn conn(n: u32) -> Conn {
        Conn(n, Arc::new(AtomicBool::new(true)), Arc::default())
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
        let counted: usize = pool.shared.lock().by_peer.values().map(|l| l.len()).sum();
        assert_eq!(counted, 4);
    }

    #[test]
    fn zero_size_pool_keeps_nothing() {
        let pool = ConnectionPool::new(0);
        pool.put(1, conn(1), LONG);
        assert!(pool.get(1).is_none());
    }

    /// Polls `cond` every 5 ms for up to 10 s.
    async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        for _ in 0..2000 {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    #[tokio::test]
    async fn expired_connections_close_without_a_get() {
        let pool = ConnectionPool::new(10);
        let alive = conn(1);
        let flag = Arc::clone(&alive.1);
        pool.put(1, alive, Duration::from_millis(30));
        pool.put(2, conn(2), LONG);
        assert_eq!(pool.len(), 2);
        assert!(
            eventually(|| pool.len() == 1).await,
            "the expired one stays"
        );
        assert!(flag.load(Ordering::Relaxed), "it was dropped, not closed");
        assert_eq!(pool.get(2).map(|c| c.0), Some(2));
    }

    #[tokio::test]
    async fn a_connection_closed_by_its_peer_leaves_at_once() {
        let pool = ConnectionPool::new(10);
        let c = conn(1);
        let (flag, waker) = (Arc::clone(&c.1), Arc::clone(&c.2));
        pool.put(1, c, LONG);
        pool.put(1, conn(2), LONG);
        // What a socket does when its peer closes it: readable, and the waker fires.
        flag.store(false, Ordering::Relaxed);
        let registered = waker.lock().unwrap().take().expect("the pool watches it");
        registered.wake();
        assert!(eventually(|| pool.len() == 1).await);
        assert_eq!(pool.get(1).map(|c| c.0), Some(2));
    }

    #[tokio::test]
    async fn a_connection_already_closed_is_not_kept() {
        let pool = ConnectionPool::new(10);
        let c = conn(1);
        c.1.store(false, Ordering::Relaxed);
        pool.put(1, c, LONG);
        assert!(pool.is_empty());
    }

    #[test]
    fn the_reaper_stops_with_its_pool() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pool = ConnectionPool::new(10);
        let weak = Arc::downgrade(&pool.shared);
        rt.block_on(async {
            pool.put(1, conn(1), LONG);
            tokio::task::yield_now().await; // the reaper runs and sleeps
            drop(pool);
            tokio::task::yield_now().await;
        });
        assert!(weak.upgrade().is_none(), "the task keeps the pool alive");
        assert_eq!(rt.metrics().num_alive_tasks(), 0, "the task still runs");
    }
}

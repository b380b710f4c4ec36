//! [`CacheLock`]: collapses concurrent misses for one key into one upstream fetch.
//!
//! The first request for a key gets a [`WritePermit`] and fetches; the others get a
//! [`LockWait`] and wait until the permit is dropped (the fetch stored its response,
//! or gave up) or until their timeout, then look the cache up again. Once the fetch
//! starts storing a response, the permit announces it ([`WritePermit::publish`]), so
//! that a waiter needing only part of it can follow the fill
//! ([`LockWait::wait_for_fill`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::key::CacheKey;
use crate::partial::PartialResponse;

/// What a permit tells its waiters: the response being filled, once there is one.
type Announcement = Option<Arc<PartialResponse>>;

/// The keys being fetched right now.
#[derive(Default)]
pub struct CacheLock {
    held: Mutex<HashMap<CacheKey, (u64, watch::Receiver<Announcement>)>>,
    next_id: AtomicU64,
}

/// The outcome of [`CacheLock::lock`].
pub enum Locked {
    /// Nobody was fetching this key: fetch it, and drop the permit when done.
    Writer(WritePermit),
    /// Another request is fetching it: wait for it.
    Reader(LockWait),
}

/// Held by the one request fetching a key; dropping it wakes the waiters.
pub struct WritePermit {
    lock: Arc<CacheLock>,
    key: CacheKey,
    id: u64,
    announce: watch::Sender<Announcement>,
}

/// A wait for the request fetching a key.
pub struct LockWait {
    released: watch::Receiver<Announcement>,
}

/// How a [`LockWait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The fetch finished (stored or not).
    Released,
    /// The timeout passed first.
    TimedOut,
}

/// How a [`LockWait::wait_for_fill`] ended.
pub enum FillWait {
    /// The fetch is storing this response (it may still be arriving).
    Filling(Arc<PartialResponse>),
    /// The fetch finished without storing anything.
    Released,
    /// The timeout passed first.
    TimedOut,
}

impl CacheLock {
    /// An empty lock table.
    pub fn new() -> Arc<CacheLock> {
        Arc::new(CacheLock::default())
    }

    fn table(&self) -> MutexGuard<'_, HashMap<CacheKey, (u64, watch::Receiver<Announcement>)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the lock of `key`, or a wait on whoever holds it.
    pub fn lock(self: &Arc<Self>, key: &CacheKey) -> Locked {
        let mut table = self.table();
        if let Some((_, rx)) = table.get(key) {
            return Locked::Reader(LockWait {
                released: rx.clone(),
            });
        }
        let (tx, rx) = watch::channel(None);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        table.insert(key.clone(), (id, rx));
        Locked::Writer(WritePermit {
            lock: Arc::clone(self),
            key: key.clone(),
            id,
            announce: tx,
        })
    }

    /// Keys locked right now.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    /// Whether no key is locked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl WritePermit {
    /// The key this permit locks.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// Tells the waiters that `partial` is being stored.
    pub fn publish(&self, partial: Arc<PartialResponse>) {
        self.announce.send_replace(Some(partial));
    }
}

impl Drop for WritePermit {
    fn drop(&mut self) {
        let mut table = self.lock.table();
        if table.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            table.remove(&self.key);
        }
        // The sender is dropped after this, which wakes every waiter.
    }
}

impl LockWait {
    /// Waits until the fetch is over or `timeout` passes.
    pub async fn wait(mut self, timeout: Duration) -> WaitOutcome {
        // `changed` fails only once the permit (the sender) is dropped; announcements
        // of a fill do not end this wait.
        let released = async { while self.released.changed().await.is_ok() {} };
        match tokio::time::timeout(timeout, released).await {
            Ok(()) => WaitOutcome::Released,
            Err(_) => WaitOutcome::TimedOut,
        }
    }

    /// Waits until the fetch starts storing a response (or stored it already), the
    /// fetch ends without storing, or `timeout` passes. The wait may go on afterwards
    /// with [`LockWait::wait`].
    pub async fn wait_for_fill(&mut self, timeout: Duration) -> FillWait {
        let announced = async {
            loop {
                if let Some(partial) = self.released.borrow_and_update().clone() {
                    return FillWait::Filling(partial);
                }
                if self.released.changed().await.is_err() {
                    // The permit is gone; it may have announced a fill just before.
                    return match self.released.borrow().clone() {
                        Some(partial) => FillWait::Filling(partial),
                        None => FillWait::Released,
                    };
                }
            }
        };
        tokio::time::timeout(timeout, announced)
            .await
            .unwrap_or(FillWait::TimedOut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_writer_and_waiters_released_on_drop() {
        let lock = CacheLock::new();
        let key = CacheKey::new("k");
        let Locked::Writer(permit) = lock.lock(&key) else {
            panic!("first lock must be the writer")
        };
        let waits: Vec<_> = (0..5)
            .map(|_| match lock.lock(&key) {
                Locked::Reader(w) => w,
                Locked::Writer(_) => panic!("second lock must wait"),
            })
            .collect();
        // Another key is independent.
        assert!(matches!(
            lock.lock(&CacheKey::new("other")),
            Locked::Writer(_)
        ));
        let tasks: Vec<_> = waits
            .into_iter()
            .map(|w| tokio::spawn(w.wait(Duration::from_secs(10))))
            .collect();
        drop(permit);
        for t in tasks {
            assert_eq!(t.await.unwrap(), WaitOutcome::Released);
        }
        assert!(lock.is_empty());
        assert!(matches!(lock.lock(&key), Locked::Writer(_)));
    }

    #[tokio::test]
    async fn waiting_times_out() {
        let lock = CacheLock::new();
        let key = CacheKey::new("k");
        let _permit = lock.lock(&key);
        let Locked::Reader(w) = lock.lock(&key) else {
            panic!("must wait")
        };
        assert_eq!(
            w.wait(Duration::from_millis(20)).await,
            WaitOutcome::TimedOut
        );
        assert_eq!(lock.len(), 1);
    }
}

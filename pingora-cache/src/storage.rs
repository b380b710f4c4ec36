//! [`Storage`]: where cache entries live. Implement it to plug in your own store.

use std::sync::Arc;

use crate::error::CacheError;
use crate::key::CacheKey;
use crate::object::Entry;
use crate::stats::StorageStats;

/// A store of cache entries, shared by every request of a cache.
///
/// Implementations must be safe to call from many threads at once and must never block:
/// they are called from async tasks. A tier that needs I/O (a disk) answers
/// [`Storage::locate`] with a [`SlowLoad`] that the cache runs on a blocking thread.
/// Entries are immutable once stored; an update is a new `put` under the same key.
pub trait Storage: Send + Sync + 'static {
    /// The entry under `key` if it is in the fast (memory) tier, marking it used.
    fn get(&self, key: &CacheKey) -> Option<Arc<Entry>>;

    /// The entry under `key` in any tier: at hand ([`Located::Ready`]), to be read by a
    /// blocking job ([`Located::Load`]), or absent. The default looks in [`Storage::get`]
    /// only.
    fn locate(&self, key: &CacheKey) -> Located {
        match self.get(key) {
            Some(entry) => Located::Ready(entry),
            None => Located::Absent,
        }
    }

    /// Stores `entry` under `key`, replacing any previous one and evicting others if
    /// room is needed. Fails when the entry is larger than [`Storage::max_entry_bytes`].
    fn put(&self, key: CacheKey, entry: Arc<Entry>) -> Result<(), CacheError>;

    /// Removes the entry under `key` from every tier; true if there was one.
    fn remove(&self, key: &CacheKey) -> bool;

    /// Bytes counted against the storage's budget (the memory budget for a storage
    /// with a memory tier), as [`Entry::size`] plus key sizes.
    fn used_bytes(&self) -> u64;

    /// The largest entry (body and headers) a `put` accepts in some tier.
    fn max_entry_bytes(&self) -> u64;

    /// Blocks until writes queued for a slow tier are done (for shutdown and tests).
    /// The default has nothing to wait for.
    fn flush(&self) {}

    /// Entries, bytes and eviction counters of each tier. The default reports the
    /// memory bytes only.
    fn stats(&self) -> StorageStats {
        StorageStats {
            memory_bytes: self.used_bytes(),
            ..StorageStats::default()
        }
    }

    /// Entries stored (responses and variant indexes). The default, for a storage
    /// that cannot count them, is 0.
    fn entries(&self) -> u64 {
        0
    }

    /// Removes every entry whose key `matches` (a purge by prefix, from the admin
    /// endpoint); returns how many were removed. The default, for a storage that
    /// cannot list its keys, removes nothing.
    fn remove_where(&self, matches: &dyn Fn(&CacheKey) -> bool) -> u64 {
        let _ = matches;
        0
    }
}

/// Where [`Storage::locate`] found an entry.
pub enum Located {
    /// In memory: here it is.
    Ready(Arc<Entry>),
    /// In a slower tier: run the job on a blocking thread to read it (it may turn out
    /// to be gone or damaged, then the job returns `None`).
    Load(SlowLoad),
    /// Not stored.
    Absent,
}

/// A blocking read of an entry from a slow tier, made by a [`Storage`] and run by the
/// cache off the async runtime's threads.
pub struct SlowLoad {
    job: Box<dyn FnOnce() -> Option<Arc<Entry>> + Send>,
}

impl SlowLoad {
    /// A load that runs `job` (which may block on I/O).
    pub fn new(job: impl FnOnce() -> Option<Arc<Entry>> + Send + 'static) -> SlowLoad {
        SlowLoad { job: Box::new(job) }
    }

    /// Runs the load on the current thread (which it may block).
    pub fn run_blocking(self) -> Option<Arc<Entry>> {
        (self.job)()
    }

    /// Runs the load on tokio's blocking pool and waits for it without blocking the
    /// runtime. Needs a tokio runtime.
    pub async fn run(self) -> Option<Arc<Entry>> {
        match tokio::task::spawn_blocking(move || self.run_blocking()).await {
            Ok(entry) => entry,
            Err(e) => {
                log::warn!("cache: a storage read failed: {e}");
                None
            }
        }
    }
}

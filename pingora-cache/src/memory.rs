//! [`MemoryStorage`]: the in-memory [`Storage`], sharded to keep lock contention low.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::CacheError;
use crate::key::CacheKey;
use crate::lru::Lru;
use crate::object::Entry;
use crate::storage::Storage;

/// Shards a [`MemoryStorage`] has by default.
pub const DEFAULT_SHARDS: usize = 16;

/// Entries in memory, split over shards by key hash; each shard is a mutex-guarded LRU
/// holding at most `max_bytes / shards`, so the total never exceeds `max_bytes` and
/// each shard evicts its least recently used entries when full. One entry may take at
/// most one shard's budget.
pub struct MemoryStorage {
    shards: Vec<Mutex<Lru<CacheKey, Arc<Entry>>>>,
    shard_bytes: u64,
}

impl MemoryStorage {
    /// A store of at most `max_bytes`, in 16 shards.
    pub fn new(max_bytes: u64) -> MemoryStorage {
        MemoryStorage::with_shards(max_bytes, DEFAULT_SHARDS)
    }

    /// A store of at most `max_bytes`, in `shards` shards (at least one).
    pub fn with_shards(max_bytes: u64, shards: usize) -> MemoryStorage {
        let shards = shards.max(1);
        let shard_bytes = max_bytes / shards as u64;
        MemoryStorage {
            shards: (0..shards)
                .map(|_| Mutex::new(Lru::new(shard_bytes)))
                .collect(),
            shard_bytes,
        }
    }

    fn shard(&self, key: &CacheKey) -> MutexGuard<'_, Lru<CacheKey, Arc<Entry>>> {
        let i = (key.hash_value() % self.shards.len() as u64) as usize;
        // A panic while holding the lock leaves a consistent LRU: every method
        // updates it before returning.
        self.shards[i]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Entries stored (responses and variant indexes).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.shard(key).get(key)
    }

    fn put(&self, key: CacheKey, entry: Arc<Entry>) -> Result<(), CacheError> {
        let size = entry.size() + key.size();
        if size > self.shard_bytes {
            return Err(CacheError::TooLarge {
                size,
                limit: self.shard_bytes,
            });
        }
        let evicted = self.shard(&key).insert(key, entry, size);
        if evicted > 0 {
            log::debug!("cache: evicted {evicted} entries to make room");
        }
        Ok(())
    }

    fn remove(&self, key: &CacheKey) -> bool {
        self.shard(key).remove(key)
    }

    fn used_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.used()))
            .sum()
    }

    fn max_entry_bytes(&self) -> u64 {
        self.shard_bytes
    }

    fn entries(&self) -> u64 {
        self.len() as u64
    }

    fn remove_where(&self, matches: &dyn Fn(&CacheKey) -> bool) -> u64 {
        // One shard locked at a time: requests on the other shards go on meanwhile.
        (self.shards.iter())
            .map(|s| {
                let mut shard = s.lock().unwrap_or_else(|p| p.into_inner());
                shard.remove_where(matches) as u64
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::freshness::CacheMeta;
    use crate::object::CachedResponse;
    use bytes::Bytes;
    use http::StatusCode;
    use pingora_core::protocols::http::ResponseHeader;
    use std::time::{Duration, Instant};

    fn entry(body_len: usize) -> Arc<Entry> {
        Arc::new(Entry::Response(Arc::new(CachedResponse {
            head: ResponseHeader::new(StatusCode::OK),
            body: Bytes::from(vec![b'x'; body_len]),
            trailers: None,
            meta: CacheMeta {
                stored_at: Instant::now(),
                initial_age: Duration::ZERO,
                lifetime: Duration::from_secs(60),
                always_revalidate: false,
                never_stale: false,
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                shareable_with_auth: false,
            },
        })))
    }

    #[test]
    fn total_stays_within_max_bytes_and_old_entries_go_first() {
        let max = 64 * 1024;
        let store = MemoryStorage::new(max);
        let keys: Vec<CacheKey> = (0..2000).map(|i| CacheKey::new(format!("k{i}"))).collect();
        for k in &keys {
            store.put(k.clone(), entry(1000)).unwrap();
            assert!(store.used_bytes() <= max, "{} > {max}", store.used_bytes());
        }
        // Far fewer entries than were put are left, and those are the newest ones.
        let left = keys.iter().filter(|k| store.get(k).is_some()).count();
        assert!(left > 0 && left < 100, "{left} entries left");
        assert!(store.get(&keys[0]).is_none());
        assert!(store.get(&keys[1999]).is_some());
        assert_eq!(store.len(), left);
    }

    #[test]
    fn a_recently_read_entry_survives_eviction() {
        let store = MemoryStorage::with_shards(10_000, 1);
        let hot = CacheKey::new("hot");
        store.put(hot.clone(), entry(1000)).unwrap();
        for i in 0..100 {
            assert!(store.get(&hot).is_some(), "hot entry evicted at {i}");
            store
                .put(CacheKey::new(format!("cold{i}")), entry(1000))
                .unwrap();
        }
        assert!(store.used_bytes() <= 10_000);
    }

    #[test]
    fn refuses_entries_larger_than_a_shard() {
        let store = MemoryStorage::with_shards(16_000, 16);
        assert_eq!(store.max_entry_bytes(), 1000);
        assert!(matches!(
            store.put(CacheKey::new("big"), entry(2000)),
            Err(CacheError::TooLarge { limit: 1000, .. })
        ));
        assert!(store.is_empty());
        store.put(CacheKey::new("ok"), entry(500)).unwrap();
        assert!(store.remove(&CacheKey::new("ok")));
        assert!(!store.remove(&CacheKey::new("ok")));
        assert_eq!(store.used_bytes(), 0);
    }
}

//! [`MemoryStorage`]: the in-memory [`Storage`]: one byte budget for every entry, with
//! `quick_cache`'s scan-resistant admission and eviction (hot/cold queues with ghost
//! entries, in the S3-FIFO / CLOCK-Pro family) instead of plain LRU.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::{Lifecycle, OptionsBuilder, Weighter};

use crate::error::CacheError;
use crate::key::CacheKey;
use crate::object::Entry;
use crate::stats::{Counter, StorageStats};
use crate::storage::Storage;

/// Called with each entry the memory tier evicted to make room (not with entries
/// removed or replaced): a slower tier can keep it. Runs on the thread that stored the
/// entry that made room, after the cache's lock is released; it must not block.
pub type EvictionSink = Arc<dyn Fn(CacheKey, Arc<Entry>) + Send + Sync>;

/// Bytes per entry assumed when sizing the memory of evicted keys (the "ghosts" that
/// let a key seen again come back as hot).
const ASSUMED_ENTRY_BYTES: u64 = 4096;

/// Entries in memory within one byte budget: nothing is evicted before the budget is
/// reached (at most 3% below it, where the hot queue is full: see docs/caching.md),
/// and an entry may take up to half of it.
///
/// New entries start on probation (the cold queue); an entry read again while there,
/// or stored again soon after being evicted, moves to the protected hot queue. A scan
/// of one-time keys thus passes through probation without flushing the popular ones.
pub struct MemoryStorage {
    entries: Cache<CacheKey, Arc<Entry>, EntryWeight, KeyHashing, CollectEvicted>,
    max_bytes: u64,
    max_entry_bytes: u64,
    evictions: Counter,
    refused: Counter,
    on_evict: Option<EvictionSink>,
}

impl MemoryStorage {
    /// A store of at most `max_bytes`, taking entries of up to `max_bytes / 2`.
    pub fn new(max_bytes: u64) -> MemoryStorage {
        MemoryStorage::with_max_entry_bytes(max_bytes, max_bytes / 2)
    }

    /// A store of at most `max_bytes`, taking entries of up to `max_entry_bytes` (at
    /// most `max_bytes / 2`).
    pub fn with_max_entry_bytes(max_bytes: u64, max_entry_bytes: u64) -> MemoryStorage {
        let max_bytes = max_bytes.max(1);
        let estimated_items = (max_bytes / ASSUMED_ENTRY_BYTES).clamp(256, 1 << 22) as usize;
        let options = OptionsBuilder::new()
            // One shard: one budget. Sharding would split it, as the LRU this replaces
            // did (each of its 16 shards evicted at 1/16 of the budget).
            .shards(1)
            .estimated_items_capacity(estimated_items)
            .weight_capacity(max_bytes)
            .build();
        let entries = match options {
            Ok(options) => Cache::with_options(options, EntryWeight, KeyHashing, CollectEvicted),
            // Only a zero shard count or a bad allocation ratio fail, and neither is
            // set here; fall back to the library's defaults for the rest.
            Err(_) => Cache::with(
                estimated_items,
                max_bytes,
                EntryWeight,
                KeyHashing,
                CollectEvicted,
            ),
        };
        MemoryStorage {
            entries,
            max_bytes,
            max_entry_bytes: max_entry_bytes.min(max_bytes / 2),
            evictions: Counter::default(),
            refused: Counter::default(),
            on_evict: None,
        }
    }

    /// Calls `sink` with every entry evicted to make room from now on.
    pub fn on_evict(mut self, sink: EvictionSink) -> MemoryStorage {
        self.on_evict = Some(sink);
        self
    }

    /// The byte budget.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Entries stored (responses and variant indexes).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `key` is stored, without counting it as used.
    pub fn contains(&self, key: &CacheKey) -> bool {
        self.entries.contains_key(key)
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.entries.get(key)
    }

    fn put(&self, key: CacheKey, entry: Arc<Entry>) -> Result<(), CacheError> {
        let size = entry.size() + key.size();
        if size > self.max_entry_bytes {
            self.refused.add(1);
            return Err(CacheError::TooLarge {
                size,
                limit: self.max_entry_bytes,
            });
        }
        let mut evicted = Vec::new();
        self.entries.insert_with_lifecycle(key, entry, &mut evicted);
        if !evicted.is_empty() {
            self.evictions.add(evicted.len() as u64);
            log::debug!("cache: evicted {} entries to make room", evicted.len());
            if let Some(sink) = &self.on_evict {
                for (key, entry) in evicted {
                    sink(key, entry);
                }
            }
        }
        Ok(())
    }

    fn remove(&self, key: &CacheKey) -> bool {
        self.entries.remove(key).is_some()
    }

    fn used_bytes(&self) -> u64 {
        self.entries.weight()
    }

    fn max_entry_bytes(&self) -> u64 {
        self.max_entry_bytes
    }

    fn entries(&self) -> u64 {
        self.entries.len() as u64
    }

    fn remove_where(&self, matches: &dyn Fn(&CacheKey) -> bool) -> u64 {
        let doomed: Vec<CacheKey> = (self.entries.iter())
            .filter(|(key, _)| matches(key))
            .map(|(key, _)| key)
            .collect();
        doomed
            .iter()
            .filter(|k| self.entries.remove(*k).is_some())
            .count() as u64
    }

    fn stats(&self) -> StorageStats {
        StorageStats {
            memory_entries: self.entries.len() as u64,
            memory_bytes: self.entries.weight(),
            memory_evictions: self.evictions.get(),
            refused: self.refused.get(),
            ..StorageStats::default()
        }
    }
}

/// An entry weighs its size in bytes (never zero: zero-weight entries would be kept
/// forever).
#[derive(Clone)]
struct EntryWeight;

impl Weighter<CacheKey, Arc<Entry>> for EntryWeight {
    fn weight(&self, key: &CacheKey, entry: &Arc<Entry>) -> u64 {
        (entry.size() + key.size()).max(1)
    }
}

/// Collects what an insert evicted, to be handed on once the lock is released.
#[derive(Clone)]
struct CollectEvicted;

impl Lifecycle<CacheKey, Arc<Entry>> for CollectEvicted {
    type RequestState = Vec<(CacheKey, Arc<Entry>)>;

    fn on_evict(&self, evicted: &mut Self::RequestState, key: CacheKey, entry: Arc<Entry>) {
        evicted.push((key, entry));
    }
}

/// Uses the hash a [`CacheKey`] computed once instead of hashing its text again.
#[derive(Clone, Default)]
struct KeyHashing;

impl BuildHasher for KeyHashing {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0xcbf2_9ce4_8422_2325)
    }
}

/// Takes the key's precomputed hash as is; anything else is mixed in FNV-1a style.
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
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
    use std::sync::Mutex;
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
    fn total_stays_within_max_bytes_and_a_scan_does_not_flush_hot_entries() {
        let max = 64 * 1024;
        let store = MemoryStorage::new(max);
        let hot: Vec<CacheKey> = (0..20).map(|i| CacheKey::new(format!("hot{i}"))).collect();
        for k in &hot {
            store.put(k.clone(), entry(1000)).unwrap();
        }
        for i in 0..2000 {
            // The hot keys are read between the one-time keys of the scan.
            assert!(
                store.get(&hot[i % hot.len()]).is_some(),
                "hot key lost at {i}"
            );
            store
                .put(CacheKey::new(format!("scan{i}")), entry(1000))
                .unwrap();
            assert!(store.used_bytes() <= max, "{} > {max}", store.used_bytes());
        }
        let stats = store.stats();
        assert!(stats.memory_evictions > 1900, "{stats:?}");
        assert_eq!(stats.memory_entries as usize, store.len());
        // A scan key from after the cache filled up went through probation and out.
        assert!(store.get(&CacheKey::new("scan1000")).is_none());
    }

    #[test]
    fn nothing_is_evicted_before_the_budget_is_reached() {
        // 192 entries of 16 KiB in 4 MiB: the case a 16-way sharded LRU got wrong.
        let store = MemoryStorage::new(4 << 20);
        let keys: Vec<CacheKey> = (0..192)
            .map(|i| CacheKey::new(format!("GET\nexample.com\n/obj/{i}")))
            .collect();
        for k in &keys {
            store.put(k.clone(), entry(16 << 10)).unwrap();
        }
        assert!(keys.iter().all(|k| store.get(k).is_some()));
        assert_eq!(store.stats().memory_evictions, 0);
        // A quarter of the budget in one entry fits too.
        store
            .put(CacheKey::new("quarter"), entry((1 << 20) - 1024))
            .unwrap();
        assert!(store.get(&CacheKey::new("quarter")).is_some());
    }

    #[test]
    fn refuses_entries_larger_than_half_the_budget() {
        let store = MemoryStorage::new(16_000);
        assert_eq!(store.max_entry_bytes(), 8_000);
        assert!(matches!(
            store.put(CacheKey::new("big"), entry(9_000)),
            Err(CacheError::TooLarge { limit: 8_000, .. })
        ));
        assert!(store.is_empty());
        assert_eq!(store.stats().refused, 1);
        store.put(CacheKey::new("ok"), entry(500)).unwrap();
        assert!(store.remove(&CacheKey::new("ok")));
        assert!(!store.remove(&CacheKey::new("ok")));
        assert_eq!(store.used_bytes(), 0);
    }

    #[test]
    fn evicted_entries_reach_the_sink() {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink_seen = Arc::clone(&seen);
        let store = MemoryStorage::new(10_000).on_evict(Arc::new(move |k, _| {
            sink_seen.lock().unwrap().push(k.as_str().to_string())
        }));
        for i in 0..30 {
            store
                .put(CacheKey::new(format!("k{i}")), entry(1000))
                .unwrap();
        }
        store.remove(&CacheKey::new("k29"));
        let seen = seen.lock().unwrap();
        assert!(seen.len() >= 20, "{seen:?}");
        assert!(
            !seen.contains(&"k29".to_string()),
            "removal is not eviction"
        );
        assert_eq!(seen.len() as u64, store.stats().memory_evictions);
    }
}

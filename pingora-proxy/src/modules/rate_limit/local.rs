//! Buckets in this process's memory: a sharded table from key hash to the bucket's full
//! time, bounded in size, where full (idle) buckets are dropped when room is needed.
//!
//! Each shard is a small mutex held for a few hash-map operations and never across an
//! await; requests spread over 64 shards by key, so threads rarely meet on one. A
//! shard's map grows up to its share of the capacity and then stays that size: in
//! steady state nothing is allocated.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use super::gcra::{Bucket, Decision, Nanos};

/// How many shards a table has (a power of two).
const SHARDS: usize = 64;

/// The default most keys a table holds.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Key hashes are uniformly spread already: the map uses them as they are.
#[derive(Default)]
pub(super) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map from key hash to a value, with the pass-through hasher.
pub(super) type HashedMap<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

/// A bounded table of values per key hash, in shards.
pub(super) struct ShardedTable<V> {
    shards: Box<[Mutex<HashedMap<V>>]>,
    max_per_shard: usize,
}

impl<V> ShardedTable<V> {
    /// A table of at most about `max_keys` entries.
    pub(super) fn new(max_keys: usize) -> Self {
        ShardedTable {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashedMap::default()))
                .collect(),
            max_per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// Runs `f` on the entry of `key` (inserted with `fresh` if absent). When the shard
    /// is full, entries that `idle` says may go are dropped first, and if none may,
    /// the one `idle` ranks lowest.
    pub(super) fn with<R>(
        &self,
        key: u64,
        fresh: impl FnOnce() -> V,
        idle: impl Fn(&V) -> Option<u64>,
        f: impl FnOnce(&mut V) -> R,
    ) -> R {
        // The top bits pick the shard (the map uses the low ones).
        let shard = &self.shards[(key >> 58) as usize % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&key) && map.len() >= self.max_per_shard {
            // `idle` gives None for an entry that may go now, else its rank.
            map.retain(|_, v| idle(v).is_some());
            if map.len() >= self.max_per_shard {
                let lowest = map
                    .iter()
                    .filter_map(|(k, v)| idle(v).map(|rank| (rank, *k)))
                    .min()
                    .map(|(_, k)| k);
                if let Some(k) = lowest {
                    map.remove(&k);
                }
            }
        }
        f(map.entry(key).or_insert_with(fresh))
    }

    /// How many entries the table holds.
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

/// Token buckets kept in memory, one per key hash.
pub struct LocalBuckets {
    table: ShardedTable<Nanos>,
}

impl LocalBuckets {
    /// A table of at most about `max_keys` buckets.
    pub fn new(max_keys: usize) -> Self {
        LocalBuckets {
            table: ShardedTable::new(max_keys),
        }
    }

    /// One request on the bucket of `key` at `now`.
    pub(super) fn check(&self, bucket: &Bucket, key: u64, now: Nanos) -> Decision {
        self.table.with(
            key,
            || 0,
            // A bucket full by now may go; otherwise the soonest full goes first.
            |full_at| (*full_at > now).then_some(*full_at),
            |full_at| {
                let (decision, next) = bucket.check(*full_at, now);
                *full_at = next;
                decision
            },
        )
    }

    /// How many buckets are held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for LocalBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBuckets")
            .field("max_per_shard", &self.table.max_per_shard)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SEC: Nanos = 1_000_000_000;

    fn key(i: u64) -> u64 {
        // Spread like real hashes.
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let t = LocalBuckets::new(1000);
        let b = Bucket::new(Duration::from_secs(1), 2);
        assert!(t.check(&b, key(1), SEC).allowed);
        assert!(t.check(&b, key(1), SEC).allowed);
        assert!(!t.check(&b, key(1), SEC).allowed);
        assert!(t.check(&b, key(2), SEC).allowed);
    }

    #[test]
    fn memory_stays_bounded_and_full_buckets_go_first() {
        let t = LocalBuckets::new(64 * 4);
        let b = Bucket::new(Duration::from_secs(1), 3);
        // A busy key: its bucket is not full.
        let busy = key(7);
        t.check(&b, busy, SEC);
        t.check(&b, busy, SEC);
        for i in 100..10_100 {
            t.check(&b, key(i), SEC);
            assert!(t.len() <= 64 * 4, "{} entries", t.len());
        }
        // Much later every bucket is full again: new keys push them out.
        let later = 100 * SEC;
        for i in 20_000..20_300 {
            assert!(t.check(&b, key(i), later).allowed);
        }
        assert!(t.len() <= 64 * 4);
    }

    #[test]
    fn a_full_shard_evicts_the_bucket_closest_to_full() {
        let table: ShardedTable<u64> = ShardedTable::new(SHARDS); // one entry per shard
        let same_shard = |i: u64| (3u64 << 58) | i;
        table.with(same_shard(1), || 50, |v| Some(*v), |_| ());
        table.with(same_shard(2), || 10, |v| Some(*v), |_| ());
        assert_eq!(table.len(), 1);
        let kept = table.with(same_shard(2), || 0, |v| Some(*v), |v| *v);
        assert_eq!(kept, 10, "the newest entry replaced the old one");
    }

    #[test]
    fn threads_share_one_limit() {
        let t = std::sync::Arc::new(LocalBuckets::new(1000));
        let b = Bucket::new(Duration::from_secs(3600), 100);
        let allowed: u32 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let t = &t;
                    s.spawn(move || {
                        (0..100)
                            .filter(|_| t.check(&b, key(1), SEC).allowed)
                            .count() as u32
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 100);
    }
}

//! The cache policy pingora-cache had before the single-budget memory tier: 16 shards
//! by key hash, each a least-recently-used list holding at most `max_bytes / 16`, an
//! entry refused when larger than one shard. Kept here as the baseline of the
//! cache-policy bench.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use pingora_cache::{CacheError, CacheKey, Entry, Storage};

const SHARDS: usize = 16;

#[derive(Default)]
struct Shard {
    map: HashMap<CacheKey, (Arc<Entry>, u64, u64)>,
    order: BTreeMap<u64, CacheKey>,
    used: u64,
    tick: u64,
}

/// 16 LRU shards of `max_bytes / 16` each.
pub struct ShardedLru {
    shards: Vec<Mutex<Shard>>,
    shard_bytes: u64,
}

impl ShardedLru {
    /// A cache of `max_bytes` in 16 shards.
    pub fn new(max_bytes: u64) -> ShardedLru {
        ShardedLru {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_bytes: max_bytes / SHARDS as u64,
        }
    }

    fn shard(&self, key: &CacheKey) -> std::sync::MutexGuard<'_, Shard> {
        let i = (key.hash_value() % SHARDS as u64) as usize;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Storage for ShardedLru {
    fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        let mut shard = self.shard(key);
        shard.tick += 1;
        let tick = shard.tick;
        let (entry, old_tick) = {
            let slot = shard.map.get_mut(key)?;
            let old = slot.2;
            slot.2 = tick;
            (Arc::clone(&slot.0), old)
        };
        shard.order.remove(&old_tick);
        shard.order.insert(tick, key.clone());
        Some(entry)
    }

    fn put(&self, key: CacheKey, entry: Arc<Entry>) -> Result<(), CacheError> {
        let size = entry.size() + key.size();
        if size > self.shard_bytes {
            return Err(CacheError::TooLarge {
                size,
                limit: self.shard_bytes,
            });
        }
        let limit = self.shard_bytes;
        let mut shard = self.shard(&key);
        if let Some((_, old_size, old_tick)) = shard.map.remove(&key) {
            shard.order.remove(&old_tick);
            shard.used -= old_size;
        }
        while shard.used + size > limit {
            let Some((_, oldest)) = shard.order.pop_first() else {
                break;
            };
            if let Some((_, old_size, _)) = shard.map.remove(&oldest) {
                shard.used -= old_size;
            }
        }
        shard.tick += 1;
        let tick = shard.tick;
        shard.order.insert(tick, key.clone());
        shard.map.insert(key, (entry, size, tick));
        shard.used += size;
        Ok(())
    }

    fn remove(&self, key: &CacheKey) -> bool {
        let mut shard = self.shard(key);
        match shard.map.remove(key) {
            Some((_, size, tick)) => {
                shard.order.remove(&tick);
                shard.used -= size;
                true
            }
            None => false,
        }
    }

    fn used_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.used))
            .sum()
    }

    fn max_entry_bytes(&self) -> u64 {
        self.shard_bytes
    }
}

//! A size-bounded least-recently-used map: the unit a [`crate::MemoryStorage`] shard
//! is made of.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

struct Slot<V> {
    value: V,
    size: u64,
    tick: u64,
}

/// Keys with values and sizes; inserting beyond `capacity` bytes evicts the least
/// recently used entries. Each get/insert is O(log n).
pub(crate) struct Lru<K, V> {
    map: HashMap<K, Slot<V>>,
    /// Recency order: tick -> key; the smallest tick is the least recently used.
    order: BTreeMap<u64, K>,
    next_tick: u64,
    used: u64,
    capacity: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    pub(crate) fn new(capacity: u64) -> Self {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            next_tick: 0,
            used: 0,
            capacity,
        }
    }

    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    /// The value under `key`, now the most recently used.
    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        let tick = self.tick();
        let slot = self.map.get_mut(key)?;
        if let Some(k) = self.order.remove(&slot.tick) {
            self.order.insert(tick, k);
        }
        slot.tick = tick;
        Some(slot.value.clone())
    }

    /// Inserts (or replaces) `key`; returns how many entries were evicted to make room.
    /// The caller guarantees `size <= capacity`.
    pub(crate) fn insert(&mut self, key: K, value: V, size: u64) -> usize {
        self.remove(&key);
        let mut evicted = 0;
        while self.used + size > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.map.remove(&oldest) {
                self.used -= slot.size;
                evicted += 1;
            }
        }
        let tick = self.tick();
        self.order.insert(tick, key.clone());
        self.map.insert(key, Slot { value, size, tick });
        self.used += size;
        evicted
    }

    /// Removes `key`; true if it was there.
    pub(crate) fn remove(&mut self, key: &K) -> bool {
        match self.map.remove(key) {
            Some(slot) => {
                self.order.remove(&slot.tick);
                self.used -= slot.size;
                true
            }
            None => false,
        }
    }

    /// Removes every entry whose key `matches`; returns how many were removed.
    pub(crate) fn remove_where(&mut self, matches: &dyn Fn(&K) -> bool) -> usize {
        let doomed: Vec<K> = self.map.keys().filter(|k| matches(k)).cloned().collect();
        for key in &doomed {
            self.remove(key);
        }
        doomed.len()
    }

    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_capacity() {
        let mut lru = Lru::new(100);
        assert_eq!(lru.insert("a", 1, 40), 0);
        assert_eq!(lru.insert("b", 2, 40), 0);
        assert_eq!(lru.get(&"a"), Some(1)); // b is now the oldest
        assert_eq!(lru.insert("c", 3, 40), 1);
        assert_eq!(lru.get(&"b"), None);
        assert_eq!(lru.get(&"a"), Some(1));
        assert_eq!(lru.get(&"c"), Some(3));
        assert_eq!(lru.used(), 80);
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn replacing_and_removing_keep_the_count_right() {
        let mut lru = Lru::new(100);
        lru.insert("a", 1, 60);
        lru.insert("a", 2, 30);
        assert_eq!(lru.used(), 30);
        assert_eq!(lru.get(&"a"), Some(2));
        assert!(lru.remove(&"a"));
        assert!(!lru.remove(&"a"));
        assert_eq!(lru.used(), 0);
        assert_eq!(lru.insert("big", 9, 100), 0);
        assert_eq!(lru.insert("x", 1, 1), 1);
        assert_eq!(lru.used(), 1);
    }
}

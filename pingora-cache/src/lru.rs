//! A size-bounded least-recently-used map: the index of the disk tier (which file to
//! remove first when the disk budget is reached).

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

    /// The value under `key`, without marking it used.
    pub(crate) fn peek(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|slot| &slot.value)
    }

    /// The value under `key` to change in place, without marking it used.
    pub(crate) fn peek_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|slot| &mut slot.value)
    }

    /// Inserts (or replaces) `key`; the entries evicted to make room are added to
    /// `evicted`. An entry larger than the capacity evicts everything else.
    pub(crate) fn insert(&mut self, key: K, value: V, size: u64, evicted: &mut Vec<(K, V)>) {
        self.remove(&key);
        while self.used + size > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.map.remove(&oldest) {
                self.used -= slot.size;
                evicted.push((oldest, slot.value));
            }
        }
        let tick = self.tick();
        self.order.insert(tick, key.clone());
        self.map.insert(key, Slot { value, size, tick });
        self.used += size;
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.map.remove(key)?;
        self.order.remove(&slot.tick);
        self.used -= slot.size;
        Some(slot.value)
    }

    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every key, in no particular order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_capacity() {
        let mut lru = Lru::new(100);
        let mut out = Vec::new();
        lru.insert("a", 1, 40, &mut out);
        lru.insert("b", 2, 40, &mut out);
        assert!(out.is_empty());
        assert_eq!(lru.get(&"a"), Some(1)); // b is now the oldest
        assert_eq!(lru.peek(&"b"), Some(&2)); // and peeking does not change that
        lru.insert("c", 3, 40, &mut out);
        assert_eq!(out, [("b", 2)]);
        assert_eq!(lru.get(&"b"), None);
        assert_eq!(lru.get(&"a"), Some(1));
        assert_eq!(lru.get(&"c"), Some(3));
        assert_eq!(lru.used(), 80);
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn replacing_and_removing_keep_the_count_right() {
        let mut lru = Lru::new(100);
        let mut out = Vec::new();
        lru.insert("a", 1, 60, &mut out);
        lru.insert("a", 2, 30, &mut out);
        assert!(out.is_empty());
        assert_eq!(lru.used(), 30);
        assert_eq!(lru.get(&"a"), Some(2));
        assert_eq!(lru.remove(&"a"), Some(2));
        assert_eq!(lru.remove(&"a"), None);
        assert_eq!(lru.used(), 0);
        lru.insert("big", 9, 100, &mut out);
        assert!(out.is_empty());
        lru.insert("x", 1, 1, &mut out);
        assert_eq!(out, [("big", 9)]);
        assert_eq!(lru.used(), 1);
    }
}

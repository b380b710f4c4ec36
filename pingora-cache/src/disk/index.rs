//! The disk tier's index: which files exist (by file hash), their sizes in LRU order
//! within the disk budget, and the writes queued but not yet on disk.

use std::collections::HashMap;

use crate::key::CacheKey;
use crate::lru::Lru;

/// One file the index knows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    /// Identifies the version of the entry in the file (see [`super::stamp`]), so that an
    /// entry memory evicts is not written again when the disk already has it.
    pub(crate) stamp: u64,
    /// Changes whenever the file is replaced, so that a reader that found a file bad
    /// forgets only the file it read.
    pub(crate) version: u64,
}

/// A write queued for a file hash.
#[derive(Debug, Clone)]
struct Pending {
    seq: u64,
    stamp: u64,
    /// The key written (for purges by predicate before the file exists).
    key: CacheKey,
}

/// The index (kept behind a mutex; every method is quick and does no I/O).
pub(crate) struct Index {
    files: Lru<u64, Slot>,
    pending: HashMap<u64, Pending>,
    next: u64,
}

impl Index {
    /// An empty index for a disk of `max_bytes`.
    pub(crate) fn new(max_bytes: u64) -> Index {
        Index {
            files: Lru::new(max_bytes),
            pending: HashMap::new(),
            next: 1,
        }
    }

    fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// The version of the file of `hash`, marking it used.
    pub(crate) fn lookup(&mut self, hash: u64) -> Option<u64> {
        self.files.get(&hash).map(|slot| slot.version)
    }

    /// Whether the disk has, or is about to have, the entry version `stamp` of `hash`.
    pub(crate) fn holds(&self, hash: u64, stamp: u64) -> bool {
        self.pending.get(&hash).is_some_and(|p| p.stamp == stamp)
            || self.files.peek(&hash).is_some_and(|s| s.stamp == stamp)
    }

    /// Records a write of `hash` about to be queued; returns its sequence number. A
    /// later write or removal of the same hash supersedes it.
    pub(crate) fn queue_write(&mut self, hash: u64, stamp: u64, key: CacheKey) -> u64 {
        let seq = self.next();
        self.pending.insert(hash, Pending { seq, stamp, key });
        seq
    }

    /// Whether write `seq` of `hash` is still the one wanted.
    pub(crate) fn is_wanted(&self, hash: u64, seq: u64) -> bool {
        self.pending.get(&hash).is_some_and(|p| p.seq == seq)
    }

    /// Write `seq` of `hash` failed: nothing changes on disk.
    pub(crate) fn abandon(&mut self, hash: u64, seq: u64) {
        if self.is_wanted(hash, seq) {
            self.pending.remove(&hash);
        }
    }

    /// Write `seq` of `hash` (a file of `size` bytes) is on disk. Returns false (and
    /// indexes nothing) when it was superseded meanwhile; otherwise the files evicted to
    /// stay within the budget are added to `evicted`.
    pub(crate) fn commit(
        &mut self,
        hash: u64,
        seq: u64,
        size: u64,
        evicted: &mut Vec<(u64, Slot)>,
    ) -> bool {
        let Some(pending) = self.pending.get(&hash) else {
            return false;
        };
        if pending.seq != seq {
            return false;
        }
        let stamp = pending.stamp;
        self.pending.remove(&hash);
        let slot = Slot {
            stamp,
            version: self.next(),
        };
        self.files.insert(hash, slot, size, evicted);
        true
    }

    /// A file found at start.
    pub(crate) fn restore(&mut self, hash: u64, size: u64, evicted: &mut Vec<(u64, Slot)>) {
        let slot = Slot {
            stamp: 0,
            version: self.next(),
        };
        self.files.insert(hash, slot, size, evicted);
    }

    /// Forgets `hash` (its file and any queued write); true if there was either.
    pub(crate) fn remove(&mut self, hash: u64) -> bool {
        let pending = self.pending.remove(&hash).is_some();
        self.files.remove(&hash).is_some() || pending
    }

    /// A reader found version `version` of `hash` missing or bad: forget it, unless the
    /// file was replaced since. True if forgotten.
    pub(crate) fn forget(&mut self, hash: u64, version: u64) -> bool {
        if self.files.peek(&hash).is_some_and(|s| s.version == version) {
            self.files.remove(&hash);
            return true;
        }
        false
    }

    /// A reader decoded version `version` of `hash` into an entry of stamp `stamp`.
    pub(crate) fn set_stamp(&mut self, hash: u64, version: u64, stamp: u64) {
        if let Some(slot) = self.files.peek_mut(&hash) {
            if slot.version == version {
                slot.stamp = stamp;
            }
        }
    }

    /// Whether neither a file nor a queued write of `hash` is known.
    pub(crate) fn is_unknown(&self, hash: u64) -> bool {
        self.files.peek(&hash).is_none() && !self.pending.contains_key(&hash)
    }

    /// The hashes of the files indexed.
    pub(crate) fn file_hashes(&self) -> Vec<u64> {
        self.files.keys().copied().collect()
    }

    /// The hashes of the queued writes whose key `matches`.
    pub(crate) fn pending_where(&self, matches: &dyn Fn(&CacheKey) -> bool) -> Vec<u64> {
        self.pending
            .iter()
            .filter(|(_, p)| matches(&p.key))
            .map(|(hash, _)| *hash)
            .collect()
    }

    /// Files indexed.
    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }

    /// Bytes of the files indexed.
    pub(crate) fn used(&self) -> u64 {
        self.files.used()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_or_a_newer_write_supersedes_a_queued_write() {
        let mut index = Index::new(1000);
        let mut evicted = Vec::new();
        let first = index.queue_write(7, 100, CacheKey::new("a"));
        assert!(index.holds(7, 100));
        let second = index.queue_write(7, 200, CacheKey::new("a"));
        assert!(!index.commit(7, first, 10, &mut evicted));
        assert!(index.commit(7, second, 10, &mut evicted));
        assert!(index.holds(7, 200) && !index.holds(7, 100));
        let third = index.queue_write(7, 300, CacheKey::new("a"));
        assert!(index.remove(7));
        assert!(!index.commit(7, third, 10, &mut evicted));
        assert!(index.is_unknown(7));
        assert!(evicted.is_empty());
    }

    #[test]
    fn commits_evict_the_least_recently_used_files() {
        let mut index = Index::new(100);
        let mut evicted = Vec::new();
        for hash in 1..=3 {
            let seq = index.queue_write(hash, hash, CacheKey::new("a"));
            assert!(index.commit(hash, seq, 40, &mut evicted));
            if hash == 2 {
                assert!(index.lookup(1).is_some());
            }
        }
        // 1 was used after 2 was written: 2 is the oldest.
        assert_eq!(evicted.iter().map(|(h, _)| *h).collect::<Vec<_>>(), [2]);
        assert_eq!(index.len(), 2);
        assert_eq!(index.used(), 80);
    }

    #[test]
    fn a_reader_forgets_only_the_version_it_read() {
        let mut index = Index::new(100);
        let mut evicted = Vec::new();
        index.restore(5, 10, &mut evicted);
        let old = index.lookup(5).unwrap();
        let seq = index.queue_write(5, 9, CacheKey::new("a"));
        assert!(index.commit(5, seq, 10, &mut evicted));
        assert!(!index.forget(5, old));
        let new = index.lookup(5).unwrap();
        index.set_stamp(5, new, 42);
        assert!(index.holds(5, 42));
        assert!(index.forget(5, new));
        assert!(index.is_unknown(5));
    }
}

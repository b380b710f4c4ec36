//! Counters a caller can read: lookups found per tier and their bytes, misses, evictions,
//! refused admissions, disk writes and errors ([`HttpCache::stats`](crate::HttpCache::stats)).

use std::sync::atomic::{AtomicU64, Ordering};

/// The figures of a [`Storage`](crate::Storage), tier by tier. Counters only grow;
/// `*_entries` and `*_bytes` are the current sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Entries in memory (responses and variant indexes).
    pub memory_entries: u64,
    /// Bytes counted against the memory budget.
    pub memory_bytes: u64,
    /// Entries memory evicted to make room.
    pub memory_evictions: u64,
    /// Entries in the disk tier's index.
    pub disk_entries: u64,
    /// Bytes of the disk tier's files.
    pub disk_bytes: u64,
    /// Files the disk tier removed to stay within its budget.
    pub disk_evictions: u64,
    /// Files written by the disk tier.
    pub disk_writes: u64,
    /// Writes the disk tier skipped because its write queue was full.
    pub disk_writes_dropped: u64,
    /// Disk reads or writes that failed (I/O errors).
    pub disk_errors: u64,
    /// Files found truncated or corrupt on read (and removed).
    pub disk_corrupt: u64,
    /// Entries no tier accepted (too large).
    pub refused: u64,
}

/// The figures of an [`HttpCache`](crate::HttpCache): its lookups and what its storage
/// reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from memory (fresh or stale entries).
    pub hits_memory: u64,
    /// Lookups answered from disk.
    pub hits_disk: u64,
    /// Body bytes of the entries found in memory.
    pub hit_bytes_memory: u64,
    /// Body bytes of the entries found on disk.
    pub hit_bytes_disk: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Responses not stored because they were larger than the cache takes (announced by
    /// `Content-Length` or found while filling), plus entries no storage tier accepted.
    pub admissions_refused: u64,
    /// What the storage reports.
    pub storage: StorageStats,
}

impl CacheStats {
    /// Lookups that found an entry, over all lookups (0 before the first lookup).
    pub fn hit_ratio(&self) -> f64 {
        let hits = self.hits_memory + self.hits_disk;
        let all = hits + self.misses;
        if all == 0 {
            0.0
        } else {
            hits as f64 / all as f64
        }
    }
}

/// Which tier answered a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    Memory,
    Disk,
}

/// The lookup counters of an [`HttpCache`](crate::HttpCache).
#[derive(Debug, Default)]
pub(crate) struct LookupCounters {
    hits_memory: AtomicU64,
    hits_disk: AtomicU64,
    hit_bytes_memory: AtomicU64,
    hit_bytes_disk: AtomicU64,
    misses: AtomicU64,
    refused: AtomicU64,
}

impl LookupCounters {
    pub(crate) fn hit(&self, tier: Tier, body_bytes: u64) {
        let (count, bytes) = match tier {
            Tier::Memory => (&self.hits_memory, &self.hit_bytes_memory),
            Tier::Disk => (&self.hits_disk, &self.hit_bytes_disk),
        };
        count.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(body_bytes, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, storage: StorageStats) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits_memory: get(&self.hits_memory),
            hits_disk: get(&self.hits_disk),
            hit_bytes_memory: get(&self.hit_bytes_memory),
            hit_bytes_disk: get(&self.hit_bytes_disk),
            misses: get(&self.misses),
            admissions_refused: get(&self.refused) + storage.refused,
            storage,
        }
    }
}

/// A counter that only grows, shared between a storage and its helpers.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

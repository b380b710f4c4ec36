//! [`TieredStorage`]: a memory tier in front of a disk tier.

use std::sync::Arc;

use crate::disk::DiskStorage;
use crate::error::CacheError;
use crate::key::CacheKey;
use crate::memory::MemoryStorage;
use crate::object::Entry;
use crate::stats::StorageStats;
use crate::storage::{Located, SlowLoad, Storage};

/// Memory in front of disk.
///
/// - Every stored entry is written to disk too (in the background), so a restart or a
///   graceful upgrade finds it there; entries up to `memory_max_bytes / 8` are also
///   kept in memory, larger ones on disk only.
/// - What memory evicts stays on disk (it is written again if the disk lost it).
/// - A disk hit is read on a blocking thread and put back in memory.
pub struct TieredStorage {
    memory: Arc<MemoryStorage>,
    disk: Arc<DiskStorage>,
    memory_entry_limit: u64,
}

impl TieredStorage {
    /// Memory of `memory_max_bytes` in front of `disk`.
    pub fn new(memory_max_bytes: u64, disk: DiskStorage) -> TieredStorage {
        let disk = Arc::new(disk);
        let memory_entry_limit = memory_max_bytes / 8;
        let sink = Arc::clone(&disk);
        let memory = MemoryStorage::with_max_entry_bytes(memory_max_bytes, memory_entry_limit)
            .on_evict(Arc::new(move |key, entry| sink.demote(key, entry)));
        TieredStorage {
            memory: Arc::new(memory),
            disk,
            memory_entry_limit,
        }
    }

    /// The memory tier.
    pub fn memory(&self) -> &MemoryStorage {
        &self.memory
    }

    /// The disk tier.
    pub fn disk(&self) -> &DiskStorage {
        &self.disk
    }
}

impl Storage for TieredStorage {
    fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.memory.get(key)
    }

    fn locate(&self, key: &CacheKey) -> Located {
        if let Some(entry) = self.memory.get(key) {
            return Located::Ready(entry);
        }
        let Some(read) = self.disk.load_job(key) else {
            return Located::Absent;
        };
        let memory = Arc::clone(&self.memory);
        let limit = self.memory_entry_limit;
        let key = key.clone();
        Located::Load(SlowLoad::new(move || {
            let entry = read()?;
            if entry.size() + key.size() <= limit {
                // Back in memory; the disk keeps its copy.
                let _ = memory.put(key, Arc::clone(&entry));
            }
            Some(entry)
        }))
    }

    fn put(&self, key: CacheKey, entry: Arc<Entry>) -> Result<(), CacheError> {
        let size = entry.size() + key.size();
        let on_disk = self.disk.put(key.clone(), Arc::clone(&entry));
        let in_memory = if size <= self.memory_entry_limit {
            self.memory.put(key, entry)
        } else {
            // An older version must not stay in memory in front of the new one.
            self.memory.remove(&key);
            Err(CacheError::TooLarge {
                size,
                limit: self.memory_entry_limit,
            })
        };
        match (in_memory, on_disk) {
            (Err(_), Err(_)) => Err(CacheError::TooLarge {
                size,
                limit: self.max_entry_bytes(),
            }),
            _ => Ok(()),
        }
    }

    fn remove(&self, key: &CacheKey) -> bool {
        let in_memory = self.memory.remove(key);
        self.disk.remove(key) || in_memory
    }

    /// Bytes in memory.
    fn used_bytes(&self) -> u64 {
        self.memory.used_bytes()
    }

    fn max_entry_bytes(&self) -> u64 {
        self.memory_entry_limit.max(self.disk.max_entry_bytes())
    }

    fn flush(&self) {
        self.disk.flush();
    }

    /// Entries in memory (the disk tier's count is in [`Storage::stats`]).
    fn entries(&self) -> u64 {
        self.memory.entries()
    }

    /// Removes matching entries from memory and from disk (reading the keys of the
    /// files: call it from a blocking thread); an entry in both tiers counts once.
    fn remove_where(&self, matches: &dyn Fn(&CacheKey) -> bool) -> u64 {
        let in_memory = std::sync::Mutex::new(Vec::new());
        self.memory.remove_where(&|key| {
            let hit = matches(key);
            if hit {
                in_memory
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(key.clone());
            }
            hit
        });
        let in_memory = in_memory.into_inner().unwrap_or_else(|p| p.into_inner());
        // Removed from disk by key first: a write still queued is cancelled too.
        for key in &in_memory {
            self.disk.remove(key);
        }
        in_memory.len() as u64 + self.disk.remove_where(matches)
    }

    fn stats(&self) -> StorageStats {
        let m = self.memory.stats();
        let d = self.disk.stats();
        StorageStats {
            memory_entries: m.memory_entries,
            memory_bytes: m.memory_bytes,
            memory_evictions: m.memory_evictions,
            // An entry too large for memory but stored on disk was not refused.
            refused: d.refused,
            ..d
        }
    }
}

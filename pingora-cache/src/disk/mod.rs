//! [`DiskStorage`]: entries in files, one per entry, that survive restarts and
//! upgrades.
//!
//! Layout under the cache directory: `HH/HHHHHHHHHHHHHHHH` (the 64-bit file hash of
//! the key in hex, in one of 256 subdirectories by its first byte), and `tmp/` for
//! files being written. Every file change (write, replace, delete) happens on one
//! dedicated I/O thread, in the order the cache asked for them; reads run on tokio's
//! blocking pool ([`SlowLoad`]). Neither ever runs on a runtime thread.
//!
//! Crash safety: a file appears under its final name only by `rename(2)` of a
//! complete temporary file, so a process killed mid-write leaves a temporary file
//! (removed at the next start), never a partial entry. Every file carries its
//! lengths and a CRC-32 of its content, checked on each read: a file damaged any
//! other way (power loss before the data reached the disk, a bad sector) is refused
//! and removed, never served.

mod format;
mod index;
mod scan;
mod writer;

use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::error::CacheError;
use crate::key::CacheKey;
use crate::object::Entry;
use crate::stats::{Counter, StorageStats};
use crate::storage::{Located, SlowLoad, Storage};

use format::Rejected;
use index::Index;
use writer::Op;

/// Bytes of writes that may wait for the I/O thread; past it, writes are skipped (and
/// counted) rather than queued without bound when the disk is slower than the traffic.
const WRITE_QUEUE_BYTES: u64 = 64 << 20;

/// Entries in files under one directory, within a byte budget (least recently used
/// files removed first). Open it with [`DiskStorage::open`].
///
/// As a [`Storage`] on its own it has no memory tier: every hit is a file read.
/// [`TieredStorage`](crate::TieredStorage) puts a [`MemoryStorage`](crate::MemoryStorage)
/// in front of it.
pub struct DiskStorage {
    shared: Arc<Shared>,
    ops: mpsc::Sender<Op>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// What the storage, its I/O thread and its readers share.
pub(crate) struct Shared {
    dir: PathBuf,
    max_bytes: u64,
    max_entry_bytes: u64,
    index: Mutex<Index>,
    /// Bytes of the writes queued and not yet done.
    queued_bytes: AtomicU64,
    /// Prefix of this process's temporary file names (`tmp/PID-`).
    tmp_prefix: String,
    tmp_seq: AtomicU64,
    writes: Counter,
    dropped: Counter,
    errors: Counter,
    corrupt: Counter,
    evictions: Counter,
    refused: Counter,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, Index> {
        // Every index method leaves it consistent before returning.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The path of the file of `hash`.
    fn file_path(&self, hash: u64) -> PathBuf {
        self.dir.join(format!("{:02x}/{hash:016x}", hash >> 56))
    }

    /// A fresh temporary path of this process.
    fn tmp_path(&self) -> PathBuf {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("tmp/{}{n}", self.tmp_prefix))
    }
}

impl DiskStorage {
    /// Opens (creating it if needed) the cache directory `dir` with a budget of
    /// `max_bytes`, and rebuilds the index from the files found there (their sizes and
    /// modification times: the oldest are evicted first). Temporary files left by a
    /// killed process are removed. Blocks on file I/O: call it at startup or on a
    /// blocking thread, not from an async task.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> io::Result<DiskStorage> {
        let dir = dir.into();
        let max_bytes = max_bytes.max(1);
        let shared = Arc::new(Shared {
            max_bytes,
            max_entry_bytes: max_bytes / 2,
            index: Mutex::new(Index::new(max_bytes)),
            queued_bytes: AtomicU64::new(0),
            tmp_prefix: format!("{}-", std::process::id()),
            tmp_seq: AtomicU64::new(0),
            writes: Counter::default(),
            dropped: Counter::default(),
            errors: Counter::default(),
            corrupt: Counter::default(),
            evictions: Counter::default(),
            refused: Counter::default(),
            dir,
        });
        scan::prepare_and_rebuild(&shared)?;
        let (ops, queue) = mpsc::channel();
        let worker = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("pingora-cache-disk".into())
            .spawn(move || writer::run(&worker, queue))?;
        Ok(DiskStorage {
            shared,
            ops,
            writer: Some(writer),
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The byte budget of the files.
    pub fn max_bytes(&self) -> u64 {
        self.shared.max_bytes
    }

    /// Blocks until every write and removal asked for so far is done on disk.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.ops.send(Op::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Finishes the queued writes and stops the I/O thread (blocking).
    pub fn close(mut self) {
        let (ops, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.ops, ops));
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }

    /// The blocking job reading `key`'s file, if the index has one.
    pub(crate) fn load_job(
        &self,
        key: &CacheKey,
    ) -> Option<impl FnOnce() -> Option<Arc<Entry>> + Send + 'static> {
        let hash = format::file_hash(key);
        let version = self.shared.index().lookup(hash)?;
        let shared = Arc::clone(&self.shared);
        let ops = self.ops.clone();
        let key = key.clone();
        Some(move || read(&shared, &ops, &key, hash, version))
    }

    /// Forgets the file of `hash` (and any queued write of it) and has it deleted.
    fn remove_hash(&self, hash: u64) -> bool {
        let known = self.shared.index().remove(hash);
        if known {
            let _ = self.ops.send(Op::Delete { hash });
        }
        known
    }

    /// Keeps an entry memory evicted, unless the disk has that version already.
    pub(crate) fn demote(&self, key: CacheKey, entry: Arc<Entry>) {
        let hash = format::file_hash(&key);
        if self.shared.index().holds(hash, stamp(&entry)) {
            return;
        }
        let _ = self.put(key, entry);
    }
}

/// Reads and checks the file of `key` (on a blocking thread).
fn read(
    shared: &Shared,
    ops: &mpsc::Sender<Op>,
    key: &CacheKey,
    hash: u64,
    version: u64,
) -> Option<Arc<Entry>> {
    let path = shared.file_path(hash);
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(e) => {
            // Evicted by another process sharing the directory, or removed by hand.
            if e.kind() != io::ErrorKind::NotFound {
                shared.errors.add(1);
                log::warn!("cache: cannot read {}: {e}", path.display());
            }
            shared.index().forget(hash, version);
            return None;
        }
    };
    match format::decode(Bytes::from(data), key) {
        Ok(entry) => {
            shared.index().set_stamp(hash, version, stamp(&entry));
            Some(Arc::new(entry))
        }
        Err(Rejected::OtherKey) => None,
        Err(Rejected::Corrupt(why)) => {
            shared.corrupt.add(1);
            log::warn!("cache: dropping {}: {why}", path.display());
            if shared.index().forget(hash, version) {
                let _ = ops.send(Op::DropCorrupt { hash });
            }
            None
        }
    }
}

/// Identifies one version of an entry within this process: the same stored response
/// (read back or not) has the same stamp, a refreshed or refetched one another.
pub(crate) fn stamp(entry: &Entry) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    match entry {
        Entry::Response(r) => {
            r.meta.stored_at.hash(&mut h);
            r.meta.lifetime.hash(&mut h);
            r.meta.initial_age.hash(&mut h);
            r.body.len().hash(&mut h);
            r.head.headers.len().hash(&mut h);
            r.head.status.hash(&mut h);
        }
        Entry::Variants(v) => {
            v.generation.hash(&mut h);
            v.names.hash(&mut h);
        }
    }
    h.finish()
}

impl Storage for DiskStorage {
    /// Always `None`: a disk entry is only reached through [`Storage::locate`].
    fn get(&self, _key: &CacheKey) -> Option<Arc<Entry>> {
        None
    }

    fn locate(&self, key: &CacheKey) -> Located {
        match self.load_job(key) {
            Some(job) => Located::Load(SlowLoad::new(job)),
            None => Located::Absent,
        }
    }

    /// Queues the write of `entry`; it is skipped (and counted) when too many bytes are
    /// waiting to be written already.
    fn put(&self, key: CacheKey, entry: Arc<Entry>) -> Result<(), CacheError> {
        let size = entry.size() + key.size();
        let shared = &self.shared;
        if size > shared.max_entry_bytes {
            shared.refused.add(1);
            return Err(CacheError::TooLarge {
                size,
                limit: shared.max_entry_bytes,
            });
        }
        let queued = shared.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if queued > 0 && queued + size > WRITE_QUEUE_BYTES.max(shared.max_entry_bytes) {
            shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            shared.dropped.add(1);
            log::debug!("cache: disk write of {key} skipped: the write queue is full");
            return Ok(());
        }
        let hash = format::file_hash(&key);
        let seq = shared.index().queue_write(hash, stamp(&entry), key.clone());
        let op = Op::Write {
            hash,
            seq,
            key,
            entry,
            size,
        };
        if self.ops.send(op).is_err() {
            shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            shared.index().abandon(hash, seq);
        }
        Ok(())
    }

    fn remove(&self, key: &CacheKey) -> bool {
        self.remove_hash(format::file_hash(key))
    }

    /// Removes the entries whose key `matches`: queued writes by the key they carry,
    /// files by the key read from each file's first bytes. Blocks on file I/O (one
    /// small read per file indexed): call it from a blocking thread.
    fn remove_where(&self, matches: &dyn Fn(&CacheKey) -> bool) -> u64 {
        let (pending, files) = {
            let index = self.shared.index();
            (index.pending_where(matches), index.file_hashes())
        };
        let mut removed = 0;
        for hash in pending {
            removed += u64::from(self.remove_hash(hash));
        }
        for hash in files {
            let path = self.shared.file_path(hash);
            if format::read_key(&path).is_some_and(|key| matches(&key)) {
                removed += u64::from(self.remove_hash(hash));
            }
        }
        removed
    }

    fn entries(&self) -> u64 {
        self.shared.index().len() as u64
    }

    /// Bytes of the files.
    fn used_bytes(&self) -> u64 {
        self.shared.index().used()
    }

    fn max_entry_bytes(&self) -> u64 {
        self.shared.max_entry_bytes
    }

    fn stats(&self) -> StorageStats {
        let s = &self.shared;
        let (entries, bytes) = {
            let index = s.index();
            (index.len() as u64, index.used())
        };
        StorageStats {
            disk_entries: entries,
            disk_bytes: bytes,
            disk_evictions: s.evictions.get(),
            disk_writes: s.writes.get(),
            disk_writes_dropped: s.dropped.get(),
            disk_errors: s.errors.get(),
            disk_corrupt: s.corrupt.get(),
            refused: s.refused.get(),
            ..StorageStats::default()
        }
    }

    fn flush(&self) {
        DiskStorage::flush(self);
    }
}

#[cfg(test)]
mod tests;

//! The disk tier's I/O thread: every change to the files, one at a time, in the order
//! asked for.

use std::fs;
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use super::format::{self, Encoded};
use super::Shared;
use crate::key::CacheKey;
use crate::object::Entry;

/// A change for the I/O thread.
pub(super) enum Op {
    /// Write `entry` as the file of `hash`, if write `seq` is still wanted then.
    Write {
        hash: u64,
        seq: u64,
        key: CacheKey,
        entry: Arc<Entry>,
        /// Bytes counted in the write queue for it.
        size: u64,
    },
    /// Remove the file of `hash` (the index forgot it already).
    Delete { hash: u64 },
    /// Remove the file of `hash`, found corrupt, unless a new one was indexed since.
    DropCorrupt { hash: u64 },
    /// Answer once every earlier op is done.
    Flush(mpsc::SyncSender<()>),
}

/// Runs the ops until every sender is gone.
pub(super) fn run(shared: &Shared, queue: mpsc::Receiver<Op>) {
    for op in queue {
        match op {
            Op::Write {
                hash,
                seq,
                key,
                entry,
                size,
            } => {
                write(shared, hash, seq, &key, &entry);
                shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            }
            Op::Delete { hash } => remove(shared, hash),
            Op::DropCorrupt { hash } => {
                if shared.index().is_unknown(hash) {
                    remove(shared, hash);
                }
            }
            Op::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

fn write(shared: &Shared, hash: u64, seq: u64, key: &CacheKey, entry: &Entry) {
    if !shared.index().is_wanted(hash, seq) {
        return;
    }
    let encoded = format::encode(key, entry);
    if let Err(e) = write_file(shared, hash, &encoded) {
        shared.errors.add(1);
        log::warn!("cache: cannot write {key} to disk: {e}");
        shared.index().abandon(hash, seq);
        return;
    }
    shared.writes.add(1);
    let mut evicted = Vec::new();
    let indexed = shared
        .index()
        .commit(hash, seq, encoded.len(), &mut evicted);
    if !indexed {
        // Superseded while being written: a later write replaces the file, or a
        // queued removal deletes it.
        return;
    }
    for (victim, _) in &evicted {
        remove(shared, *victim);
    }
    shared.evictions.add(evicted.len() as u64);
}

/// Writes a temporary file and renames it into place: the final name never shows a
/// partial file.
fn write_file(shared: &Shared, hash: u64, encoded: &Encoded) -> io::Result<()> {
    let tmp = shared.tmp_path();
    let result = (|| {
        let mut file = fs::File::create_new(&tmp)?;
        file.write_all(&encoded.head)?;
        file.write_all(&encoded.body)?;
        drop(file);
        fs::rename(&tmp, shared.file_path(hash))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn remove(shared: &Shared, hash: u64) {
    match fs::remove_file(shared.file_path(hash)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            shared.errors.add(1);
            log::warn!("cache: cannot remove a disk entry: {e}");
        }
    }
}

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use pingora_core::protocols::http::ResponseHeader;

use super::*;
use crate::freshness::CacheMeta;
use crate::object::CachedResponse;

/// A directory removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("pingora-cache-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn response(body: &[u8]) -> Arc<Entry> {
    Arc::new(Entry::Response(Arc::new(CachedResponse {
        head: ResponseHeader::new(StatusCode::OK),
        body: Bytes::copy_from_slice(body),
        trailers: None,
        meta: CacheMeta {
            stored_at: Instant::now(),
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(600),
            always_revalidate: false,
            never_stale: false,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            shareable_with_auth: false,
        },
    })))
}

fn body_of(entry: Option<Arc<Entry>>) -> Option<Bytes> {
    match entry.as_deref() {
        Some(Entry::Response(r)) => Some(r.body.clone()),
        _ => None,
    }
}

/// Reads `key` as the cache would, on this (test) thread.
fn read_key(disk: &DiskStorage, key: &CacheKey) -> Option<Bytes> {
    match disk.locate(key) {
        Located::Load(load) => body_of(load.run_blocking()),
        Located::Ready(entry) => body_of(Some(entry)),
        Located::Absent => None,
    }
}

fn key(i: usize) -> CacheKey {
    CacheKey::new(format!("GET\nexample.com\n/obj/{i}"))
}

#[test]
fn entries_survive_a_new_storage_on_the_same_directory() {
    let dir = TempDir::new("restart");
    let disk = DiskStorage::open(&dir.0, 1 << 20).unwrap();
    for i in 0..20 {
        disk.put(key(i), response(format!("body {i}").as_bytes()))
            .unwrap();
    }
    disk.remove(&key(3));
    disk.close();

    let disk = DiskStorage::open(&dir.0, 1 << 20).unwrap();
    assert_eq!(disk.stats().disk_entries, 19);
    for i in 0..20 {
        let expected = (i != 3).then(|| Bytes::from(format!("body {i}")));
        assert_eq!(read_key(&disk, &key(i)), expected, "entry {i}");
    }
    // Unknown keys and keys sharing nothing with the stored ones miss.
    assert_eq!(read_key(&disk, &key(99)), None);
    assert_eq!(disk.stats().disk_corrupt, 0);
}

#[test]
fn truncated_or_corrupt_files_are_detected_and_dropped() {
    let dir = TempDir::new("corrupt");
    let disk = DiskStorage::open(&dir.0, 1 << 20).unwrap();
    for i in 0..3 {
        disk.put(key(i), response(&[b'a' + i as u8; 5000])).unwrap();
    }
    disk.flush();
    let path = |i: usize| disk.shared.file_path(format::file_hash(&key(i)));
    // A file cut short, as after a crash that lost the end of it.
    let whole = std::fs::read(path(0)).unwrap();
    std::fs::write(path(0), &whole[..whole.len() - 100]).unwrap();
    // A file with one byte flipped in its body.
    let mut damaged = std::fs::read(path(1)).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    std::fs::write(path(1), damaged).unwrap();

    assert_eq!(read_key(&disk, &key(0)), None);
    assert_eq!(read_key(&disk, &key(1)), None);
    assert_eq!(read_key(&disk, &key(2)).unwrap().len(), 5000);
    disk.flush();
    assert!(!path(0).exists() && !path(1).exists(), "bad files removed");
    let stats = disk.stats();
    assert_eq!((stats.disk_corrupt, stats.disk_entries), (2, 1));

    // The same after a restart: a bad file found by the scan is dropped on first read.
    std::fs::write(path(2), b"PGRCACH1 but nothing after").unwrap();
    disk.close();
    let disk = DiskStorage::open(&dir.0, 1 << 20).unwrap();
    assert_eq!(read_key(&disk, &key(2)), None);
    assert_eq!(disk.stats().disk_corrupt, 1);
}

#[test]
fn a_killed_writer_leaves_no_entry_behind() {
    let dir = TempDir::new("killed");
    let disk = DiskStorage::open(&dir.0, 1 << 20).unwrap();
    disk.put(key(1), response(b"complete")).unwrap();
    disk.close();
    // What a process killed in the middle of a write leaves: a partial temporary file
    // of a (dead) process with this id.
    let tmp = dir.0.join(format!("tmp/{}-99", std::process::id()));
    std::fs::write(&tmp, b"PGRCACH1 half an ent").unwrap();
    // One of another process that is gone, and one of a live process (this one's
    // parent stands for the old instance of an upgrade).
    let dead = dir.0.join(format!("tmp/{}-1", u32::MAX - 1));
    std::fs::write(&dead, b"PGRCACH1 half").unwrap();
    let live = dir
        .0
        .join(format!("tmp/{}-1", std::os::unix::process::parent_id()));
    std::fs::write(&live, b"PGRCACH1 being written").unwrap();
    let disk = DiskStorage::open(&dir.0, 1 << 20).unwrap();
    assert!(!tmp.exists(), "leftover temporary file removed");
    assert!(!dead.exists(), "a dead writer's file removed");
    assert!(live.exists(), "a live writer's file kept");
    assert_eq!(disk.stats().disk_entries, 1);
    assert_eq!(read_key(&disk, &key(1)).unwrap(), "complete");
}

#[test]
fn disk_bytes_stay_within_the_budget() {
    let dir = TempDir::new("bounded");
    let max = 64 * 1024;
    let disk = DiskStorage::open(&dir.0, max).unwrap();
    for i in 0..100 {
        disk.put(key(i), response(&[b'x'; 4000])).unwrap();
        if i % 10 == 0 {
            disk.flush();
            assert!(disk.used_bytes() <= max);
        }
    }
    disk.flush();
    let stats = disk.stats();
    assert!(stats.disk_bytes <= max, "{stats:?}");
    assert!(stats.disk_evictions >= 80, "{stats:?}");
    // The files on disk are the ones indexed, and add up to the same bytes.
    let mut files = 0;
    let mut bytes = 0;
    for sub in std::fs::read_dir(&dir.0).unwrap() {
        let sub = sub.unwrap();
        if sub.file_name() == "tmp" {
            assert_eq!(std::fs::read_dir(sub.path()).unwrap().count(), 0);
            continue;
        }
        for f in std::fs::read_dir(sub.path()).unwrap() {
            files += 1;
            bytes += f.unwrap().metadata().unwrap().len();
        }
    }
    assert_eq!((files, bytes), (stats.disk_entries, stats.disk_bytes));
    // The newest entries are the ones kept.
    assert!(read_key(&disk, &key(99)).is_some());
    assert!(read_key(&disk, &key(0)).is_none());
    // A smaller budget after a restart evicts down to it.
    disk.close();
    let disk = DiskStorage::open(&dir.0, max / 2).unwrap();
    assert!(disk.stats().disk_bytes <= max / 2);
    assert!(read_key(&disk, &key(99)).is_some());
}

#[test]
fn readers_never_see_a_partial_entry_while_it_is_rewritten() {
    let dir = TempDir::new("concurrent");
    let disk = Arc::new(DiskStorage::open(&dir.0, 8 << 20).unwrap());
    let k = key(7);
    // Each version is 200 KB of one repeated byte: a reader that saw a mix of two
    // versions, or a cut one, would notice.
    disk.put(k.clone(), response(&[b'a'; 200_000])).unwrap();
    disk.flush();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let disk = Arc::clone(&disk);
            let stop = Arc::clone(&stop);
            let k = k.clone();
            std::thread::spawn(move || {
                let mut seen = 0;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(body) = read_key(&disk, &k) {
                        assert_eq!(body.len(), 200_000);
                        assert!(body.iter().all(|b| *b == body[0]), "mixed versions");
                        seen += 1;
                    }
                }
                seen
            })
        })
        .collect();
    for round in 0..40u8 {
        disk.put(k.clone(), response(&[b'a' + round % 26; 200_000]))
            .unwrap();
        disk.flush();
    }
    stop.store(true, Ordering::Relaxed);
    let seen: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(seen > 0, "the readers read something");
    assert_eq!(disk.stats().disk_corrupt, 0);
    assert_eq!(read_key(&disk, &k).unwrap()[0], b'a' + 39 % 26);
}

#[test]
fn a_removal_wins_over_a_write_still_queued() {
    let dir = TempDir::new("purge");
    let disk = DiskStorage::open(&dir.0, 1 << 20).unwrap();
    for round in 0..50 {
        disk.put(key(1), response(b"v")).unwrap();
        assert!(disk.remove(&key(1)), "round {round}");
        assert_eq!(read_key(&disk, &key(1)), None);
    }
    disk.close();
    let disk = DiskStorage::open(&dir.0, 1 << 20).unwrap();
    assert_eq!(
        read_key(&disk, &key(1)),
        None,
        "a purged entry never comes back"
    );
}

#[test]
fn purge_by_predicate_reads_keys_from_files_and_queued_writes() {
    let dir = TempDir::new("remove-where");
    let disk = DiskStorage::open(&dir.0, 1 << 20).unwrap();
    for i in 0..10 {
        disk.put(key(i), response(b"x")).unwrap();
    }
    disk.close();
    // A new process: the index knows hashes only, the keys are in the files.
    let disk = DiskStorage::open(&dir.0, 1 << 20).unwrap();
    let odd = |k: &CacheKey| {
        k.as_str()
            .rsplit('/')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n % 2 == 1)
    };
    // And one write that may still be queued.
    disk.put(key(11), response(b"x")).unwrap();
    assert_eq!(disk.remove_where(&odd), 6);
    disk.flush();
    for i in 0..12 {
        let want = (i % 2 == 0 && i < 10).then(|| Bytes::from_static(b"x"));
        assert_eq!(read_key(&disk, &key(i)), want, "entry {i}");
    }
    disk.close();
    let disk = DiskStorage::open(&dir.0, 1 << 20).unwrap();
    assert_eq!(disk.stats().disk_entries, 5, "the files are gone");
}

//! pingora-cache's disk tier (a file per entry) against foyer's hybrid cache (block
//! engine on a directory): the same entries, the same machine, page cache warm.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use foyer::{
    BlockEngineBuilder, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    HybridCachePolicy,
};
use http::StatusCode;
use pingora_cache::{
    CacheKey, CacheMeta, CachedResponse, DiskStorage, Entry, Located, MemoryStorage, Storage,
};
use pingora_core::protocols::http::ResponseHeader;

const ENTRIES: usize = 2000;
const BODY: usize = 64 * 1024;
const LOOKUPS: usize = 5000;

fn entry(body: &Bytes) -> Arc<Entry> {
    Arc::new(Entry::Response(Arc::new(CachedResponse {
        head: ResponseHeader::new(StatusCode::OK),
        body: body.clone(),
        trailers: None,
        meta: CacheMeta {
            stored_at: Instant::now(),
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(3600),
            always_revalidate: false,
            never_stale: false,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            shareable_with_auth: false,
        },
    })))
}

fn key(i: usize) -> CacheKey {
    CacheKey::new(format!("GET\nexample.com\n/objects/{i}"))
}

/// A fixed pseudo-random order of lookups.
fn order() -> Vec<usize> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..LOOKUPS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % ENTRIES as u64) as usize
        })
        .collect()
}

fn per_op(d: Duration, n: usize) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6 / n.max(1) as f64)
}

fn mib_per_s(d: Duration) -> String {
    format!(
        "{:.0} MiB/s",
        (ENTRIES * BODY) as f64 / (1 << 20) as f64 / d.as_secs_f64()
    )
}

async fn ours(dir: &std::path::Path) {
    let body = Bytes::from(vec![b'x'; BODY]);
    let memory = MemoryStorage::new(1 << 30);
    for i in 0..ENTRIES {
        memory.put(key(i), entry(&body)).unwrap();
    }
    let keys: Vec<CacheKey> = (0..ENTRIES).map(key).collect();
    let t = Instant::now();
    for &i in &order() {
        assert!(memory.get(&keys[i]).is_some());
    }
    println!(
        "pingora-cache memory hit:  {}",
        per_op(t.elapsed(), LOOKUPS)
    );

    let disk = DiskStorage::open(dir, 1 << 30).unwrap();
    let t = Instant::now();
    for i in 0..ENTRIES {
        disk.put(key(i), entry(&body)).unwrap();
    }
    disk.flush();
    println!(
        "pingora-cache fill:        {} ({ENTRIES} x {} KiB)",
        mib_per_s(t.elapsed()),
        BODY / 1024
    );
    disk.close();
    let t = Instant::now();
    let disk = DiskStorage::open(dir, 1 << 30).unwrap();
    println!(
        "pingora-cache reopen:      {:.1} ms ({} entries)",
        t.elapsed().as_secs_f64() * 1e3,
        disk.stats().disk_entries
    );
    let t = Instant::now();
    for &i in &order() {
        let Located::Load(load) = disk.locate(&keys[i]) else {
            panic!("on disk")
        };
        assert!(load.run().await.is_some());
    }
    println!(
        "pingora-cache disk hit:    {}",
        per_op(t.elapsed(), LOOKUPS)
    );
}

async fn build_foyer(dir: &std::path::Path, memory: usize) -> HybridCache<u64, Vec<u8>> {
    let device = FsDeviceBuilder::new(dir)
        .with_capacity(1 << 30)
        .build()
        .unwrap();
    HybridCacheBuilder::new()
        .with_policy(HybridCachePolicy::WriteOnInsertion)
        .memory(memory)
        .with_weighter(|_k: &u64, v: &Vec<u8>| v.len())
        .storage()
        // A write buffer as large as the whole fill, so that no insert is dropped.
        .with_engine_config(BlockEngineBuilder::new(device).with_buffer_pool_size(256 << 20))
        .build()
        .await
        .unwrap()
}

async fn foyer(dir: &std::path::Path) {
    let value = vec![b'x'; BODY];
    {
        let cache = build_foyer(&dir.join("mem"), 1 << 30).await;
        for i in 0..ENTRIES {
            cache.insert(i as u64, value.clone());
        }
        let t = Instant::now();
        for &i in &order() {
            assert!(cache.get(&(i as u64)).await.unwrap().is_some());
        }
        println!(
            "foyer memory hit:          {}",
            per_op(t.elapsed(), LOOKUPS)
        );
        cache.close().await.unwrap();
    }
    let disk_dir = dir.join("disk");
    let cache = build_foyer(&disk_dir, BODY).await;
    let t = Instant::now();
    for i in 0..ENTRIES {
        cache.insert(i as u64, value.clone());
    }
    cache.close().await.unwrap();
    println!(
        "foyer fill:                {} ({ENTRIES} x {} KiB)",
        mib_per_s(t.elapsed()),
        BODY / 1024
    );
    drop(cache);
    let t = Instant::now();
    let cache = build_foyer(&disk_dir, BODY).await;
    println!(
        "foyer reopen:              {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    // Only lookups that found their entry count (a miss is cheaper than a read).
    let mut found = 0;
    let mut spent = Duration::ZERO;
    for &i in &order() {
        let t = Instant::now();
        if cache.get(&(i as u64)).await.unwrap().is_some() {
            spent += t.elapsed();
            found += 1;
        }
    }
    println!(
        "foyer disk hit:            {} ({found} of {LOOKUPS} lookups found their entry)",
        per_op(spent, found)
    );
    cache.close().await.unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let base = std::env::temp_dir().join(format!("cache-disk-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    ours(&base.join("ours")).await;
    foyer(&base.join("foyer")).await;
    let _ = std::fs::remove_dir_all(&base);
}

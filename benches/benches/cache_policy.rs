//! Memory-tier policy: hit ratios of the old 16-shard LRU and of `MemoryStorage` (one
//! budget, quick_cache's scan-resistant policy) replaying Zipf traces (skew 0.8 and
//! 1.0) and a scan-polluted trace, at two cache sizes; then lookups per second with
//! two threads. The hit ratios are printed first (criterion measures time only).
//!
//! `cargo bench -p pingora-benches --bench cache_policy`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use http::StatusCode;
use pingora_benches::cache_traces::{
    object_size, scan_trace, working_set_bytes, zipf_trace, SCAN_KEYS_FROM,
};
use pingora_benches::sharded_lru::ShardedLru;
use pingora_cache::{CacheKey, CacheMeta, CachedResponse, Entry, MemoryStorage, Storage};
use pingora_core::protocols::http::ResponseHeader;

/// Distinct popular keys.
const KEYS: usize = 20_000;

/// One 64 KiB body that every entry slices (no copy).
fn body_pool() -> Bytes {
    Bytes::from(vec![b'x'; 64 * 1024])
}

fn entry(k: u64, pool: &Bytes) -> Arc<Entry> {
    let size = object_size(k) as usize;
    Arc::new(Entry::Response(Arc::new(CachedResponse {
        head: ResponseHeader::new(StatusCode::OK),
        body: pool.slice(..size),
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

fn key_text(k: u64) -> String {
    format!("GET\nexample.com\n/objects/{k}")
}

/// The keys of the popular objects, made once.
fn popular_keys() -> Vec<CacheKey> {
    (0..KEYS as u64)
        .map(|k| CacheKey::new(key_text(k)))
        .collect()
}

/// Object and byte hit ratios of `storage` replaying `trace` (a miss stores the object).
fn replay(storage: &dyn Storage, trace: &[u64], keys: &[CacheKey], pool: &Bytes) -> (f64, f64) {
    let (mut hits, mut hit_bytes, mut all_bytes) = (0u64, 0u64, 0u64);
    for &k in trace {
        let size = object_size(k);
        all_bytes += size;
        let key = if k < SCAN_KEYS_FROM {
            keys[k as usize].clone()
        } else {
            CacheKey::new(key_text(k))
        };
        if storage.get(&key).is_some() {
            hits += 1;
            hit_bytes += size;
        } else {
            let _ = storage.put(key, entry(k, pool));
        }
    }
    (
        hits as f64 / trace.len() as f64,
        hit_bytes as f64 / all_bytes as f64,
    )
}

fn report_hit_ratios(requests: usize) {
    let keys = popular_keys();
    let pool = body_pool();
    let total = working_set_bytes(KEYS);
    let traces = [
        ("zipf 0.8", zipf_trace(KEYS, 0.8, requests, 42)),
        ("zipf 1.0", zipf_trace(KEYS, 1.0, requests, 42)),
        ("zipf 0.9 + 30% scans", scan_trace(KEYS, requests, 42)),
    ];
    println!(
        "\nhit ratios (objects / bytes), {KEYS} keys of 1-64 KiB ({} MiB), {requests} requests",
        total >> 20
    );
    println!(
        "{:<22} {:>6} {:>18} {:>18}",
        "trace", "cache", "16-shard LRU", "MemoryStorage"
    );
    for (name, trace) in &traces {
        for percent in [2u64, 10] {
            let budget = total * percent / 100;
            let lru = replay(&ShardedLru::new(budget), trace, &keys, &pool);
            let new = replay(&MemoryStorage::new(budget), trace, &keys, &pool);
            println!(
                "{name:<22} {:>5}% {:>8.3} / {:.3} {:>8.3} / {:.3}",
                percent, lru.0, lru.1, new.0, new.1
            );
        }
    }
    println!();
}

/// Lookups per second of `storage` (filled by a Zipf 0.9 trace) on two threads, each
/// looking up Zipf 0.9 keys.
fn lookups_on_two_threads(c: &mut Criterion) {
    let keys = Arc::new(popular_keys());
    let pool = body_pool();
    let budget = working_set_bytes(KEYS) / 10;
    let warmup = zipf_trace(KEYS, 0.9, 200_000, 1);
    let lookups: Arc<Vec<Vec<u64>>> = Arc::new(
        (0..2)
            .map(|t| zipf_trace(KEYS, 0.9, 1 << 16, 100 + t))
            .collect(),
    );
    let policies: [(&str, Arc<dyn Storage>); 2] = [
        ("sharded_lru", Arc::new(ShardedLru::new(budget))),
        ("memory_storage", Arc::new(MemoryStorage::new(budget))),
    ];
    let mut group = c.benchmark_group("cache_policy_lookup_2_threads");
    group.throughput(Throughput::Elements(2));
    for (name, storage) in policies {
        replay(&*storage, &warmup, &keys, &pool);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let threads: Vec<_> = (0..2)
                    .map(|t| {
                        let storage = Arc::clone(&storage);
                        let keys = Arc::clone(&keys);
                        let lookups = Arc::clone(&lookups);
                        std::thread::spawn(move || {
                            let trace = &lookups[t];
                            for i in 0..iters as usize {
                                let k = trace[i % trace.len()] as usize;
                                black_box(storage.get(&keys[k]));
                            }
                        })
                    })
                    .collect();
                for t in threads {
                    let _ = t.join();
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

fn main() {
    // `cargo test --benches` runs each bench once: a short replay then.
    let benching = std::env::args().any(|a| a == "--bench");
    report_hit_ratios(if benching { 1_000_000 } else { 20_000 });
    let mut c = Criterion::default().configure_from_args();
    lookups_on_two_threads(&mut c);
    c.final_summary();
}

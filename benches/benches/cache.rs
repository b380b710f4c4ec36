//! Cache cost per request: key computation, lookup (hit, miss, Vary variant) and insert
//! (a complete fill) in the in-memory storage, with 10,000 entries stored.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use pingora_cache::{CacheKey, CacheMeta, HttpCache, Lookup};
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};

const ENTRIES: usize = 10_000;

fn meta() -> CacheMeta {
    CacheMeta {
        stored_at: Instant::now(),
        initial_age: Duration::ZERO,
        lifetime: Duration::from_secs(3600),
        always_revalidate: false,
        never_stale: false,
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
        shareable_with_auth: false,
    }
}

fn head(vary: bool) -> ResponseHeader {
    let mut h = ResponseHeader::new(StatusCode::OK);
    h.headers
        .insert("cache-control", HeaderValue::from_static("max-age=3600"));
    h.headers
        .insert("content-type", HeaderValue::from_static("text/html"));
    if vary {
        h.headers
            .insert("vary", HeaderValue::from_static("Accept-Encoding"));
    }
    h
}

fn store(cache: &HttpCache, key: &CacheKey, request: &HeaderMap, vary: bool, body: &[u8]) {
    let mut fill = cache.start_fill(key, request, head(vary), meta(), None);
    fill.push(body);
    fill.finish(None);
}

fn filled_cache() -> (HttpCache, Vec<CacheKey>) {
    let cache = HttpCache::in_memory(1 << 30, Duration::from_secs(1));
    let keys: Vec<CacheKey> = (0..ENTRIES)
        .map(|i| CacheKey::new(format!("GET\nexample.com\n/static/{i}.js")))
        .collect();
    let body = vec![b'x'; 4096];
    for k in &keys {
        store(&cache, k, &HeaderMap::new(), false, &body);
    }
    (cache, keys)
}

fn lookup(c: &mut Criterion) {
    let (cache, keys) = filled_cache();
    let none = HeaderMap::new();
    let mut group = c.benchmark_group("cache_lookup");
    let mut i = 0usize;
    group.bench_function("hit", |b| {
        b.iter(|| {
            i = (i + 7919) % ENTRIES;
            let found = matches!(cache.lookup(&keys[i], &none), Lookup::Found(_));
            black_box(found)
        })
    });
    let missing = CacheKey::new("GET\nexample.com\n/nothing-here");
    group.bench_function("miss", |b| {
        b.iter(|| black_box(matches!(cache.lookup(&missing, &none), Lookup::Miss { .. })))
    });
    let varied = CacheKey::new("GET\nexample.com\n/varied");
    let mut gzip = HeaderMap::new();
    gzip.insert("accept-encoding", HeaderValue::from_static("gzip, br"));
    store(&cache, &varied, &gzip, true, b"zipped");
    group.bench_function("hit_vary_variant", |b| {
        b.iter(|| black_box(matches!(cache.lookup(&varied, &gzip), Lookup::Found(_))))
    });
    let mut req = RequestHeader::new(Method::GET, Uri::from_static("/static/app.js?v=3"));
    req.headers
        .insert("host", HeaderValue::from_static("example.com"));
    group.bench_function("key_from_request", |b| {
        b.iter(|| black_box(CacheKey::from_request(black_box(&req))))
    });
    group.finish();
}

fn insert(c: &mut Criterion) {
    let (cache, keys) = filled_cache();
    let none = HeaderMap::new();
    let mut group = c.benchmark_group("cache_insert");
    for size in [1024usize, 64 * 1024] {
        let body = vec![b'y'; size];
        let mut i = 0usize;
        group.bench_function(format!("fill_{}k", size / 1024), |b| {
            b.iter(|| {
                i = (i + 1) % ENTRIES;
                store(&cache, &keys[i], &none, false, &body);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookup, insert);
criterion_main!(benches);

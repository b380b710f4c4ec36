//! An `HttpCache` over memory in front of disk, through the public API: hits survive a
//! new cache on the same directory (a restart), large responses live on disk only,
//! what memory evicts is still found on disk, and the counters say which tier answered.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use pingora_cache::{
    CacheKey, CacheMeta, CacheOptions, Cacheability, DiskStorage, HttpCache, Lookup,
    ResponseTiming, StoreRules, TieredStorage,
};
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("pingora-cache-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tiered(dir: &TempDir, memory: u64, disk: u64) -> HttpCache {
    let disk = DiskStorage::open(&dir.0, disk).expect("open the cache directory");
    HttpCache::new(
        Arc::new(TieredStorage::new(memory, disk)),
        CacheOptions::default(),
    )
}

fn meta() -> CacheMeta {
    CacheMeta {
        stored_at: Instant::now(),
        initial_age: Duration::ZERO,
        lifetime: Duration::from_secs(600),
        always_revalidate: false,
        never_stale: false,
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
        shareable_with_auth: false,
    }
}

fn key(i: usize) -> CacheKey {
    CacheKey::new(format!("GET\nexample.com\n/obj/{i}"))
}

fn store(
    cache: &HttpCache,
    key: &CacheKey,
    request: &HeaderMap,
    head: ResponseHeader,
    body: &[u8],
) {
    let mut fill = cache.start_fill(key, request, head, meta(), None);
    fill.push(body);
    assert!(fill.finish(None).is_some(), "{key} stored");
}

async fn body_of(cache: &HttpCache, key: &CacheKey, request: &HeaderMap) -> Option<bytes::Bytes> {
    match cache.lookup_async(key, request).await {
        Lookup::Found(found) => Some(found.response.body.clone()),
        Lookup::Miss { .. } => None,
    }
}

#[tokio::test]
async fn hits_survive_a_restart_with_their_variants_and_age() {
    let dir = TempDir::new("restart");
    let plain = HeaderMap::new();
    let mut gzip = HeaderMap::new();
    gzip.insert("accept-encoding", HeaderValue::from_static("gzip"));
    {
        let cache = tiered(&dir, 1 << 20, 16 << 20);
        for i in 0..10 {
            store(
                &cache,
                &key(i),
                &plain,
                ResponseHeader::new(StatusCode::OK),
                format!("body {i}").as_bytes(),
            );
        }
        let mut varied = ResponseHeader::new(StatusCode::OK);
        varied
            .headers
            .insert("vary", HeaderValue::from_static("accept-encoding"));
        store(&cache, &key(100), &gzip, varied.clone(), b"zipped");
        store(&cache, &key(100), &plain, varied, b"plain");
        cache.flush();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cache = tiered(&dir, 1 << 20, 16 << 20);
    for i in 0..10 {
        assert_eq!(
            body_of(&cache, &key(i), &plain).await.unwrap(),
            format!("body {i}")
        );
    }
    assert_eq!(body_of(&cache, &key(100), &gzip).await.unwrap(), "zipped");
    assert_eq!(body_of(&cache, &key(100), &plain).await.unwrap(), "plain");
    let stats = cache.stats();
    assert_eq!(stats.hits_disk, 12, "{stats:?}");
    // Read from disk once, then from memory.
    assert_eq!(body_of(&cache, &key(0), &plain).await.unwrap(), "body 0");
    assert_eq!(cache.stats().hits_memory, 1);
    // The time spent on disk counts in the age.
    let Lookup::Found(found) = cache.lookup_async(&key(1), &plain).await else {
        panic!("stored")
    };
    assert!(found.response.meta.age(Instant::now()) >= Duration::from_secs(1));
    // The memory-only lookup does not reach the disk.
    let other = tiered(&TempDir::new("empty"), 1 << 20, 1 << 20);
    assert!(matches!(other.lookup(&key(1), &plain), Lookup::Miss { .. }));
    // A purge reaches both tiers, also across a restart.
    assert!(cache.purge(&key(3)));
    cache.flush();
    drop(cache);
    let cache = tiered(&dir, 1 << 20, 16 << 20);
    assert!(body_of(&cache, &key(3), &plain).await.is_none());
    assert!(body_of(&cache, &key(4), &plain).await.is_some());
}

#[tokio::test]
async fn memory_evictions_and_large_responses_are_found_on_disk() {
    let dir = TempDir::new("tiers");
    // 256 KiB of memory (entries of at most 32 KiB there), 8 MiB of disk.
    let cache = tiered(&dir, 256 << 10, 8 << 20);
    let none = HeaderMap::new();
    let large = vec![b'L'; 100_000];
    store(
        &cache,
        &key(0),
        &none,
        ResponseHeader::new(StatusCode::OK),
        &large,
    );
    for i in 1..=60 {
        store(
            &cache,
            &key(i),
            &none,
            ResponseHeader::new(StatusCode::OK),
            &[b'x'; 10_000],
        );
    }
    cache.flush();
    let stats = cache.stats();
    assert!(stats.storage.memory_evictions > 0, "{stats:?}");
    assert!(stats.storage.memory_bytes <= 256 << 10, "{stats:?}");
    assert_eq!(stats.storage.disk_entries, 61, "{stats:?}");
    assert!(
        matches!(cache.lookup(&key(0), &none), Lookup::Miss { .. }),
        "large: disk only"
    );
    // The newest small entry is in memory; the first ones were evicted to disk.
    assert!(matches!(cache.lookup(&key(60), &none), Lookup::Found(_)));
    assert!(matches!(cache.lookup(&key(1), &none), Lookup::Miss { .. }));
    let large = body_of(&cache, &key(0), &none).await.unwrap();
    assert_eq!(large.len(), 100_000);
    for i in 1..=60 {
        let body = body_of(&cache, &key(i), &none).await.unwrap();
        assert_eq!(body.len(), 10_000, "{i}");
    }
    let stats = cache.stats();
    assert!(stats.hits_disk >= 2 && stats.hits_memory >= 1, "{stats:?}");
    assert_eq!(stats.hits_disk + stats.hits_memory, 62);
    assert!(stats.hit_bytes_disk >= 110_000);
    // The memory-only lookups of the large entry and of an evicted one.
    assert_eq!(stats.misses, 2);
    assert!((stats.hit_ratio() - 62.0 / 64.0).abs() < 1e-9);
}

#[tokio::test]
async fn too_large_responses_are_refused_and_counted() {
    let dir = TempDir::new("refused");
    let disk = DiskStorage::open(&dir.0, 1 << 20).expect("open");
    let cache = HttpCache::new(
        Arc::new(TieredStorage::new(64 << 10, disk)),
        CacheOptions {
            max_entry_bytes: 50_000,
            ..CacheOptions::default()
        },
    );
    let mut head = ResponseHeader::new(StatusCode::OK);
    head.headers
        .insert("content-length", HeaderValue::from_static("60000"));
    let mut fill = cache.start_fill(&key(1), &HeaderMap::new(), head, meta(), None);
    assert!(!fill.is_alive(), "announced too large");
    fill.push(b"x");
    assert!(fill.finish(None).is_none());
    let mut fill = cache.start_fill(
        &key(2),
        &HeaderMap::new(),
        ResponseHeader::new(StatusCode::OK),
        meta(),
        None,
    );
    fill.push(&[0; 30_000]);
    fill.push(&[0; 30_000]);
    assert!(fill.finish(None).is_none());
    assert_eq!(cache.stats().admissions_refused, 2);
    assert!(body_of(&cache, &key(2), &HeaderMap::new()).await.is_none());
    assert_eq!(cache.stats().misses, 1);
}

fn request(method: Method, target: &str) -> RequestHeader {
    let mut req = RequestHeader::new(method, Uri::try_from(target).unwrap());
    req.headers
        .insert("host", HeaderValue::from_static("example.com"));
    req
}

#[test]
fn cookies_are_stored_only_when_allowed_and_never_replayed() {
    let get = request(Method::GET, "/page");
    let mut resp = ResponseHeader::new(StatusCode::OK);
    resp.headers
        .insert("cache-control", HeaderValue::from_static("max-age=60"));
    resp.headers
        .insert("set-cookie", HeaderValue::from_static("session=alice"));
    let timing = ResponseTiming::received_now(SystemTime::now());
    let strict = HttpCache::in_memory(1 << 20, Duration::from_secs(1));
    assert!(matches!(
        strict.response_cacheability(&get, &resp, &timing),
        Cacheability::NoStore(_)
    ));
    let lenient = HttpCache::new(
        Arc::new(pingora_cache::MemoryStorage::new(1 << 20)),
        CacheOptions {
            rules: StoreRules {
                store_set_cookie: true,
            },
            ..CacheOptions::default()
        },
    );
    let Cacheability::Store(meta) = lenient.response_cacheability(&get, &resp, &timing) else {
        panic!("allowed")
    };
    let key = CacheKey::from_request(&get);
    let mut fill = lenient.start_fill(&key, &get.headers, resp.clone(), meta, None);
    fill.push(b"hello");
    fill.finish(None);
    let Lookup::Found(found) = lenient.lookup(&key, &get.headers) else {
        panic!("stored")
    };
    assert!(!found.response.head.headers.contains_key("set-cookie"));
    assert_eq!(found.response.head.headers["cache-control"], "max-age=60");
}

#[test]
fn a_successful_unsafe_request_invalidates_its_uri_and_same_host_locations() {
    let cache = HttpCache::in_memory(1 << 20, Duration::from_secs(1));
    let stored_paths = ["/items", "/items/7", "/items/7?full=1", "/elsewhere"];
    for path in stored_paths {
        let key = CacheKey::from_request(&request(Method::GET, path));
        store(
            &cache,
            &key,
            &HeaderMap::new(),
            ResponseHeader::new(StatusCode::OK),
            b"x",
        );
    }
    let post = request(Method::POST, "/items");
    let mut resp = HeaderMap::new();
    resp.insert("location", HeaderValue::from_static("/items/7"));
    resp.insert(
        "content-location",
        HeaderValue::from_static("http://other.example/elsewhere"),
    );
    assert_eq!(cache.invalidate_after_unsafe(&post, &resp), 2);
    let present = |path: &str| {
        let key = CacheKey::from_request(&request(Method::GET, path));
        matches!(cache.lookup(&key, &HeaderMap::new()), Lookup::Found(_))
    };
    assert!(!present("/items") && !present("/items/7"));
    assert!(present("/items/7?full=1") && present("/elsewhere"));
    assert!(cache.invalidate("EXAMPLE.com", "/elsewhere"));
    assert!(!present("/elsewhere"));
}

#[tokio::test]
async fn purge_by_prefix_reaches_the_disk_tier_across_a_restart() {
    use pingora_cache::PurgeTarget;
    let dir = TempDir::new("purge-prefix");
    let plain = HeaderMap::new();
    let path_key = |p: &str| CacheKey::from_parts(&Method::GET, "example.com", p);
    {
        let cache = tiered(&dir, 1 << 20, 8 << 20);
        for p in ["/img/a", "/img/b", "/css/c"] {
            store(
                &cache,
                &path_key(p),
                &plain,
                ResponseHeader::new(StatusCode::OK),
                b"x",
            );
        }
        cache.flush();
    }
    let cache = tiered(&dir, 1 << 20, 8 << 20);
    // Read one back into memory: it is in both tiers and counts once.
    assert!(body_of(&cache, &path_key("/img/a"), &plain).await.is_some());
    let purged = cache.purge_target(None, PurgeTarget::Prefix("/img/"));
    assert_eq!(purged, 2);
    cache.flush();
    assert!(body_of(&cache, &path_key("/img/a"), &plain).await.is_none());
    assert!(body_of(&cache, &path_key("/img/b"), &plain).await.is_none());
    assert!(body_of(&cache, &path_key("/css/c"), &plain).await.is_some());
    drop(cache);
    let cache = tiered(&dir, 1 << 20, 8 << 20);
    assert!(body_of(&cache, &path_key("/img/b"), &plain).await.is_none());
    assert_eq!(cache.stats().storage.disk_entries, 1);
}

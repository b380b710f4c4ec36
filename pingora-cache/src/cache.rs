//! [`HttpCache`]: lookups that follow `Vary`, fills, refreshes and purges over a
//! [`Storage`], with the [`CacheLock`] of its keys.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{CONTENT_LENGTH, SET_COOKIE};
use http::HeaderMap;
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};

use crate::fill::Fill;
use crate::freshness::CacheMeta;
use crate::key::CacheKey;
use crate::lock::{CacheLock, Locked, WritePermit};
use crate::memory::MemoryStorage;
use crate::object::{CachedResponse, Entry, VaryIndex};
use crate::partial::PartialResponse;
use crate::rules::{vary_names, Cacheability, ResponseTiming, StoreRules};
use crate::stats::{CacheStats, LookupCounters, Tier};
use crate::storage::{Located, Storage};

/// Settings of an [`HttpCache`].
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// How long a request waits for another one fetching the same key before it goes
    /// to the origin itself.
    pub lock_timeout: Duration,
    /// The largest response stored; also bounded by the storage's own limit.
    pub max_entry_bytes: u64,
    /// What is stored beyond RFC 9111's rules ([`HttpCache::response_cacheability`]).
    pub rules: StoreRules,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            lock_timeout: Duration::from_secs(2),
            max_entry_bytes: u64::MAX,
            rules: StoreRules::default(),
        }
    }
}

/// An HTTP cache: a storage, the lock that collapses concurrent misses, and the logic
/// that maps requests to entries (including `Vary` variants).
pub struct HttpCache {
    storage: Arc<dyn Storage>,
    lock: Arc<CacheLock>,
    opts: CacheOptions,
    generation: AtomicU64,
    counters: Arc<LookupCounters>,
}

/// The result of [`HttpCache::lookup`].
pub enum Lookup {
    /// A stored response, fresh or not.
    Found(Found),
    /// Nothing stored for this request; `lock_key` is the key to lock for the fetch.
    Miss {
        /// The key whose lock collapses concurrent fetches of this request.
        lock_key: CacheKey,
    },
}

/// A stored response and the key it is stored under.
#[derive(Clone)]
pub struct Found {
    /// The storage key (a variant key for responses with `Vary`).
    pub key: CacheKey,
    /// The response.
    pub response: Arc<CachedResponse>,
}

impl HttpCache {
    /// A cache over `storage`.
    pub fn new(storage: Arc<dyn Storage>, opts: CacheOptions) -> HttpCache {
        // Variant generations outlive the process on disk: start past any used before
        // (wall-clock nanoseconds), so an index made after a purge and a restart never
        // leads to variants stored before the purge.
        let first_generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        HttpCache {
            storage,
            lock: CacheLock::new(),
            opts,
            generation: AtomicU64::new(first_generation),
            counters: Arc::default(),
        }
    }

    /// An in-memory cache of at most `max_bytes` (see [`MemoryStorage`]).
    pub fn in_memory(max_bytes: u64, lock_timeout: Duration) -> HttpCache {
        HttpCache::new(
            Arc::new(MemoryStorage::new(max_bytes)),
            CacheOptions {
                lock_timeout,
                ..CacheOptions::default()
            },
        )
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// How long a request waits for another one fetching the same key.
    pub fn lock_timeout(&self) -> Duration {
        self.opts.lock_timeout
    }

    /// The largest response body this cache stores.
    pub fn max_entry_bytes(&self) -> u64 {
        self.opts
            .max_entry_bytes
            .min(self.storage.max_entry_bytes())
    }

    /// The stored response for a request with key `primary` and headers `request`,
    /// looked up in memory only (never waits): directly under the key, or, when the
    /// resource varies, under the variant key made of the request's values of the
    /// `Vary` headers. Use [`HttpCache::lookup_async`] to reach a disk tier too.
    pub fn lookup(&self, primary: &CacheKey, request: &HeaderMap) -> Lookup {
        let Some(entry) = self.storage.get(primary) else {
            return self.miss(primary.clone());
        };
        match &*entry {
            Entry::Response(r) => self.found(primary.clone(), r, Tier::Memory),
            Entry::Variants(index) => {
                let key = primary.variant(index.generation, &index.names, request);
                match self.storage.get(&key).as_deref() {
                    Some(Entry::Response(r)) => self.found(key, r, Tier::Memory),
                    _ => self.miss(key),
                }
            }
        }
    }

    /// As [`HttpCache::lookup`], in every tier of the storage: an entry found on disk
    /// is read on tokio's blocking pool (never on a runtime thread) and put back in
    /// memory. A memory hit completes at once, without allocating.
    pub async fn lookup_async(&self, primary: &CacheKey, request: &HeaderMap) -> Lookup {
        let Some((entry, tier)) = self.locate(primary).await else {
            return self.miss(primary.clone());
        };
        match &*entry {
            Entry::Response(r) => self.found(primary.clone(), r, tier),
            Entry::Variants(index) => {
                let key = primary.variant(index.generation, &index.names, request);
                match self.locate(&key).await {
                    Some((entry, tier)) => match &*entry {
                        Entry::Response(r) => self.found(key, r, tier),
                        Entry::Variants(_) => self.miss(key),
                    },
                    None => self.miss(key),
                }
            }
        }
    }

    async fn locate(&self, key: &CacheKey) -> Option<(Arc<Entry>, Tier)> {
        match self.storage.locate(key) {
            Located::Ready(entry) => Some((entry, Tier::Memory)),
            Located::Load(load) => load.run().await.map(|entry| (entry, Tier::Disk)),
            Located::Absent => None,
        }
    }

    fn found(&self, key: CacheKey, response: &Arc<CachedResponse>, tier: Tier) -> Lookup {
        self.counters.hit(tier, response.body.len() as u64);
        Lookup::Found(Found {
            key,
            response: Arc::clone(response),
        })
    }

    fn miss(&self, lock_key: CacheKey) -> Lookup {
        self.counters.miss();
        Lookup::Miss { lock_key }
    }

    /// Whether and how `resp`, the answer to `req`, may be stored, by RFC 9111 and this
    /// cache's [`StoreRules`] (e.g. `store_set_cookie`).
    pub fn response_cacheability(
        &self,
        req: &RequestHeader,
        resp: &ResponseHeader,
        timing: &ResponseTiming,
    ) -> Cacheability {
        self.opts.rules.response_cacheability(req, resp, timing)
    }

    /// This cache's [`StoreRules`].
    pub fn rules(&self) -> &StoreRules {
        &self.opts.rules
    }

    /// Lookups found per tier and their bytes, misses, refused admissions, and the
    /// storage's figures (entries, bytes, evictions, disk writes and errors).
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot(self.storage.stats())
    }

    /// Takes the fetch lock of `key` or a wait on it.
    pub fn lock(&self, key: &CacheKey) -> Locked {
        self.lock.lock(key)
    }

    /// Starts storing `head` (already judged cacheable, with `meta`), the response to a
    /// request with key `primary` and headers `request`. `permit`, if any, is released
    /// once the fill is stored or abandoned.
    ///
    /// The stored copy never keeps `Set-Cookie`: a response that has it is stored only
    /// with [`StoreRules::store_set_cookie`], and then without it.
    pub fn start_fill(
        &self,
        primary: &CacheKey,
        request: &HeaderMap,
        mut head: ResponseHeader,
        meta: CacheMeta,
        permit: Option<WritePermit>,
    ) -> Fill {
        strip_cookies(&mut head);
        let names = vary_names(&head.headers).unwrap_or_default();
        let (target, vary, index) = if names.is_empty() {
            (primary.clone(), None, None)
        } else {
            let existing = match self.storage.get(primary).as_deref() {
                Some(Entry::Variants(index)) if index.names == names => Some(index.generation),
                _ => None,
            };
            let (generation, index) = match existing {
                Some(generation) => (generation, None),
                None => {
                    let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                    let index = VaryIndex {
                        names: names.clone(),
                        generation,
                    };
                    (generation, Some((primary.clone(), index)))
                }
            };
            let key = primary.variant(generation, &names, request);
            (key, Some((names, generation)), index)
        };
        let expected_len = head
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<u64>().ok());
        let partial = PartialResponse::new(target, vary, head, meta, expected_len);
        Fill::new(
            Arc::clone(&self.storage),
            partial,
            index,
            self.max_entry_bytes(),
            permit,
            Arc::clone(&self.counters),
        )
    }

    /// Replaces the response under `found.key` by one with the same body and a new head
    /// and freshness (after a `304`); returns the new response, stored or not.
    pub fn refresh(
        &self,
        found: &Found,
        mut head: ResponseHeader,
        meta: CacheMeta,
    ) -> Arc<CachedResponse> {
        strip_cookies(&mut head);
        let response = Arc::new(CachedResponse {
            head,
            body: found.response.body.clone(),
            trailers: found.response.trailers.clone(),
            meta,
        });
        let entry = Arc::new(Entry::Response(Arc::clone(&response)));
        if let Err(e) = self.storage.put(found.key.clone(), entry) {
            log::debug!("cache: refreshed {} not stored: {e}", found.key);
        }
        response
    }

    /// Removes the entry of `primary`; with variants, the index is removed and every
    /// variant stored before becomes unreachable (and ages out of the cache). True if
    /// anything was removed.
    pub fn purge(&self, primary: &CacheKey) -> bool {
        self.storage.remove(primary)
    }

    /// Removes the entries (with their variants) of requests for `target` on `host`,
    /// or on any host when `host` is `None`; returns how many entries were removed.
    /// Needs a storage that can list its keys ([`Storage::remove_where`]).
    pub fn purge_target(&self, host: Option<&str>, target: PurgeTarget<'_>) -> u64 {
        self.storage.remove_where(&|key| {
            key.request_target().is_some_and(|(h, path)| {
                host.is_none_or(|want| h.eq_ignore_ascii_case(want))
                    && match target {
                        PurgeTarget::Exact(p) => path == p,
                        PurgeTarget::Prefix(p) => path.starts_with(p),
                    }
            })
        })
    }

    /// Entries stored now (0 when the storage cannot count them).
    pub fn entries(&self) -> u64 {
        self.storage.entries()
    }

    /// Bytes counted against the storage's budget now.
    pub fn used_bytes(&self) -> u64 {
        self.storage.used_bytes()
    }

    /// Removes one stored response (e.g. one found stale that may no longer be stored).
    pub fn remove(&self, key: &CacheKey) -> bool {
        self.storage.remove(key)
    }

    /// Removes the stored `GET` response (every variant) of `host` and
    /// `path_and_query`, as stored under the default key ([`CacheKey::from_parts`]).
    /// True if anything was removed.
    pub fn invalidate(&self, host: &str, path_and_query: &str) -> bool {
        self.purge(&CacheKey::from_parts(
            &http::Method::GET,
            host,
            path_and_query,
        ))
    }

    /// RFC 9111 §4.4, after a successful (2xx or 3xx) unsafe request `req` whose
    /// response carried `response`: invalidates the target URI, and the `Location` and
    /// `Content-Location` URIs when they are on the same host. Returns how many entries
    /// were removed.
    pub fn invalidate_after_unsafe(&self, req: &RequestHeader, response: &HeaderMap) -> usize {
        let host = req.host().unwrap_or("");
        let mut removed = usize::from(self.invalidate(host, req.path_and_query()));
        for name in [http::header::LOCATION, http::header::CONTENT_LOCATION] {
            let Some(target) = response.get(name).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            if let Some(path) =
                crate::invalidate::same_host_target(host, req.path_and_query(), target)
            {
                removed += usize::from(self.invalidate(host, &path));
            }
        }
        removed
    }

    /// Blocks until writes queued for a disk tier are done (at shutdown).
    pub fn flush(&self) {
        self.storage.flush();
    }
}

/// Removes `Set-Cookie` from a head about to be stored.
fn strip_cookies(head: &mut ResponseHeader) {
    head.headers.remove(SET_COOKIE);
    head.headers.remove("set-cookie2");
}

/// Which requests' entries [`HttpCache::purge_target`] removes, by path and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeTarget<'a> {
    /// Exactly this path and query, e.g. `/img/logo.png?v=2`.
    Exact(&'a str),
    /// Every path and query starting with this, e.g. `/img/`.
    Prefix(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{Locked, WaitOutcome};
    use bytes::Bytes;
    use http::{HeaderValue, StatusCode};
    use std::time::Instant;

    fn meta() -> CacheMeta {
        CacheMeta {
            stored_at: Instant::now(),
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(60),
            always_revalidate: false,
            never_stale: false,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            shareable_with_auth: false,
        }
    }

    fn head(vary: Option<&'static str>) -> ResponseHeader {
        let mut h = ResponseHeader::new(StatusCode::OK);
        if let Some(v) = vary {
            h.headers.insert("vary", HeaderValue::from_static(v));
        }
        h
    }

    fn req(accept_encoding: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = accept_encoding {
            h.insert("accept-encoding", HeaderValue::from_static(v));
        }
        h
    }

    fn body_of(cache: &HttpCache, key: &CacheKey, request: &HeaderMap) -> Option<Bytes> {
        match cache.lookup(key, request) {
            Lookup::Found(f) => Some(f.response.body.clone()),
            Lookup::Miss { .. } => None,
        }
    }

    fn store(
        cache: &HttpCache,
        key: &CacheKey,
        request: &HeaderMap,
        h: ResponseHeader,
        body: &[u8],
    ) {
        let mut fill = cache.start_fill(key, request, h, meta(), None);
        fill.push(body);
        assert!(fill.finish(None).is_some());
    }

    #[test]
    fn fill_then_hit() {
        let cache = HttpCache::in_memory(1 << 20, Duration::from_secs(1));
        let key = CacheKey::new("k");
        assert!(body_of(&cache, &key, &req(None)).is_none());
        let mut fill = cache.start_fill(&key, &req(None), head(None), meta(), None);
        fill.push(b"hello ");
        assert!(
            body_of(&cache, &key, &req(None)).is_none(),
            "visible before it is complete"
        );
        fill.push(b"world");
        fill.finish(None);
        assert_eq!(body_of(&cache, &key, &req(None)).unwrap(), "hello world");
        assert!(cache.purge(&key));
        assert!(!cache.purge(&key));
        assert!(body_of(&cache, &key, &req(None)).is_none());
    }

    #[test]
    fn dropped_or_oversized_fills_are_never_stored() {
        let cache = HttpCache::new(
            Arc::new(MemoryStorage::new(1 << 20)),
            CacheOptions {
                max_entry_bytes: 10,
                ..CacheOptions::default()
            },
        );
        let key = CacheKey::new("k");
        let mut fill = cache.start_fill(&key, &req(None), head(None), meta(), None);
        fill.push(b"part");
        drop(fill);
        assert!(body_of(&cache, &key, &req(None)).is_none());
        let mut fill = cache.start_fill(&key, &req(None), head(None), meta(), None);
        fill.push(b"0123456789");
        fill.push(b"x");
        assert!(!fill.is_alive());
        assert!(fill.finish(None).is_none());
        assert!(body_of(&cache, &key, &req(None)).is_none());
    }

    #[test]
    fn variants_are_kept_apart_and_purged_together() {
        let cache = HttpCache::in_memory(1 << 20, Duration::from_secs(1));
        let key = CacheKey::new("k");
        let gzip = req(Some("gzip"));
        let plain = req(None);
        store(
            &cache,
            &key,
            &gzip,
            head(Some("Accept-Encoding")),
            b"zipped",
        );
        assert_eq!(body_of(&cache, &key, &gzip).unwrap(), "zipped");
        assert!(body_of(&cache, &key, &plain).is_none());
        store(
            &cache,
            &key,
            &plain,
            head(Some("accept-encoding")),
            b"plain",
        );
        assert_eq!(body_of(&cache, &key, &gzip).unwrap(), "zipped");
        assert_eq!(body_of(&cache, &key, &plain).unwrap(), "plain");
        assert!(cache.purge(&key));
        assert!(body_of(&cache, &key, &gzip).is_none());
        // A new index after the purge does not bring old variants back.
        store(
            &cache,
            &key,
            &plain,
            head(Some("accept-encoding")),
            b"plain2",
        );
        assert!(body_of(&cache, &key, &gzip).is_none());
        assert_eq!(body_of(&cache, &key, &plain).unwrap(), "plain2");
    }

    #[test]
    fn purge_by_target_and_prefix_takes_variants_along() {
        use http::Method;
        let cache = HttpCache::in_memory(1 << 20, Duration::from_secs(1));
        let key = |host: &str, path: &str| CacheKey::from_parts(&Method::GET, host, path);
        let plain = req(None);
        let gzip = req(Some("gzip"));
        for (host, path) in [
            ("a.test", "/img/1"),
            ("a.test", "/img/2"),
            ("b.test", "/img/1"),
        ] {
            store(&cache, &key(host, path), &plain, head(None), b"x");
        }
        let varied = key("a.test", "/css/site.css");
        store(&cache, &varied, &gzip, head(Some("Accept-Encoding")), b"z");
        assert_eq!(cache.entries(), 5, "four responses, one variant index");
        assert!(cache.used_bytes() > 0);
        assert_eq!(
            cache.purge_target(Some("A.test"), PurgeTarget::Exact("/img/1")),
            1
        );
        assert!(body_of(&cache, &key("b.test", "/img/1"), &plain).is_some());
        assert_eq!(cache.purge_target(None, PurgeTarget::Prefix("/img/")), 2);
        assert_eq!(
            cache.purge_target(None, PurgeTarget::Exact("/css/site.css")),
            2
        );
        assert!(body_of(&cache, &varied, &gzip).is_none());
        assert_eq!(cache.entries(), 0);
    }

    #[test]
    fn refresh_keeps_the_body() {
        let cache = HttpCache::in_memory(1 << 20, Duration::from_secs(1));
        let key = CacheKey::new("k");
        store(&cache, &key, &req(None), head(None), b"body");
        let Lookup::Found(found) = cache.lookup(&key, &req(None)) else {
            panic!("stored")
        };
        let mut new_head = head(None);
        new_head
            .headers
            .insert("x-new", HeaderValue::from_static("1"));
        cache.refresh(&found, new_head, meta());
        let Lookup::Found(found) = cache.lookup(&key, &req(None)) else {
            panic!("still stored")
        };
        assert_eq!(found.response.body, "body");
        assert!(found.response.head.headers.contains_key("x-new"));
    }

    #[tokio::test]
    async fn the_fill_releases_the_lock_after_storing() {
        let cache = Arc::new(HttpCache::in_memory(1 << 20, Duration::from_secs(1)));
        let key = CacheKey::new("k");
        let Locked::Writer(permit) = cache.lock(&key) else {
            panic!("first")
        };
        let Locked::Reader(wait) = cache.lock(&key) else {
            panic!("second")
        };
        let waiter = {
            let cache = Arc::clone(&cache);
            let key = key.clone();
            tokio::spawn(async move {
                assert_eq!(
                    wait.wait(Duration::from_secs(5)).await,
                    WaitOutcome::Released
                );
                body_of(&cache, &key, &HeaderMap::new())
            })
        };
        let mut fill = cache.start_fill(&key, &req(None), head(None), meta(), Some(permit));
        fill.push(b"done");
        fill.finish(None);
        assert_eq!(waiter.await.unwrap().unwrap(), "done");
    }
}

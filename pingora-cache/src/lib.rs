#![doc = include_str!("../README.md")]
//!
//! The pieces, from the bottom up:
//! - [`CacheKey`]: what identifies a cached response;
//! - [`CacheControl`], [`http_date`], [`freshness`] and [`rules`]: whether a response may
//!   be stored, for how long it is fresh, and when a request may use the cache;
//! - [`Storage`]: where entries live: [`MemoryStorage`] (one byte budget, scan-resistant
//!   admission and eviction), [`DiskStorage`] (a file per entry, surviving restarts) and
//!   [`TieredStorage`] (memory in front of disk);
//! - [`CacheLock`]: one fetch per key at a time, the others wait;
//! - [`HttpCache`] and [`Fill`]: lookups (following `Vary`), streaming fills, refreshes
//!   after a `304`, purges and invalidations, and [`CacheStats`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
pub mod cache_control;
pub mod conditional;
mod disk;
mod error;
mod etag;
mod fill;
pub mod freshness;
pub mod http_date;
mod invalidate;
mod key;
mod lock;
mod lru;
mod memory;
mod object;
mod partial;
pub mod range;
pub mod revalidate;
pub mod rules;
mod stats;
mod storage;
pub mod surrogate;
mod tiered;

pub use cache::{CacheOptions, Found, HttpCache, Lookup, PurgeTarget};
pub use cache_control::CacheControl;
pub use disk::DiskStorage;
pub use error::CacheError;
pub use fill::Fill;
pub use freshness::CacheMeta;
pub use key::CacheKey;
pub use lock::{CacheLock, FillWait, LockWait, Locked, WaitOutcome, WritePermit};
pub use memory::{EvictionSink, MemoryStorage};
pub use object::{CachedResponse, Entry, VaryIndex};
pub use partial::{PartialResponse, Progress};
pub use rules::{Cacheability, RequestPolicy, ResponseTiming, StoreRules};
pub use stats::{CacheStats, StorageStats};
pub use storage::{Located, SlowLoad, Storage};
pub use tiered::TieredStorage;

/// The value of the `X-Cache-Status` response header: how the cache answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from a fresh cached entry.
    Hit,
    /// Not in the cache (or not cacheable): fetched from the origin.
    Miss,
    /// A stale entry was served (origin failing with `stale-if-error`, or another
    /// request revalidating it within `stale-while-revalidate`).
    Stale,
    /// The entry was stale and the origin sent a full new response.
    Expired,
    /// The entry was stale, the origin confirmed it with `304 Not Modified`.
    Revalidated,
}

impl CacheStatus {
    /// The header name the proxy uses for it.
    pub const HEADER: &'static str = "x-cache-status";

    /// The header value: `HIT`, `MISS`, `STALE`, `EXPIRED` or `REVALIDATED`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Expired => "EXPIRED",
            CacheStatus::Revalidated => "REVALIDATED",
        }
    }
}

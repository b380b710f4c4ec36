//! [`Storage`]: where cache entries live. Implement it to plug in your own store.

use std::sync::Arc;

use crate::error::CacheError;
use crate::key::CacheKey;
use crate::object::Entry;

/// A store of cache entries, shared by every request of a cache.
///
/// Implementations must be safe to call from many threads at once and should not block
/// for long: they are called from async tasks. Entries are immutable once stored; an
/// update is a new `put` under the same key.
pub trait Storage: Send + Sync + 'static {
    /// The entry under `key`, marking it recently used.
    fn get(&self, key: &CacheKey) -> Option<Arc<Entry>>;

    /// Stores `entry` under `key`, replacing any previous one and evicting others if
    /// room is needed. Fails when the entry is larger than [`Storage::max_entry_bytes`].
    fn put(&self, key: CacheKey, entry: Arc<Entry>) -> Result<(), CacheError>;

    /// Removes the entry under `key`; true if there was one.
    fn remove(&self, key: &CacheKey) -> bool;

    /// Bytes currently used by entries (as counted by [`Entry::size`] plus key sizes).
    fn used_bytes(&self) -> u64;

    /// The largest entry (body and headers) a `put` accepts.
    fn max_entry_bytes(&self) -> u64;

    /// Entries stored (responses and variant indexes). The default, for a storage
    /// that cannot count them, is 0.
    fn entries(&self) -> u64 {
        0
    }

    /// Removes every entry whose key `matches` (a purge by prefix, from the admin
    /// endpoint); returns how many were removed. The default, for a storage that
    /// cannot list its keys, removes nothing.
    fn remove_where(&self, matches: &dyn Fn(&CacheKey) -> bool) -> u64 {
        let _ = matches;
        0
    }
}

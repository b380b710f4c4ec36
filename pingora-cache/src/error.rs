//! The error type of the cache.

/// Why the cache refused something.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// An entry is larger than one entry may be in this storage.
    #[error("cache entry of {size} bytes is larger than the {limit} bytes one entry may take")]
    TooLarge {
        /// Size of the refused entry.
        size: u64,
        /// Largest size accepted.
        limit: u64,
    },
    /// A custom storage failed.
    #[error("cache storage failed: {0}")]
    Storage(String),
}

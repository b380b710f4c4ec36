//! What the storage holds: cached responses, and the index of a resource's variants.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use pingora_core::protocols::http::ResponseHeader;

use crate::freshness::CacheMeta;

/// Fixed bytes counted per entry besides its headers and body (bookkeeping).
const ENTRY_OVERHEAD: u64 = 128;

/// A complete cached response.
#[derive(Debug, Clone)]
pub struct CachedResponse {
    /// The response head as stored (hop-by-hop headers removed).
    pub head: ResponseHeader,
    /// The whole body.
    pub body: Bytes,
    /// Trailers of a chunked response, if it had any.
    pub trailers: Option<HeaderMap>,
    /// Freshness information.
    pub meta: CacheMeta,
}

impl CachedResponse {
    /// Bytes it takes, for size accounting: headers, body, trailers and a fixed overhead.
    pub fn size(&self) -> u64 {
        ENTRY_OVERHEAD
            + headers_size(&self.head.headers)
            + self.body.len() as u64
            + self.trailers.as_ref().map_or(0, headers_size)
    }
}

/// Stored under the primary key of a resource whose responses carry `Vary`: the header
/// names they vary on, and the generation that the variant keys include.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaryIndex {
    /// The `Vary` header names, lowercased and sorted.
    pub names: Vec<HeaderName>,
    /// Changes whenever the index is replaced, so older variants are never found again.
    pub generation: u64,
}

/// One storage entry.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A response (under a primary key, or a variant key).
    Response(Arc<CachedResponse>),
    /// The variant index of a resource (under its primary key).
    Variants(VaryIndex),
}

impl Entry {
    /// Bytes it takes, for size accounting.
    pub fn size(&self) -> u64 {
        match self {
            Entry::Response(r) => r.size(),
            Entry::Variants(v) => {
                ENTRY_OVERHEAD + v.names.iter().map(|n| n.as_str().len() as u64).sum::<u64>()
            }
        }
    }
}

fn headers_size(h: &HeaderMap) -> u64 {
    h.iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum()
}

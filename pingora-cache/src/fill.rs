//! [`Fill`]: a response being written into the cache while it streams to the client.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use pingora_core::protocols::http::ResponseHeader;

use crate::freshness::CacheMeta;
use crate::key::CacheKey;
use crate::lock::WritePermit;
use crate::object::{CachedResponse, Entry, VaryIndex};
use crate::stats::LookupCounters;
use crate::storage::Storage;

/// A response being stored. Feed it the body with [`Fill::push`] and end it with
/// [`Fill::finish`]; nothing is stored before that, so a fill that is dropped (the
/// origin cut the body, the client went away) or grew too large is never served.
pub struct Fill {
    storage: Arc<dyn Storage>,
    /// Where the response goes (a variant key when it has `Vary`).
    target: CacheKey,
    /// A new variant index to store under the primary key, when there is `Vary`.
    index: Option<(CacheKey, VaryIndex)>,
    head: ResponseHeader,
    meta: CacheMeta,
    body: BytesMut,
    limit: u64,
    /// Set once the body passed `limit`: the fill is dead.
    too_large: bool,
    permit: Option<WritePermit>,
    counters: Arc<LookupCounters>,
}

impl Fill {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        target: CacheKey,
        index: Option<(CacheKey, VaryIndex)>,
        head: ResponseHeader,
        meta: CacheMeta,
        limit: u64,
        expected_len: Option<u64>,
        permit: Option<WritePermit>,
        counters: Arc<LookupCounters>,
    ) -> Fill {
        let too_large = expected_len.is_some_and(|n| n > limit);
        let capacity = if too_large {
            0
        } else {
            expected_len.unwrap_or(0).min(limit) as usize
        };
        let mut fill = Fill {
            storage,
            target,
            index,
            head,
            meta,
            body: BytesMut::with_capacity(capacity),
            limit,
            too_large,
            permit,
            counters,
        };
        if too_large {
            fill.give_up();
        }
        fill
    }

    /// Adds a piece of the body. Past the size limit the fill is abandoned (the waiters
    /// are released at once and go to the origin themselves).
    pub fn push(&mut self, chunk: &[u8]) {
        if self.too_large {
            return;
        }
        if (self.body.len() + chunk.len()) as u64 > self.limit {
            log::debug!(
                "cache: {} is larger than {} bytes; not stored",
                self.target,
                self.limit
            );
            self.too_large = true;
            self.give_up();
            return;
        }
        self.body.extend_from_slice(chunk);
    }

    /// Whether the fill can still be stored.
    pub fn is_alive(&self) -> bool {
        !self.too_large
    }

    fn give_up(&mut self) {
        self.counters.refused();
        self.body = BytesMut::new();
        self.permit = None;
    }

    /// Ends the body (with the trailers of a chunked response, if any) and stores the
    /// response; returns it when stored.
    pub fn finish(mut self, trailers: Option<&HeaderMap>) -> Option<Arc<CachedResponse>> {
        if self.too_large {
            return None;
        }
        let body: Bytes = std::mem::take(&mut self.body).freeze();
        let response = Arc::new(CachedResponse {
            head: self.head.clone(),
            body,
            trailers: trailers.cloned(),
            meta: self.meta.clone(),
        });
        let stored = self.storage.put(
            self.target.clone(),
            Arc::new(Entry::Response(Arc::clone(&response))),
        );
        if let Err(e) = stored {
            log::debug!("cache: {} not stored: {e}", self.target);
            return None;
        }
        // The variant first, then the index that leads to it.
        if let Some((primary, index)) = self.index.take() {
            if let Err(e) = self.storage.put(primary, Arc::new(Entry::Variants(index))) {
                log::debug!("cache: variant index of {} not stored: {e}", self.target);
                return None;
            }
        }
        // Dropping `self` releases the lock, after the entry became visible.
        Some(response)
    }
}

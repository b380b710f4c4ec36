//! [`Fill`]: a response being written into the cache while it streams to the client.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use crate::key::CacheKey;
use crate::lock::WritePermit;
use crate::object::{CachedResponse, Entry, VaryIndex};
use crate::partial::PartialResponse;
use crate::stats::LookupCounters;
use crate::storage::Storage;

/// A response being stored. Feed it the body with [`Fill::push`] (or
/// [`Fill::push_bytes`]) and end it with [`Fill::finish`]; nothing is stored before
/// that, so a fill that is dropped (the origin cut the body, the client went away) or
/// grew too large is never served from the cache. Requests waiting on the key's lock
/// may follow the body as it arrives ([`PartialResponse`]).
pub struct Fill {
    storage: Arc<dyn Storage>,
    /// The head, freshness, target key and body so far, shared with the waiters.
    partial: Arc<PartialResponse>,
    /// A new variant index to store under the primary key, when there is `Vary`.
    index: Option<(CacheKey, VaryIndex)>,
    received: u64,
    limit: u64,
    /// Set once the body passed `limit`: the fill is dead.
    too_large: bool,
    /// Set once the body ended.
    finished: bool,
    permit: Option<WritePermit>,
    counters: Arc<LookupCounters>,
}

impl Fill {
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        partial: PartialResponse,
        index: Option<(CacheKey, VaryIndex)>,
        limit: u64,
        permit: Option<WritePermit>,
        counters: Arc<LookupCounters>,
    ) -> Fill {
        let too_large = partial.expected_len().is_some_and(|n| n > limit);
        let partial = Arc::new(partial);
        let mut fill = Fill {
            storage,
            partial,
            index,
            received: 0,
            limit,
            too_large,
            finished: false,
            permit,
            counters,
        };
        if too_large {
            fill.give_up();
        } else if let Some(permit) = &fill.permit {
            permit.publish(Arc::clone(&fill.partial));
        }
        fill
    }

    /// The response being filled, as waiters see it.
    pub fn partial(&self) -> &Arc<PartialResponse> {
        &self.partial
    }

    /// Adds a piece of the body (copied). Past the size limit the fill is abandoned
    /// (the waiters are released at once and go to the origin themselves).
    pub fn push(&mut self, chunk: &[u8]) {
        self.push_bytes(Bytes::copy_from_slice(chunk));
    }

    /// Adds a piece of the body without copying it now: it is kept (and readable by
    /// the waiters) until the end of the fill, then copied with the others into one
    /// buffer of the body's exact size.
    pub fn push_bytes(&mut self, chunk: Bytes) {
        if self.too_large {
            return;
        }
        if self.received + chunk.len() as u64 > self.limit {
            log::debug!(
                "cache: {} is larger than {} bytes; not stored",
                self.partial.key(),
                self.limit
            );
            self.too_large = true;
            self.give_up();
            return;
        }
        self.received = self.partial.push(chunk);
    }

    /// Whether the fill can still be stored.
    pub fn is_alive(&self) -> bool {
        !self.too_large
    }

    fn give_up(&mut self) {
        self.counters.refused();
        self.partial.abandon();
        self.permit = None;
    }

    /// Ends the body (with the trailers of a chunked response, if any) and stores the
    /// response; returns it when stored.
    pub fn finish(mut self, trailers: Option<&HeaderMap>) -> Option<Arc<CachedResponse>> {
        if self.too_large {
            return None;
        }
        self.finished = true;
        let body = self.partial.complete();
        let response = Arc::new(CachedResponse {
            head: self.partial.head().clone(),
            body,
            trailers: trailers.cloned(),
            meta: self.partial.meta().clone(),
        });
        let target = self.partial.key().clone();
        let stored = self.storage.put(
            target.clone(),
            Arc::new(Entry::Response(Arc::clone(&response))),
        );
        if let Err(e) = stored {
            log::debug!("cache: {target} not stored: {e}");
            return None;
        }
        // The variant first, then the index that leads to it.
        if let Some((primary, index)) = self.index.take() {
            if let Err(e) = self.storage.put(primary, Arc::new(Entry::Variants(index))) {
                log::debug!("cache: variant index of {target} not stored: {e}");
                return None;
            }
        }
        // Dropping `self` releases the lock, after the entry became visible.
        Some(response)
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        if !self.finished && !self.too_large {
            // Cut short: waiters following the body must not wait for the rest.
            self.partial.abandon();
        }
    }
}

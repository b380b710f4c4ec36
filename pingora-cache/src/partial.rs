//! [`PartialResponse`]: a response being stored, as the requests waiting on its key's
//! lock see it: the head at once, the body as it arrives, and whether the fill
//! completed or was abandoned.
//!
//! A waiter that needs only some bytes (a `Range` request) can answer as soon as they
//! have arrived, without waiting for the rest. Waiters that want the whole response
//! keep waiting for the fill to be stored: they never see a fill that fails later.

use std::sync::{Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName};
use pingora_core::protocols::http::ResponseHeader;
use tokio::sync::watch;

use crate::freshness::CacheMeta;
use crate::key::CacheKey;
use crate::range::ByteRange;

/// How far a fill has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Body bytes received so far; more may come.
    Filling {
        /// Bytes received.
        received: u64,
    },
    /// The whole body arrived: `len` bytes.
    Complete {
        /// The body's length.
        len: u64,
    },
    /// The fill failed (origin cut, too large, client gone): the bytes are gone.
    Abandoned,
}

impl Progress {
    /// Bytes available to read now.
    pub fn available(&self) -> u64 {
        match *self {
            Progress::Filling { received } => received,
            Progress::Complete { len } => len,
            Progress::Abandoned => 0,
        }
    }
}

/// A response being filled into the cache, shared between its [`Fill`](crate::Fill)
/// and the requests waiting on the lock of its key ([`LockWait::wait_for_fill`]).
///
/// [`LockWait::wait_for_fill`]: crate::LockWait::wait_for_fill
pub struct PartialResponse {
    key: CacheKey,
    /// The `Vary` names and index generation of the variant key, when it has one.
    vary: Option<(Vec<HeaderName>, u64)>,
    head: ResponseHeader,
    meta: CacheMeta,
    expected_len: Option<u64>,
    body: Mutex<Pieces>,
    progress: watch::Sender<Progress>,
}

/// The body received so far, in the pieces it came in.
#[derive(Default)]
struct Pieces {
    list: Vec<Bytes>,
    len: u64,
}

impl PartialResponse {
    pub(crate) fn new(
        key: CacheKey,
        vary: Option<(Vec<HeaderName>, u64)>,
        head: ResponseHeader,
        meta: CacheMeta,
        expected_len: Option<u64>,
    ) -> PartialResponse {
        PartialResponse {
            key,
            vary,
            head,
            meta,
            expected_len,
            body: Mutex::new(Pieces::default()),
            progress: watch::Sender::new(Progress::Filling { received: 0 }),
        }
    }

    fn body(&self) -> MutexGuard<'_, Pieces> {
        // Every writer leaves the list consistent before unlocking.
        self.body.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The head as it is being stored.
    pub fn head(&self) -> &ResponseHeader {
        &self.head
    }

    /// Its freshness.
    pub fn meta(&self) -> &CacheMeta {
        &self.meta
    }

    /// The body length announced by `Content-Length`, if any.
    pub fn expected_len(&self) -> Option<u64> {
        self.expected_len
    }

    /// The key it is stored under.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// Whether it is the response for a request with key `primary` and headers
    /// `request` (the same variant, when the response has `Vary`).
    pub fn answers(&self, primary: &CacheKey, request: &HeaderMap) -> bool {
        match &self.vary {
            None => *primary == self.key,
            Some((names, generation)) => primary.variant(*generation, names, request) == self.key,
        }
    }

    /// How far the fill has come now.
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Waits until at least `bytes` body bytes are available, or the fill completed or
    /// was abandoned; returns the progress then. Cancel-safe.
    pub async fn wait_for(&self, bytes: u64) -> Progress {
        let mut rx = self.progress.subscribe();
        let reached = rx
            .wait_for(|p| match *p {
                Progress::Filling { received } => received >= bytes,
                Progress::Complete { .. } | Progress::Abandoned => true,
            })
            .await;
        match reached {
            Ok(p) => *p,
            // The sender lives in `self`: it cannot be gone.
            Err(_) => Progress::Abandoned,
        }
    }

    /// The body bytes of `range` (all of them must be available), as slices of the
    /// received pieces (no copy). Empty when the fill was abandoned meanwhile.
    pub fn slice(&self, range: ByteRange) -> Vec<Bytes> {
        let body = self.body();
        let mut out = Vec::new();
        let mut at = 0u64;
        for piece in body.list.iter() {
            let piece_end = at + piece.len() as u64;
            if piece_end > range.start && at <= range.end {
                let from = range.start.saturating_sub(at) as usize;
                let to = ((range.end + 1).min(piece_end) - at) as usize;
                out.push(piece.slice(from..to));
            }
            if piece_end > range.end {
                break;
            }
            at = piece_end;
        }
        let got: u64 = out.iter().map(|b| b.len() as u64).sum();
        if got != range.len() {
            out.clear();
        }
        out
    }

    /// Adds a piece of the body (the fill's side).
    pub(crate) fn push(&self, piece: Bytes) -> u64 {
        let received = {
            let mut body = self.body();
            body.len += piece.len() as u64;
            body.list.push(piece);
            body.len
        };
        self.progress.send_replace(Progress::Filling { received });
        received
    }

    /// The body ended: returns it in one piece, copied once into a buffer of its exact
    /// size.
    pub(crate) fn complete(&self) -> Bytes {
        let whole = {
            let mut body = self.body();
            // Always copied into a buffer of its own: a piece may be a slice of a larger
            // read buffer, which a stored entry must not keep alive (its size would not
            // count what it holds).
            let mut joined = BytesMut::with_capacity(body.len as usize);
            for piece in body.list.iter() {
                joined.extend_from_slice(piece);
            }
            let whole = joined.freeze();
            body.list = vec![whole.clone()];
            whole
        };
        self.progress.send_replace(Progress::Complete {
            len: whole.len() as u64,
        });
        whole
    }

    /// The fill failed: drop the bytes and tell the waiters.
    pub(crate) fn abandon(&self) {
        *self.body() = Pieces::default();
        self.progress.send_replace(Progress::Abandoned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn partial() -> PartialResponse {
        let meta = CacheMeta {
            stored_at: Instant::now(),
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(60),
            always_revalidate: false,
            never_stale: false,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            shareable_with_auth: false,
        };
        PartialResponse::new(
            CacheKey::new("k"),
            None,
            ResponseHeader::new(http::StatusCode::OK),
            meta,
            Some(10),
        )
    }

    fn joined(pieces: Vec<Bytes>) -> Vec<u8> {
        pieces.concat()
    }

    #[tokio::test]
    async fn waiters_see_bytes_as_they_arrive() {
        let p = std::sync::Arc::new(partial());
        let waiter = {
            let p = std::sync::Arc::clone(&p);
            tokio::spawn(async move {
                let progress = p.wait_for(6).await;
                (progress, joined(p.slice(ByteRange { start: 2, end: 5 })))
            })
        };
        p.push(Bytes::from_static(b"0123"));
        p.push(Bytes::from_static(b"45"));
        let (progress, bytes) = waiter.await.unwrap();
        assert_eq!(progress, Progress::Filling { received: 6 });
        assert_eq!(bytes, b"2345");
        p.push(Bytes::from_static(b"6789"));
        assert_eq!(&p.complete()[..], b"0123456789");
        assert_eq!(p.wait_for(100).await, Progress::Complete { len: 10 });
        assert_eq!(joined(p.slice(ByteRange { start: 9, end: 9 })), b"9");
    }

    #[tokio::test]
    async fn an_abandoned_fill_wakes_its_waiters_with_nothing() {
        let p = std::sync::Arc::new(partial());
        p.push(Bytes::from_static(b"01"));
        let waiter = {
            let p = std::sync::Arc::clone(&p);
            tokio::spawn(async move { p.wait_for(10).await })
        };
        p.abandon();
        assert_eq!(waiter.await.unwrap(), Progress::Abandoned);
        assert!(p.slice(ByteRange { start: 0, end: 1 }).is_empty());
    }

    #[test]
    fn a_variant_answers_only_matching_requests() {
        let names = vec![HeaderName::from_static("accept-encoding")];
        let primary = CacheKey::new("p");
        let mut gzip = HeaderMap::new();
        gzip.insert("accept-encoding", http::HeaderValue::from_static("gzip"));
        let key = primary.variant(7, &names, &gzip);
        let p = PartialResponse::new(
            key,
            Some((names, 7)),
            ResponseHeader::new(http::StatusCode::OK),
            partial().meta,
            None,
        );
        assert!(p.answers(&primary, &gzip));
        assert!(!p.answers(&primary, &HeaderMap::new()));
        assert!(!partial().answers(&primary, &gzip));
        assert!(partial().answers(&CacheKey::new("k"), &gzip));
    }
}

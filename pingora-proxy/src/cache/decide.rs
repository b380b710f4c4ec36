//! The cache's decisions for one request, as pure functions of what is known (the
//! request, its cache policy, what the lookup found and when, the lock): what to do
//! next. The executor in [`super`] does it; the table tests below pin every rule.

use std::time::Instant;

use pingora_cache::rules::{self, RequestPolicy};
use pingora_cache::{CacheStatus, Lookup};
use pingora_core::protocols::http::v1::is_upgrade_request;
use pingora_core::protocols::http::RequestHeader;

/// What a request calls for before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// `PURGE`: remove the entry (if the client may).
    Purge,
    /// Do not use the cache: forward, store nothing; `invalidates`: a success removes
    /// the stored `GET` of the same URI.
    Bypass {
        /// Why (logged).
        reason: &'static str,
        /// A successful answer invalidates the stored response.
        invalidates: bool,
    },
    /// Look the request up; with `revalidate`, a stored response must be confirmed by
    /// the origin first.
    Lookup {
        /// The request asks for revalidation (`no-cache`, `max-age=0`).
        revalidate: bool,
    },
}

/// How `req` (with a body or not) may use the cache.
pub(super) fn start(req: &RequestHeader, has_body: bool) -> Start {
    if req.method.as_str() == "PURGE" {
        return Start::Purge;
    }
    let policy = if is_upgrade_request(req) {
        RequestPolicy::Bypass {
            reason: "protocol upgrade",
            invalidates: false,
        }
    } else {
        rules::request_policy(req, has_body)
    };
    match policy {
        RequestPolicy::Lookup { revalidate } => Start::Lookup { revalidate },
        RequestPolicy::Bypass {
            reason,
            invalidates,
        } => Start::Bypass {
            reason,
            invalidates,
        },
    }
}

/// What a lookup found, as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stored {
    /// Nothing stored for the request.
    Miss,
    /// A stored response.
    Found {
        /// It may answer this request at all (not with `Authorization` unless shareable).
        may_answer: bool,
        /// It is fresh now.
        fresh: bool,
        /// It is stale, but within its `stale-while-revalidate` window now.
        stale_while_revalidate: bool,
    },
}

impl Stored {
    /// What `lookup` found for `req`, judged at `now`.
    pub(super) fn of(lookup: &Lookup, req: &RequestHeader, now: Instant) -> Self {
        match lookup {
            Lookup::Miss { .. } => Stored::Miss,
            Lookup::Found(found) => {
                let meta = &found.response.meta;
                Stored::Found {
                    may_answer: rules::may_answer(req, meta),
                    fresh: meta.is_fresh(now),
                    stale_while_revalidate: meta.serve_stale_while_revalidating(now),
                }
            }
        }
    }
}

/// Whether this request holds the lock that collapses concurrent fetches of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LockState {
    /// Not asked for yet.
    NotTried,
    /// Taken: this request fetches, the others wait for it.
    Writer,
    /// Another request is fetching.
    Reader,
}

/// Everything one decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Situation {
    /// What the lookup found.
    pub stored: Stored,
    /// The request is a `HEAD`.
    pub head_request: bool,
    /// The request asks for revalidation.
    pub revalidate: bool,
    /// The request already waited for another's fetch once.
    pub waited: bool,
    /// The lock.
    pub lock: LockState,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Answer from the fresh stored response.
    Hit,
    /// Answer from the stale stored response (another request refreshes it).
    ServeStale,
    /// Answer from the stale stored response, and refresh it in the background.
    ServeStaleAndRefresh,
    /// Forward to the origin, store nothing, label the response with this status.
    Forward(CacheStatus),
    /// Fetch from the origin and store the response if it may be stored.
    Fill,
    /// Revalidate the stored response with the origin.
    Revalidate,
    /// Take the key's lock, then decide again.
    TakeLock,
    /// Wait for the request that holds the lock, then look up again.
    Wait,
}

/// The next step in `s`.
pub(super) fn decide(s: &Situation) -> Step {
    match s.stored {
        Stored::Found {
            may_answer: false, ..
        } => Step::Fill,
        Stored::Found {
            fresh,
            stale_while_revalidate,
            ..
        } => {
            let stale_ok = !s.revalidate && stale_while_revalidate;
            if !s.revalidate && fresh {
                Step::Hit
            } else if s.head_request {
                // A HEAD cannot refresh a stored GET.
                Step::Forward(CacheStatus::Expired)
            } else if s.waited {
                Step::Revalidate
            } else {
                match s.lock {
                    LockState::NotTried => Step::TakeLock,
                    // RFC 5861: answer at once with the stale entry, refresh it behind
                    // the client's back.
                    LockState::Writer if stale_ok => Step::ServeStaleAndRefresh,
                    LockState::Writer => Step::Revalidate,
                    LockState::Reader if stale_ok => Step::ServeStale,
                    LockState::Reader => Step::Wait,
                }
            }
        }
        Stored::Miss if s.head_request => Step::Forward(CacheStatus::Miss),
        Stored::Miss if s.waited => Step::Fill,
        Stored::Miss => match s.lock {
            LockState::NotTried => Step::TakeLock,
            LockState::Writer => Step::Fill,
            LockState::Reader => Step::Wait,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    const MISS: Stored = Stored::Miss;

    fn found(may_answer: bool, fresh: bool, swr: bool) -> Stored {
        Stored::Found {
            may_answer,
            fresh,
            stale_while_revalidate: swr,
        }
    }

    #[test]
    fn decisions() {
        use LockState::{NotTried, Reader, Writer};
        let fresh = found(true, true, false);
        let stale = found(true, false, false);
        let stale_swr = found(true, false, true);
        let private = found(false, true, false);
        // (stored, head, revalidate, waited, lock) -> step
        let table: &[(Stored, bool, bool, bool, LockState, Step)] = &[
            // Fresh entries answer, unless the client wants revalidation.
            (fresh, false, false, false, NotTried, Step::Hit),
            (fresh, true, false, false, NotTried, Step::Hit),
            (fresh, false, true, false, NotTried, Step::TakeLock),
            (fresh, false, true, false, Writer, Step::Revalidate),
            (fresh, false, true, false, Reader, Step::Wait),
            (
                fresh,
                true,
                true,
                false,
                NotTried,
                Step::Forward(CacheStatus::Expired),
            ),
            // Stale: revalidate under the lock, or wait for whoever holds it.
            (stale, false, false, false, NotTried, Step::TakeLock),
            (stale, false, false, false, Writer, Step::Revalidate),
            (stale, false, false, false, Reader, Step::Wait),
            (stale, false, false, true, NotTried, Step::Revalidate),
            (
                stale,
                true,
                false,
                false,
                NotTried,
                Step::Forward(CacheStatus::Expired),
            ),
            // stale-while-revalidate: answer stale at once.
            (
                stale_swr,
                false,
                false,
                false,
                Writer,
                Step::ServeStaleAndRefresh,
            ),
            (stale_swr, false, false, false, Reader, Step::ServeStale),
            (stale_swr, false, true, false, Writer, Step::Revalidate),
            (stale_swr, false, true, false, Reader, Step::Wait),
            (stale_swr, false, false, true, NotTried, Step::Revalidate),
            // Stored, but not for this request (Authorization).
            (private, false, false, false, NotTried, Step::Fill),
            (private, true, false, false, NotTried, Step::Fill),
            // Nothing stored.
            (MISS, false, false, false, NotTried, Step::TakeLock),
            (MISS, false, false, false, Writer, Step::Fill),
            (MISS, false, false, false, Reader, Step::Wait),
            (MISS, false, false, true, NotTried, Step::Fill),
            (
                MISS,
                true,
                false,
                false,
                NotTried,
                Step::Forward(CacheStatus::Miss),
            ),
            (MISS, false, true, false, Writer, Step::Fill),
        ];
        for &(stored, head_request, revalidate, waited, lock, want) in table {
            let s = Situation {
                stored,
                head_request,
                revalidate,
                waited,
                lock,
            };
            assert_eq!(decide(&s), want, "{s:?}");
        }
    }

    fn req(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::new(
            Method::from_bytes(method.as_bytes()).unwrap(),
            http::Uri::from_static("/x"),
        );
        for (k, v) in headers {
            r.headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    #[test]
    fn starts() {
        let lookup = |revalidate| Start::Lookup { revalidate };
        let table: &[(RequestHeader, bool, Start)] = &[
            (req("GET", &[]), false, lookup(false)),
            (req("HEAD", &[]), false, lookup(false)),
            (
                req("GET", &[("cache-control", "no-cache")]),
                false,
                lookup(true),
            ),
            (
                req("GET", &[("cache-control", "max-age=0")]),
                false,
                lookup(true),
            ),
            (req("PURGE", &[]), false, Start::Purge),
            (
                req(
                    "GET",
                    &[("connection", "upgrade"), ("upgrade", "websocket")],
                ),
                false,
                Start::Bypass {
                    reason: "protocol upgrade",
                    invalidates: false,
                },
            ),
        ];
        for (r, has_body, want) in table {
            assert_eq!(start(r, *has_body), *want, "{} {:?}", r.method, r.headers);
        }
        assert!(matches!(
            start(&req("POST", &[]), true),
            Start::Bypass {
                invalidates: true,
                ..
            }
        ));
        assert!(matches!(
            start(&req("OPTIONS", &[]), false),
            Start::Bypass {
                invalidates: false,
                ..
            }
        ));
        // A range is answered from the cache (the whole response is fetched to fill it).
        assert_eq!(
            start(&req("GET", &[("range", "bytes=0-1")]), false),
            lookup(false)
        );
    }
}

//! Rate limiting: a token bucket per key (client address, route, request header, or a
//! combination), `burst` tokens refilled at `rate`, kept in memory ([`LocalBuckets`]) or
//! on a Redis server shared by a fleet (`RedisBuckets`, feature `redis`).
//!
//! Call [`RateLimiter::check`] from `request_filter`; on [`Verdict::Limit`] answer with
//! [`Decision::too_many_requests`], and add [`Decision::add_headers`] to the response
//! otherwise:
//!
//! ```
//! use std::time::Duration;
//! use pingora_proxy::modules::rate_limit::{LimitInput, RateLimiter, Verdict};
//! use pingora_proxy::modules::rate_limit::{Rate, RateLimitKey};
//!
//! # async fn run(req: &pingora_proxy::RequestHeader) {
//! let limiter = RateLimiter::local("100/s".parse::<Rate>().unwrap(), 50, RateLimitKey::default());
//! let input = LimitInput { client_ip: "192.0.2.1".parse().ok(), route: 0, headers: &req.headers };
//! match limiter.check(&input).await {
//!     Verdict::Allow(_) | Verdict::Unchecked => { /* go on */ }
//!     Verdict::Limit(decision) => { let _head = decision.too_many_requests(); }
//!     Verdict::Unavailable => { /* 503 */ }
//! }
//! # }
//! ```
//!
//! The arithmetic is GCRA: one number per key (when its bucket is full again), so an
//! idle key is the same as an absent one and is dropped when room is needed.

mod gcra;
mod local;
#[cfg(feature = "redis")]
mod redis;

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::time::Instant;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::StatusCode;
use pingora_core::protocols::http::ResponseHeader;

pub use gcra::{Bucket, Decision};
pub use local::{LocalBuckets, DEFAULT_MAX_KEYS};
pub use pingora_config::{Rate, RateLimitKey, RateLimitKeyPart};
#[cfg(feature = "redis")]
pub use redis::{OnError, RedisBuckets};

/// The body of a `429` answer.
pub const TOO_MANY_REQUESTS_BODY: &[u8] = b"429 Too Many Requests\n";

/// What a request is limited by: the values its key may be made of.
#[derive(Debug, Clone, Copy)]
pub struct LimitInput<'a> {
    /// The client address (after PROXY protocol / trusted `X-Forwarded-For`).
    pub client_ip: Option<IpAddr>,
    /// The route that matched (any number naming it).
    pub route: usize,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

/// The outcome of [`RateLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: go on (the decision gives the `RateLimit-*` headers).
    Allow(Decision),
    /// Over the limit: answer `429` ([`Decision::too_many_requests`]).
    Limit(Decision),
    /// The backend failed and its `on_error` is `allow`: go on, unlimited.
    Unchecked,
    /// The backend failed and its `on_error` is `deny`: answer `503`.
    Unavailable,
}

/// A monotonic clock in nanoseconds from the limiter's creation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        Clock(Instant::now())
    }

    /// Now, in nanoseconds on this clock. It starts one hour in, so that a new
    /// bucket ("full at 0") is always full.
    pub(crate) fn now(&self) -> u64 {
        3_600_000_000_000 + u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX / 2)
    }
}

enum Backend {
    Local(LocalBuckets),
    #[cfg(feature = "redis")]
    Redis(Box<RedisBuckets>),
}

/// One limit: buckets of one shape, one per value of the key, in one backend.
pub struct RateLimiter {
    bucket: Bucket,
    key: Vec<KeyPart>,
    /// The key as written (`client_ip+header:x-api-key`), for metrics.
    label: String,
    backend: Backend,
    clock: Clock,
    hasher: std::hash::RandomState,
    /// Prefix of the Redis keys of this limit.
    #[cfg(feature = "redis")]
    scope: Vec<u8>,
}

/// A key part, ready to read from a request.
#[derive(Debug, Clone)]
enum KeyPart {
    ClientIp,
    Route,
    Header(HeaderName),
}

impl RateLimiter {
    /// A limit kept in this process's memory (at most [`DEFAULT_MAX_KEYS`] buckets).
    pub fn local(rate: Rate, burst: u32, key: RateLimitKey) -> Self {
        Self::with_backend(
            rate,
            burst,
            &key,
            Backend::Local(LocalBuckets::new(DEFAULT_MAX_KEYS)),
            "",
        )
    }

    /// A limit kept on Redis: every proxy with the same `scope` (a name unique to
    /// this limit in the fleet, such as the service and route) and Redis shares it.
    #[cfg(feature = "redis")]
    pub fn redis(
        rate: Rate,
        burst: u32,
        key: RateLimitKey,
        buckets: RedisBuckets,
        scope: &str,
    ) -> Self {
        Self::with_backend(rate, burst, &key, Backend::Redis(Box::new(buckets)), scope)
    }

    fn with_backend(
        rate: Rate,
        burst: u32,
        key: &RateLimitKey,
        backend: Backend,
        scope: &str,
    ) -> Self {
        let parts = key
            .parts
            .iter()
            .map(|p| match p {
                RateLimitKeyPart::ClientIp => KeyPart::ClientIp,
                RateLimitKeyPart::Route => KeyPart::Route,
                RateLimitKeyPart::Header(name) => HeaderName::from_bytes(name.as_bytes())
                    .map(KeyPart::Header)
                    // A name the config accepted is a token; this cannot happen.
                    .unwrap_or(KeyPart::Route),
            })
            .collect();
        #[cfg(feature = "redis")]
        let prefix = [b"pingora:rl:", scope.as_bytes(), b":"].concat();
        #[cfg(not(feature = "redis"))]
        let _ = scope;
        RateLimiter {
            bucket: Bucket::new(rate.interval(), burst),
            key: parts,
            label: key.to_string(),
            backend,
            clock: Clock::new(),
            hasher: std::hash::RandomState::new(),
            #[cfg(feature = "redis")]
            scope: prefix,
        }
    }

    /// The key as written, parts joined with `+` (`client_ip`, `route+header:x-user`).
    pub fn key_label(&self) -> &str {
        &self.label
    }

    /// The bucket shape.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// Failed Redis calls so far (`None` for a local limit).
    pub fn backend_errors(&self) -> Option<u64> {
        match &self.backend {
            Backend::Local(_) => None,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => Some(r.errors()),
        }
    }

    /// Takes one token for the request described by `input`.
    pub async fn check(&self, input: &LimitInput<'_>) -> Verdict {
        let key = self.hash(input);
        match &self.backend {
            Backend::Local(table) => {
                let d = table.check(&self.bucket, key, self.clock.now());
                if d.allowed {
                    Verdict::Allow(d)
                } else {
                    Verdict::Limit(d)
                }
            }
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => {
                match redis
                    .check(&self.bucket, key, || self.redis_key(input), &self.clock)
                    .await
                {
                    Ok(d) if d.allowed => Verdict::Allow(d),
                    Ok(d) => Verdict::Limit(d),
                    Err(()) => match redis.on_error() {
                        OnError::Allow => Verdict::Unchecked,
                        OnError::Deny => Verdict::Unavailable,
                    },
                }
            }
        }
    }

    /// The key's hash (keyed per process: values a client picks cannot collide on
    /// purpose). A missing header or address counts as an empty value.
    fn hash(&self, input: &LimitInput<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        for part in &self.key {
            match part {
                KeyPart::ClientIp => input.client_ip.hash(&mut h),
                KeyPart::Route => input.route.hash(&mut h),
                KeyPart::Header(name) => input
                    .headers
                    .get(name)
                    .map(HeaderValue::as_bytes)
                    .hash(&mut h),
            }
        }
        h.finish()
    }

    /// The Redis key: the scope, then each part as `length:value`.
    #[cfg(feature = "redis")]
    fn redis_key(&self, input: &LimitInput<'_>) -> Vec<u8> {
        use std::io::Write;
        let mut out = self.scope.clone();
        for part in &self.key {
            let value: std::borrow::Cow<'_, [u8]> = match part {
                KeyPart::ClientIp => input
                    .client_ip
                    .map(|ip| ip.to_string().into_bytes().into())
                    .unwrap_or_default(),
                KeyPart::Route => input.route.to_string().into_bytes().into(),
                KeyPart::Header(name) => input
                    .headers
                    .get(name)
                    .map(|v| v.as_bytes().into())
                    .unwrap_or_default(),
            };
            let _ = write!(out, "{}:", value.len());
            out.extend_from_slice(&value);
        }
        out
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("bucket", &self.bucket)
            .field("key", &self.label)
            .finish_non_exhaustive()
    }
}

impl Decision {
    /// Adds `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds until
    /// the bucket is full), and for a refused request `Retry-After` (seconds).
    pub fn add_headers(&self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_LIMIT, HeaderValue::from(self.limit));
        headers.insert(RATELIMIT_REMAINING, HeaderValue::from(self.remaining));
        headers.insert(
            RATELIMIT_RESET,
            HeaderValue::from(gcra::ceil_secs(self.reset)),
        );
        if !self.allowed {
            headers.insert(
                RETRY_AFTER,
                HeaderValue::from(gcra::ceil_secs(self.retry_after).max(1)),
            );
        }
    }

    /// The head of a `429 Too Many Requests` answer with its headers; its body is
    /// [`TOO_MANY_REQUESTS_BODY`].
    pub fn too_many_requests(&self) -> ResponseHeader {
        let mut head = ResponseHeader::new(StatusCode::TOO_MANY_REQUESTS);
        head.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        head.headers.insert(
            CONTENT_LENGTH,
            HeaderValue::from(TOO_MANY_REQUESTS_BODY.len()),
        );
        self.add_headers(&mut head.headers);
        head
    }
}

/// `RateLimit-Limit`.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn limiter(key: &[RateLimitKeyPart], burst: u32) -> RateLimiter {
        RateLimiter::local(
            "1/h".parse().unwrap(),
            burst,
            RateLimitKey {
                parts: key.to_vec(),
            },
        )
    }

    async fn allowed(l: &RateLimiter, ip: &str, route: usize, h: &HeaderMap) -> bool {
        let input = LimitInput {
            client_ip: ip.parse().ok(),
            route,
            headers: h,
        };
        matches!(l.check(&input).await, Verdict::Allow(_))
    }

    #[tokio::test]
    async fn keys_separate_what_they_name() {
        let none = headers(&[]);
        let l = limiter(&[RateLimitKeyPart::ClientIp], 1);
        assert!(allowed(&l, "10.0.0.1", 0, &none).await);
        assert!(
            !allowed(&l, "10.0.0.1", 1, &none).await,
            "same client, other route"
        );
        assert!(allowed(&l, "10.0.0.2", 0, &none).await);

        let l = limiter(&[RateLimitKeyPart::Route], 1);
        assert!(allowed(&l, "10.0.0.1", 0, &none).await);
        assert!(
            !allowed(&l, "10.0.0.2", 0, &none).await,
            "same route, other client"
        );
        assert!(allowed(&l, "10.0.0.1", 1, &none).await);

        let l = limiter(&[RateLimitKeyPart::Header("x-api-key".into())], 1);
        let a = headers(&[("x-api-key", "a")]);
        let b = headers(&[("X-Api-Key", "b")]);
        assert!(allowed(&l, "10.0.0.1", 0, &a).await);
        assert!(!allowed(&l, "10.0.0.2", 0, &a).await);
        assert!(allowed(&l, "10.0.0.1", 0, &b).await);
        assert!(
            allowed(&l, "10.0.0.1", 0, &none).await,
            "no header: one shared bucket"
        );
        assert!(!allowed(&l, "10.0.0.3", 0, &none).await);

        let l = limiter(
            &[
                RateLimitKeyPart::ClientIp,
                RateLimitKeyPart::Header("x-api-key".into()),
            ],
            1,
        );
        assert!(allowed(&l, "10.0.0.1", 0, &a).await);
        assert!(allowed(&l, "10.0.0.1", 0, &b).await);
        assert!(allowed(&l, "10.0.0.2", 0, &a).await);
        assert!(!allowed(&l, "10.0.0.2", 0, &a).await);
        assert_eq!(l.key_label(), "client_ip+header:x-api-key");
    }

    #[tokio::test]
    async fn refused_answers_carry_the_headers() {
        let none = headers(&[]);
        let l = RateLimiter::local("2/m".parse().unwrap(), 2, RateLimitKey::default());
        let input = LimitInput {
            client_ip: "10.0.0.1".parse().ok(),
            route: 0,
            headers: &none,
        };
        let Verdict::Allow(first) = l.check(&input).await else {
            panic!("first request refused")
        };
        let mut h = HeaderMap::new();
        first.add_headers(&mut h);
        assert_eq!(h["ratelimit-limit"], "2");
        assert_eq!(h["ratelimit-remaining"], "1");
        assert_eq!(h["ratelimit-reset"], "30");
        assert!(h.get("retry-after").is_none());
        assert!(matches!(l.check(&input).await, Verdict::Allow(_)));
        let Verdict::Limit(third) = l.check(&input).await else {
            panic!("third request allowed")
        };
        let head = third.too_many_requests();
        assert_eq!(head.status, 429);
        let h = &head.headers;
        assert_eq!(h["retry-after"], "30");
        assert_eq!(h["ratelimit-limit"], "2");
        assert_eq!(h["ratelimit-remaining"], "0");
        assert_eq!(h["ratelimit-reset"], "60");
        assert_eq!(
            h["content-length"],
            TOO_MANY_REQUESTS_BODY.len().to_string().as_str()
        );
    }
}

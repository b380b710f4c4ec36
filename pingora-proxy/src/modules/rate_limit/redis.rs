//! Buckets on a Redis server, shared by every proxy that uses it, with a local fast
//! path: leases of a few tokens while a bucket is far from empty.
//!
//! Each bucket is one Redis key holding its full time (microseconds on the Redis
//! server's clock, so proxies' clocks do not matter), changed only by one Lua script
//! that runs atomically on the server. The key expires when its bucket is full again:
//! Redis holds only buckets in use.
//!
//! The fast path: while a bucket holds more than half its tokens plus a lease, the
//! script grants a lease of `k = max(1, burst / 10)` tokens instead of one; the proxy
//! spends the rest locally, without a round trip, for at most `k` refill intervals,
//! then drops what is left. Near the limit every request asks Redis. What this costs:
//!
//! - over any stretch of time, the fleet admits at most `k` requests more than one
//!   exact shared bucket would (a leased token is spent at most `k` intervals after
//!   Redis counted it);
//! - tokens leased but not spent before the lease ends are lost: while the bucket is
//!   above half full that costs nothing (it refills anyway), and near the limit no
//!   lease is granted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::gcra::{Bucket, Decision, Nanos};
use super::local::ShardedTable;

/// After a failed connect, no new attempt for this long (requests meanwhile get the
/// `on_error` answer at once).
const RECONNECT_AFTER: Nanos = 250_000_000;

/// The bucket script: `KEYS[1]` the bucket; `ARGV`: refill interval and capacity in
/// microseconds, the lease wanted, and the tokens to leave before leasing more than
/// one. Returns the tokens granted and how far ahead of now the bucket's full time is
/// (microseconds).
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local keep = tonumber(ARGV[4])
local full_at = tonumber(redis.call('GET', KEYS[1]) or now)
if full_at < now then full_at = now end
local free = math.floor((capacity - (full_at - now)) / interval + 1e-9)
local grant = 0
if free >= want + keep then
  grant = want
elseif free >= 1 then
  grant = 1
end
if grant > 0 then
  full_at = full_at + grant * interval
  local ttl = math.ceil((full_at - now) / 1000) + 1
  redis.call('SET', KEYS[1], string.format('%.0f', full_at), 'PX', ttl)
end
return {grant, math.floor(full_at - now)}
";

/// What `on_error` says to do when Redis fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Let the request through.
    Allow,
    /// Refuse it (`503`).
    Deny,
}

/// Tokens a proxy holds for one bucket.
#[derive(Debug, Clone, Copy, Default)]
struct Lease {
    /// Leased and not spent yet.
    tokens: u32,
    /// The lease ends then (limiter clock).
    until: Nanos,
    /// The bucket's full time as Redis last told (limiter clock).
    full_at: Nanos,
}

/// Token buckets on a Redis server.
pub struct RedisBuckets {
    addr: String,
    client: redis::Client,
    /// The connection while it works (cloned per call: it multiplexes).
    conn: Mutex<Option<MultiplexedConnection>>,
    /// No connect before this time (limiter clock): set when one failed.
    connect_after: AtomicU64,
    /// Held while connecting, so that concurrent requests wait for one attempt.
    connecting: tokio::sync::Mutex<()>,
    timeout: Duration,
    on_error: OnError,
    /// Whether Redis is failing (logged once per outage).
    down: AtomicBool,
    errors: AtomicU64,
    leases: ShardedTable<Lease>,
    script: redis::Script,
}

impl RedisBuckets {
    /// Buckets on the Redis server at `addr` (`HOST:PORT`); each call may take at most
    /// `timeout`. Nothing is connected until the first request.
    pub fn new(addr: &str, timeout: Duration, on_error: OnError) -> pingora_core::Result<Self> {
        let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| {
            pingora_core::Error::because(
                pingora_core::ErrorKind::Internal,
                pingora_core::Side::Internal,
                format!("rate limit: Redis address `{addr}`"),
                e,
            )
        })?;
        Ok(RedisBuckets {
            addr: addr.to_string(),
            client,
            conn: Mutex::new(None),
            connect_after: AtomicU64::new(0),
            connecting: tokio::sync::Mutex::new(()),
            timeout,
            on_error,
            down: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            leases: ShardedTable::new(super::local::DEFAULT_MAX_KEYS),
            script: redis::Script::new(SCRIPT),
        })
    }

    /// What a request gets when Redis fails.
    pub fn on_error(&self) -> OnError {
        self.on_error
    }

    /// Failed or timed-out Redis calls so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// One request on the bucket `key` (its hash; `name` builds the Redis key when a
    /// round trip is needed) at `now` on `clock`. `Err(())` when Redis failed (counted
    /// and logged).
    pub(super) async fn check(
        &self,
        bucket: &Bucket,
        key: u64,
        name: impl FnOnce() -> Vec<u8>,
        clock: &super::Clock,
    ) -> Result<Decision, ()> {
        let now = clock.now();
        let spent = self.leases.with(
            key,
            Lease::default,
            |l| (l.until > now || l.full_at > now).then_some(l.full_at),
            |l| {
                if l.tokens > 0 && l.until > now {
                    l.tokens -= 1;
                    let mut d = bucket.decision(true, l.full_at, now);
                    d.remaining = d.remaining.saturating_add(l.tokens).min(bucket.burst());
                    Some(d)
                } else {
                    None
                }
            },
        );
        if let Some(decision) = spent {
            return Ok(decision);
        }
        let lease = (bucket.burst() / 10).max(1);
        let (granted, ahead_us) = match self.call(bucket, name(), lease, now).await {
            Ok(answer) => answer,
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                if !self.down.swap(true, Ordering::Relaxed) {
                    log::error!(
                        "rate limit: Redis at {} failed ({e}); requests are {} until it answers",
                        self.addr,
                        match self.on_error {
                            OnError::Allow => "allowed",
                            OnError::Deny => "refused with 503",
                        }
                    );
                }
                return Err(());
            }
        };
        if self.down.swap(false, Ordering::Relaxed) {
            log::warn!("rate limit: Redis at {} answers again", self.addr);
        }
        let full_at = now + ahead_us.saturating_mul(1000);
        let interval = u64::try_from(bucket.interval().as_nanos()).unwrap_or(u64::MAX);
        let left = granted.saturating_sub(1);
        let tokens = self.leases.with(
            key,
            Lease::default,
            |l| (l.until > now || l.full_at > now).then_some(l.full_at),
            |l| {
                if l.until <= now {
                    l.tokens = 0;
                }
                l.tokens += left;
                if left > 0 {
                    l.until = l
                        .until
                        .max(now + interval.saturating_mul(u64::from(granted)));
                }
                l.full_at = l.full_at.max(full_at);
                l.tokens
            },
        );
        let mut decision = bucket.decision(granted > 0, full_at, now);
        decision.remaining = decision
            .remaining
            .saturating_add(tokens)
            .min(bucket.burst());
        Ok(decision)
    }

    /// Runs the script for `name`, wanting `lease` tokens, within the timeout.
    async fn call(
        &self,
        bucket: &Bucket,
        name: Vec<u8>,
        lease: u32,
        now: Nanos,
    ) -> Result<(u32, u64), String> {
        let interval_us = bucket.interval().as_secs_f64() * 1e6;
        let capacity_us = interval_us * f64::from(bucket.burst());
        let keep = bucket.burst() / 2;
        let work = async {
            let mut conn = self.connection(now).await?;
            let answer: Result<(i64, i64), _> = self
                .script
                .key(name)
                .arg(format!("{interval_us:.3}"))
                .arg(format!("{capacity_us:.3}"))
                .arg(lease)
                .arg(keep)
                .invoke_async(&mut conn)
                .await;
            answer.map_err(|e| {
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    self.forget_connection();
                }
                e.to_string()
            })
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok((granted, ahead))) => Ok((
                u32::try_from(granted).unwrap_or(0),
                u64::try_from(ahead).unwrap_or(0),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                // A connection that does not answer in time may be stuck: start over,
                // and not before 250 ms if it was the connect that did not finish
                // (a server that drops packets would hold every request that long).
                if self.current().is_none() {
                    self.connect_after
                        .store(now + RECONNECT_AFTER, Ordering::Relaxed);
                }
                self.forget_connection();
                Err(format!("no answer within {} ms", self.timeout.as_millis()))
            }
        }
    }

    /// The current connection, or a new one: one attempt at a time (the others wait
    /// for it), and none within 250 ms of a failed one.
    async fn connection(&self, now: Nanos) -> Result<MultiplexedConnection, String> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let not_before = "not connected (waiting before the next connect)";
        if now < self.connect_after.load(Ordering::Relaxed) {
            return Err(not_before.to_string());
        }
        let _gate = self.connecting.lock().await;
        // Another request may have connected, or failed, meanwhile.
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        if now < self.connect_after.load(Ordering::Relaxed) {
            return Err(not_before.to_string());
        }
        match self.client.get_multiplexed_async_connection().await {
            Ok(conn) => {
                *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                self.connect_after
                    .store(now + RECONNECT_AFTER, Ordering::Relaxed);
                Err(e.to_string())
            }
        }
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn forget_connection(&self) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl std::fmt::Debug for RedisBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBuckets")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .field("on_error", &self.on_error)
            .finish_non_exhaustive()
    }
}

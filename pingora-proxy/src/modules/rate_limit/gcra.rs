//! The bucket arithmetic (GCRA, the generic cell rate algorithm): a token bucket of
//! `burst` tokens refilled one token per `interval`, kept as one number per key, the
//! time at which its bucket will be full again (the "theoretical arrival time").
//!
//! A bucket whose full time has passed is full: forgetting it changes nothing, which is
//! what lets idle keys be evicted freely.

use std::time::Duration;

/// Nanoseconds on the limiter's clock.
pub(super) type Nanos = u64;

/// The shape of every bucket of one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// The time one token takes to refill.
    interval: Nanos,
    /// The bucket size (requests allowed at once).
    burst: u32,
    /// `burst * interval`: how far ahead of now a full time may be.
    capacity: Nanos,
}

/// What one request gets from its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The bucket size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests still allowed now, after this one (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Time until the bucket is full again (`RateLimit-Reset`).
    pub reset: Duration,
    /// For a refused request, time until one is allowed (`Retry-After`); zero otherwise.
    pub retry_after: Duration,
}

impl Bucket {
    /// Buckets of `burst` tokens (at least 1) refilled one per `interval` (at least 1 ns).
    pub fn new(interval: Duration, burst: u32) -> Self {
        let interval = u64::try_from(interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let burst = burst.max(1);
        Bucket {
            interval,
            burst,
            capacity: interval.saturating_mul(u64::from(burst)),
        }
    }

    /// The bucket size.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The time one token takes to refill.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// Takes up to `want` tokens (at least one) from a bucket full at `full_at`, at
    /// `now`: returns how many were granted (0 when not even one is there) and the new
    /// full time (unchanged when none was granted).
    pub(super) fn take(&self, full_at: Nanos, now: Nanos, want: u32) -> (u32, Nanos) {
        let ahead = full_at.saturating_sub(now);
        let free = self.capacity.saturating_sub(ahead) / self.interval;
        let granted = free.min(u64::from(want.max(1))) as u32;
        if granted == 0 {
            return (0, full_at);
        }
        let full_at = now.max(full_at) + self.interval.saturating_mul(u64::from(granted));
        (granted, full_at)
    }

    /// The decision for one request at `now`, given the bucket's full time after it
    /// (`full_at`) and whether it got its token.
    pub(super) fn decision(&self, allowed: bool, full_at: Nanos, now: Nanos) -> Decision {
        let ahead = full_at.saturating_sub(now);
        let remaining = (self.capacity.saturating_sub(ahead) / self.interval) as u32;
        let retry_after = if allowed {
            0
        } else {
            // One token is back when the full time is within capacity - interval.
            ahead.saturating_sub(self.capacity - self.interval)
        };
        Decision {
            allowed,
            limit: self.burst,
            remaining: remaining.min(self.burst),
            reset: Duration::from_nanos(ahead),
            retry_after: Duration::from_nanos(retry_after),
        }
    }

    /// One request at `now` on a bucket full at `full_at`: its decision and the new
    /// full time.
    pub(super) fn check(&self, full_at: Nanos, now: Nanos) -> (Decision, Nanos) {
        let (granted, full_at) = self.take(full_at, now, 1);
        (self.decision(granted == 1, full_at, now), full_at)
    }
}

/// Whole seconds for a header, rounded up (a client waiting that long is served).
pub(super) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Nanos = 1_000_000_000;

    /// 10/s with a bucket of 5.
    fn bucket() -> Bucket {
        Bucket::new(Duration::from_millis(100), 5)
    }

    #[test]
    fn a_full_bucket_allows_burst_requests_at_once() {
        let b = bucket();
        let mut full_at = 0;
        let now = 10 * SEC;
        for expected_remaining in (0..5).rev() {
            let (d, next) = b.check(full_at, now);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            assert_eq!(d.limit, 5);
            full_at = next;
        }
        assert_eq!(full_at - now, 5 * SEC / 10, "full again after 5 refills");
        let (d, next) = b.check(full_at, now);
        assert!(!d.allowed);
        assert_eq!(next, full_at, "a refused request takes nothing");
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after, Duration::from_millis(100));
        assert_eq!(d.reset, Duration::from_millis(500));
        assert_eq!(ceil_secs(d.retry_after), 1);
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let b = bucket();
        let now = 10 * SEC;
        let mut full_at = 0;
        for _ in 0..5 {
            full_at = b.check(full_at, now).1;
        }
        // 250 ms later: two tokens are back (one every 100 ms).
        let later = now + SEC / 4;
        let (d, f) = b.check(full_at, later);
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
        let (d, f) = b.check(f, later);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let (d, _) = b.check(f, later);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(50));
    }

    #[test]
    fn steady_traffic_at_the_rate_is_never_refused() {
        let b = bucket();
        let mut full_at = 0;
        for i in 0..1000 {
            let (d, f) = b.check(full_at, 10 * SEC + i * SEC / 10);
            assert!(d.allowed, "request {i}");
            full_at = f;
        }
    }

    #[test]
    fn over_a_long_run_admits_burst_plus_rate_times_time() {
        // Requests every millisecond for 10 s at 10/s with burst 5: 5 + 100 allowed.
        let b = bucket();
        let mut full_at = 0;
        let mut allowed = 0;
        for ms in 0..10_000u64 {
            let (d, f) = b.check(full_at, SEC + ms * 1_000_000);
            allowed += u32::from(d.allowed);
            full_at = f;
        }
        assert!((104..=105).contains(&allowed), "{allowed}");
    }

    #[test]
    fn a_lease_takes_what_is_there() {
        let b = bucket();
        let now = 10 * SEC;
        let (granted, full_at) = b.take(0, now, 3);
        assert_eq!(granted, 3);
        let (granted, full_at) = b.take(full_at, now, 3);
        assert_eq!(granted, 2);
        assert_eq!(b.take(full_at, now, 3), (0, full_at));
    }

    #[test]
    fn extreme_rates_do_not_overflow() {
        let b = Bucket::new(Duration::from_secs(3600), u32::MAX);
        let (d, _) = b.check(0, u64::MAX / 2);
        assert!(d.allowed);
        let b = Bucket::new(Duration::from_nanos(0), 1);
        let (d, f) = b.check(0, 5);
        assert!(d.allowed);
        assert!(!b.check(f, 5).0.allowed);
        assert!(b.check(f, 6).0.allowed);
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::from_millis(2001)), 3);
    }
}

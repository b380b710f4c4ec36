//! A service's counters read back as plain numbers, for the admin status page and its
//! history of samples.

use prometheus::core::Metric;

use super::{ServiceMetrics, CACHE_STATUSES, DURATION_BUCKETS, STATUS_CLASSES};

/// The totals of one service since start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceTotals {
    /// Requests answered, per status class (`1xx`..`5xx`, then `none`).
    pub by_class: [u64; STATUS_CLASSES.len()],
    /// Requests timed, in all.
    pub timed: u64,
    /// Of those, how many took at most each of [`ServiceTotals::BUCKETS`] seconds.
    pub within: [u64; DURATION_BUCKETS.len()],
    /// Responses of caching routes, per `X-Cache-Status` ([`super::CACHE_STATUSES`]).
    pub cache: [u64; CACHE_STATUSES.len()],
}

impl ServiceTotals {
    /// Upper bounds (seconds) of the latency buckets.
    pub const BUCKETS: [f64; DURATION_BUCKETS.len()] = DURATION_BUCKETS;

    /// Requests answered, in all.
    pub fn requests(&self) -> u64 {
        self.by_class.iter().sum()
    }

    /// Requests answered with a 5xx status.
    pub fn server_errors(&self) -> u64 {
        self.by_class[4]
    }

    /// What happened between `earlier` and `self` (counters only grow).
    pub fn since(&self, earlier: &ServiceTotals) -> ServiceTotals {
        let mut d = self.clone();
        for (a, b) in d.by_class.iter_mut().zip(earlier.by_class) {
            *a = a.saturating_sub(b);
        }
        d.timed = d.timed.saturating_sub(earlier.timed);
        for (a, b) in d.within.iter_mut().zip(earlier.within) {
            *a = a.saturating_sub(b);
        }
        for (a, b) in d.cache.iter_mut().zip(earlier.cache) {
            *a = a.saturating_sub(b);
        }
        d
    }

    /// The latency (seconds) under which a share `q` (0 to 1) of the timed requests
    /// finished, interpolated within its bucket; `None` without requests. Above the
    /// last bucket, its bound.
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        if self.timed == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.timed as f64;
        let mut below = 0u64;
        let mut lower = 0.0;
        for (bound, within) in Self::BUCKETS.iter().zip(self.within) {
            if within as f64 >= rank && within > below {
                let share = (rank - below as f64) / (within - below) as f64;
                return Some(lower + (bound - lower) * share.clamp(0.0, 1.0));
            }
            below = within;
            lower = *bound;
        }
        Some(lower)
    }
}

impl ServiceMetrics {
    /// Reads the service's counters.
    pub fn totals(&self) -> ServiceTotals {
        let mut t = ServiceTotals::default();
        for row in self.requests.iter() {
            for (sum, c) in t.by_class.iter_mut().zip(row) {
                *sum += c.get();
            }
        }
        let metric = self.duration.metric();
        let histogram = metric.get_histogram();
        t.timed = histogram.get_sample_count();
        for (w, b) in t.within.iter_mut().zip(histogram.get_bucket()) {
            *w = b.cumulative_count();
        }
        for (n, c) in t.cache.iter_mut().zip(&self.cache) {
            *n = c.get();
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let mut t = ServiceTotals {
            timed: 100,
            ..ServiceTotals::default()
        };
        // 50 requests within 1 ms, the rest within 10 ms.
        for (bound, w) in DURATION_BUCKETS.iter().zip(t.within.iter_mut()) {
            *w = if *bound < 0.01 { 50 } else { 100 };
        }
        let p50 = t.latency_quantile(0.5).unwrap();
        assert!((p50 - 0.001).abs() < 1e-9, "{p50}");
        let p99 = t.latency_quantile(0.99).unwrap();
        assert!(p99 > 0.005 && p99 <= 0.01, "{p99}");
        assert_eq!(ServiceTotals::default().latency_quantile(0.5), None);
    }

    #[test]
    fn differences() {
        let a = ServiceTotals {
            cache: [3, 1, 0, 0, 0],
            by_class: [0, 10, 0, 0, 2, 0],
            ..ServiceTotals::default()
        };
        assert_eq!(a.requests(), 12);
        let b = ServiceTotals {
            by_class: [0, 15, 0, 0, 3, 0],
            ..a.clone()
        };
        let d = b.since(&a);
        assert_eq!((d.requests(), d.server_errors()), (6, 1));
    }
}

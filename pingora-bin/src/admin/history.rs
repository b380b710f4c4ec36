//! The recent past of each service: a ring of samples of its counters taken every
//! [`SAMPLE_EVERY`], kept for [`KEPT`] samples, from which the status page draws its
//! charts and computes recent rates and latency percentiles.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::metrics::ServiceTotals;

/// Time between two samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// Samples kept per service: five minutes.
pub const KEPT: usize = 150;

/// One sample of one service.
#[derive(Debug, Clone)]
struct Sample {
    /// Seconds since the Unix epoch.
    at: f64,
    totals: ServiceTotals,
}

/// The rate of requests and of 5xx answers between two samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// When the later sample was taken, in seconds since the Unix epoch.
    pub t: f64,
    /// Requests answered per second.
    pub requests_per_second: f64,
    /// 5xx answers per second.
    pub errors_per_second: f64,
}

/// The samples of every service (by index in the admin's service list).
#[derive(Debug, Default)]
pub struct History {
    services: Vec<VecDeque<Sample>>,
}

/// Seconds since the Unix epoch of `t`.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl History {
    /// Keeps `totals` as the newest sample of service `i`, taken at `at`.
    pub fn record(&mut self, i: usize, at: SystemTime, totals: ServiceTotals) {
        if self.services.len() <= i {
            self.services.resize_with(i + 1, VecDeque::new);
        }
        let ring = &mut self.services[i];
        if ring.len() == KEPT {
            ring.pop_front();
        }
        ring.push_back(Sample {
            at: unix_seconds(at),
            totals,
        });
    }

    /// The rates between consecutive samples of service `i`, oldest first.
    pub fn points(&self, i: usize) -> Vec<Point> {
        let Some(ring) = self.services.get(i) else {
            return Vec::new();
        };
        (ring.iter().zip(ring.iter().skip(1)))
            .map(|(a, b)| {
                let secs = (b.at - a.at).max(0.001);
                let d = b.totals.since(&a.totals);
                Point {
                    t: b.at,
                    requests_per_second: d.requests() as f64 / secs,
                    errors_per_second: d.server_errors() as f64 / secs,
                }
            })
            .collect()
    }

    /// What service `i` did over about the last `span` (at least one sample interval):
    /// the difference of its counters and the seconds it covers. `None` before two
    /// samples exist.
    pub fn recent(&self, i: usize, span: Duration) -> Option<(ServiceTotals, f64)> {
        let ring = self.services.get(i)?;
        let newest = ring.back()?;
        let from = newest.at - span.as_secs_f64().max(SAMPLE_EVERY.as_secs_f64());
        let oldest = ring
            .iter()
            .find(|s| s.at >= from - 0.5)
            .filter(|s| s.at < newest.at)?;
        Some((newest.totals.since(&oldest.totals), newest.at - oldest.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(ok: u64, errors: u64) -> ServiceTotals {
        let mut t = ServiceTotals::default();
        t.by_class[1] = ok;
        t.by_class[4] = errors;
        t
    }

    #[test]
    fn rates_between_samples_and_a_bounded_ring() {
        let mut h = History::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
        h.record(0, t0, totals(0, 0));
        h.record(0, t0 + Duration::from_secs(2), totals(10, 2));
        h.record(0, t0 + Duration::from_secs(4), totals(10, 2));
        let p = h.points(0);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].requests_per_second, p[0].errors_per_second),
            (6.0, 1.0)
        );
        assert_eq!(p[1].requests_per_second, 0.0);
        let (d, secs) = h.recent(0, Duration::from_secs(60)).unwrap();
        assert_eq!((d.requests(), secs), (12, 4.0));
        for k in 0..(KEPT as u64 + 10) {
            h.record(0, t0 + Duration::from_secs(6 + 2 * k), totals(10, 2));
        }
        assert_eq!(h.points(0).len(), KEPT - 1);
        assert!(h.points(1).is_empty() && h.recent(1, SAMPLE_EVERY).is_none());
    }
}

//! Metrics of compression and rate limiting: bytes in and out of each compression
//! algorithm, requests refused per rate-limit key, and failed Redis calls.

use std::sync::Arc;

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use super::{metric_error, register};
use crate::error::BinError;

/// The `algorithm` label values, in the order of the counters.
const ALGORITHMS: [&str; 3] = ["zstd", "br", "gzip"];

/// The metric families, registered once.
pub(super) struct PolicyFamilies {
    compression_in: IntCounterVec,
    compression_out: IntCounterVec,
    rate_limited: IntCounterVec,
    pub(super) redis_errors: IntCounterVec,
}

impl PolicyFamilies {
    pub(super) fn new(registry: &Registry) -> Result<Self, BinError> {
        let vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                IntCounterVec::new(Opts::new(name, help), labels).map_err(metric_error)?,
            )
        };
        Ok(PolicyFamilies {
            compression_in: vec(
                "pingora_compression_bytes_in_total",
                "Response body bytes taken into compression, by algorithm.",
                &["service", "algorithm"],
            )?,
            compression_out: vec(
                "pingora_compression_bytes_out_total",
                "Compressed response body bytes given out, by algorithm.",
                &["service", "algorithm"],
            )?,
            rate_limited: vec(
                "pingora_rate_limited_requests_total",
                "Requests refused with 429 by a rate limit, by the limit's key (parts joined with +).",
                &["service", "key"],
            )?,
            redis_errors: vec(
                "pingora_rate_limit_redis_errors_total",
                "Rate-limit calls to Redis that failed or timed out (on_error then decided).",
                &["service"],
            )?,
        })
    }

    /// The counters of service `name`, whose rate limits have the keys `keys`.
    pub(super) fn service(&self, name: &str, keys: &[String]) -> PolicyCounters {
        let mut limited: Vec<(String, IntCounter)> = Vec::new();
        for key in keys {
            if !limited.iter().any(|(k, _)| k == key) {
                let c = self.rate_limited.with_label_values(&[name, key.as_str()]);
                limited.push((key.clone(), c));
            }
        }
        PolicyCounters {
            compression_in: ALGORITHMS.map(|a| self.compression_in.with_label_values(&[name, a])),
            compression_out: ALGORITHMS.map(|a| self.compression_out.with_label_values(&[name, a])),
            rate_limited: limited.into(),
        }
    }
}

/// One service's counters (the compression series show, at 0, in a build without
/// compression too).
#[derive(Clone)]
#[cfg_attr(not(feature = "compression"), allow(dead_code))]
pub(super) struct PolicyCounters {
    compression_in: [IntCounter; 3],
    compression_out: [IntCounter; 3],
    rate_limited: Arc<[(String, IntCounter)]>,
}

impl PolicyCounters {
    /// Counts one compressed response of `algorithm` (`zstd`, `br`, `gzip`).
    #[cfg(feature = "compression")]
    pub(super) fn compression(&self, algorithm: &str, bytes_in: u64, bytes_out: u64) {
        if let Some(i) = ALGORITHMS.iter().position(|a| *a == algorithm) {
            self.compression_in[i].inc_by(bytes_in);
            self.compression_out[i].inc_by(bytes_out);
        }
    }

    /// Counts one request refused by the limit keyed `key`.
    pub(super) fn rate_limited(&self, key: &str) {
        if let Some((_, c)) = self.rate_limited.iter().find(|(k, _)| k == key) {
            c.inc();
        }
    }
}

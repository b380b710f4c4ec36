//! The caches' own counters (`HttpCache::stats`) as metrics, read at each scrape: hits
//! and their bytes by tier, misses and the hit ratio, entries, bytes and evictions by
//! tier, refused admissions, and the disk tier's writes and errors.

use prometheus::{
    Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::{metric_error, register};
use crate::cache::ServiceCache;
use crate::error::BinError;

/// The tiers, as the `tier` label says them.
const TIERS: [&str; 2] = ["memory", "disk"];

/// The metric families of the caches.
pub(super) struct CacheFamilies {
    hits: IntCounterVec,
    hit_bytes: IntCounterVec,
    misses: IntCounterVec,
    hit_ratio: GaugeVec,
    entries: IntGaugeVec,
    bytes: IntGaugeVec,
    evictions: IntCounterVec,
    refused: IntCounterVec,
    disk_writes: IntCounterVec,
    disk_writes_dropped: IntCounterVec,
    disk_errors: IntCounterVec,
    disk_corrupt: IntCounterVec,
}

impl CacheFamilies {
    pub(super) fn new(registry: &Registry) -> Result<CacheFamilies, BinError> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                IntCounterVec::new(Opts::new(name, help), labels).map_err(metric_error)?,
            )
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                IntGaugeVec::new(Opts::new(name, help), labels).map_err(metric_error)?,
            )
        };
        let by_tier = &["service", "tier"][..];
        let by_service = &["service"][..];
        Ok(CacheFamilies {
            hits: counter(
                "pingora_cache_hits_total",
                "Cache lookups that found an entry (fresh or stale), by the tier that held it.",
                by_tier,
            )?,
            hit_bytes: counter(
                "pingora_cache_hit_bytes_total",
                "Body bytes of the entries cache lookups found, by tier.",
                by_tier,
            )?,
            misses: counter(
                "pingora_cache_misses_total",
                "Cache lookups that found nothing.",
                by_service,
            )?,
            hit_ratio: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "pingora_cache_hit_ratio",
                        "Cache lookups that found an entry over all lookups since start (0 before the first).",
                    ),
                    by_service,
                )
                .map_err(metric_error)?,
            )?,
            entries: gauge(
                "pingora_cache_entries",
                "Entries (responses and variant indexes) held now, by tier.",
                by_tier,
            )?,
            bytes: gauge(
                "pingora_cache_bytes",
                "Bytes held now, by tier (memory: counted against max_bytes; disk: file sizes).",
                by_tier,
            )?,
            evictions: counter(
                "pingora_cache_evictions_total",
                "Entries removed to stay within a tier's byte budget.",
                by_tier,
            )?,
            refused: counter(
                "pingora_cache_admissions_refused_total",
                "Responses not stored because they were larger than the cache takes.",
                by_service,
            )?,
            disk_writes: counter(
                "pingora_cache_disk_writes_total",
                "Entries written to the disk tier.",
                by_service,
            )?,
            disk_writes_dropped: counter(
                "pingora_cache_disk_writes_dropped_total",
                "Disk writes skipped because the write queue was full.",
                by_service,
            )?,
            disk_errors: counter(
                "pingora_cache_disk_errors_total",
                "Disk tier reads or writes that failed.",
                by_service,
            )?,
            disk_corrupt: counter(
                "pingora_cache_disk_corrupt_total",
                "Disk tier files found truncated or corrupt on read (removed, never served).",
                by_service,
            )?,
        })
    }

    /// The series of `cache`, created now (so they show from the start, at 0).
    pub(super) fn polled(&self, cache: ServiceCache) -> PolledCache {
        let name = cache.service().to_string();
        let tiered = |vec: &IntCounterVec| TIERS.map(|t| vec.with_label_values(&[&name, t]));
        let gauges = |vec: &IntGaugeVec| TIERS.map(|t| vec.with_label_values(&[&name, t]));
        let one = |vec: &IntCounterVec| vec.with_label_values(&[&name]);
        PolledCache {
            hits: tiered(&self.hits),
            hit_bytes: tiered(&self.hit_bytes),
            misses: one(&self.misses),
            hit_ratio: self.hit_ratio.with_label_values(&[&name]),
            entries: gauges(&self.entries),
            bytes: gauges(&self.bytes),
            evictions: tiered(&self.evictions),
            refused: one(&self.refused),
            disk_writes: one(&self.disk_writes),
            disk_writes_dropped: one(&self.disk_writes_dropped),
            disk_errors: one(&self.disk_errors),
            disk_corrupt: one(&self.disk_corrupt),
            cache,
        }
    }
}

/// One cache's series, brought up to date at each scrape.
pub(super) struct PolledCache {
    cache: ServiceCache,
    hits: [IntCounter; 2],
    hit_bytes: [IntCounter; 2],
    misses: IntCounter,
    hit_ratio: Gauge,
    entries: [IntGauge; 2],
    bytes: [IntGauge; 2],
    evictions: [IntCounter; 2],
    refused: IntCounter,
    disk_writes: IntCounter,
    disk_writes_dropped: IntCounter,
    disk_errors: IntCounter,
    disk_corrupt: IntCounter,
}

/// Moves `counter` up to `value` (the cache's counters only grow).
fn catch_up(counter: &IntCounter, value: u64) {
    let shown = counter.get();
    if value > shown {
        counter.inc_by(value - shown);
    }
}

fn set(gauge: &IntGauge, value: u64) {
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
}

impl PolledCache {
    /// Reads the cache's figures (nothing before it is opened).
    pub(super) fn update(&self) {
        let Some(cache) = self.cache.get() else {
            return;
        };
        let s = cache.stats();
        let st = &s.storage;
        for (i, (hits, bytes)) in [
            (s.hits_memory, s.hit_bytes_memory),
            (s.hits_disk, s.hit_bytes_disk),
        ]
        .into_iter()
        .enumerate()
        {
            catch_up(&self.hits[i], hits);
            catch_up(&self.hit_bytes[i], bytes);
        }
        catch_up(&self.misses, s.misses);
        self.hit_ratio.set(s.hit_ratio());
        set(&self.entries[0], st.memory_entries);
        set(&self.entries[1], st.disk_entries);
        set(&self.bytes[0], st.memory_bytes);
        set(&self.bytes[1], st.disk_bytes);
        catch_up(&self.evictions[0], st.memory_evictions);
        catch_up(&self.evictions[1], st.disk_evictions);
        catch_up(&self.refused, s.admissions_refused);
        catch_up(&self.disk_writes, st.disk_writes);
        catch_up(&self.disk_writes_dropped, st.disk_writes_dropped);
        catch_up(&self.disk_errors, st.disk_errors);
        catch_up(&self.disk_corrupt, st.disk_corrupt);
    }
}

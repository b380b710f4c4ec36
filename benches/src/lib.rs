//! Criterion benchmarks live in `benches/`; this library holds what they share: the
//! request traces and the baseline cache policy of the cache-policy bench.

pub mod cache_traces;
pub mod sharded_lru;

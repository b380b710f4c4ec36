//! Request traces for comparing cache policies: keys drawn from a Zipf distribution,
//! and the same with scans of one-time keys mixed in. Deterministic (fixed seeds), so
//! runs compare.

/// A small xorshift generator: deterministic and fast; not for anything secret.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Draws key indexes `0..n` with probability proportional to `1 / (rank + 1)^skew`.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` keys with exponent `skew` (0.8 to 1.0 is typical of
    /// web traffic).
    pub fn new(n: usize, skew: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += 1.0 / (rank as f64).powf(skew);
            cdf.push(total);
        }
        for p in &mut cdf {
            *p /= total;
        }
        Zipf { cdf }
    }

    /// One key index.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        self.cdf.partition_point(|p| *p < u) as u64
    }
}

/// The size of key `k`'s response: 1 to 64 KiB (powers of two), spread over keys
/// independently of their popularity.
pub fn object_size(k: u64) -> u64 {
    let h = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
    1024 << (h % 7)
}

/// `requests` keys drawn from `Zipf(keys, skew)`.
pub fn zipf_trace(keys: usize, skew: f64, requests: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(keys, skew);
    let mut rng = Rng::new(seed);
    (0..requests).map(|_| zipf.sample(&mut rng)).collect()
}

/// Keys of one-time scans start here (far from the Zipf keys).
pub const SCAN_KEYS_FROM: u64 = 1 << 40;

/// A Zipf(0.9) trace polluted by scans: after every 7,000 popular requests, a scan of
/// 3,000 keys never requested again (30% of the requests), as a crawler or a batch
/// job reading everything once would cause.
pub fn scan_trace(keys: usize, requests: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(keys, 0.9);
    let mut rng = Rng::new(seed);
    let mut next_scan = SCAN_KEYS_FROM;
    let mut trace = Vec::with_capacity(requests);
    while trace.len() < requests {
        for _ in 0..7000 {
            trace.push(zipf.sample(&mut rng));
        }
        for _ in 0..3000 {
            trace.push(next_scan);
            next_scan += 1;
        }
    }
    trace.truncate(requests);
    trace
}

/// Bytes of the responses of keys `0..keys`.
pub fn working_set_bytes(keys: usize) -> u64 {
    (0..keys as u64).map(object_size).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_low_ranks() {
        let trace = zipf_trace(1000, 1.0, 100_000, 7);
        let top = trace.iter().filter(|k| **k < 10).count();
        // The 10 most popular of 1000 keys take about 39% of Zipf(1.0) requests.
        assert!((30_000..48_000).contains(&top), "{top}");
        assert!(trace.iter().all(|k| *k < 1000));
    }

    #[test]
    fn scans_are_thirty_percent_of_one_time_keys() {
        let trace = scan_trace(1000, 100_000, 7);
        let scans: Vec<_> = trace.iter().filter(|k| **k >= SCAN_KEYS_FROM).collect();
        assert_eq!(scans.len(), 30_000);
        let mut unique = scans.clone();
        unique.dedup();
        assert_eq!(unique.len(), scans.len());
    }
}

//! Selection algorithms: which backend serves the next request.
//!
//! A selector is built once from the backends' weights and then only reads shared
//! state (atomics), so picking never takes a lock and never allocates.

use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Picks a backend index. `usable(i)` says whether backend `i` may be chosen now
/// (healthy and not backed off); `load(i)` is its number of requests in flight.
/// Return `None` when no backend is usable.
pub trait Selector: Send + Sync {
    /// Chooses a backend for a request whose hash key is `key`.
    fn select(
        &self,
        key: &[u8],
        usable: &dyn Fn(usize) -> bool,
        load: &dyn Fn(usize) -> usize,
    ) -> Option<usize>;
}

impl<F> Selector for F
where
    F: Fn(&[u8], &dyn Fn(usize) -> bool, &dyn Fn(usize) -> usize) -> Option<usize> + Send + Sync,
{
    fn select(
        &self,
        key: &[u8],
        usable: &dyn Fn(usize) -> bool,
        load: &dyn Fn(usize) -> usize,
    ) -> Option<usize> {
        self(key, usable, load)
    }
}

/// Tries `start`, `start+1`, ... (wrapping) and returns the first usable index.
fn first_usable(start: usize, n: usize, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
    from(start, n).find(|&i| usable(i))
}

/// `start..n` then `0..start` (`start` is taken modulo `n`): every index once, without
/// a division per step.
fn from(start: usize, n: usize) -> impl Iterator<Item = usize> {
    let start = if n == 0 { 0 } else { start % n };
    (start..n).chain(0..start)
}

/// Each backend in turn, weights ignored.
pub struct RoundRobin {
    n: usize,
    next: AtomicUsize,
}

impl RoundRobin {
    /// Round robin over `n` backends.
    pub fn new(n: usize) -> Self {
        RoundRobin {
            n,
            next: AtomicUsize::new(0),
        }
    }
}

impl Selector for RoundRobin {
    fn select(
        &self,
        _: &[u8],
        usable: &dyn Fn(usize) -> bool,
        _: &dyn Fn(usize) -> usize,
    ) -> Option<usize> {
        if self.n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.n;
        first_usable(start, self.n, usable)
    }
}

/// Smooth weighted round robin: a backend of weight 3 gets 3 of every `sum(weights)`
/// picks, spread out rather than in a burst. The smooth order is computed once into a
/// cycle (weights are scaled down if their sum is very large).
pub struct Weighted {
    cycle: Vec<u32>,
    n: usize,
    next: AtomicUsize,
}

/// Longest precomputed weighted cycle.
const MAX_CYCLE: u64 = 1 << 16;

impl Weighted {
    /// Weighted round robin over backends with these weights (0 counts as 1).
    pub fn new(weights: &[u32]) -> Self {
        let mut w: Vec<u64> = weights.iter().map(|&w| u64::from(w.max(1))).collect();
        let total: u64 = w.iter().sum();
        if total > MAX_CYCLE {
            let scale = total.div_ceil(MAX_CYCLE);
            for x in &mut w {
                *x = (*x / scale).max(1);
            }
        }
        let total: i64 = w.iter().map(|&x| x as i64).sum();
        let mut current = vec![0i64; w.len()];
        let mut cycle = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for i in 0..w.len() {
                current[i] += w[i] as i64;
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            cycle.push(best as u32);
        }
        Weighted {
            cycle,
            n: weights.len(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Selector for Weighted {
    fn select(
        &self,
        _: &[u8],
        usable: &dyn Fn(usize) -> bool,
        _: &dyn Fn(usize) -> usize,
    ) -> Option<usize> {
        if self.cycle.is_empty() {
            return None;
        }
        let pos = self.next.fetch_add(1, Ordering::Relaxed) % self.cycle.len();
        let pick = self.cycle[pos] as usize;
        first_usable(pick, self.n, usable)
    }
}

/// A fast, lock-free pseudo-random sequence (splitmix64 over an atomic counter).
struct Rng(AtomicU64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(AtomicU64::new(seed))
    }
    fn next(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ u64::from(std::process::id()).rotate_left(32)
}

/// Uniformly random backends, weighted by repetition of the weighted cycle.
pub struct Random {
    weighted: Vec<u32>,
    n: usize,
    rng: Rng,
}

impl Random {
    /// Random choice among backends with these weights.
    pub fn new(weights: &[u32]) -> Self {
        Random {
            weighted: Weighted::new(weights).cycle,
            n: weights.len(),
            rng: Rng::new(seed()),
        }
    }
}

impl Selector for Random {
    fn select(
        &self,
        _: &[u8],
        usable: &dyn Fn(usize) -> bool,
        _: &dyn Fn(usize) -> usize,
    ) -> Option<usize> {
        if self.weighted.is_empty() {
            return None;
        }
        let pick = self.weighted[(self.rng.next() % self.weighted.len() as u64) as usize] as usize;
        first_usable(pick, self.n, usable)
    }
}

/// Consistent hashing on a ring of virtual nodes (ketama style): a key keeps its
/// backend while the set is stable, and adding one backend to N moves about 1/(N+1)
/// of the keys. Unusable backends are skipped by walking the ring forward.
pub struct ConsistentHash {
    /// Ring positions, sorted (kept apart from `owners` so the binary search walks a
    /// dense array).
    points: Vec<u64>,
    /// `owners[k]` is the backend at `points[k]`.
    owners: Vec<u32>,
    /// `buckets[b]..buckets[b + 1]` are the points whose top `64 - shift` bits are `b`:
    /// a lookup binary-searches one bucket instead of the whole ring.
    buckets: Vec<u32>,
    shift: u32,
    /// Number of backends.
    n: usize,
}

/// Ring points walked past unusable backends before falling back to a scan of the
/// backends (bounds the cost when most of a large ring is down).
const MAX_RING_WALK: usize = 1024;

/// Virtual nodes per unit of weight.
const POINTS_PER_WEIGHT: u32 = 160;

impl ConsistentHash {
    /// A ring over backends identified by `names` (their addresses: keys follow a
    /// backend by name, not by position) with these weights.
    pub fn new(names: &[&str], weights: &[u32]) -> Self {
        let mut ring: Vec<(u64, u32)> = Vec::new();
        for (i, (name, &w)) in names.iter().zip(weights).enumerate() {
            let owner = u32::try_from(i).unwrap_or(u32::MAX);
            for p in 0..POINTS_PER_WEIGHT.saturating_mul(w.max(1)) {
                ring.push((point_hash(name.as_bytes(), p), owner));
            }
        }
        ring.sort_unstable();
        let (points, owners): (Vec<u64>, Vec<u32>) = ring.into_iter().unzip();
        // About one bucket per point, at most 2^16 of them.
        let bits = (usize::BITS - points.len().leading_zeros()).clamp(1, 16);
        let shift = 64 - bits;
        let buckets = (0..=1u64 << bits)
            .map(|b| {
                let first = if b == 1 << bits {
                    points.len()
                } else {
                    points.partition_point(|&p| p < b << shift)
                };
                u32::try_from(first).unwrap_or(u32::MAX)
            })
            .collect();
        ConsistentHash {
            points,
            owners,
            buckets,
            shift,
            n: names.len().min(weights.len()),
        }
    }
}

/// A 64-bit hash of `bytes`.
pub(crate) fn hash64(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// The ring position of virtual node `p` of backend `name`.
fn point_hash(name: &[u8], p: u32) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(name);
    h.write_u32(p);
    h.finish()
}

impl Selector for ConsistentHash {
    fn select(
        &self,
        key: &[u8],
        usable: &dyn Fn(usize) -> bool,
        _: &dyn Fn(usize) -> usize,
    ) -> Option<usize> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let h = hash64(key);
        let b = (h >> self.shift) as usize;
        let (lo, hi) = match (self.buckets.get(b), self.buckets.get(b + 1)) {
            (Some(&lo), Some(&hi)) => (lo as usize, hi as usize),
            _ => (0, len),
        };
        // Every point before `lo` is below `h`, every point from `hi` on is above it.
        let start = lo + self.points[lo..hi].partition_point(|&p| p < h);
        // Walk forward to the first usable backend; past a bound, scan the backends
        // from the key's own one.
        (0..len.min(MAX_RING_WALK))
            .map(|k| self.owners[(start + k) % len] as usize)
            .find(|&i| usable(i))
            .or_else(|| first_usable(self.owners[start % len] as usize, self.n, usable))
    }
}

/// The usable backend with the fewest requests in flight (ties: in turn).
pub struct LeastConn {
    n: usize,
    next: AtomicUsize,
}

impl LeastConn {
    /// Least connections over `n` backends.
    pub fn new(n: usize) -> Self {
        LeastConn {
            n,
            next: AtomicUsize::new(0),
        }
    }
}

impl Selector for LeastConn {
    fn select(
        &self,
        _: &[u8],
        usable: &dyn Fn(usize) -> bool,
        load: &dyn Fn(usize) -> usize,
    ) -> Option<usize> {
        if self.n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.n;
        let mut best: Option<(usize, usize)> = None;
        for i in from(start, self.n) {
            if !usable(i) {
                continue;
            }
            let l = load(i);
            if best.is_none_or(|(_, b)| l < b) {
                best = Some((i, l));
                if l == 0 {
                    break; // nothing beats an idle backend
                }
            }
        }
        best.map(|(i, _)| i)
    }
}

/// Power of two choices: two random usable backends, the less loaded one wins.
pub struct PowerOfTwo {
    n: usize,
    rng: Rng,
}

impl PowerOfTwo {
    /// Power of two choices over `n` backends.
    pub fn new(n: usize) -> Self {
        PowerOfTwo {
            n,
            rng: Rng::new(seed()),
        }
    }
}

impl Selector for PowerOfTwo {
    fn select(
        &self,
        _: &[u8],
        usable: &dyn Fn(usize) -> bool,
        load: &dyn Fn(usize) -> usize,
    ) -> Option<usize> {
        if self.n == 0 {
            return None;
        }
        let r = self.rng.next();
        let a = first_usable((r % self.n as u64) as usize, self.n, usable)?;
        let b = first_usable(((r >> 32) % self.n as u64) as usize, self.n, usable)?;
        Some(if load(b) < load(a) { b } else { a })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: usize) -> bool {
        true
    }
    fn idle(_: usize) -> usize {
        0
    }

    #[test]
    fn round_robin_is_exact_and_skips_unusable() {
        let rr = RoundRobin::new(3);
        let picks: Vec<_> = (0..6)
            .map(|_| rr.select(b"", &all, &idle).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let not_one = |i: usize| i != 1;
        assert!((0..10).all(|_| rr.select(b"", &not_one, &idle) != Some(1)));
        assert_eq!(rr.select(b"", &|_| false, &idle), None);
    }

    #[test]
    fn weighted_is_smooth_and_proportional() {
        let w = Weighted::new(&[5, 1, 1]);
        let picks: Vec<_> = (0..7)
            .map(|_| w.select(b"", &all, &idle).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 5);
        // Smooth: never the heavy backend three times in a row within a cycle.
        assert!(
            !picks.windows(4).any(|x| x.iter().all(|&p| p == 0)),
            "{picks:?}"
        );
    }

    #[test]
    fn random_is_roughly_weighted() {
        let r = Random::new(&[3, 1]);
        let n = 40_000;
        let zeros = (0..n)
            .filter(|_| r.select(b"", &all, &idle) == Some(0))
            .count();
        let share = zeros as f64 / n as f64;
        assert!((0.72..0.78).contains(&share), "{share}");
    }

    #[test]
    fn consistent_hash_is_stable_and_moves_about_one_nth() {
        let names: Vec<String> = (0..10).map(|i| format!("10.0.0.{i}:80")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let ring = ConsistentHash::new(&refs, &[1; 10]);
        let keys: Vec<String> = (0..10_000).map(|i| format!("/path/{i}")).collect();
        let before: Vec<_> = keys
            .iter()
            .map(|k| ring.select(k.as_bytes(), &all, &idle))
            .collect();
        let again: Vec<_> = keys
            .iter()
            .map(|k| ring.select(k.as_bytes(), &all, &idle))
            .collect();
        assert_eq!(before, again);
        let mut names11 = refs.clone();
        names11.push("10.0.0.10:80");
        let ring11 = ConsistentHash::new(&names11, &[1; 11]);
        let moved = keys
            .iter()
            .zip(&before)
            .filter(|(k, b)| ring11.select(k.as_bytes(), &all, &idle) != **b)
            .count();
        let ratio = moved as f64 / keys.len() as f64;
        assert!((0.05..0.15).contains(&ratio), "moved {ratio}");
        // A down backend's keys go elsewhere; the others' keys stay.
        let down = |i: usize| i != 3;
        for (k, b) in keys.iter().zip(&before).take(1000) {
            let now = ring.select(k.as_bytes(), &down, &idle).unwrap();
            if *b != Some(3) {
                assert_eq!(Some(now), *b);
            } else {
                assert_ne!(now, 3);
            }
        }
    }

    #[test]
    fn bucketed_ring_lookup_matches_a_plain_search() {
        for n in [1usize, 3, 50, 700] {
            let names: Vec<String> = (0..n).map(|i| format!("h{i}:80")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let ring = ConsistentHash::new(&refs, &vec![2; n]);
            for k in 0..5_000u32 {
                let h = hash64(&k.to_le_bytes());
                let at = ring.points.partition_point(|&p| p < h) % ring.points.len();
                let want = ring.owners[at] as usize;
                assert_eq!(ring.select(&k.to_le_bytes(), &all, &idle), Some(want));
            }
        }
    }

    #[test]
    fn least_conn_and_p2c_prefer_idle_backends() {
        let loads = [5usize, 0, 7];
        let load = |i: usize| loads[i];
        let lc = LeastConn::new(3);
        assert!((0..10).all(|_| lc.select(b"", &all, &load) == Some(1)));
        let p2c = PowerOfTwo::new(3);
        let ones = (0..3000)
            .filter(|_| p2c.select(b"", &all, &load) == Some(1))
            .count();
        // Backend 1 wins whenever it is one of the two choices: about 5/9 of picks.
        assert!(ones > 1300, "{ones}");
        assert!(p2c.select(b"", &|i| i == 2, &load) == Some(2));
    }
}

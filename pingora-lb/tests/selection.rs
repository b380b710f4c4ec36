//! Distributions of every algorithm through the public `LoadBalancer`, skipping of
//! unusable backends, and swapping the backend set while other threads select.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pingora_lb::{Algorithm, Backend, LoadBalancer};

fn pool(n: usize) -> Vec<Backend> {
    (0..n)
        .map(|i| Backend::new(format!("10.0.{}.{}:80", i / 250, i % 250)))
        .collect()
}

fn counts(lb: &LoadBalancer, picks: usize) -> Vec<usize> {
    let mut c = vec![0; lb.len()];
    for k in 0..picks {
        let (i, _) = lb.select(&k.to_le_bytes()).expect("a backend");
        c[i] += 1;
    }
    c
}

#[test]
fn round_robin_is_exact() {
    let lb = LoadBalancer::new(pool(4), Algorithm::RoundRobin);
    let picks: Vec<usize> = (0..12).map(|_| lb.select(b"").unwrap().0).collect();
    assert_eq!(picks, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
    lb.set_healthy(2, false);
    let c = counts(&lb, 300);
    assert_eq!(c[2], 0);
    assert_eq!(c.iter().sum::<usize>(), 300);
}

#[test]
fn weighted_and_random_follow_weights() {
    let backends = vec![
        Backend::new("a:1").with_weight(1),
        Backend::new("b:1").with_weight(2),
        Backend::new("c:1").with_weight(5),
    ];
    // Smooth weighted round robin is exact over each cycle of 8.
    let lb = LoadBalancer::new(backends.clone(), Algorithm::Weighted);
    assert_eq!(counts(&lb, 8_000), [1_000, 2_000, 5_000]);
    // Random: within 2 percentage points of the weights' shares over 80,000 picks.
    let lb = LoadBalancer::new(backends, Algorithm::Random);
    let c = counts(&lb, 80_000);
    for (got, want) in c.iter().zip([1.0 / 8.0, 2.0 / 8.0, 5.0 / 8.0]) {
        let share = *got as f64 / 80_000.0;
        assert!((share - want).abs() < 0.02, "{c:?}");
    }
}

#[test]
fn consistent_hash_is_stable_and_remaps_about_one_in_n_plus_one() {
    let lb = LoadBalancer::new(pool(10), Algorithm::ConsistentHash);
    let keys: Vec<String> = (0..10_000).map(|i| format!("/user/{i}")).collect();
    let pick = |lb: &LoadBalancer, k: &str| lb.select(k.as_bytes()).map(|(i, _)| i);
    let addr_of = |lb: &LoadBalancer, k: &str| lb.backends()[pick(lb, k).unwrap()].addr.clone();
    let before: Vec<String> = keys.iter().map(|k| addr_of(&lb, k)).collect();
    assert!(keys.iter().zip(&before).all(|(k, b)| addr_of(&lb, k) == *b));
    // Every backend gets a fair part of the keys (within 2x of the mean).
    let mut per: HashMap<&str, usize> = HashMap::new();
    for b in &before {
        *per.entry(b).or_default() += 1;
    }
    assert_eq!(per.len(), 10);
    assert!(per.values().all(|&c| (500..2000).contains(&c)), "{per:?}");
    // Adding an 11th backend (by updating the set) moves about 1/11 of the keys,
    // all of them to the new backend.
    lb.update(pool(11));
    let new_addr = pool(11)[10].addr.clone();
    let mut moved = 0;
    for (k, b) in keys.iter().zip(&before) {
        let now = addr_of(&lb, k);
        if now != *b {
            assert_eq!(now, new_addr, "a key moved between old backends");
            moved += 1;
        }
    }
    let ratio = moved as f64 / keys.len() as f64;
    assert!((0.05..=0.15).contains(&ratio), "moved {ratio}");
    // A backend going down moves only its own keys.
    lb.set_healthy(3, false);
    let down_addr = lb.backends()[3].addr.clone();
    for k in keys.iter().take(2_000) {
        lb.set_healthy(3, true);
        let up = addr_of(&lb, k);
        lb.set_healthy(3, false);
        let down = addr_of(&lb, k);
        if up != down_addr {
            assert_eq!(up, down);
        } else {
            assert_ne!(down, down_addr);
        }
    }
}

#[test]
fn least_conn_and_p2c_prefer_idle_backends() {
    for algorithm in [Algorithm::LeastConn, Algorithm::PowerOfTwo] {
        let lb = LoadBalancer::new(pool(3), algorithm);
        // Load backends 0 and 2 with requests in flight while 1 is out; 1 stays idle.
        lb.set_healthy(1, false);
        let held: Vec<_> = (0..40).map(|_| lb.select(b"").unwrap().1).collect();
        lb.set_healthy(1, true);
        assert!(lb.in_flight(0) >= 10 && lb.in_flight(2) >= 10);
        assert_eq!(lb.in_flight(1), 0);
        let ones = (0..300)
            .filter(|_| lb.select(b"").map(|(i, _)| i) == Some(1))
            .count();
        let floor = if algorithm == Algorithm::LeastConn {
            300
        } else {
            // p2c: the idle backend wins whenever it is one of the two draws (5/9).
            120
        };
        assert!(
            ones >= floor,
            "{algorithm:?}: idle backend picked {ones}/300"
        );
        drop(held);
        assert_eq!(lb.in_flight(0) + lb.in_flight(1) + lb.in_flight(2), 0);
    }
}

#[test]
fn every_algorithm_skips_down_backends_and_gives_none_when_all_are_down() {
    for algorithm in [
        Algorithm::RoundRobin,
        Algorithm::Weighted,
        Algorithm::Random,
        Algorithm::ConsistentHash,
        Algorithm::LeastConn,
        Algorithm::PowerOfTwo,
    ] {
        let lb = LoadBalancer::new(pool(5), algorithm);
        lb.set_healthy(0, false);
        lb.mark_failed(4, Duration::from_secs(60));
        let c = counts(&lb, 500);
        assert_eq!((c[0], c[4]), (0, 0), "{algorithm:?}: {c:?}");
        for i in 1..4 {
            lb.set_healthy(i, false);
        }
        assert!(lb.select(b"k").is_none(), "{algorithm:?}");
        let empty = LoadBalancer::new(Vec::new(), algorithm);
        assert!(empty.select(b"k").is_none(), "{algorithm:?}");
    }
}

#[test]
fn consistent_hash_over_a_large_mostly_down_ring_still_finds_the_live_backend() {
    let lb = LoadBalancer::new(pool(2_000), Algorithm::ConsistentHash);
    for i in 0..2_000 {
        lb.set_healthy(i, i == 1_234);
    }
    for k in 0..50u32 {
        assert_eq!(lb.select(&k.to_le_bytes()).map(|(i, _)| i), Some(1_234));
    }
}

#[test]
fn the_set_can_be_swapped_while_other_threads_select() {
    let lb = Arc::new(LoadBalancer::new(pool(3), Algorithm::LeastConn));
    let stop = Arc::new(AtomicBool::new(false));
    let selectors: Vec<_> = (0..2)
        .map(|_| {
            let (lb, stop) = (lb.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut picks = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (i, guard) = lb.select(b"").expect("never empty");
                    assert!(i < 5);
                    drop(guard);
                    picks += 1;
                }
                picks
            })
        })
        .collect();
    for round in 0..2_000 {
        lb.update(pool(3 + round % 3));
    }
    stop.store(true, Ordering::Relaxed);
    for s in selectors {
        let picks = s.join().expect("selector thread");
        assert!(picks > 0);
    }
    lb.update(pool(5));
    let total: usize = (0..5).map(|i| lb.in_flight(i)).sum();
    assert_eq!(
        total, 0,
        "every guard released on the backend it counted on"
    );
}

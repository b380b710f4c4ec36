//! Load-balancer selection cost per algorithm with 3, 100 and 10,000 backends.

use criterion::{criterion_group, criterion_main, Criterion};
use pingora_lb::{Algorithm, Backend, LoadBalancer};

fn balancer(n: usize, algorithm: Algorithm) -> LoadBalancer {
    let backends: Vec<Backend> = (0..n)
        .map(|i| {
            Backend::new(format!("10.{}.{}.{}:80", i >> 16, (i >> 8) & 255, i & 255))
                .with_weight(1 + (i % 3) as u32)
        })
        .collect();
    LoadBalancer::new(backends, algorithm)
}

fn selection(c: &mut Criterion) {
    let mut group = c.benchmark_group("select");
    for (algo, algorithm) in [
        ("round_robin", Algorithm::RoundRobin),
        ("weighted", Algorithm::Weighted),
        ("random", Algorithm::Random),
        ("consistent_hash", Algorithm::ConsistentHash),
        ("least_conn", Algorithm::LeastConn),
        ("p2c", Algorithm::PowerOfTwo),
    ] {
        for n in [3usize, 100, 10_000] {
            let lb = balancer(n, algorithm);
            let mut i = 0u64;
            let mut key = [0u8; 8];
            group.bench_function(format!("{algo}/{n}"), |b| {
                b.iter(|| {
                    i += 1;
                    key.copy_from_slice(&i.to_le_bytes());
                    lb.select(&key)
                })
            });
        }
    }
    // Least connections stops at the first idle backend: with every backend busy it
    // scans them all, which is its worst case.
    for n in [3usize, 100, 10_000] {
        let lb = balancer(n, Algorithm::LeastConn);
        let mut busy = Vec::with_capacity(n);
        lb.set_healthy(0, false);
        while busy.len() < n - 1 {
            if let Some((_, guard)) = lb.select(b"") {
                busy.push(guard);
            }
        }
        lb.set_healthy(0, true);
        busy.extend(lb.select(b"").map(|(_, guard)| guard));
        group.bench_function(format!("least_conn_all_busy/{n}"), |b| {
            b.iter(|| lb.select(b""))
        });
        drop(busy);
    }
    group.finish();
}

criterion_group!(benches, selection);
criterion_main!(benches);

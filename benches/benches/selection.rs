//! Load-balancer selection cost per algorithm with 3, 100 and 10,000 backends.

use criterion::{criterion_group, criterion_main, Criterion};
use pingora_lb::{
    Backend, ConsistentHash, LeastConn, LoadBalancer, PowerOfTwo, Random, RoundRobin, Selector,
    Weighted,
};

fn balancer(n: usize, algo: &str) -> LoadBalancer {
    let backends: Vec<Backend> = (0..n)
        .map(|i| Backend {
            addr: format!("10.{}.{}.{}:80", i >> 16, (i >> 8) & 255, i & 255),
            weight: 1 + (i % 3) as u32,
        })
        .collect();
    let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
    let names: Vec<&str> = backends.iter().map(|b| b.addr.as_str()).collect();
    let selector: Box<dyn Selector> = match algo {
        "round_robin" => Box::new(RoundRobin::new(n)),
        "weighted" => Box::new(Weighted::new(&weights)),
        "random" => Box::new(Random::new(&weights)),
        "consistent_hash" => Box::new(ConsistentHash::new(&names, &weights)),
        "least_conn" => Box::new(LeastConn::new(n)),
        _ => Box::new(PowerOfTwo::new(n)),
    };
    LoadBalancer::new(backends, selector)
}

fn selection(c: &mut Criterion) {
    let mut group = c.benchmark_group("select");
    for algo in [
        "round_robin",
        "weighted",
        "random",
        "consistent_hash",
        "least_conn",
        "p2c",
    ] {
        for n in [3usize, 100, 10_000] {
            let lb = balancer(n, algo);
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
    group.finish();
}

criterion_group!(benches, selection);
criterion_main!(benches);

//! Upstream keep-alive pool: the cost of taking and returning an idle connection.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pingora_core::connector::pool::{ConnectionPool, Reusable};

/// A stand-in connection that is always reusable (the real check is one syscall).
struct Idle(#[allow(dead_code)] u64);

impl Reusable for Idle {
    fn is_reusable(&self) -> bool {
        true
    }
}

fn pool_get_put(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool");
    for peers in [1u64, 100] {
        let pool = ConnectionPool::new(128);
        for i in 0..128 {
            pool.put(i % peers, Idle(i), Duration::from_secs(60));
        }
        let mut key = 0u64;
        group.bench_function(format!("get+put/{peers}-peers"), |b| {
            b.iter(|| {
                key = (key + 1) % peers;
                let conn = pool.get(key).unwrap_or(Idle(key));
                pool.put(key, conn, Duration::from_secs(60));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pool_get_put);
criterion_main!(benches);

//! Upstream keep-alive pool: the cost of taking and returning an idle connection,
//! with a stand-in connection (the pool's own bookkeeping) and with real loopback
//! HTTP/1 connections (plus the socket's readiness check and the reaper's waker
//! registration when a connection is parked). Both run inside a runtime, so the pool's
//! reaper task runs as it does in the proxy.

use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pingora_core::connector::pool::{ConnectionPool, Reusable};
use pingora_core::protocols::http::v1::client::{ClientTimeouts, H1ClientSession};
use pingora_core::protocols::Stream;

/// A stand-in connection that is always reusable (the real check is one syscall).
struct Idle(#[allow(dead_code)] u64);

impl Reusable for Idle {
    fn is_reusable(&self) -> bool {
        true
    }

    fn poll_unusable(&self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

const KEEP: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn pool_get_put(c: &mut Criterion) {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let mut group = c.benchmark_group("pool");
    for peers in [1u64, 100] {
        let pool = ConnectionPool::new(128);
        for i in 0..128 {
            pool.put(i % peers, Idle(i), KEEP);
        }
        let mut key = 0u64;
        group.bench_function(format!("get+put/{peers}-peers"), |b| {
            b.iter(|| {
                key = (key + 1) % peers;
                let conn = pool.get(key).unwrap_or(Idle(key));
                pool.put(key, conn, KEEP);
            })
        });
    }
    group.finish();
}

fn pool_get_put_sockets(c: &mut Criterion) {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let addr = listener.local_addr().expect("its address");
    let timeouts = ClientTimeouts {
        read: KEEP,
        write: KEEP,
    };
    let pool = ConnectionPool::new(128);
    let mut accepted = Vec::new();
    for _ in 0..16 {
        let tcp = rt
            .block_on(tokio::net::TcpStream::connect(addr))
            .expect("a connection");
        accepted.push(listener.accept().expect("accepted"));
        pool.put(1, H1ClientSession::new(Stream::Tcp(tcp), timeouts), KEEP);
    }
    assert_eq!(pool.len(), 16);
    c.bench_function("pool/get+put/16-loopback-http1", |b| {
        b.iter(|| {
            // What the connector does: take one, and give it back if still open.
            let conn = pool.get(1).expect("a pooled connection");
            assert!(conn.is_reusable());
            pool.put(1, conn, KEEP);
        })
    });
    drop(accepted);
}

criterion_group!(benches, pool_get_put, pool_get_put_sockets);
criterion_main!(benches);

//! Benchmarks of the per-request header work of the proxy: turning a client's request
//! head into the upstream one (copy, hop-by-hop headers removed, `X-Forwarded-For`
//! appended) and removing hop-by-hop headers from an upstream response head.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion};
use pingora_benches::BROWSER_REQUEST;
use pingora_core::protocols::http::v1::{parse_request, parse_response, HeadLimits};
use pingora_proxy::headers::{append_forwarded_for, strip_hop_by_hop};

/// What a load generator sends (wrk, h2load): no hop-by-hop header at all.
const BENCH_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

/// An nginx response head.
const ORIGIN_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.22.1\r\n\
Date: Sat, 05 Dec 2026 12:00:00 GMT\r\n\
Content-Type: text/html\r\n\
Content-Length: 1024\r\n\
Last-Modified: Sat, 05 Dec 2026 11:00:00 GMT\r\n\
Connection: keep-alive\r\n\
ETag: \"6751b0f0-400\"\r\n\
Accept-Ranges: bytes\r\n\
\r\n";

fn upstream_request(c: &mut Criterion) {
    let limits = HeadLimits::default();
    let client = IpAddr::V4(Ipv4Addr::new(192, 168, 10, 20));
    let mut group = c.benchmark_group("upstream_request");
    for (name, raw) in [("browser", BROWSER_REQUEST), ("wrk", BENCH_REQUEST)] {
        let req = parse_request(&mut BytesMut::from(raw), &limits)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("benchmark request does not parse"));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut up = black_box(&req).clone();
                strip_hop_by_hop(&mut up.headers, false);
                append_forwarded_for(&mut up.headers, client);
                black_box(up)
            })
        });
    }
    group.finish();
}

fn response_hop_by_hop(c: &mut Criterion) {
    let resp = parse_response(&mut BytesMut::from(ORIGIN_RESPONSE), &HeadLimits::default())
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("benchmark response does not parse"));
    c.bench_function("response_strip_hop_by_hop", |b| {
        b.iter_batched_ref(
            || resp.clone(),
            |r| strip_hop_by_hop(&mut r.headers, false),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, upstream_request, response_hop_by_hop);
criterion_main!(benches);

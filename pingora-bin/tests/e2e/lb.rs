//! Load balancing through the binary: round robin, weights, consistent hashing, a dead
//! backend losing no request, health checks taking a backend out and back, all down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use test_support::{free_addr, request, wait_for_port, Metrics, Origin, Proxy, ProxyConfig, Reply};

use crate::bin;

/// Starts the proxy with its upstream's peers from `peers` and the extra upstream
/// `lines`; returns it and its address.
pub(crate) fn start(peers: &str, lines: &[&str]) -> Proxy {
    let origin = free_addr(); // replaced by `peers`
    lines
        .iter()
        .fold(ProxyConfig::new(origin).peers_from(peers), |c, l| {
            c.upstream(l)
        })
        .start(bin())
}

fn body(listen: SocketAddr, path: &str) -> (u16, String) {
    let r = request(listen, "GET", path, &[("Host", "x")], b"").expect("response");
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[test]
fn round_robin_alternates_exactly() {
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let p = start(
        &format!("peers: [\"{}\", \"{}\"]", a.addr(), b.addr()),
        &["lb: round_robin"],
    );
    let listen = p.addr;
    let bodies: Vec<String> = (0..6).map(|_| body(listen, "/").1).collect();
    assert!(
        bodies == ["a", "b", "a", "b", "a", "b"] || bodies == ["b", "a", "b", "a", "b", "a"],
        "{bodies:?}"
    );
}

#[test]
fn weighted_follows_weights() {
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let p = start(
        &format!(
            "peers: [{{ addr: \"{}\", weight: 3 }}, \"{}\"]",
            a.addr(),
            b.addr()
        ),
        &["lb: weighted"],
    );
    let listen = p.addr;
    let a_count = (0..40).filter(|_| body(listen, "/").1 == "a").count();
    assert_eq!(a_count, 30);
}

#[test]
fn consistent_hash_keeps_a_uri_on_one_backend() {
    let (a, b, c) = (Origin::named("a"), Origin::named("b"), Origin::named("c"));
    let p = start(
        &format!(
            "peers: [\"{}\", \"{}\", \"{}\"]",
            a.addr(),
            b.addr(),
            c.addr()
        ),
        &["lb: consistent_hash", "hash_key: uri"],
    );
    let listen = p.addr;
    let mut seen = std::collections::HashSet::new();
    for i in 0..30 {
        let path = format!("/item/{i}");
        let first = body(listen, &path).1;
        for _ in 0..3 {
            assert_eq!(body(listen, &path).1, first, "{path}");
        }
        seen.insert(first);
    }
    assert_eq!(seen.len(), 3, "keys spread over every backend");
}

#[test]
fn a_dead_backend_loses_no_request() {
    let live = Origin::named("live");
    let dead = free_addr(); // nothing listens there
    let p = start(&format!("peers: [\"{dead}\", \"{}\"]", live.addr()), &[]);
    let listen = p.addr;
    for _ in 0..20 {
        assert_eq!(body(listen, "/"), (200, "live".to_string()));
    }
}

#[test]
fn health_checks_take_a_backend_out_and_back() {
    let status = Arc::new(AtomicU16::new(200));
    let s = status.clone();
    let sick = Origin::start(move |req| {
        if req.path == "/health" {
            Reply::full(s.load(Ordering::Relaxed), &[], "health")
        } else {
            Reply::ok("sick")
        }
    });
    let well = Origin::named("well");
    let p = start(
        &format!("peers: [\"{}\", \"{}\"]", sick.addr(), well.addr()),
        &["health_check: { type: http, path: /health, interval_ms: 50 }"],
    );
    let listen = p.addr;
    let served_by = |who: &str, n: usize| (0..n).filter(|_| body(listen, "/").1 == who).count();
    assert!(served_by("sick", 10) > 0);
    status.store(500, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_by("sick", 4) > 0 {
        assert!(Instant::now() < deadline, "sick backend still gets traffic");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(served_by("sick", 20), 0);
    status.store(200, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_by("sick", 4) == 0 {
        assert!(
            Instant::now() < deadline,
            "recovered backend gets no traffic"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn all_backends_down_is_503() {
    let (d1, d2) = (free_addr(), free_addr());
    let p = start(
        &format!("peers: [\"{d1}\", \"{d2}\"]"),
        &["health_check: { type: tcp, interval_ms: 50 }"],
    );
    let listen = p.addr;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = body(listen, "/");
        if status == 503 {
            break;
        }
        assert_eq!(status, 502, "before the checks mark them down");
        assert!(Instant::now() < deadline, "never 503");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn backend_health_is_reported_in_metrics() {
    let live = Origin::named("live");
    let dead = free_addr();
    let admin = free_addr();
    let _p = ProxyConfig::new(live.addr())
        .set("admin", &format!("{{ addr: \"{admin}\" }}"))
        .peers_from(&format!("peers: [\"{}\", \"{dead}\"]", live.addr()))
        .upstream("health_check: { type: tcp, interval_ms: 50 }")
        .start(bin());
    assert!(wait_for_port(admin, Duration::from_secs(5)));
    let gauge = |backend: SocketAddr| {
        Metrics::scrape(admin).find(
            "pingora_upstream_backend_healthy",
            &[("backend", &backend.to_string())],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while gauge(dead) != Some(0.0) {
        assert!(Instant::now() < deadline, "dead backend never reported 0");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gauge(live.addr()), Some(1.0));
}

//! Load balancing through the binary: round robin, weights, consistent hashing, a dead
//! backend losing no request, health checks taking a backend out and back, all down.

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::bin;
use test_support::{free_addr, request, Origin, ProxyProcess, Reply};

fn named(name: &'static str) -> Origin {
    Origin::start(move |req| {
        if req.path == "/health" {
            Reply::ok("ok")
        } else {
            Reply::ok(name)
        }
    })
}

fn start(listen: std::net::SocketAddr, upstream: &str) -> ProxyProcess {
    let yaml = format!(
        r#"version: 1
pid_file: {{dir}}/pingora.pid
upgrade_sock: {{dir}}/upgrade.sock
services:
  - name: web
    listeners: [ {{ addr: "{listen}" }} ]
    routes: [ {{ upstream: pool }} ]
    upstreams:
      pool:
{upstream}
"#
    );
    ProxyProcess::start(bin(), &yaml, &[listen]).expect("proxy starts")
}

fn body(listen: std::net::SocketAddr, path: &str) -> (u16, String) {
    let r = request(listen, "GET", path, &[("Host", "x")], b"").expect("response");
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[test]
fn round_robin_alternates_exactly() {
    let (a, b) = (named("a"), named("b"));
    let listen = free_addr();
    let _p = start(
        listen,
        &format!(
            "        peers: [\"{}\", \"{}\"]\n        lb: round_robin",
            a.addr(),
            b.addr()
        ),
    );
    let bodies: Vec<String> = (0..6).map(|_| body(listen, "/").1).collect();
    assert!(
        bodies == ["a", "b", "a", "b", "a", "b"] || bodies == ["b", "a", "b", "a", "b", "a"],
        "{bodies:?}"
    );
}

#[test]
fn weighted_follows_weights() {
    let (a, b) = (named("a"), named("b"));
    let listen = free_addr();
    let _p = start(
        listen,
        &format!(
            "        peers: [{{ addr: \"{}\", weight: 3 }}, \"{}\"]\n        lb: weighted",
            a.addr(),
            b.addr()
        ),
    );
    let a_count = (0..40).filter(|_| body(listen, "/").1 == "a").count();
    assert_eq!(a_count, 30);
}

#[test]
fn consistent_hash_keeps_a_uri_on_one_backend() {
    let (a, b, c) = (named("a"), named("b"), named("c"));
    let listen = free_addr();
    let _p = start(
        listen,
        &format!(
            "        peers: [\"{}\", \"{}\", \"{}\"]\n        lb: consistent_hash\n        hash_key: uri",
            a.addr(),
            b.addr(),
            c.addr()
        ),
    );
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
    let live = named("live");
    let dead = free_addr(); // nothing listens there
    let listen = free_addr();
    let _p = start(
        listen,
        &format!("        peers: [\"{dead}\", \"{}\"]", live.addr()),
    );
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
    let well = named("well");
    let listen = free_addr();
    let _p = start(
        listen,
        &format!(
            "        peers: [\"{}\", \"{}\"]\n        health_check: {{ type: http, path: /health, interval_ms: 50 }}",
            sick.addr(),
            well.addr()
        ),
    );
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
    let listen = free_addr();
    let _p = start(
        listen,
        &format!("        peers: [\"{d1}\", \"{d2}\"]\n        health_check: {{ type: tcp, interval_ms: 50 }}"),
    );
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
    let live = named("live");
    let dead = free_addr();
    let (listen, admin) = (free_addr(), free_addr());
    let yaml = format!(
        r#"version: 1
pid_file: {{dir}}/pingora.pid
upgrade_sock: {{dir}}/upgrade.sock
admin: {{ addr: "{admin}" }}
services:
  - name: web
    listeners: [ {{ addr: "{listen}" }} ]
    routes: [ {{ upstream: pool }} ]
    upstreams:
      pool:
        peers: ["{live}", "{dead}"]
        health_check: {{ type: tcp, interval_ms: 50 }}
"#,
        live = live.addr()
    );
    let _p = ProxyProcess::start(bin(), &yaml, &[listen, admin]).expect("proxy starts");
    let gauge = |backend: String| {
        let r = request(admin, "GET", "/metrics", &[("Host", "x")], b"").expect("metrics");
        let text = String::from_utf8_lossy(&r.body).into_owned();
        text.lines()
            .find(|l| {
                l.starts_with("pingora_upstream_backend_healthy{")
                    && l.contains(&format!("backend=\"{backend}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while gauge(dead.to_string()).as_deref() != Some("0") {
        assert!(Instant::now() < deadline, "dead backend never reported 0");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gauge(live.addr().to_string()).as_deref(), Some("1"));
}

//! `Upstream`, the balancer a proxy's `upstream_peer` uses: peers handed out, passive
//! failures, drain and enable, and health checks run as a background task against
//! real listeners on 127.0.0.1.

use std::net::TcpListener;
use std::time::Duration;

use pingora_lb::{Algorithm, Backend, HealthCheck, HealthCheckKind, Upstream};

/// Most time a background check may take to notice a change.
const WAIT: Duration = Duration::from_secs(5);

/// An address nothing listens on (bound, then closed).
fn closed_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

fn picks(up: &Upstream, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            up.select(b"")
                .map_or("none".to_string(), |s| s.peer.address.to_string())
        })
        .collect()
}

#[test]
fn peers_drain_enable_and_counts() {
    let (a, b) = ("127.0.0.1:1001", "127.0.0.1:1002");
    let up = Upstream::new(
        "api",
        vec![Backend::new(a), Backend::new(b)],
        Algorithm::RoundRobin,
    );
    assert_eq!(picks(&up, 4), [a, b, a, b]);
    let held = up.select(b"").expect("a pick");
    assert_eq!(held.peer.address.to_string(), a);
    assert!(up.drain(a).expect("known backend"));
    assert!(!up.drain(a).expect("known backend"), "already draining");
    assert!(up.drain("10.0.0.1:1").is_err(), "unknown backend");
    assert_eq!(
        picks(&up, 3),
        [b, b, b],
        "a drained backend gets no new request"
    );
    let st = up.statuses();
    assert!(
        st[0].draining && st[0].in_flight == 1,
        "its request in flight goes on"
    );
    assert_eq!((st[0].requests, st[1].requests), (3, 5));
    drop(held);
    assert_eq!(up.statuses()[0].in_flight, 0);
    assert!(up.enable(a).expect("known backend"));
    assert_eq!(picks(&up, 2).iter().filter(|p| *p == a).count(), 1);

    // A failed connect: counted, and the backend skipped for the back-off.
    let failed = up.select(b"").expect("a pick");
    let failed_addr = failed.peer.address.to_string();
    up.connect_failed(&failed.in_flight);
    let other = if failed_addr == a { b } else { a };
    assert_eq!(picks(&up, 3), [other, other, other]);
    let st = up.statuses();
    let s = st.iter().find(|s| s.addr == failed_addr).unwrap();
    assert_eq!(s.errors, 1);
    assert!(s.backoff_remaining.is_some() && s.healthy && !s.is_usable());

    // The only usable backend drained: nothing to pick, and the error says which upstream.
    up.drain(other).unwrap();
    let e = up.select_or_error(b"").unwrap_err();
    assert!(e.to_string().contains("upstream api"), "{e}");
}

#[test]
fn a_single_backend_is_not_backed_off() {
    let up = Upstream::new(
        "one",
        vec![Backend::new("127.0.0.1:1")],
        Algorithm::RoundRobin,
    );
    let s = up.select(b"").unwrap();
    up.connect_failed(&s.in_flight);
    assert!(
        up.select(b"").is_some(),
        "nothing better to send requests to"
    );
    assert_eq!(up.statuses()[0].errors, 1);
}

#[test]
fn background_health_checks_take_a_dead_backend_out() {
    let live = TcpListener::bind("127.0.0.1:0").expect("bind");
    let live_addr = live.local_addr().unwrap().to_string();
    let dead_addr = closed_addr();
    let up = Upstream::new(
        "web",
        vec![Backend::new(&live_addr), Backend::new(&dead_addr)],
        Algorithm::RoundRobin,
    )
    .health_check(HealthCheck::every(
        HealthCheckKind::Tcp,
        Duration::from_millis(20),
    ));
    assert!(up.has_background());
    let tasks = up.background();
    assert!(!tasks.is_empty());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let checks = rt.spawn(tasks.run());
    let deadline = std::time::Instant::now() + WAIT;
    let dead_is_down = || {
        let st = up.statuses();
        !st[1].healthy && st[1].last_check.is_some_and(|c| !c.passed)
    };
    while !dead_is_down() {
        assert!(std::time::Instant::now() < deadline, "{:?}", up.statuses());
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(10)).await });
    }
    let st = up.statuses();
    assert!(st[0].healthy && st[0].last_check.is_some_and(|c| c.passed));
    assert_eq!(picks(&up, 3), [live_addr.as_str(); 3]);
    checks.abort();
}

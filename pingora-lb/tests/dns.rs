//! DNS discovery against a DNS server the test runs on 127.0.0.1 (UDP): A, AAAA and
//! SRV answers, changes picked up on the TTL (within the refresh bounds), and failures
//! or empty answers that keep the last good set.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use pingora_lb::{
    run_discovery, AddressFamily, Algorithm, Backend, Discovery, DnsDiscovery, DnsDiscoveryOptions,
    DnsQuery, LbError, LoadBalancer,
};
use test_support::{DnsFailure, DnsServer, DnsType, SrvRecord};
use tokio::sync::oneshot;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(10);

fn options(server: &DnsServer, name: &str, query: DnsQuery) -> DnsDiscoveryOptions {
    let mut o = DnsDiscoveryOptions::new(name, query);
    o.nameserver = Some(server.addr());
    o.refresh_min = Duration::from_millis(50);
    o.refresh_max = Duration::from_secs(30);
    o.timeout = Duration::from_millis(200);
    o
}

fn a(port: u16) -> DnsQuery {
    DnsQuery::Addresses {
        port,
        family: AddressFamily::V4,
    }
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

fn addrs(lb: &LoadBalancer) -> Vec<String> {
    lb.backends().into_iter().map(|b| b.addr).collect()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs discovery into a new, empty balancer until the returned sender is dropped.
fn follow(d: DnsDiscovery) -> (Arc<LoadBalancer>, oneshot::Sender<()>) {
    let lb = Arc::new(LoadBalancer::new(Vec::new(), Algorithm::RoundRobin));
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(run_discovery(
        lb.clone(),
        d,
        Duration::from_secs(3600),
        async {
            let _ = rx.await;
        },
    ));
    (lb, tx)
}

#[tokio::test]
async fn a_and_aaaa_records_become_backends_sorted() {
    let server = DnsServer::start().expect("dns server");
    server.set_a("api.test", 30, &[ip(3), ip(1), ip(2)]);
    server.set_aaaa("api.test", 30, &[Ipv6Addr::LOCALHOST]);

    let v4 = DnsDiscovery::new(options(&server, "api.test", a(8080))).unwrap();
    assert_eq!(
        v4.discover().await.unwrap(),
        [
            Backend::new("127.0.0.1:8080"),
            Backend::new("127.0.0.2:8080"),
            Backend::new("127.0.0.3:8080"),
        ]
    );
    assert_eq!(v4.describe(), "DNS api.test (A)");
    // Within its TTL, the next resolution waits: about 30 s, under the 30 s cap.
    let wait = v4.refresh_after(Duration::ZERO);
    assert!(wait > Duration::from_secs(25), "{wait:?}");

    let both = DnsQuery::Addresses {
        port: 81,
        family: AddressFamily::Both,
    };
    let all = DnsDiscovery::new(options(&server, "api.test.", both)).unwrap();
    let found: Vec<String> = all
        .discover()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.addr)
        .collect();
    assert_eq!(
        found,
        ["127.0.0.1:81", "127.0.0.2:81", "127.0.0.3:81", "[::1]:81"]
    );

    // A name with only A records answers nothing for AAAA: empty, not an error.
    server.set_aaaa("api.test", 30, &[]);
    let v6 = DnsQuery::Addresses {
        port: 81,
        family: AddressFamily::V6,
    };
    let err = DnsDiscovery::new(options(&server, "api.test", v6))
        .unwrap()
        .discover()
        .await
        .unwrap_err();
    assert!(matches!(err, LbError::Empty { .. }), "{err}");
    // An unknown name is empty too (NXDOMAIN).
    let err = DnsDiscovery::new(options(&server, "nope.test", a(1)))
        .unwrap()
        .discover()
        .await
        .unwrap_err();
    assert!(matches!(err, LbError::Empty { .. }), "{err}");
}

#[tokio::test]
async fn srv_records_give_ports_and_weights_of_the_best_priority() {
    let server = DnsServer::start().expect("dns server");
    let srv = |priority, weight, port, target: &str| SrvRecord {
        priority,
        weight,
        port,
        target: target.into(),
    };
    server.set_srv(
        "_http._tcp.api.test",
        30,
        &[
            srv(10, 3, 8001, "a.test"),
            srv(10, 0, 8002, "b.test"),
            srv(10, 5, 8003, "gone.test"),
            srv(20, 1, 9000, "c.test"),
        ],
    );
    server.set_a("a.test", 30, &[ip(1)]);
    server.set_a("b.test", 30, &[ip(2)]);
    server.set_aaaa("b.test", 30, &[Ipv6Addr::LOCALHOST]);
    server.set_a("c.test", 30, &[ip(3)]);

    let d = DnsDiscovery::new(options(&server, "_http._tcp.api.test", DnsQuery::Srv)).unwrap();
    assert_eq!(
        d.discover().await.unwrap(),
        [
            Backend::new("127.0.0.1:8001").with_weight(3),
            // Weight 0 counts as 1; both addresses of the target are backends.
            Backend::new("127.0.0.2:8002"),
            Backend::new("[::1]:8002"),
        ],
        "priority 20 is only a fallback; a target without address gives nothing"
    );
    assert_eq!(server.queries("c.test", DnsType::A), 0);
    assert_eq!(d.describe(), "DNS _http._tcp.api.test (SRV)");
}

#[tokio::test]
async fn a_changed_answer_is_picked_up_once_the_ttl_runs_out() {
    let server = DnsServer::start().expect("dns server");
    server.set_a("api.test", 1, &[ip(1)]);
    let started = Instant::now();
    let (lb, _stop) = follow(DnsDiscovery::new(options(&server, "api.test", a(80))).unwrap());
    wait_for("first answer", || lb.len() == 1).await;
    let first_answer = started.elapsed();
    server.set_a("api.test", 1, &[ip(1), ip(2)]);
    wait_for("the change", || lb.len() == 2).await;
    // The first answer was good for 1 s: the change shows only once that ran out.
    let seen_after = started.elapsed();
    assert!(
        seen_after >= first_answer + Duration::from_millis(500),
        "change seen {seen_after:?} after start, first answer at {first_answer:?}"
    );
    assert_eq!(addrs(&lb), ["127.0.0.1:80", "127.0.0.2:80"]);
    // One query per TTL (1 s), not one per `refresh_min` (50 ms): in the time this
    // took, at most one query per started second, and one more at the start.
    let elapsed = started.elapsed().as_secs_f64();
    let queries = server.queries("api.test", DnsType::A);
    assert!(queries >= 2, "{queries}");
    assert!(
        (queries as f64) <= elapsed.ceil() + 1.0,
        "{queries} queries in {elapsed:.2} s with a 1 s TTL"
    );
}

#[tokio::test]
async fn the_refresh_bounds_win_over_the_ttl() {
    let server = DnsServer::start().expect("dns server");
    // An hour-long TTL, capped to 200 ms: a change shows within a second.
    server.set_a("long.test", 3600, &[ip(1)]);
    let mut o = options(&server, "long.test", a(80));
    o.refresh_max = Duration::from_millis(200);
    let (lb, _stop) = follow(DnsDiscovery::new(o).unwrap());
    wait_for("first answer", || lb.len() == 1).await;
    server.set_a("long.test", 3600, &[ip(2)]);
    let changed = Instant::now();
    wait_for("the change", || addrs(&lb) == ["127.0.0.2:80"]).await;
    assert!(changed.elapsed() < Duration::from_secs(2));

    // A TTL of 0 with a 400 ms floor: a few queries a second, not hundreds.
    server.set_a("zero.test", 0, &[ip(1)]);
    let mut o = options(&server, "zero.test", a(80));
    o.refresh_min = Duration::from_millis(400);
    let started = Instant::now();
    let (lb, _stop) = follow(DnsDiscovery::new(o).unwrap());
    wait_for("first answer", || lb.len() == 1).await;
    wait_for("three queries", || {
        server.queries("zero.test", DnsType::A) >= 3
    })
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(800),
        "three queries in {elapsed:?} with a 400 ms floor"
    );
}

#[tokio::test]
async fn failures_and_empty_answers_keep_the_last_good_set() {
    let server = DnsServer::start().expect("dns server");
    server.set_a("api.test", 0, &[ip(1), ip(2)]);
    let mut o = options(&server, "api.test", a(80));
    o.refresh_max = Duration::from_millis(200);
    let (lb, _stop) = follow(DnsDiscovery::new(o).unwrap());
    wait_for("first answer", || lb.len() == 2).await;

    for failure in [DnsFailure::ServFail, DnsFailure::Silent] {
        server.fail(Some(failure));
        let before = server.queries("api.test", DnsType::A);
        wait_for("two failed resolutions", || {
            server.queries("api.test", DnsType::A) >= before + 2
        })
        .await;
        assert_eq!(addrs(&lb), ["127.0.0.1:80", "127.0.0.2:80"], "{failure:?}");
        server.fail(None);
    }

    // The name disappears (NXDOMAIN), then exists with no address: still the old set.
    server.set_a("api.test", 0, &[]);
    let before = server.queries("api.test", DnsType::A);
    wait_for("two empty answers", || {
        server.queries("api.test", DnsType::A) >= before + 2
    })
    .await;
    assert_eq!(lb.len(), 2);

    // Working again: the new answer replaces the set.
    server.set_a("api.test", 0, &[ip(3)]);
    wait_for("recovery", || addrs(&lb) == ["127.0.0.3:80"]).await;
}

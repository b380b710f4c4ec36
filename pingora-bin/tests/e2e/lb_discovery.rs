//! Peers discovered while the binary serves: traffic follows a DNS change (SRV) and
//! an edit of a peer file, a failing DNS server keeps the last peers; and health-check
//! thresholds: a failing origin goes out only after `unhealthy_threshold` failed
//! checks and comes back only after `healthy_threshold` passing ones.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use test_support::{request, DnsFailure, DnsServer, DnsType, Origin, Reply, SrvRecord, TestDir};

use crate::lb::start;

const WAIT: Duration = Duration::from_secs(10);

fn body(listen: SocketAddr) -> String {
    let r = request(listen, "GET", "/", &[("Host", "x")], b"").expect("response");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Polls until `cond` holds, failing with `what` after [`WAIT`].
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn srv_to(port: u16) -> [SrvRecord; 1] {
    [SrvRecord {
        priority: 10,
        weight: 1,
        port,
        target: "origin.test".into(),
    }]
}

#[test]
fn traffic_follows_a_dns_change() {
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let dns = DnsServer::start().expect("dns server");
    dns.set_a("origin.test", 60, &[Ipv4Addr::LOCALHOST]);
    dns.set_srv("_http._tcp.pool.test", 1, &srv_to(a.addr().port()));
    let p = start(
        &format!(
            "discovery: {{ type: dns, name: _http._tcp.pool.test, record: srv, resolver: \"{}\", refresh_min_ms: 100, refresh_max_ms: 2000 }}",
            dns.addr()
        ),
        &[],
    );
    let listen = p.addr;
    // Resolved before serving: the very first request has a peer.
    assert_eq!(body(listen), "a");
    dns.set_srv("_http._tcp.pool.test", 1, &srv_to(b.addr().port()));
    wait_for("traffic moves to b", || body(listen) == "b");
    assert!((0..10).all(|_| body(listen) == "b"), "a left the set");
}

#[test]
fn a_failing_dns_server_keeps_the_last_peers() {
    let a = Origin::named("a");
    let dns = DnsServer::start().expect("dns server");
    dns.set_a("pool.test", 0, &[Ipv4Addr::LOCALHOST]);
    let p = start(
        &format!(
            "discovery: {{ type: dns, name: pool.test, port: {}, record: a, resolver: \"{}\", refresh_min_ms: 50, refresh_max_ms: 200 }}",
            a.addr().port(),
            dns.addr()
        ),
        &[],
    );
    let listen = p.addr;
    assert_eq!(body(listen), "a");
    for failure in [DnsFailure::ServFail, DnsFailure::Silent] {
        dns.fail(Some(failure));
        let before = dns.queries("pool.test", DnsType::A);
        wait_for("failed resolutions", || {
            dns.queries("pool.test", DnsType::A) >= before + 2
        });
        assert!((0..5).all(|_| body(listen) == "a"), "{failure:?}");
        dns.fail(None);
    }
    // The name disappears: an empty answer keeps the peers too.
    dns.set_a("pool.test", 0, &[]);
    let before = dns.queries("pool.test", DnsType::A);
    wait_for("empty answers", || {
        dns.queries("pool.test", DnsType::A) >= before + 2
    });
    assert!((0..5).all(|_| body(listen) == "a"));
}

#[test]
fn file_discovery_picks_up_an_edit() {
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let dir = TestDir::new().expect("temp dir");
    let list = dir
        .write("peers.txt", &format!("# the pool\n{}\n", a.addr()))
        .expect("peer file");
    let p = start(
        &format!(
            "discovery: {{ type: file, path: {}, interval_ms: 50 }}",
            list.display()
        ),
        &[],
    );
    let listen = p.addr;
    assert_eq!(body(listen), "a");
    // Replaced the way a deployment tool would: a new file renamed over the old one.
    let next = dir
        .write("peers.txt.new", &format!("{} 1\n", b.addr()))
        .expect("new list");
    std::fs::rename(&next, &list).expect("rename");
    wait_for("traffic moves to b", || body(listen) == "b");
    assert!((0..10).all(|_| body(listen) == "b"), "a left the set");
}

/// An origin whose `/health` answers the current `status`; counts the failing (5xx)
/// and passing answers it gave there.
struct Patient {
    origin: Origin,
    status: Arc<AtomicU16>,
    failed: Arc<AtomicUsize>,
    passed: Arc<AtomicUsize>,
}

impl Patient {
    fn start() -> Patient {
        let status = Arc::new(AtomicU16::new(200));
        let failed = Arc::new(AtomicUsize::new(0));
        let passed = Arc::new(AtomicUsize::new(0));
        let (s, f, p) = (status.clone(), failed.clone(), passed.clone());
        let origin = Origin::start(move |req| {
            if req.path != "/health" {
                return Reply::ok("patient");
            }
            let code = s.load(Ordering::SeqCst);
            if code >= 500 {
                f.fetch_add(1, Ordering::SeqCst);
            } else {
                p.fetch_add(1, Ordering::SeqCst);
            }
            Reply::full(code, &[], "health")
        });
        Patient {
            origin,
            status,
            failed,
            passed,
        }
    }
}

#[test]
fn health_thresholds_take_an_origin_out_and_back_in() {
    let patient = Patient::start();
    let other = Origin::named("other");
    let p = start(
        &format!(
            "peers: [\"{}\", \"{}\"]",
            patient.origin.addr(),
            other.addr()
        ),
        &["health_check: { type: http, path: /health, interval_ms: 100, unhealthy_threshold: 5, healthy_threshold: 4, expected_status: \"200-299\" }"],
    );
    let listen = p.addr;
    // Round robin over two: four requests reach the patient while it is in.
    let reaches_patient = || (0..4).any(|_| body(listen) == "patient");
    assert!(reaches_patient());

    patient.status.store(503, Ordering::SeqCst);
    wait_for("the patient goes out", || {
        let failed = patient.failed.load(Ordering::SeqCst);
        let reached = reaches_patient();
        // With at most 3 failed checks seen before the requests (a 4th may run
        // meanwhile), the threshold of 5 is not reached: it must still be in.
        assert!(reached || failed >= 4, "out after {failed} failed checks");
        !reached
    });
    let failed = patient.failed.load(Ordering::SeqCst);
    assert!(failed >= 5, "out after only {failed} failed checks");
    assert!((0..10).all(|_| body(listen) == "other"));

    let passed_before = patient.passed.load(Ordering::SeqCst);
    patient.status.store(204, Ordering::SeqCst);
    wait_for("the patient comes back", || {
        let passed = patient.passed.load(Ordering::SeqCst) - passed_before;
        let reached = reaches_patient();
        assert!(
            !reached || passed >= 3,
            "back after {passed} passing checks"
        );
        reached
    });
    let passed = patient.passed.load(Ordering::SeqCst) - passed_before;
    assert!(passed >= 4, "back after only {passed} passing checks");
}

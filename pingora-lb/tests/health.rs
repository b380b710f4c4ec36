//! Health checks against real servers on 127.0.0.1: HTTP status, thresholds, the Host
//! header, a port that closes, a server that never answers.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora_lb::{
    Algorithm, Backend, HealthCheck, HealthCheckKind, HealthChecker, LoadBalancer, Thresholds,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const INTERVAL: Duration = Duration::from_millis(20);
const WAIT: Duration = Duration::from_secs(5);

/// A tiny HTTP server answering every request with the current `status`; counts the
/// answers given with a bad status and keeps the Host headers it saw.
struct StatusServer {
    addr: String,
    status: Arc<AtomicU16>,
    bad_answers: Arc<AtomicUsize>,
    hosts: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

impl StatusServer {
    async fn start() -> StatusServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let status = Arc::new(AtomicU16::new(200));
        let bad_answers = Arc::new(AtomicUsize::new(0));
        let hosts = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (st, bad, hs, conns) = (
            status.clone(),
            bad_answers.clone(),
            hosts.clone(),
            connections.clone(),
        );
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let (st, bad, hs) = (st.clone(), bad.clone(), hs.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut b = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&b[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some(h) = text.lines().find_map(|l| l.strip_prefix("Host: ")) {
                        hs.lock().unwrap().push(h.to_string());
                    }
                    let code = st.load(Ordering::SeqCst);
                    if code >= 400 {
                        bad.fetch_add(1, Ordering::SeqCst);
                    }
                    let r = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                    let _ = s.write_all(r.as_bytes()).await;
                });
            }
        });
        StatusServer {
            addr,
            status,
            bad_answers,
            hosts,
            connections,
        }
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs a checker on `lb`; dropping the returned sender stops it.
fn run(lb: &Arc<LoadBalancer>, kind: HealthCheckKind, timeout: Duration) -> oneshot::Sender<()> {
    run_with(lb, kind, timeout, Thresholds::default())
}

/// Runs a checker with `thresholds` on `lb`; dropping the returned sender stops it.
fn run_with(
    lb: &Arc<LoadBalancer>,
    kind: HealthCheckKind,
    timeout: Duration,
    thresholds: Thresholds,
) -> oneshot::Sender<()> {
    let (tx, rx) = oneshot::channel::<()>();
    let check = HealthCheck {
        kind,
        interval: INTERVAL,
        timeout,
        thresholds,
        tls: None,
        proxy_protocol: None,
    };
    tokio::spawn(HealthChecker::new(lb.clone(), check).run(async {
        let _ = rx.await;
    }));
    tx
}

fn http(path: &str, host: Option<&str>) -> HealthCheckKind {
    HealthCheckKind::Http {
        path: path.into(),
        host: host.map(String::from),
        expected_status: HealthCheckKind::DEFAULT_STATUS,
    }
}

#[tokio::test]
async fn http_check_goes_down_after_the_failure_threshold_and_back_after_recovery() {
    let server = StatusServer::start().await;
    let other = StatusServer::start().await;
    let lb = Arc::new(LoadBalancer::new(
        vec![Backend::new(&server.addr), Backend::new(&other.addr)],
        Algorithm::RoundRobin,
    ));
    let _stop = run(&lb, http("/health", Some("app.example")), WAIT);
    wait_for("a first probe", || !server.hosts.lock().unwrap().is_empty()).await;
    assert_eq!(server.hosts.lock().unwrap()[0], "app.example");
    assert!(lb.is_healthy(0));

    server.status.store(500, Ordering::SeqCst);
    wait_for("unhealthy after 500s", || !lb.is_healthy(0)).await;
    let bad = server.bad_answers.load(Ordering::SeqCst);
    assert!(bad >= 3, "down after only {bad} failed probes");
    assert!(bad <= 6, "down only after {bad} failed probes");
    // Only the healthy backend is picked now.
    assert!((0..10).all(|_| lb.select(b"").map(|(i, _)| i) == Some(1)));

    let before = server.hosts.lock().unwrap().len();
    server.status.store(204, Ordering::SeqCst);
    wait_for("healthy again", || lb.is_healthy(0)).await;
    let good = server.hosts.lock().unwrap().len() - before;
    assert!(good >= 2, "up after only {good} probes");
    assert!(lb.is_healthy(1), "the other backend stayed healthy");
}

#[tokio::test]
async fn http_check_sends_the_backend_address_as_host_by_default_and_accepts_3xx() {
    let server = StatusServer::start().await;
    server.status.store(302, Ordering::SeqCst);
    let lb = Arc::new(LoadBalancer::new(
        vec![Backend::new(&server.addr)],
        Algorithm::RoundRobin,
    ));
    let _stop = run(&lb, http("/", None), WAIT);
    wait_for("four probes", || server.hosts.lock().unwrap().len() >= 4).await;
    assert_eq!(server.hosts.lock().unwrap()[0], server.addr);
    assert!(lb.is_healthy(0), "302 counts as healthy");
}

#[tokio::test]
async fn tcp_check_detects_a_closed_port_and_all_down_selects_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = StatusServer::start().await;
    let lb = Arc::new(LoadBalancer::new(
        vec![Backend::new(&addr), Backend::new(&server.addr)],
        Algorithm::LeastConn,
    ));
    let _stop = run(&lb, HealthCheckKind::Tcp, WAIT);
    // The backlog accepts connects while the listener is open.
    wait_for("a few rounds", || {
        server.connections.load(Ordering::SeqCst) >= 4
    })
    .await;
    assert!(lb.is_healthy(0), "open port is healthy");
    drop(listener);
    wait_for("closed port unhealthy", || !lb.is_healthy(0)).await;
    assert!(lb.is_healthy(1));
    assert_eq!(lb.select(b"").map(|(i, _)| i), Some(1));
    lb.set_healthy(1, false);
    assert!(lb.select(b"").is_none(), "all unhealthy selects nothing");
}

/// A server that reads each request and never answers. For every connection that
/// sent a whole request head, it records how long it stayed open after that, until
/// the client hung up.
struct SilentServer {
    addr: String,
    held_open: Arc<Mutex<Vec<Duration>>>,
}

impl SilentServer {
    async fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let held_open = Arc::new(Mutex::new(Vec::new()));
        let held = held_open.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let held = held.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut b = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&b[..n]),
                        }
                    }
                    let head_at = Instant::now();
                    // Nothing more comes: the next read ends when the client hangs up.
                    let _ = s.read(&mut b).await;
                    held.lock().unwrap().push(head_at.elapsed());
                });
            }
        });
        SilentServer { addr, held_open }
    }
}

#[tokio::test]
async fn a_backend_that_never_answers_fails_by_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let server = SilentServer::start().await;
    let lb = Arc::new(LoadBalancer::new(
        vec![Backend::new(&server.addr)],
        Algorithm::RoundRobin,
    ));
    let _stop = run(&lb, http("/health", None), TIMEOUT);
    wait_for("silent backend unhealthy", || !lb.is_healthy(0)).await;
    // It went down on failed probes (three by default), each one a request the
    // checker sent and then abandoned when its timeout ran out: held open for about
    // the timeout (the margins cover the connect before the request, and a loaded
    // machine), not closed early for another reason, not left hanging.
    let failures = Thresholds::default().unhealthy_after as usize;
    wait_for("the failed probes hung up", || {
        server.held_open.lock().unwrap().len() >= failures
    })
    .await;
    let held_open = server.held_open.lock().unwrap().clone();
    for held in &held_open[..failures] {
        assert!(
            *held >= TIMEOUT / 2 && *held < TIMEOUT + Duration::from_secs(2),
            "a probe was held open {held:?} with a {TIMEOUT:?} timeout: {held_open:?}"
        );
    }
}

#[tokio::test]
async fn a_passing_check_ends_a_passive_back_off() {
    let server = StatusServer::start().await;
    let lb = Arc::new(LoadBalancer::new(
        vec![Backend::new(&server.addr)],
        Algorithm::RoundRobin,
    ));
    let (_, guard) = lb.select(b"").expect("a backend");
    guard.mark_failed(Duration::from_secs(600));
    assert!(lb.select(b"").is_none(), "backed off");
    let _stop = run(&lb, HealthCheckKind::Tcp, WAIT);
    wait_for("back-off ended by a check", || lb.is_usable(0)).await;
}

#[tokio::test]
async fn the_checker_follows_updates_of_the_backend_set() {
    let a = StatusServer::start().await;
    let b = StatusServer::start().await;
    let lb = Arc::new(LoadBalancer::new(
        vec![Backend::new(&a.addr)],
        Algorithm::RoundRobin,
    ));
    let stop = run(&lb, http("/", None), WAIT);
    wait_for("a probed", || !a.hosts.lock().unwrap().is_empty()).await;
    lb.update(vec![Backend::new(&a.addr), Backend::new(&b.addr)]);
    wait_for("b probed after the update", || {
        !b.hosts.lock().unwrap().is_empty()
    })
    .await;
    b.status.store(503, Ordering::SeqCst);
    wait_for("b unhealthy", || !lb.is_healthy(1)).await;
    // Stopping ends the task: no more probes after a short while.
    drop(stop);
    tokio::time::sleep(INTERVAL * 3).await;
    let seen = a.hosts.lock().unwrap().len();
    tokio::time::sleep(INTERVAL * 5).await;
    assert_eq!(a.hosts.lock().unwrap().len(), seen, "checker still probing");
}

#[tokio::test]
async fn expected_status_and_custom_thresholds() {
    let server = StatusServer::start().await;
    server.status.store(200, Ordering::SeqCst);
    let lb = Arc::new(LoadBalancer::new(
        vec![Backend::new(&server.addr)],
        Algorithm::RoundRobin,
    ));
    // Only 401 passes (an endpoint that must ask for credentials); down after one
    // failure, up after four passes in a row.
    let kind = HealthCheckKind::Http {
        path: "/private".into(),
        host: None,
        expected_status: 401..=401,
    };
    let thresholds = Thresholds {
        healthy_after: 4,
        unhealthy_after: 1,
    };
    let _stop = run_with(&lb, kind, WAIT, thresholds);
    wait_for("one 200 takes it down", || !lb.is_healthy(0)).await;
    let probes = server.hosts.lock().unwrap().len();
    // One failure is enough (the default needs three); a second probe may have run
    // before the poll saw the change.
    assert!(probes <= 2, "down only after {probes} failed probes");

    server.status.store(401, Ordering::SeqCst);
    let before = server.bad_answers.load(Ordering::SeqCst);
    wait_for("four 401s bring it back", || lb.is_healthy(0)).await;
    let passes = server.bad_answers.load(Ordering::SeqCst) - before;
    assert!(
        (4..=6).contains(&passes),
        "up after {passes} passing probes (4 expected; the poll may see it a little late)"
    );
}

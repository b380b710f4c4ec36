//! Idle pooled upstream connections through the real binary: closed when the upstream's
//! `idle_timeout_ms` passes, and dropped from the pool (the
//! `pingora_upstream_idle_connections` gauge) as soon as the origin closes them, both
//! with no further request (issue 21, item 1).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use test_support::{free_addr, get, wait_until, Origin, ProxyProcess, Reply};

/// Longest wait for something that should happen within a second or so.
const WAIT: Duration = Duration::from_secs(10);

/// A proxy with one service `web` on `listen`, proxying to `origin` with the given
/// upstream `idle_timeout_ms`, and an admin listener on `admin`.
fn start(origin: SocketAddr, idle_timeout_ms: u64) -> (ProxyProcess, SocketAddr, SocketAddr) {
    let listen = free_addr();
    let admin = free_addr();
    let yaml = format!(
        "version: 1
pid_file: {{dir}}/pingora.pid
upgrade_sock: {{dir}}/upgrade.sock
admin:
  addr: \"{admin}\"
services:
  - name: web
    listeners: [ {{ addr: \"{listen}\" }} ]
    routes:
      - upstream: origin
    upstreams:
      origin:
        peers: [\"{origin}\"]
        idle_timeout_ms: {idle_timeout_ms}
"
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_pingora"));
    let process = ProxyProcess::start(bin, &yaml, &[listen, admin])
        .unwrap_or_else(|e| panic!("proxy did not start: {e}\nconfig:\n{yaml}"));
    (process, listen, admin)
}

/// The value of `pingora_upstream_idle_connections{service="web"}` now.
fn idle_gauge(admin: SocketAddr) -> Option<f64> {
    let text = get(admin, "/metrics").ok()?.text();
    text.lines()
        .find_map(|l| l.strip_prefix("pingora_upstream_idle_connections{service=\"web\"} "))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn idle_upstream_connections_close_when_idle_timeout_ms_passes() {
    // The origin itself would keep an idle connection open for 30 s.
    let origin = Origin::start(|_| Reply::ok("hi"));
    let (_proxy, listen, admin) = start(origin.addr(), 1000);
    for _ in 0..3 {
        let r = get(listen, "/").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "hi"));
    }
    assert!(origin.open_connections() >= 1, "nothing was pooled");

    // No further request: the idle timeout alone closes it.
    assert!(
        wait_until(WAIT, || origin.open_connections() == 0),
        "the idle upstream connection is still open at the origin, idle_timeout_ms 1000"
    );
    assert_eq!(idle_gauge(admin), Some(0.0));
}

#[test]
fn an_upstream_connection_the_origin_closes_leaves_the_pool_at_once() {
    // The origin closes a keep-alive connection after 1 s without a request; the proxy
    // would keep it for a minute.
    let origin = Origin::builder()
        .idle_timeout(Duration::from_secs(1))
        .start(|_| Reply::ok("hi"));
    let (_proxy, listen, admin) = start(origin.addr(), 60_000);
    let r = get(listen, "/").unwrap();
    assert_eq!(r.status, 200);
    assert!(
        wait_until(WAIT, || idle_gauge(admin) == Some(1.0)),
        "the upstream connection was not pooled: {:?}",
        idle_gauge(admin)
    );
    assert!(
        wait_until(WAIT, || origin.open_connections() == 0),
        "the origin did not close its idle connection"
    );
    assert!(
        wait_until(WAIT, || idle_gauge(admin) == Some(0.0)),
        "the pool still counts the connection the origin closed: {:?}",
        idle_gauge(admin)
    );
}

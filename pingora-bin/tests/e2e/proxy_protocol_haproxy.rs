//! Interoperability of the PROXY protocol with Debian's HAProxy, on both sides:
//! HAProxy `send-proxy-v2` and `send-proxy` in front of our listener (plain, and TLS
//! passed through), and our `send_proxy_protocol: v1 | v2` in front of an HAProxy
//! `accept-proxy` listener (requests and health checks).
//!
//! These need the `haproxy` binary (scripts/setup installs it): they are ignored in a
//! plain `cargo test`, and `.ci/run` runs them with `--ignored` when HAProxy is there,
//! saying they were skipped, and why, when it is not.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use test_support::{
    free_addr, request, wait_until, Haproxy, Metrics, Origin, ProxyProcess, RawClient, Reply,
};

use crate::bin;

const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// HAProxy's global and default sections: its log (requests included) on stdout.
const HAPROXY_TOP: &str = "global\n    log stdout format raw local0 info\ndefaults\n    log global\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n";

/// Where HAProxy's connections to us come from: not 127.0.0.1, so that the address
/// our proxy reports can only be the client's from the header.
const HAPROXY_SOURCE: &str = "127.0.0.3";

fn haproxy(config: &str, listening: &[SocketAddr]) -> Haproxy {
    Haproxy::start(&format!("{HAPROXY_TOP}{config}"), listening)
        .unwrap_or_else(|e| panic!("HAProxy (needed by this ignored test) did not start: {e}"))
}

/// A TCP frontend on `front` relaying to `to` with `send` (`send-proxy-v2` or
/// `send-proxy`), from [`HAPROXY_SOURCE`].
fn tcp_relay(name: &str, front: SocketAddr, to: SocketAddr, send: &str) -> String {
    format!(
        "frontend fe_{name}\n    mode tcp\n    bind {front}\n    default_backend be_{name}\nbackend be_{name}\n    mode tcp\n    server us {to} {send} source {HAPROXY_SOURCE}\n"
    )
}

fn start(yaml: &str, wait: &[SocketAddr]) -> ProxyProcess {
    ProxyProcess::start(bin(), yaml, wait)
        .unwrap_or_else(|e| panic!("proxy did not start: {e}\n{yaml}"))
}

#[test]
#[ignore = "needs haproxy: run by .ci/run with --ignored (scripts/setup installs it)"]
fn haproxy_send_proxy_v1_and_v2_in_front_of_our_listener() {
    let origin = Origin::start(|_| Reply::ok("ok"));
    let (listen, admin, front_v2, front_v1) = (free_addr(), free_addr(), free_addr(), free_addr());
    let yaml = format!(
        "version: 1\npid_file: {{dir}}/pingora.pid\nupgrade_sock: {{dir}}/upgrade.sock\naccess_log: {{ path: \"{{dir}}/access.log\" }}\nadmin: {{ addr: \"{admin}\" }}\nservices:\n  - name: web\n    listeners:\n      - addr: \"{listen}\"\n        proxy_protocol: on\n    trusted_proxies: [\"{HAPROXY_SOURCE}\"]\n    routes:\n      - upstream: app\n        response_headers: {{ set: {{ X-Client: \"$client_ip\" }} }}\n    upstreams:\n      app:\n        peers: [\"{}\"]\n",
        origin.addr()
    );
    let proxy = start(&yaml, &[listen, admin]);
    let ha = haproxy(
        &(tcp_relay("v2", front_v2, listen, "send-proxy-v2")
            + &tcp_relay("v1", front_v1, listen, "send-proxy")),
        &[front_v2, front_v1],
    );
    for front in [front_v2, front_v1] {
        let mut c = RawClient::connect(front).unwrap();
        let client = c.local_addr().unwrap();
        for _ in 0..2 {
            let r = c
                .get("/", false)
                .unwrap_or_else(|e| panic!("{e}\n{}", ha.log()));
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-client"), Some("127.0.0.1"));
        }
        let seen = origin.last_received().unwrap();
        assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
        let log = proxy.dir().join("access.log");
        let line_start = format!("{client} - - ");
        assert!(
            wait_until(EXCHANGE_TIMEOUT, || std::fs::read_to_string(&log)
                .is_ok_and(|t| t.lines().any(|l| l.starts_with(&line_start)))),
            "the access log names the client HAProxy saw ({client})"
        );
    }
    // The same header from a peer outside trusted_proxies (127.0.0.1) is refused. (The
    // start-up readiness probes came from there too: count from now.)
    let untrusted = || {
        Metrics::scrape(admin).value(
            "pingora_proxy_protocol_rejects_total",
            &[("service", "web"), ("reason", "untrusted")],
        )
    };
    let before = untrusted();
    let mut c = RawClient::connect(listen).unwrap();
    let header = test_support::v2_header("127.0.0.1:1".parse().unwrap(), listen, &[]);
    c.send(&header).unwrap();
    assert!(c.is_closed_by_peer(EXCHANGE_TIMEOUT));
    assert_eq!(untrusted(), before + 1.0);
    drop(ha);
    drop(proxy);
}

#[cfg(feature = "tls")]
#[test]
#[ignore = "needs haproxy: run by .ci/run with --ignored (scripts/setup installs it)"]
fn haproxy_send_proxy_v2_in_front_of_our_tls_listener() {
    use test_support::{TestCa, TestDir, TlsClient, TlsClientConfig};
    let origin = Origin::start(|_| Reply::ok("ok"));
    let dir = TestDir::new().unwrap();
    let (cert, key) = TestCa::new("pp CA")
        .issue(&["localhost"])
        .write(dir.path(), "server")
        .unwrap();
    let (listen, front) = (free_addr(), free_addr());
    let yaml = format!(
        "version: 1\npid_file: {{dir}}/pingora.pid\nupgrade_sock: {{dir}}/upgrade.sock\nservices:\n  - name: web\n    listeners:\n      - addr: \"{listen}\"\n        proxy_protocol: on\n        tls: {{ cert: {}, key: {} }}\n    routes:\n      - upstream: app\n        response_headers: {{ set: {{ X-Where: \"$scheme $client_ip\" }} }}\n    upstreams:\n      app:\n        peers: [\"{}\"]\n",
        cert.display(),
        key.display(),
        origin.addr()
    );
    let proxy = start(&yaml, &[listen]);
    let ha = haproxy(&tcp_relay("tls", front, listen, "send-proxy-v2"), &[front]);
    let mut conn = TlsClient::new(TlsClientConfig::default())
        .connect(front, "localhost")
        .unwrap_or_else(|e| panic!("{e}\n{}", ha.log()));
    let raw = conn
        .exchange(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(text.contains("x-where: https 127.0.0.1"), "{text}");
    drop(ha);
    drop(proxy);
}

#[test]
#[ignore = "needs haproxy: run by .ci/run with --ignored (scripts/setup installs it)"]
fn our_send_proxy_protocol_to_an_haproxy_accept_proxy_listener() {
    for version in ["v1", "v2"] {
        let (listen, admin, haproxy_at) = (free_addr(), free_addr(), free_addr());
        let ha = haproxy(
            &format!(
                "frontend fe\n    mode http\n    option httplog\n    bind {haproxy_at} accept-proxy\n    http-request return status 200 content-type text/plain lf-string \"src=%[src]:%[src_port] dst=%[dst]:%[dst_port] path=%[path]\"\n"
            ),
            &[haproxy_at],
        );
        let yaml = format!(
            "version: 1\npid_file: {{dir}}/pingora.pid\nupgrade_sock: {{dir}}/upgrade.sock\nadmin: {{ addr: \"{admin}\" }}\nservices:\n  - name: web\n    listeners: [ {{ addr: \"{listen}\" }} ]\n    routes: [ {{ upstream: app }} ]\n    upstreams:\n      app:\n        peers: [\"{haproxy_at}\"]\n        send_proxy_protocol: {version}\n        health_check: {{ type: http, path: /health, interval_ms: 200 }}\n"
        );
        let proxy = start(&yaml, &[listen, admin]);
        let source: IpAddr = "127.0.0.2".parse().unwrap();
        let mut c = RawClient::connect_from(source, listen).unwrap();
        let client = c.local_addr().unwrap();
        for _ in 0..2 {
            let r = c
                .get("/p", false)
                .unwrap_or_else(|e| panic!("{e}\n{}", ha.log()));
            assert_eq!(r.status, 200, "{version}: {}", ha.log());
            assert_eq!(
                r.text(),
                format!("src={client} dst={listen} path=/p"),
                "{version}: HAProxy saw the client named in our header"
            );
        }
        // Health checks reach HAProxy through the header too (a LOCAL/UNKNOWN one).
        assert!(
            wait_until(EXCHANGE_TIMEOUT, || ha.log().contains("/health")),
            "{version}: no health check in HAProxy's log:\n{}",
            ha.log()
        );
        // A plain request (no header) is refused by HAProxy: the header was needed.
        assert!(request(haproxy_at, "GET", "/", &[], b"").is_err_or_not_ok());
        drop(proxy);
        drop(ha);
    }
}

/// A request that HAProxy refused: an I/O error or a non-2xx answer.
trait RefusedByHaproxy {
    fn is_err_or_not_ok(&self) -> bool;
}

impl RefusedByHaproxy for std::io::Result<test_support::Response> {
    fn is_err_or_not_ok(&self) -> bool {
        match self {
            Err(_) => true,
            Ok(r) => !(200..300).contains(&r.status),
        }
    }
}

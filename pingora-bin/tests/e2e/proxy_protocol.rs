//! The PROXY protocol through the real binary, with the tests' own independent
//! implementation of it on the other side: listeners with `proxy_protocol: on` and
//! `optional` take the client from the header everywhere (X-Forwarded-For, `$client_ip`,
//! `access`, the access log, `hash_key: client_ip`), refuse what they must (no header,
//! broken headers, untrusted senders, a header that never ends) and count it;
//! `send_proxy_protocol` names the client to the origin on connections that are never
//! reused for another client; `$scheme` and `$server_port` follow the connection.
//! HAProxy on either side: `proxy_protocol_haproxy`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use test_support::{
    free_addr, request, run_command, v1_header, v2_header, wait_until, Metrics, Origin,
    ProxyProcess, RawClient, Reply, Response,
};

use crate::bin;

/// Time any single exchange may take before it counts as hung.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// One service `web` on `listeners` (YAML items, indented by 6), with `service` lines
/// (indented by 4), `routes` (items indented by 6) and the upstream `app` at `origin`
/// with `upstream` lines (indented by 8); an admin listener on `admin`.
fn config(
    listeners: &str,
    service: &str,
    routes: &str,
    origin: SocketAddr,
    upstream: &str,
    admin: SocketAddr,
) -> String {
    format!(
        "version: 1\npid_file: {{dir}}/pingora.pid\nupgrade_sock: {{dir}}/upgrade.sock\naccess_log: {{ path: \"{{dir}}/access.log\" }}\nadmin: {{ addr: \"{admin}\" }}\nservices:\n  - name: web\n    listeners:\n{listeners}{service}    routes:\n{routes}    upstreams:\n      app:\n        peers: [\"{origin}\"]\n        connect_timeout_ms: 1000\n        read_timeout_ms: 5000\n{upstream}"
    )
}

fn start(yaml: &str, wait: &[SocketAddr]) -> ProxyProcess {
    ProxyProcess::start(bin(), yaml, wait)
        .unwrap_or_else(|e| panic!("proxy did not start: {e}\n{yaml}"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A request on a new connection that starts with `header`; `None` when the proxy
/// closed the connection without answering.
fn via_header(listen: SocketAddr, header: &[u8], path: &str) -> Option<Response> {
    let mut c = RawClient::connect(listen).expect("connect");
    c.send(header).expect("send header");
    let _ =
        c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
    c.read_response().ok()
}

fn rejects(admin: SocketAddr, reason: &str) -> f64 {
    Metrics::scrape(admin).value(
        "pingora_proxy_protocol_rejects_total",
        &[("service", "web"), ("reason", reason)],
    )
}

const CLIENT_ROUTES: &str = "      - match: { path: /denied }\n        access: { deny: [\"203.0.113.66\"] }\n        upstream: app\n      - upstream: app\n        response_headers: { set: { X-Client: \"$client_ip\" } }\n";

#[test]
fn on_takes_the_client_from_the_header_everywhere() {
    let origin = Origin::start(|_| Reply::ok("ok"));
    let (listen, admin) = (free_addr(), free_addr());
    let listeners = format!("      - addr: \"{listen}\"\n        proxy_protocol: on\n");
    let yaml = config(&listeners, "", CLIENT_ROUTES, origin.addr(), "", admin);
    let proxy = start(&yaml, &[listen, admin]);

    // v1: the header's client reaches X-Forwarded-For, $client_ip and the access log.
    let r = via_header(listen, &v1_header(addr("203.0.113.7:4444"), listen), "/a").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-client"), Some("203.0.113.7"));
    let seen = origin.last_received().unwrap();
    assert_eq!(seen.header("x-forwarded-for"), Some("203.0.113.7"));
    let log = proxy.dir().join("access.log");
    assert!(
        wait_until(EXCHANGE_TIMEOUT, || std::fs::read_to_string(&log)
            .is_ok_and(|t| t
                .lines()
                .any(|l| l.starts_with("203.0.113.7:4444 - - ")))),
        "the access log names the header's client"
    );

    // v2 over IPv6, with TLVs; two requests on the one connection keep the client.
    let header = v2_header(
        addr("[2001:db8::9]:5555"),
        addr("[2001:db8::1]:443"),
        &[(0x02, b"example.com"), (0xea, b"\x01vpce-1")],
    );
    let mut c = RawClient::connect(listen).unwrap();
    c.send(&header).unwrap();
    for _ in 0..2 {
        let r = c.get("/b", false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-client"), Some("2001:db8::9"));
    }
    assert_eq!(
        origin.last_received().unwrap().header("x-forwarded-for"),
        Some("2001:db8::9")
    );

    // `access` judges the header's client.
    let denied = via_header(
        listen,
        &v1_header(addr("203.0.113.66:1"), listen),
        "/denied",
    );
    assert_eq!(denied.unwrap().status, 403);
    let allowed = via_header(
        listen,
        &v1_header(addr("203.0.113.67:1"), listen),
        "/denied",
    );
    assert_eq!(allowed.unwrap().status, 200);

    // No header, or a broken one: closed without an answer, and counted.
    let mut c = RawClient::connect(listen).unwrap();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(c.is_closed_by_peer(EXCHANGE_TIMEOUT), "no header: closed");
    for broken in [
        &b"PROXY TCP4 203.0.113.256 10.0.0.1 1 2\r\n"[..],
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 extra\r\n",
        &[b'P', b'R', b'O', b'X', b'Y', b' ', b'x'].repeat(40),
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x51\x00\x00",
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04\x01\x02\x03\x04",
    ] {
        let mut c = RawClient::connect(listen).unwrap();
        c.send(broken).unwrap();
        let _ = c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(c.is_closed_by_peer(EXCHANGE_TIMEOUT), "{broken:?}: closed");
    }
    assert_eq!(rejects(admin, "missing"), 1.0);
    assert_eq!(rejects(admin, "malformed"), 5.0);
    assert_eq!(rejects(admin, "untrusted"), 0.0);
    // Still serving.
    let r = via_header(listen, &v1_header(addr("198.51.100.1:1"), listen), "/c").unwrap();
    assert_eq!(r.status, 200);
    drop(proxy);
}

#[test]
fn optional_accepts_both_and_trusted_proxies_decide_who_may_send_one() {
    let origin = Origin::start(|_| Reply::ok("ok"));
    let header = v1_header(addr("203.0.113.7:4444"), addr("10.0.0.1:80"));
    for (trusted, believed) in [("", true), ("10.0.0.0/8", false), ("127.0.0.0/8", true)] {
        let (listen, admin) = (free_addr(), free_addr());
        let listeners = format!("      - addr: \"{listen}\"\n        proxy_protocol: optional\n");
        let service = if trusted.is_empty() {
            String::new()
        } else {
            format!("    trusted_proxies: [\"{trusted}\"]\n")
        };
        let yaml = config(
            &listeners,
            &service,
            CLIENT_ROUTES,
            origin.addr(),
            "",
            admin,
        );
        let proxy = start(&yaml, &[listen, admin]);
        let plain = request(listen, "GET", "/", &[], b"").unwrap();
        assert_eq!(
            plain.header("x-client"),
            Some("127.0.0.1"),
            "trusted: {trusted:?}"
        );
        let with_header = via_header(listen, &header, "/");
        if believed {
            assert_eq!(
                with_header.unwrap().header("x-client"),
                Some("203.0.113.7"),
                "trusted: {trusted:?}"
            );
            assert_eq!(rejects(admin, "untrusted"), 0.0);
        } else {
            assert!(
                with_header.is_none(),
                "a header from outside trusted_proxies is refused"
            );
            assert_eq!(rejects(admin, "untrusted"), 1.0);
        }
        drop(proxy);
    }
}

#[test]
fn a_header_that_never_ends_is_bounded_by_the_header_timeout() {
    let origin = Origin::start(|_| Reply::ok("ok"));
    let (listen, admin) = (free_addr(), free_addr());
    let listeners = format!("      - addr: \"{listen}\"\n        proxy_protocol: on\n");
    let service = "    client_header_timeout_ms: 300\n";
    let yaml = config(&listeners, service, CLIENT_ROUTES, origin.addr(), "", admin);
    let proxy = start(&yaml, &[listen, admin]);
    let mut c = RawClient::connect(listen).unwrap();
    c.send(b"PROXY TCP4 203.0.113.7 ").unwrap();
    assert!(
        c.is_closed_by_peer(EXCHANGE_TIMEOUT),
        "closed once the timeout passed"
    );
    let mut c = RawClient::connect(listen).unwrap();
    c.send(&v2_header(addr("1.2.3.4:1"), addr("5.6.7.8:2"), &[])[..20])
        .unwrap();
    assert!(c.is_closed_by_peer(EXCHANGE_TIMEOUT), "v2 too");
    assert!(wait_until(EXCHANGE_TIMEOUT, || rejects(admin, "timeout") == 2.0));
    drop(proxy);
}

#[test]
fn scheme_and_server_port_follow_the_connection() {
    let origin = Origin::start(|_| Reply::ok("ok"));
    let (a, b, admin) = (free_addr(), free_addr(), free_addr());
    let listeners =
        format!("      - addr: \"{a}\"\n      - addr: \"{b}\"\n        proxy_protocol: optional\n");
    let routes = "      - upstream: app\n        response_headers: { set: { X-Where: \"$scheme:$server_port\" } }\n";
    let yaml = config(&listeners, "", routes, origin.addr(), "", admin);
    let proxy = start(&yaml, &[a, b, admin]);
    for listen in [a, b] {
        let r = request(listen, "GET", "/", &[], b"").unwrap();
        assert_eq!(
            r.header("x-where"),
            Some(format!("http:{}", listen.port()).as_str())
        );
    }
    // Behind a PROXY header, the port is still the listener's own.
    let r = via_header(
        b,
        &v1_header(addr("203.0.113.7:1"), addr("10.0.0.1:8443")),
        "/",
    )
    .unwrap();
    assert_eq!(
        r.header("x-where"),
        Some(format!("http:{}", b.port()).as_str())
    );
    drop(proxy);
}

#[cfg(feature = "tls")]
#[test]
fn the_header_comes_before_the_tls_handshake() {
    use test_support::{TestCa, TestDir, TlsClient, TlsClientConfig};
    let origin = Origin::start(|_| Reply::ok("ok"));
    let dir = TestDir::new().unwrap();
    let (cert, key) = TestCa::new("pp CA")
        .issue(&["localhost"])
        .write(dir.path(), "server")
        .unwrap();
    let (plain, tls, admin) = (free_addr(), free_addr(), free_addr());
    let listeners = format!(
        "      - addr: \"{plain}\"\n      - addr: \"{tls}\"\n        proxy_protocol: on\n        tls: {{ cert: {}, key: {} }}\n",
        cert.display(),
        key.display()
    );
    let routes = "      - upstream: app\n        response_headers: { set: { X-Where: \"$scheme:$server_port $client_ip\" } }\n";
    let yaml = config(&listeners, "", routes, origin.addr(), "", admin);
    let proxy = start(&yaml, &[plain, tls, admin]);
    let client = TlsClient::new(TlsClientConfig::default());
    let header = v2_header(addr("203.0.113.9:7"), tls, &[]);
    let mut conn = client.connect_after(tls, "localhost", &header).unwrap();
    let raw = conn
        .exchange(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(
        text.contains(&format!("x-where: https:{} 203.0.113.9", tls.port())),
        "{text}"
    );
    // The same service's plain listener says http, with its own port.
    let r = request(plain, "GET", "/", &[], b"").unwrap();
    assert_eq!(
        r.header("x-where"),
        Some(format!("http:{} 127.0.0.1", plain.port()).as_str())
    );
    // A TLS client without the header is refused.
    assert!(client.connect(tls, "localhost").is_err());
    assert_eq!(rejects(admin, "missing"), 1.0);
    drop(proxy);
}

/// `send_proxy_protocol` (v1 and v2): every connection to the origin starts with a
/// header naming the client and the address it reached, and none is reused, not even
/// for the same client's next request; health checks send one too (relaying nobody).
#[test]
fn send_proxy_protocol_names_the_client_and_never_reuses() {
    for version in ["v1", "v2"] {
        let origin = Origin::builder()
            .expect_proxy_header()
            .start(|_| Reply::ok("ok"));
        let (listen, admin) = (free_addr(), free_addr());
        let listeners = format!("      - addr: \"{listen}\"\n        proxy_protocol: optional\n");
        // Health checks need the `lb` feature.
        let health = if cfg!(feature = "lb") {
            "        health_check: { type: http, path: /health, interval_ms: 200 }\n"
        } else {
            ""
        };
        let upstream = format!("        send_proxy_protocol: {version}\n{health}");
        let yaml = config(
            &listeners,
            "",
            "      - upstream: app\n",
            origin.addr(),
            &upstream,
            admin,
        );
        let proxy = start(&yaml, &[listen, admin]);
        let source: IpAddr = "127.0.0.2".parse().unwrap();
        let mut c = RawClient::connect_from(source, listen).unwrap();
        let client = c.local_addr().unwrap();
        for _ in 0..3 {
            assert_eq!(c.get("/x", false).unwrap().status, 200, "{version}");
        }
        let proxied: Vec<_> = (origin.received().into_iter())
            .filter(|r| r.path == "/x")
            .collect();
        assert_eq!(proxied.len(), 3);
        let mut connections: Vec<usize> = proxied.iter().map(|r| r.connection).collect();
        connections.dedup();
        assert_eq!(
            connections.len(),
            3,
            "{version}: one origin connection per request"
        );
        for r in &proxied {
            let h = r.proxy.as_ref().expect("a header");
            assert_eq!(h.version, if version == "v1" { 1 } else { 2 });
            assert_eq!(h.source, Some(client), "{version}");
            assert_eq!(h.destination, Some(listen), "{version}");
        }
        assert_eq!(
            Metrics::scrape(admin).value(
                "pingora_upstream_connections_total",
                &[("service", "web"), ("reused", "true")]
            ),
            0.0
        );

        // Behind an incoming header, the origin hears of the client it named.
        let incoming = v1_header(addr("203.0.113.7:4444"), addr("192.0.2.80:443"));
        assert_eq!(via_header(listen, &incoming, "/y").unwrap().status, 200);
        let h = origin.last_received().unwrap().proxy.unwrap();
        assert_eq!(h.source, Some(addr("203.0.113.7:4444")));
        assert_eq!(h.destination, Some(addr("192.0.2.80:443")));

        // Health checks relay nobody: LOCAL (v2) or UNKNOWN (v1).
        assert!(
            !cfg!(feature = "lb")
                || wait_until(EXCHANGE_TIMEOUT, || origin
                    .received()
                    .iter()
                    .any(
                        |r| r.path == "/health" && r.proxy.as_ref().is_some_and(|h| h.local)
                    ))
        );
        assert!(origin.errors().is_empty(), "{:?}", origin.errors());
        drop(proxy);
    }
}

#[cfg(feature = "lb")]
#[test]
fn hash_key_client_ip_hashes_the_header_client() {
    let (one, two) = (Origin::named("one"), Origin::named("two"));
    let (listen, admin) = (free_addr(), free_addr());
    let listeners = format!("      - addr: \"{listen}\"\n        proxy_protocol: on\n");
    let yaml = config(
        &listeners,
        "",
        "      - upstream: app\n",
        one.addr(),
        "        lb: consistent_hash\n        hash_key: client_ip\n",
        admin,
    )
    .replace(
        &format!("peers: [\"{}\"]", one.addr()),
        &format!("peers: [\"{}\", \"{}\"]", one.addr(), two.addr()),
    );
    let proxy = start(&yaml, &[listen, admin]);
    let backend = |client: &str, port: u16| {
        let header = v1_header(SocketAddr::new(client.parse().unwrap(), port), listen);
        via_header(listen, &header, "/").unwrap().text()
    };
    let mut seen = std::collections::BTreeSet::new();
    for i in 1..=20 {
        let client = format!("198.51.100.{i}");
        let first = backend(&client, 1000);
        // The same client (from any port) keeps its backend.
        assert_eq!(backend(&client, 2000), first, "{client}");
        seen.insert(first);
    }
    // Every socket peer here is 127.0.0.1: only the header's clients spread the load.
    assert_eq!(seen.len(), 2, "{seen:?}");
    drop(proxy);

    // Without a header, behind a trusted proxy: the X-Forwarded-For client is hashed.
    let (listen, admin) = (free_addr(), free_addr());
    let listeners = format!("      - addr: \"{listen}\"\n");
    let yaml = config(
        &listeners,
        "    trusted_proxies: [\"127.0.0.1\"]\n",
        "      - upstream: app\n",
        one.addr(),
        "        lb: consistent_hash\n        hash_key: client_ip\n",
        admin,
    )
    .replace(
        &format!("peers: [\"{}\"]", one.addr()),
        &format!("peers: [\"{}\", \"{}\"]", one.addr(), two.addr()),
    );
    let proxy = start(&yaml, &[listen, admin]);
    let mut seen = std::collections::BTreeSet::new();
    for i in 1..=20 {
        let xff = format!("198.51.100.{i}");
        let r = request(listen, "GET", "/", &[("X-Forwarded-For", &xff)], b"").unwrap();
        let again = request(listen, "GET", "/", &[("X-Forwarded-For", &xff)], b"").unwrap();
        assert_eq!(r.text(), again.text(), "{xff}");
        seen.insert(r.text());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    drop(proxy);
}

#[test]
fn bad_values_exit_2_with_the_key() {
    let dir = test_support::TestDir::new().unwrap();
    for (listener, upstream, key) in [
        (
            "        proxy_protocol: yes\n",
            "",
            "services[0].listeners[0].proxy_protocol",
        ),
        (
            "",
            "        send_proxy_protocol: v3\n",
            "services[0].upstreams.app.send_proxy_protocol",
        ),
    ] {
        let listen = free_addr();
        let listeners = format!("      - addr: \"{listen}\"\n{listener}");
        let yaml = config(
            &listeners,
            "",
            "      - upstream: app\n",
            listen,
            upstream,
            free_addr(),
        );
        let path = dir.path().join("bad.yaml");
        std::fs::write(
            &path,
            yaml.replace("{dir}", &dir.path().display().to_string()),
        )
        .unwrap();
        let out = run_command(
            bin(),
            &["-t", "-c", path.to_str().unwrap()],
            EXCHANGE_TIMEOUT,
        )
        .unwrap();
        assert_eq!(out.code(), Some(2), "{}", out.stderr);
        assert!(out.stderr.contains(key), "{}", out.stderr);
    }
}

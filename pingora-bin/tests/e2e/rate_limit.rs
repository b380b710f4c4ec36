//! Rate limiting through the real binary: the bucket (burst at once, then 429 with
//! Retry-After and the RateLimit-* headers), keys by client, route, header and trusted
//! X-Forwarded-For, a route-level limit replacing the service's, the metric, bad values
//! refused. The Redis backend's tests are in `rate_limit_redis`.

use std::net::SocketAddr;
use std::time::Duration;

use test_support::{
    free_addr, request, v1_header, wait_until, Metrics, Origin, ProxyProcess, RawClient, Reply,
    Response, TestDir,
};

use crate::{assert_config_refused, bin};

/// Time any single exchange or command may take before it counts as hung.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A config with one service `web` on `listen` (and admin on `admin`, when given):
/// `service` lines (indented by 4) and `routes` (items indented by 6) to upstream
/// `origin`.
pub(crate) fn config(
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    service: &str,
    routes: &str,
    origin: SocketAddr,
) -> String {
    let admin = admin
        .map(|a| format!("admin: {{ addr: \"{a}\" }}\n"))
        .unwrap_or_default();
    format!(
        "version: 1\npid_file: {{dir}}/pingora.pid\nupgrade_sock: {{dir}}/upgrade.sock\n{admin}services:\n  - name: web\n    listeners: [ {{ addr: \"{listen}\" }} ]\n{service}    routes:\n{routes}    upstreams:\n      origin:\n        peers: [\"{origin}\"]\n"
    )
}

fn start(yaml: &str, addrs: &[SocketAddr]) -> ProxyProcess {
    ProxyProcess::start(bin(), yaml, addrs)
        .unwrap_or_else(|e| panic!("proxy did not start: {e}\nconfig:\n{yaml}"))
}

fn get(listen: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(listen, "GET", path, headers, b"").expect("response")
}

fn num(r: &Response, name: &str) -> u64 {
    r.header(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", r.headers))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number: {:?}", r.header(name)))
}

#[test]
fn burst_at_once_then_429_with_retry_after_and_ratelimit_headers() {
    let origin = Origin::start(|_| Reply::ok("ok"));
    let listen = free_addr();
    let service = "    rate_limit: { key: client_ip, rate: 6/m, burst: 3 }\n";
    let _proxy = start(
        &config(
            listen,
            None,
            service,
            "      - upstream: origin\n",
            origin.addr(),
        ),
        &[listen],
    );
    for remaining in [2, 1, 0] {
        let r = get(listen, "/", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(num(&r, "ratelimit-limit"), 3);
        assert_eq!(num(&r, "ratelimit-remaining"), remaining);
        // 6/m: one token per 10 s; full again after (3 - remaining) tokens.
        let reset = num(&r, "ratelimit-reset");
        assert!((1..=10 * (3 - remaining)).contains(&reset), "reset {reset}");
        assert_eq!(r.header("retry-after"), None);
    }
    let r = get(listen, "/", &[]);
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), "429 Too Many Requests\n");
    let retry = num(&r, "retry-after");
    assert!((1..=10).contains(&retry), "retry-after {retry}");
    assert_eq!(num(&r, "ratelimit-limit"), 3);
    assert_eq!(num(&r, "ratelimit-remaining"), 0);
    let reset = num(&r, "ratelimit-reset");
    assert!((21..=30).contains(&reset), "reset {reset}");
    assert_eq!(
        origin.requests(),
        3,
        "a refused request never reaches the origin"
    );
}

#[test]
fn keys_by_header_route_and_trusted_client_address() {
    let origin = Origin::start(|_| Reply::ok("ok"));
    let listen = free_addr();
    let service = "    trusted_proxies: [\"127.0.0.0/8\"]\n    rate_limit: { key: client_ip, rate: 1/h, burst: 1 }\n";
    let routes = "      - match: { path_prefix: /api/ }\n        upstream: origin\n        rate_limit: { key: \"header:X-Api-Key\", rate: 1/h, burst: 2 }\n      - match: { path_prefix: /r/ }\n        upstream: origin\n        rate_limit: { key: [route, \"header:X-User\"], rate: 1/h, burst: 1 }\n      - upstream: origin\n";
    let _proxy = start(
        &config(listen, None, service, routes, origin.addr()),
        &[listen],
    );
    let status = |path: &str, headers: &[(&str, &str)]| get(listen, path, headers).status;
    // client_ip from the trusted X-Forwarded-For: one bucket per address.
    assert_eq!(status("/", &[("X-Forwarded-For", "192.0.2.1")]), 200);
    assert_eq!(status("/", &[("X-Forwarded-For", "192.0.2.1")]), 429);
    assert_eq!(status("/", &[("X-Forwarded-For", "192.0.2.2")]), 200);
    // The route's own limit replaces the service's: two per API key, whoever sends it.
    let a = [("X-Api-Key", "a"), ("X-Forwarded-For", "192.0.2.1")];
    assert_eq!(status("/api/x", &a), 200, "not the service's spent bucket");
    assert_eq!(status("/api/y", &[("X-Api-Key", "a")]), 200);
    assert_eq!(status("/api/z", &a), 429);
    assert_eq!(status("/api/x", &[("X-Api-Key", "b")]), 200);
    // Combined key: each (route, user) pair has its bucket.
    assert_eq!(status("/r/1", &[("X-User", "u1")]), 200);
    assert_eq!(status("/r/2", &[("X-User", "u1")]), 429);
    assert_eq!(status("/r/1", &[("X-User", "u2")]), 200);
}

#[test]
fn the_client_of_a_proxy_protocol_header_has_its_own_bucket() {
    let origin = Origin::start(|_| Reply::ok("ok"));
    let listen = free_addr();
    let service = "    rate_limit: { key: client_ip, rate: 1/h, burst: 1 }\n";
    let yaml = config(
        listen,
        None,
        service,
        "      - upstream: origin\n",
        origin.addr(),
    )
    .replace(
        &format!("[ {{ addr: \"{listen}\" }} ]"),
        &format!("[ {{ addr: \"{listen}\", proxy_protocol: on }} ]"),
    );
    let _proxy = start(&yaml, &[listen]);
    let via = |client: &str| {
        let mut c = RawClient::connect(listen).expect("connect");
        c.send(&v1_header(client.parse().unwrap(), listen)).unwrap();
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        c.read_response().expect("response").status
    };
    // Every connection comes from 127.0.0.1; the header names the client.
    assert_eq!(via("198.51.100.1:1000"), 200);
    assert_eq!(via("198.51.100.1:1001"), 429);
    assert_eq!(via("198.51.100.2:1000"), 200);
}

#[test]
fn limited_requests_are_counted_by_key() {
    let origin = Origin::start(|_| Reply::ok("ok"));
    let listen = free_addr();
    let admin = free_addr();
    let service = "    rate_limit: { rate: 1/h, burst: 1 }\n";
    let routes = "      - match: { path_prefix: /h/ }\n        upstream: origin\n        rate_limit: { key: [client_ip, \"header:X-Api-Key\"], rate: 1/h, burst: 1 }\n      - upstream: origin\n";
    let _proxy = start(
        &config(listen, Some(admin), service, routes, origin.addr()),
        &[listen, admin],
    );
    for _ in 0..3 {
        get(listen, "/", &[]);
    }
    for _ in 0..2 {
        get(listen, "/h/", &[]);
    }
    let m = |key: &str| {
        Metrics::scrape(admin).find(
            "pingora_rate_limited_requests_total",
            &[("service", "web"), ("key", key)],
        )
    };
    assert!(
        wait_until(TIMEOUT, || m("client_ip") == Some(2.0)),
        "{:?}",
        m("client_ip")
    );
    assert_eq!(m("client_ip+header:x-api-key"), Some(1.0));
    let m = Metrics::scrape(admin);
    assert_eq!(
        m.find(
            "pingora_requests_total",
            &[("service", "web"), ("route", "1"), ("status_class", "4xx")]
        ),
        Some(2.0)
    );
}

#[test]
fn absurd_values_exit_2_with_file_line_and_key() {
    let dir = TestDir::new().unwrap();
    for (i, (service, key, needle)) in [
        (
            "    rate_limit: { rate: 0/s }\n",
            "services[0].rate_limit.rate",
            "greater than 0",
        ),
        (
            "    rate_limit: { rate: 10/fortnight }\n",
            "services[0].rate_limit.rate",
            "unknown period",
        ),
        (
            "    rate_limit: { rate: 99999999999999/s }\n",
            "services[0].rate_limit.rate",
            "at most",
        ),
        (
            "    rate_limit: { rate: lots }\n",
            "services[0].rate_limit.rate",
            "invalid rate `lots`",
        ),
        (
            "    rate_limit: { rate: 5/s, burst: 0 }\n",
            "services[0].rate_limit.burst",
            "greater than 0",
        ),
        (
            "    rate_limit: { rate: 5/s, key: client }\n",
            "services[0].rate_limit.key",
            "invalid rate_limit key",
        ),
        if cfg!(feature = "redis") {
            (
                "    rate_limit: { rate: 5/s, backend: redis }\n",
                "services[0].rate_limit",
                "needs a `redis:",
            )
        } else {
            (
                "    rate_limit: { rate: 5/s, backend: redis }\n",
                "services[0].rate_limit.backend",
                "feature `redis`",
            )
        },
    ]
    .into_iter()
    .enumerate()
    {
        let listen = free_addr();
        let yaml = config(
            listen,
            None,
            service,
            "      - upstream: origin\n",
            free_addr(),
        )
        .replace("{dir}", &dir.path().display().to_string());
        let file = dir.write(&format!("bad{i}.yaml"), &yaml).unwrap();
        assert_config_refused(&file, 7, key, needle);
    }
}

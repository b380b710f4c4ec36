//! Request policy through the real binary with real clients: route matching, rewrites,
//! header edits (also on the proxy's own errors), redirects, access lists behind trusted
//! proxies, body limits over HTTP/1.1 and HTTP/2, request ids, timeout overrides, the
//! per-client connection limit, and bad values refused with exit 2.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use test_support::{
    chunked_body, free_addr, request, run_command, wait_until, H2Body, H2Client, H2Request, Origin,
    ProxyProcess, RawClient, Reply, Response, TestDir,
};

/// Time any single exchange may take before it counts as hung.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

use crate::bin;

/// A config with one service `web` on `listen`: `service` lines (indented by 4) and
/// `routes` (items indented by 6) and `upstreams` (names indented by 6).
fn config(listen: SocketAddr, service: &str, routes: &str, upstreams: &str) -> String {
    format!(
        "version: 1\npid_file: {{dir}}/pingora.pid\nupgrade_sock: {{dir}}/upgrade.sock\nservices:\n  - name: web\n    listeners: [ {{ addr: \"{listen}\" }} ]\n{service}    routes:\n{routes}    upstreams:\n{upstreams}"
    )
}

fn upstream(name: &str, addr: SocketAddr) -> String {
    format!("      {name}:\n        peers: [\"{addr}\"]\n        connect_timeout_ms: 1000\n        read_timeout_ms: 5000\n")
}

fn start(yaml: &str, listen: SocketAddr) -> ProxyProcess {
    ProxyProcess::start(bin(), yaml, &[listen]).expect("proxy starts")
}

fn get(listen: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(listen, "GET", path, headers, b"").expect("response")
}

#[test]
fn routes_match_on_every_condition_first_match_wins() {
    let listen = free_addr();
    let routes = r#"      - match: { host: "*.example.com", path: /exact }
        respond: { body: wildcard-exact }
      - match: { path_regex: "^/users/([0-9]+)$", methods: [GET, HEAD] }
        respond: { body: user }
      - match: { headers: { x-env: canary } }
        respond: { body: canary }
      - match: { headers: { x-debug: "~^(1|true)$" } }
        respond: { body: debug }
      - match: { headers: { x-present: "*" } }
        respond: { body: present }
      - match: { query: { version: "2" } }
        respond: { body: v2 }
      - respond: { body: default }
"#;
    let proxy = start(&config(listen, "", routes, "      {}\n"), listen);
    let body = |path: &str, headers: &[(&str, &str)]| get(listen, path, headers).text();
    assert_eq!(
        body("/exact", &[("Host", "a.example.com")]),
        "wildcard-exact"
    );
    assert_eq!(
        body("/exact", &[("Host", "A.EXAMPLE.com:8080")]),
        "wildcard-exact"
    );
    assert_eq!(
        body("/exact", &[("Host", "a.b.example.com")]),
        "default",
        "one label only"
    );
    assert_eq!(body("/exact", &[("Host", "example.com")]), "default");
    assert_eq!(
        body("/exact?q=1", &[("Host", "a.example.com")]),
        "wildcard-exact"
    );
    assert_eq!(body("/users/42", &[]), "user");
    assert_eq!(body("/users/x", &[]), "default");
    let post = request(listen, "POST", "/users/42", &[], b"x").unwrap();
    assert_eq!(post.text(), "default", "methods");
    assert_eq!(body("/", &[("X-Env", "canary")]), "canary");
    assert_eq!(body("/", &[("X-Env", "canary2")]), "default");
    assert_eq!(body("/", &[("X-Debug", "true")]), "debug");
    assert_eq!(body("/", &[("X-Debug", "yes")]), "default");
    assert_eq!(body("/", &[("X-Present", "")]), "present");
    assert_eq!(body("/?a=1&version=2", &[]), "v2");
    assert_eq!(body("/?version=20", &[]), "default");
    drop(proxy);
}

#[test]
fn rewrites_and_request_headers_reach_the_origin() {
    let origin = Origin::start(|req| Reply::ok(req.path.clone()));
    let listen = free_addr();
    let routes = r#"      - match: { path_prefix: /api/ }
        upstream: app
        rewrite: { strip_prefix: /api }
        request_headers:
          set: { X-Env: prod, Host: backend.internal }
          add: { X-Via: "$host", X-Client: "$client_ip", X-Uri: "$request_uri" }
          remove: [X-Internal]
      - match: { path_prefix: /old/ }
        upstream: app
        rewrite: { replace_prefix: { from: /old/, to: /new/ } }
      - match: { path_regex: "^/users/([0-9]+)/(\\w+)$" }
        upstream: app
        rewrite: { regex: "^/users/([0-9]+)/.*$", replace: "/u/$1" }
        request_headers: { set: { X-User: "$1", X-Tab: "$2", X-Agent: "$http_user_agent" } }
"#;
    let yaml = config(listen, "", routes, &upstream("app", origin.addr()));
    let proxy = start(&yaml, listen);

    let r = get(
        listen,
        "/api/users?page=2",
        &[
            ("Host", "Web.Example:8080"),
            ("X-Internal", "secret"),
            ("X-Env", "dev"),
        ],
    );
    assert_eq!((r.status, r.text()), (200, "/users?page=2".to_string()));
    let seen = origin.last_received().unwrap();
    assert_eq!(seen.header("x-env"), Some("prod"));
    assert_eq!(seen.header("host"), Some("backend.internal"));
    assert_eq!(seen.header("x-via"), Some("web.example"));
    assert_eq!(seen.header("x-client"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-uri"), Some("/api/users?page=2"));
    assert_eq!(seen.header("x-internal"), None);

    assert_eq!(get(listen, "/old/a?b=c", &[]).text(), "/new/a?b=c");

    let r = get(listen, "/users/42/profile", &[("User-Agent", "ua/7")]);
    assert_eq!(r.text(), "/u/42");
    let seen = origin.last_received().unwrap();
    assert_eq!(seen.header("x-user"), Some("42"));
    assert_eq!(seen.header("x-tab"), Some("profile"));
    assert_eq!(seen.header("x-agent"), Some("ua/7"));
    drop(proxy);
}

#[test]
fn response_headers_go_on_every_response_of_the_route() {
    let origin = Origin::start(|_| Reply::full(200, &[("Server", "origin/1")], "hi"));
    let closed = free_addr();
    let listen = free_addr();
    let policy = r#"        response_headers:
          set: { Strict-Transport-Security: "max-age=63072000", X-Route: "$path" }
          remove: [Server]
"#;
    let routes = format!(
        "      - match: {{ path_prefix: /down }}\n        upstream: down\n{policy}      - match: {{ path_prefix: /small }}\n        upstream: app\n        max_request_body_bytes: 4\n{policy}      - match: {{ path_prefix: /private }}\n        upstream: app\n        access: {{ allow: [\"10.0.0.0/8\"] }}\n{policy}      - match: {{ path_prefix: /moved }}\n        redirect: {{ status: 308, location: /new }}\n{policy}      - upstream: app\n{policy}"
    );
    let upstreams = format!(
        "{}{}",
        upstream("app", origin.addr()),
        upstream("down", closed)
    );
    let proxy = start(&config(listen, "", &routes, &upstreams), listen);
    let check = |r: &Response, status: u16, path: &str| {
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=63072000"),
            "{path}"
        );
        assert_eq!(r.header("x-route"), Some(path), "{path}");
        assert_eq!(r.header("server"), None, "{path}");
    };
    check(&get(listen, "/", &[]), 200, "/");
    check(&get(listen, "/down", &[]), 502, "/down");
    check(
        &request(listen, "POST", "/small", &[], b"too long").unwrap(),
        413,
        "/small",
    );
    check(&get(listen, "/private", &[]), 403, "/private");
    let moved = get(listen, "/moved", &[]);
    check(&moved, 308, "/moved");
    assert_eq!(moved.header("location"), Some("/new"));
    drop(proxy);
}

#[test]
fn redirects_render_their_location() {
    let listen = free_addr();
    let routes = r#"      - match: { path_prefix: /old/ }
        redirect: { status: 301, location: "https://$host$request_uri" }
      - match: { path_regex: "^/item/([0-9]+)$" }
        redirect: { status: 302, location: "/items?id=$1" }
      - respond: { body: here }
"#;
    let proxy = start(&config(listen, "", routes, "      {}\n"), listen);
    let r = get(listen, "/old/page?x=1", &[("Host", "Example.com:8080")]);
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://example.com/old/page?x=1")
    );
    let r = get(listen, "/item/7", &[]);
    assert_eq!((r.status, r.header("location")), (302, Some("/items?id=7")));
    let head = request(listen, "HEAD", "/old/x", &[("Host", "a")], b"").unwrap();
    assert_eq!(
        (head.status, head.header("location")),
        (301, Some("https://a/old/x"))
    );
    // Keep-alive survives a redirect: two on one connection.
    let mut c = RawClient::connect(listen).unwrap();
    for _ in 0..2 {
        c.send(b"GET /old/k HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(c.read_response().unwrap().status, 301);
    }
    drop(proxy);
}

#[test]
fn access_lists_behind_trusted_proxies() {
    let listen = free_addr();
    let service = r#"    trusted_proxies: ["127.0.0.1"]
    access: { allow: ["127.0.0.0/8", "203.0.113.0/24"], deny: ["203.0.113.66"] }
"#;
    let routes = r#"      - match: { path_prefix: /admin }
        respond: { body: admin }
        access: { allow: ["10.0.0.0/8"] }
      - match: { path_prefix: /open }
        respond: { body: open }
        access: { deny: ["203.0.113.66"] }
      - respond: { body: "client $client_ip" }
"#;
    let proxy = start(&config(listen, service, routes, "      {}\n"), listen);
    let status_at = |listen: SocketAddr, path: &str, xff: Option<&str>| {
        let headers: Vec<(&str, &str)> = xff.map(|x| ("X-Forwarded-For", x)).into_iter().collect();
        get(listen, path, &headers).status
    };
    let status = |path: &str, xff: Option<&str>| status_at(listen, path, xff);
    assert_eq!(status("/", None), 200);
    assert_eq!(status("/", Some("203.0.113.5")), 200);
    assert_eq!(
        status("/", Some("203.0.113.66")),
        403,
        "deny wins over allow"
    );
    assert_eq!(status("/", Some("198.51.100.1")), 403, "not in allow");
    assert_eq!(
        status("/", Some("198.51.100.1, 203.0.113.5")),
        200,
        "rightmost untrusted hop"
    );
    assert_eq!(
        status("/open", Some("198.51.100.1")),
        200,
        "the route's list replaces the service's"
    );
    assert_eq!(status("/open", Some("203.0.113.66")), 403);
    let r = get(listen, "/admin", &[]);
    assert_eq!((r.status, r.text()), (403, "403 Forbidden\n".to_string()));
    drop(proxy);

    // Without trusted_proxies, X-Forwarded-For is believed from nobody.
    let listen = free_addr();
    let service = "    access: { deny: [\"127.0.0.0/8\"] }\n";
    let proxy = start(
        &config(
            listen,
            service,
            "      - respond: { body: x }\n",
            "      {}\n",
        ),
        listen,
    );
    assert_eq!(status_at(listen, "/", Some("203.0.113.5")), 403);
    drop(proxy);
}

/// An origin that reads each request head and counts the request body bytes it then
/// receives (decoding chunked framing), until the proxy closes the connection; it never
/// answers. `bodies()` lists the counts of finished connections.
struct CountingOrigin {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<u64>>>,
}

impl CountingOrigin {
    fn start() -> CountingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            // Bounded: the tests open a handful of connections.
            for stream in listener.incoming().take(16).flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let n = count_body(stream);
                    seen.lock().unwrap().push(n);
                });
            }
        });
        CountingOrigin { addr, bodies }
    }

    fn bodies(&self) -> Vec<u64> {
        self.bodies.lock().unwrap().clone()
    }
}

/// Reads one request until the peer closes (or 15 s pass); the body bytes it carried.
fn count_body(mut stream: TcpStream) -> u64 {
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 16384];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let Some(end) = all.windows(4).position(|w| w == b"\r\n\r\n") else {
        return 0;
    };
    let head = String::from_utf8_lossy(&all[..end]).to_ascii_lowercase();
    let body = &all[end + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return body.len() as u64;
    }
    // Chunked: add up the chunk payloads that arrived.
    let (mut total, mut at) = (0u64, 0usize);
    while let Some(line_end) = body[at..].windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[at..at + line_end]).to_string();
        let Ok(size) = u64::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        let start = at + line_end + 2;
        let available = (body.len() - start) as u64;
        total += size.min(available);
        if size == 0 || available < size + 2 {
            break;
        }
        at = start + size as usize + 2;
    }
    total
}

#[test]
fn body_limit_http1_declared_and_growing() {
    let origin = Origin::start(|req| Reply::ok(format!("got {}", req.path)));
    let counting = CountingOrigin::start();
    let listen = free_addr();
    let service = "    max_request_body_bytes: 100000\n";
    let routes = r#"      - match: { path_prefix: /count }
        upstream: counting
      - match: { path_prefix: /small }
        upstream: app
        max_request_body_bytes: 10
      - upstream: app
"#;
    let upstreams = format!(
        "{}{}",
        upstream("app", origin.addr()),
        upstream("counting", counting.addr)
    );
    let proxy = start(&config(listen, service, routes, &upstreams), listen);

    // Declared too large: 413 at once, no 100 Continue, the origin never asked.
    let mut c = RawClient::connect(listen).unwrap();
    c.send(
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100001\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 413);
    assert!(r.interim.is_empty(), "no 100 Continue before a 413");
    assert!(r.has_token("connection", "close"));
    assert_eq!(origin.requests(), 0);
    // Within the service limit, over the route's: the route's applies.
    let ok = request(listen, "POST", "/up", &[], &[b'a'; 100_000]).unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(
        request(listen, "POST", "/small", &[], b"12345678901")
            .unwrap()
            .status,
        413
    );

    // Chunked, growing past the limit: cut, 413, connection closed; the origin gets at
    // most the limit.
    let piece = vec![b'x'; 30_000];
    let chunks: Vec<&[u8]> = (0..20).map(|_| piece.as_slice()).collect();
    let mut c = RawClient::connect(listen).unwrap();
    let mut bytes =
        b"POST /count HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    bytes.extend_from_slice(&chunked_body(&chunks, &[]));
    // The proxy may close while we still write: that is the point.
    let _ = c.send(&bytes);
    if let Ok(r) = c.read_response() {
        assert_eq!(r.status, 413);
    }
    assert!(
        c.is_closed_by_peer(EXCHANGE_TIMEOUT),
        "connection closed after the cut"
    );
    assert!(wait_until(EXCHANGE_TIMEOUT, || !counting
        .bodies()
        .is_empty()));
    let got = counting.bodies()[0];
    assert!(
        got <= 100_000,
        "the origin received {got} bytes, over the limit"
    );
    drop(proxy);
}

#[test]
fn body_limit_http2_growing_and_declared() {
    let counting = CountingOrigin::start();
    let origin = Origin::start(|_| Reply::Echo);
    let listen = free_addr();
    let routes = "      - match: { path_prefix: /count }\n        upstream: counting\n      - upstream: app\n";
    let upstreams = format!(
        "{}{}",
        upstream("app", origin.addr()),
        upstream("counting", counting.addr)
    );
    let service = "    max_request_body_bytes: 65536\n";
    let proxy = start(&config(listen, service, routes, &upstreams), listen);
    let client = H2Client::connect(listen, EXCHANGE_TIMEOUT).expect("h2c connects");

    // No length declared: the body grows past the limit and is cut.
    let big = H2Request::new("POST", "/count").body(H2Body::Pattern {
        len: 1 << 20,
        seed: 7,
    });
    match client.request(big) {
        Ok(r) => assert_eq!(r.status, 413),
        Err(e) => eprintln!("stream reset after the cut (accepted): {e}"),
    }
    assert!(wait_until(EXCHANGE_TIMEOUT, || !counting
        .bodies()
        .is_empty()));
    let got = counting.bodies()[0];
    assert!(
        got <= 65536,
        "the origin received {got} bytes, over the limit"
    );

    // Declared too large: 413 up front, on a new connection.
    let client = H2Client::connect(listen, EXCHANGE_TIMEOUT).unwrap();
    let declared = H2Request::new("POST", "/")
        .header("content-length", "70000")
        .body(H2Body::Pattern {
            len: 70000,
            seed: 1,
        });
    match client.request(declared) {
        Ok(r) => assert_eq!(r.status, 413),
        Err(e) => panic!("expected a 413, got {e}"),
    }
    // Within the limit: echoed whole.
    let client = H2Client::connect(listen, EXCHANGE_TIMEOUT).unwrap();
    let small = client
        .request(H2Request::new("POST", "/").body(H2Body::Bytes(vec![b'z'; 1000])))
        .unwrap();
    assert_eq!((small.status, small.body.len()), (200, 1000));
    assert_eq!(origin.requests(), 1);
    drop(proxy);
}

#[test]
fn request_ids_are_generated_sent_echoed_and_logged() {
    let origin = Origin::start(|_| Reply::ok("ok"));
    let listen = free_addr();
    let service = "    request_id: { header: X-Request-Id }\n";
    let routes = "      - upstream: app\n        response_headers: { set: { X-Seen-Id: \"$request_id\" } }\n";
    let yaml = config(listen, service, routes, &upstream("app", origin.addr())).replace(
        "services:\n",
        "access_log: { path: \"{dir}/access.log\" }\nservices:\n",
    );
    let proxy = start(&yaml, listen);
    let r = get(listen, "/", &[("X-Request-Id", "from-client")]);
    let id = r.header("x-request-id").expect("id echoed").to_string();
    assert_ne!(id, "from-client", "not believed from an untrusted client");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(&id[14..15], "7", "version 7: {id}");
    assert_eq!(r.header("x-seen-id"), Some(id.as_str()));
    assert_eq!(
        origin.last_received().unwrap().header("x-request-id"),
        Some(id.as_str())
    );
    let second = get(listen, "/", &[]);
    let id2 = second.header("x-request-id").unwrap();
    assert!(id2 > id.as_str(), "time-ordered: {id2} after {id}");
    let log = proxy.dir().join("access.log");
    assert!(
        wait_until(EXCHANGE_TIMEOUT, || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains(&format!("request_id={id}")))),
        "the access log names the id"
    );
    drop(proxy);

    // From a trusted proxy the incoming id is kept.
    let listen = free_addr();
    let service = "    trusted_proxies: [\"127.0.0.1\"]\n    request_id: {}\n";
    let proxy = start(
        &config(
            listen,
            service,
            "      - upstream: app\n",
            &upstream("app", origin.addr()),
        ),
        listen,
    );
    let r = get(listen, "/", &[("X-Request-Id", "abc-123")]);
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    assert_eq!(
        origin.last_received().unwrap().header("x-request-id"),
        Some("abc-123")
    );
    drop(proxy);
}

#[test]
fn route_timeouts_override_the_upstreams() {
    let origin =
        Origin::start(|_| Reply::Delay(Duration::from_millis(1500), Box::new(Reply::ok("late"))));
    let listen = free_addr();
    let routes = r#"      - match: { path_prefix: /impatient }
        upstream: app
        timeouts: { read_ms: 200 }
        response_headers: { set: { X-Policy: on } }
      - upstream: app
"#;
    let proxy = start(
        &config(listen, "", routes, &upstream("app", origin.addr())),
        listen,
    );
    let r = get(listen, "/impatient", &[]);
    assert_eq!(r.status, 504);
    assert_eq!(
        r.header("x-policy"),
        Some("on"),
        "on the proxy's own 504 too"
    );
    assert_eq!(get(listen, "/patient", &[]).status, 200);
    drop(proxy);
}

#[test]
fn connections_per_client_are_limited() {
    let listen = free_addr();
    let service = "    max_connections_per_client: 2\n";
    let proxy = start(
        &config(
            listen,
            service,
            "      - respond: { body: ok }\n",
            "      {}\n",
        ),
        listen,
    );
    let open = || {
        let mut c = RawClient::connect(listen).unwrap();
        c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        c
    };
    let mut a = open();
    let mut b = open();
    assert_eq!(a.read_response().unwrap().status, 200);
    assert_eq!(b.read_response().unwrap().status, 200);
    let mut third = open();
    assert!(
        third.read_response().is_err(),
        "a third connection is refused"
    );
    drop(a);
    // Once one closes, a new connection is served again.
    assert!(wait_until(EXCHANGE_TIMEOUT, || {
        let mut c = open();
        c.read_response().is_ok_and(|r| r.status == 200)
    }));
    drop(b);
    drop(proxy);
}

#[test]
fn bad_policy_values_exit_2_at_test_and_at_start() {
    let cases = [
        (
            "        match: { path_regex: \"^/(x\" }\n",
            "routes[0].match.path_regex",
            "does not compile",
        ),
        (
            "        access: { allow: [\"10.0.0.0/40\"] }\n",
            "routes[0].access.allow[0]",
            "prefix length",
        ),
        (
            "        request_headers: { set: { X-A: \"$nope\" } }\n",
            "routes[0].request_headers.set.X-A",
            "unknown variable `$nope`",
        ),
        (
            "      - redirect: { status: 200, location: /x }\n",
            "routes[1].redirect.status",
            "301, 302",
        ),
    ];
    let dir = TestDir::new().unwrap();
    for (i, (route, key, needle)) in cases.iter().enumerate() {
        let listen = free_addr();
        let routes = if route.starts_with("      - ") {
            format!("      - match: {{ path_prefix: /a }}\n        respond: {{}}\n{route}")
        } else {
            format!("      - respond: {{}}\n{route}")
        };
        let yaml = config(listen, "", &routes, "      {}\n")
            .replace("{dir}", &dir.path().display().to_string());
        let file = dir.write(&format!("bad{i}.yaml"), &yaml).unwrap();
        let file = file.display().to_string();
        for args in [vec!["-t", "-c", &file], vec!["-c", &file]] {
            let out = run_command(bin(), &args, EXCHANGE_TIMEOUT).unwrap();
            assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
            let expect = format!("bad{i}.yaml:");
            assert!(
                out.stderr.contains(&expect),
                "file and line: {}",
                out.stderr
            );
            assert!(
                out.stderr.contains(&format!("services[0].{key}")),
                "key path: {}",
                out.stderr
            );
            assert!(out.stderr.contains(needle), "why: {}", out.stderr);
        }
    }
}

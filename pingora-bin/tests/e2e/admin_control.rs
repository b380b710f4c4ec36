//! The admin endpoint's status and control, from outside: `/status.json` checked
//! against docs/status.schema.json, drain and enable moving traffic (counted at the
//! origins) while a request in flight finishes, cache purges by key and prefix, and
//! POSTs refused without the token, from off loopback, or from another site's page.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use test_support::{free_addr, request, wait_until, Origin, ProxyProcess, Reply, TestDir};

/// Most time a polled condition may take.
const POLL: Duration = Duration::from_secs(10);

fn bin() -> PathBuf {
    crate::bin().to_path_buf()
}

/// A proxy with service `web` on `listen`, upstream `api` over `peers` (round robin,
/// no health check), a cache for routes under /img/, and the admin listener on
/// `admin` with `admin_extra` lines.
fn start(
    listen: SocketAddr,
    admin: SocketAddr,
    peers: &[SocketAddr],
    admin_extra: &str,
) -> ProxyProcess {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    let yaml = format!(
        "pid_file: {{dir}}/pingora.pid
upgrade_sock: {{dir}}/upgrade.sock
services:
  - name: web
    listeners: [{{addr: \"{listen}\"}}]
    routes:
      - match: {{path_prefix: /img/}}
        upstream: api
        cache: true
      - upstream: api
    upstreams:
      api:
        peers: [{}]
    cache: {{max_bytes: 10000000}}
admin:
  addr: \"{admin}\"
{admin_extra}",
        peers.join(", ")
    );
    ProxyProcess::start(&bin(), &yaml, &[listen, admin]).expect("pingora starts")
}

fn status(admin: SocketAddr) -> Value {
    let r = request(admin, "GET", "/status.json", &[], b"").expect("GET /status.json");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_slice(&r.body).expect("status.json is JSON")
}

fn backend<'a>(status: &'a Value, addr: &str) -> &'a Value {
    status["services"][0]["upstreams"][0]["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .find(|b| b["addr"] == addr)
        .unwrap_or_else(|| panic!("no backend {addr} in {status:#}"))
}

fn post(admin: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let r = request(admin, "POST", path, headers, body.as_bytes()).expect("POST");
    (r.status, r.text())
}

// -----------------------------------------------------------------------------
// A checker of the JSON Schema subset docs/status.schema.json uses: type (one or a
// list), required, properties, items, enum.

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/status.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("schema file")).expect("schema JSON")
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("schema uses an unknown type {other}"),
    }
}

fn check(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(t) = schema.get("type") {
        let ok = match t {
            Value::String(t) => type_matches(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap_or(""), v)),
            _ => panic!("bad type in schema at {at}"),
        };
        if !ok {
            errors.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            errors.push(format!("{at}: {v} is not one of {allowed:?}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            if !obj.contains_key(key) {
                errors.push(format!("{at}: missing {key}"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (key, sub) in props {
                if let Some(value) = obj.get(key) {
                    check(sub, value, &format!("{at}.{key}"), errors);
                }
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            check(items, item, &format!("{at}[{i}]"), errors);
        }
    }
}

#[test]
#[cfg_attr(not(feature = "cache"), ignore = "needs the `cache` feature")]
fn status_json_follows_its_schema_and_counts_what_was_sent() {
    let a = Origin::start(|_| Reply::full(200, &[("cache-control", "max-age=60")], "a"));
    let b = Origin::start(|_| Reply::ok("b"));
    let (listen, admin) = (free_addr(), free_addr());
    let _proxy = start(listen, admin, &[a.addr(), b.addr()], "");
    for _ in 0..4 {
        assert_eq!(request(listen, "GET", "/x", &[], b"").unwrap().status, 200);
    }
    // A miss, then hits (the first pick goes to `a`, whose answers are cacheable).
    for _ in 0..3 {
        request(listen, "GET", "/img/logo.png", &[], b"").unwrap();
    }
    // A request is counted at its end, just after its response went out.
    let mut s = status(admin);
    wait_until(POLL, || {
        s = status(admin);
        s["services"][0]["requests_total"] == 7
    });
    let mut errors = Vec::new();
    check(&schema(), &s, "$", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}\nin {s:#}");

    assert_eq!(s["pid"], _proxy.pid());
    assert_eq!(s["draining"], false);
    let svc = &s["services"][0];
    assert_eq!(svc["name"], "web");
    assert_eq!(svc["listeners"][0], listen.to_string());
    assert_eq!(svc["requests_total"], 7);
    assert_eq!(svc["status_classes"]["2xx"], 7);
    let up = &svc["upstreams"][0];
    assert_eq!(
        (up["name"].as_str(), up["lb"].as_str()),
        (Some("api"), Some("round_robin"))
    );
    let sent: u64 = [a.addr(), b.addr()]
        .iter()
        .map(|addr| {
            let be = backend(&s, &addr.to_string());
            assert_eq!(be["healthy"], true);
            assert_eq!(be["draining"], false);
            assert_eq!(be["in_flight"], 0);
            assert_eq!(be["errors_total"], 0);
            be["requests_total"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(
        sent as usize,
        a.requests() + b.requests(),
        "counted at the origins"
    );
    let cache = &svc["cache"];
    assert!(cache["entries"].as_u64().unwrap() >= 1, "{cache}");
    assert!(cache["bytes"].as_u64().unwrap() > 0, "{cache}");
    let ratio = cache["hit_ratio"].as_f64().unwrap();
    assert!(ratio > 0.5 && ratio <= 1.0, "two hits of three: {ratio}");
}

#[test]
fn drain_and_enable_move_traffic_and_let_requests_in_flight_finish() {
    let a = Origin::start(|req| {
        if req.path == "/slow" {
            std::thread::sleep(Duration::from_millis(800));
        }
        Reply::ok("a")
    });
    let b = Origin::start(|_| Reply::ok("b"));
    let (listen, admin) = (free_addr(), free_addr());
    let _proxy = start(listen, admin, &[a.addr(), b.addr()], "");
    let a_addr = a.addr().to_string();

    // A slow request on `a`, in flight while `a` is drained.
    let slow = std::thread::spawn(move || {
        // Round robin: the first pick is the first peer, `a`.
        request(listen, "GET", "/slow", &[], b"").map(|r| (r.status, r.text()))
    });
    assert!(
        wait_until(POLL, || backend(&status(admin), &a_addr)["in_flight"] == 1),
        "the slow request never showed in flight on {a_addr}"
    );
    // In flight counts from the pick of the backend; the origin counts the request once
    // its head arrived: wait for both, or the count below races with the slow request.
    assert!(
        wait_until(POLL, || a.requests() == 1),
        "the slow request never reached {a_addr}"
    );
    let path = format!("/upstreams/web/api/{a_addr}/drain");
    let (code, body) = post(admin, &path, &[], "");
    assert_eq!(code, 200, "{body}");
    let done: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (done["draining"].as_bool(), done["changed"].as_bool()),
        (Some(true), Some(true))
    );
    let before = (a.requests(), b.requests());
    for _ in 0..10 {
        assert_eq!(request(listen, "GET", "/x", &[], b"").unwrap().text(), "b");
    }
    assert_eq!(
        a.requests(),
        before.0,
        "a drained backend gets no new request"
    );
    assert_eq!(b.requests(), before.1 + 10);
    let finished = slow.join().expect("slow client").expect("slow request");
    assert_eq!(
        finished,
        (200, "a".to_string()),
        "the request in flight finished"
    );
    // In flight until the request's end, just after its response went out.
    let mut s = status(admin);
    wait_until(POLL, || {
        s = status(admin);
        backend(&s, &a_addr)["in_flight"] == 0
    });
    let be = backend(&s, &a_addr);
    assert_eq!(
        (be["draining"].as_bool(), be["state"].as_str()),
        (Some(true), Some("draining"))
    );
    assert_eq!(be["in_flight"], 0);
    let events = s["events"].as_array().unwrap();
    assert!(
        events[0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{a_addr} of web/api drained")),
        "{events:?}"
    );

    let (code, body) = post(
        admin,
        &format!("/upstreams/web/api/{a_addr}/enable"),
        &[],
        "",
    );
    assert_eq!(code, 200, "{body}");
    let before = (a.requests(), b.requests());
    for _ in 0..10 {
        request(listen, "GET", "/x", &[], b"").unwrap();
    }
    assert_eq!((a.requests() - before.0, b.requests() - before.1), (5, 5));
    assert_eq!(
        status(admin)["events"][0]["message"]
            .as_str()
            .map(|m| m.contains("enabled")),
        Some(true)
    );

    // Unknown names and bad paths.
    for (path, want) in [
        ("/upstreams/web/api/10.9.9.9:1/drain", 404),
        ("/upstreams/web/nope/10.9.9.9:1/drain", 404),
        ("/upstreams/nope/api/10.9.9.9:1/drain", 404),
        ("/upstreams/web/api/drain", 404),
    ] {
        assert_eq!(post(admin, path, &[], "").0, want, "{path}");
    }
    let r = request(
        admin,
        "GET",
        &format!("/upstreams/web/api/{a_addr}/drain"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 405);
}

#[test]
#[cfg_attr(not(feature = "cache"), ignore = "needs the `cache` feature")]
fn cache_purge_by_key_and_by_prefix() {
    let origin = Origin::start(|_| Reply::full(200, &[("cache-control", "max-age=60")], "img"));
    let (listen, admin) = (free_addr(), free_addr());
    let _proxy = start(listen, admin, &[origin.addr()], "");
    let cache_status = |path: &str| {
        let r = request(listen, "GET", path, &[], b"").unwrap();
        r.header("x-cache-status").unwrap_or("-").to_string()
    };
    for p in ["/img/1", "/img/2", "/img/3?v=2"] {
        assert_eq!(cache_status(p), "MISS");
        assert_eq!(cache_status(p), "HIT");
    }
    let purge = |body: &str| -> (u16, Value) {
        let (code, text) = post(
            admin,
            "/cache/purge",
            &[("content-type", "application/json")],
            body,
        );
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let (code, v) = purge(r#"{"service": "web", "key": "/img/1"}"#);
    assert_eq!((code, v["purged"].as_u64()), (200, Some(1)));
    assert_eq!(cache_status("/img/1"), "MISS");
    assert_eq!(cache_status("/img/2"), "HIT", "other keys stay");
    let (code, v) = purge(r#"{"service": "web", "prefix": "/img/", "host": "elsewhere.test"}"#);
    assert_eq!((code, v["purged"].as_u64()), (200, Some(0)), "another host");
    let (code, v) = purge(r#"{"service": "web", "prefix": "/img/"}"#);
    assert_eq!((code, v["purged"].as_u64()), (200, Some(3)));
    assert_eq!(cache_status("/img/3?v=2"), "MISS");
    for (body, want) in [
        (r#"{"service": "web"}"#, 400),
        (r#"{"service": "web", "key": "/a", "prefix": "/"}"#, 400),
        (r#"{"service": "web", "key": "no-slash"}"#, 400),
        (r#"{"service": "web", "keys": "/a"}"#, 400),
        ("not json", 400),
        (r#"{"service": "nope", "key": "/a"}"#, 404),
    ] {
        assert_eq!(purge(body).0, want, "{body}");
    }
    let s = status(admin);
    assert!(s["events"][0]["message"]
        .as_str()
        .unwrap()
        .contains("purged by prefix /img/: 3 entries removed"));
}

/// A non-loopback address of this machine, if it has one (the source address of a
/// route to the outside; no packet is sent).
fn outside_ip() -> Option<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("10.255.255.255:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn posts_need_the_token_when_one_is_configured() {
    let origin = Origin::start(|_| Reply::ok("o"));
    let dir = TestDir::new().unwrap();
    let token_file = dir.write("admin.token", "tok-3f9a1c\n").unwrap();
    let listen = free_addr();
    // On every address, so that a client from off loopback can be tried too.
    let admin_port = free_addr().port();
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let extra = format!("  token_file: {}\n", token_file.display());
    let all = SocketAddr::from(([0, 0, 0, 0], admin_port));
    let _proxy = start(listen, all, &[origin.addr()], &extra);
    let drain = format!("/upstreams/web/api/{}/drain", origin.addr());

    let r = request(admin, "POST", &drain, &[], b"").unwrap();
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));
    for wrong in [
        "Bearer tok-3f9a1",
        "Bearer tok-3f9a1c0",
        "Basic tok-3f9a1c",
        "tok-3f9a1c",
    ] {
        let (code, _) = post(admin, &drain, &[("authorization", wrong)], "");
        assert_eq!(code, 401, "{wrong}");
    }
    let purge = r#"{"service": "web", "prefix": "/"}"#;
    assert_eq!(post(admin, "/cache/purge", &[], purge).0, 401);
    assert_eq!(
        status(admin)["services"][0]["upstreams"][0]["backends"][0]["draining"],
        false
    );
    assert_eq!(
        request(listen, "GET", "/", &[], b"").unwrap().status,
        200,
        "nothing changed"
    );

    let (code, body) = post(admin, &drain, &[("authorization", "Bearer tok-3f9a1c")], "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        request(listen, "GET", "/", &[], b"").unwrap().status,
        503,
        "the only backend drained"
    );
    assert_eq!(
        status(admin)["token_required"],
        true,
        "GETs from loopback need no token"
    );

    match outside_ip() {
        None => eprintln!("part skipped: this machine has no non-loopback address"),
        Some(ip) => {
            let outside = SocketAddr::new(ip, admin_port);
            assert_eq!(
                request(outside, "GET", "/status.json", &[], b"")
                    .unwrap()
                    .status,
                401
            );
            assert_eq!(
                request(outside, "GET", "/metrics", &[], b"")
                    .unwrap()
                    .status,
                401
            );
            assert_eq!(
                request(outside, "GET", "/health", &[], b"").unwrap().status,
                401,
                "every GET off loopback needs the token, /health too"
            );
            let probe = [("authorization", "Bearer tok-3f9a1c")];
            assert_eq!(
                request(outside, "GET", "/health", &probe, b"")
                    .unwrap()
                    .status,
                200,
                "a probe that sends the token"
            );
            let ok = request(
                outside,
                "GET",
                "/status.json",
                &[("authorization", "Bearer tok-3f9a1c")],
                b"",
            );
            assert_eq!(ok.unwrap().status, 200);
        }
    }
}

#[test]
fn without_a_token_posts_come_from_loopback_and_this_site_only() {
    let origin = Origin::start(|_| Reply::ok("o"));
    let listen = free_addr();
    let admin_port = free_addr().port();
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let _proxy = start(
        listen,
        SocketAddr::from(([0, 0, 0, 0], admin_port)),
        &[origin.addr()],
        "",
    );
    let drain = format!("/upstreams/web/api/{}/drain", origin.addr());
    let evil = [("origin", "https://evil.example")];
    assert_eq!(post(admin, &drain, &evil, "").0, 403, "a cross-site form");
    assert_eq!(
        status(admin)["services"][0]["upstreams"][0]["backends"][0]["draining"],
        false
    );
    match outside_ip() {
        None => eprintln!("part skipped: this machine has no non-loopback address"),
        Some(ip) => {
            let outside = SocketAddr::new(ip, admin_port);
            assert_eq!(
                request(outside, "POST", &drain, &[], b"").unwrap().status,
                403
            );
            assert_eq!(
                request(outside, "GET", "/status.json", &[], b"")
                    .unwrap()
                    .status,
                200
            );
        }
    }
    assert_eq!(
        status(admin)["services"][0]["upstreams"][0]["backends"][0]["draining"],
        false
    );
    let same_site = format!("http://{admin}");
    let (code, body) = post(admin, &drain, &[("origin", &same_site)], "");
    assert_eq!(code, 200, "{body}");
}

//! Each example program, run as a user runs it (its binary, `-c` with the server keys,
//! its settings in the environment) in front of real origins, checked for what its
//! documentation says it does.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use test_support::{
    free_addr, get, request, wait_until, Framing, H2Client, H2Request, Origin, ProxyProcess,
    RawClient, Reply, TestDir,
};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A running example and the directory of its files.
struct Example {
    process: ProxyProcess,
    _dir: TestDir,
}

/// Starts the example `bin` with `env`, and waits until `listen` (and `also`) accept.
fn start(bin: &str, name: &str, env: &[(&str, String)], listen: &[SocketAddr]) -> Example {
    let dir = TestDir::new().unwrap();
    let d = dir.path().display();
    let conf = format!("version: 1\npid_file: {d}/{name}.pid\nupgrade_sock: {d}/{name}.sock\n");
    let conf = dir.write("server.yaml", &conf).unwrap();
    let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, OsStr::new(v))).collect();
    let mut process =
        ProxyProcess::spawn_with_env(Path::new(bin), dir.path(), name, &conf, &[], &env);
    process
        .wait_ready(listen, TIMEOUT)
        .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
    Example { process, _dir: dir }
}

fn text(listen: SocketAddr, path: &str) -> (u16, String) {
    let resp = get(listen, path).unwrap();
    (resp.status, resp.text())
}

#[test]
fn load_balancer_spreads_requests_and_skips_a_backend_failing_its_checks() {
    let a_healthy = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&a_healthy);
    let a = Origin::start(move |req| match req.path.as_str() {
        "/health" if !flag.load(Ordering::SeqCst) => Reply::full(503, &[], "sick"),
        _ => Reply::ok("a"),
    });
    let b = Origin::named("b");
    let listen = free_addr();
    let backends = format!("{},{}", a.addr(), b.addr());
    let env = [
        ("LISTEN", listen.to_string()),
        ("BACKENDS", backends),
        ("CHECK_MS", "50".to_string()),
    ];
    let lb = start(env!("CARGO_BIN_EXE_load-balancer"), "lb", &env, &[listen]);

    let answers: Vec<String> = (0..4).map(|i| text(listen, &format!("/{i}")).1).collect();
    assert_eq!(
        answers.iter().filter(|a| *a == "a").count(),
        2,
        "round robin: {answers:?}"
    );

    // `a` fails its checks: after three failures it gets nothing more.
    a_healthy.store(false, Ordering::SeqCst);
    let only_b = || (0..4).all(|i| text(listen, &format!("/sick{i}")) == (200, "b".into()));
    assert!(
        wait_until(TIMEOUT, only_b),
        "a is still used; log:\n{}",
        lb.process.log()
    );
    // Back after two passed checks.
    a_healthy.store(true, Ordering::SeqCst);
    let a_again = || (0..4).any(|i| text(listen, &format!("/back{i}")).1 == "a");
    assert!(wait_until(TIMEOUT, a_again), "a never came back");

    // A backend that is gone: requests are retried on the other, none fails.
    drop(b);
    for i in 0..6 {
        assert_eq!(text(listen, &format!("/gone{i}")), (200, "a".to_string()));
    }
}

#[test]
fn gateway_routes_by_path_and_refuses_with_403_and_404() {
    let api = Origin::start(|req| Reply::ok(format!("api saw {}", req.path)));
    let files = Origin::start(|req| Reply::ok(format!("static saw {}", req.path)));
    let listen = free_addr();
    let env = [
        ("LISTEN", listen.to_string()),
        ("API", api.addr().to_string()),
        ("STATIC", files.addr().to_string()),
    ];
    let _gw = start(env!("CARGO_BIN_EXE_gateway"), "gateway", &env, &[listen]);
    assert_eq!(
        text(listen, "/api/users?page=2"),
        (200, "api saw /users?page=2".to_string())
    );
    assert_eq!(
        text(listen, "/static/app.css"),
        (200, "static saw /static/app.css".to_string())
    );
    assert_eq!(text(listen, "/admin/users").0, 403);
    assert_eq!(text(listen, "/elsewhere").0, 404);
    assert_eq!((api.requests(), files.requests()), (1, 1));

    // A refusal keeps the connection: the next request on it is served.
    let mut client = RawClient::connect(listen).unwrap();
    assert_eq!(client.get("/admin", false).unwrap().status, 403);
    assert_eq!(client.get("/api/x", false).unwrap().text(), "api saw /x");
}

#[test]
fn json_body_adds_a_field_and_keeps_the_framing_right() {
    let origin = Origin::start(|req| match req.path.as_str() {
        "/user" => Reply::full(
            200,
            &[("content-type", "application/json")],
            r#"{"name":"ada","langs":["en","fr"]}"#,
        ),
        "/chunked" => Reply::Chunked {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![br#"{"a":"#.to_vec(), b"1}".to_vec()],
            trailers: Vec::new(),
        },
        _ => Reply::full(200, &[("content-type", "text/plain")], "plain text"),
    });
    let listen = free_addr();
    let env = [
        ("LISTEN", listen.to_string()),
        ("ORIGIN", origin.addr().to_string()),
    ];
    let _ex = start(env!("CARGO_BIN_EXE_json-body"), "json", &env, &[listen]);

    let mut client = RawClient::connect(listen).unwrap();
    let resp = client.get("/user", false).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"name": "ada", "langs": ["en", "fr"], "served_by": "pingora"})
    );
    assert_eq!(resp.framing, Framing::Chunked, "the old length is gone");
    let resp = client.get("/chunked", false).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body, serde_json::json!({"a": 1, "served_by": "pingora"}));
    // Not JSON: untouched, with its length, on the same connection.
    let resp = client.get("/text", false).unwrap();
    assert_eq!(resp.text(), "plain text");
    assert_eq!(resp.framing, Framing::ContentLength(10));

    let h2 = H2Client::connect(listen, TIMEOUT).unwrap();
    let resp = h2.request(H2Request::get("/user")).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["served_by"], "pingora");
    assert_eq!(resp.header("content-length"), None);
}

#[test]
fn request_ctx_numbers_requests_and_logs_each_once() {
    let origin = Origin::start(|req| match req.method.as_str() {
        "POST" => Reply::Echo,
        _ => Reply::ok("hello"),
    });
    let listen = free_addr();
    let env = [
        ("LISTEN", listen.to_string()),
        ("ORIGIN", origin.addr().to_string()),
    ];
    let ex = start(env!("CARGO_BIN_EXE_request-ctx"), "ctx", &env, &[listen]);
    let first = request(listen, "GET", "/one", &[], b"").unwrap();
    let second = request(listen, "POST", "/two", &[], b"12345").unwrap();
    assert_eq!(first.header("x-request-number"), Some("1"));
    assert_eq!(second.header("x-request-number"), Some("2"));
    let line = "request 2: ";
    assert!(
        ex.process.wait_for_log(line, TIMEOUT),
        "log:\n{}",
        ex.process.log()
    );
    let log = ex.process.log();
    let two: Vec<&str> = log.lines().filter(|l| l.starts_with(line)).collect();
    assert_eq!(two.len(), 1, "one line per request:\n{log}");
    for needle in [
        "POST /two 200",
        "body_up=5",
        "body_down=5",
        "upstream_status=200",
    ] {
        assert!(two[0].contains(needle), "{needle} in {}", two[0]);
    }
    assert_eq!(
        log.lines().filter(|l| l.starts_with("request 1: ")).count(),
        1
    );
}

#[test]
fn rate_limiter_answers_429_past_the_burst_and_lets_requests_through_again() {
    let origin = Origin::named("origin");
    let listen = free_addr();
    let env = [
        ("LISTEN", listen.to_string()),
        ("ORIGIN", origin.addr().to_string()),
        ("RATE", "0.5".to_string()),
        ("BURST", "3".to_string()),
    ];
    let _ex = start(env!("CARGO_BIN_EXE_rate-limiter"), "limit", &env, &[listen]);
    let statuses: Vec<u16> = (0..5).map(|_| get(listen, "/").unwrap().status).collect();
    assert_eq!(&statuses[..3], [200, 200, 200], "the burst: {statuses:?}");
    assert_eq!(statuses[4], 429, "{statuses:?}");
    let limited = get(listen, "/").unwrap();
    assert_eq!(limited.status, 429);
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert!(
        origin.requests() <= 4,
        "refused requests never reach the origin"
    );
    // The bucket refills (a token every 2 s).
    assert!(wait_until(TIMEOUT, || get(listen, "/").unwrap().status == 200));
}

#[test]
fn cache_serves_a_fresh_response_without_the_origin() {
    let origin = Origin::start(|req| {
        Reply::full(
            200,
            &[("cache-control", "max-age=60")],
            format!("page {}", req.path),
        )
    });
    let listen = free_addr();
    let env = [
        ("LISTEN", listen.to_string()),
        ("ORIGIN", origin.addr().to_string()),
    ];
    let _ex = start(env!("CARGO_BIN_EXE_cache"), "cache", &env, &[listen]);
    let statuses: Vec<String> = (0..3)
        .map(|_| {
            let resp = get(listen, "/a").unwrap();
            assert_eq!(resp.text(), "page /a");
            resp.header("x-cache-status").unwrap_or("-").to_string()
        })
        .collect();
    assert_eq!(statuses, ["MISS", "HIT", "HIT"]);
    assert_eq!(origin.requests(), 1);
    assert_eq!(
        get(listen, "/b").unwrap().header("x-cache-status"),
        Some("MISS")
    );
    assert_eq!(origin.requests(), 2);
}

#[test]
fn echo_runs_beside_the_proxy_in_one_server() {
    let origin = Origin::named("origin");
    let (listen, echo) = (free_addr(), free_addr());
    let env = [
        ("LISTEN", listen.to_string()),
        ("ECHO", echo.to_string()),
        ("ORIGIN", origin.addr().to_string()),
    ];
    let _ex = start(env!("CARGO_BIN_EXE_echo"), "echo", &env, &[listen, echo]);
    assert_eq!(text(listen, "/"), (200, "origin".to_string()));

    let mut conn = TcpStream::connect(echo).unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    for message in [&b"hello\n"[..], b"\x00\x01 not http at all"] {
        conn.write_all(message).unwrap();
        let mut back = vec![0u8; message.len()];
        conn.read_exact(&mut back).unwrap();
        assert_eq!(back, message);
    }
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "closed after the client's end");
}

#[test]
fn the_library_guide_shows_each_program_as_it_is() {
    let guide = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/library.md");
    let guide = std::fs::read_to_string(guide).unwrap();
    let bins = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin");
    let mut shown = Vec::new();
    let mut rest = guide.as_str();
    while let Some(at) = rest.find("<!-- example: ") {
        let after = &rest[at + "<!-- example: ".len()..];
        let (name, after) = after.split_once(" -->").expect("the marker closes");
        let code = after
            .split_once("```rust,ignore\n")
            .and_then(|(_, b)| b.split_once("\n```"))
            .map(|(code, _)| code)
            .expect("a rust block follows the marker");
        let file = std::fs::read_to_string(format!("{bins}/{name}.rs"))
            .unwrap_or_else(|e| panic!("docs/library.md shows {name}, which is no program: {e}"));
        assert_eq!(
            code.trim_end(),
            file.trim_end(),
            "docs/library.md shows another {name} than src/bin/{name}.rs"
        );
        shown.push(name.to_string());
        rest = after;
    }
    let mut programs: Vec<String> = std::fs::read_dir(bins)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    programs.sort();
    shown.sort();
    assert_eq!(shown, programs, "every program is shown once");
}

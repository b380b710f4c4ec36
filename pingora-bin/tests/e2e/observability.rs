//! The admin listener (`/health`, `/metrics`) and the access log, seen from outside:
//! health flips to 503 while draining, counters move by exactly what was sent, and the
//! access log has one well-formed line per request and follows a rename + SIGUSR1.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use test_support::{
    free_addr, get, request, request_bytes, wait_for_port, wait_pid_file, wait_until, Metrics,
    Origin, Proxy, ProxyConfig, ProxyProcess, Reply, Signal, Target, TestDir, EXCHANGE_TIMEOUT,
    SETTLE_TIMEOUT,
};

use crate::bin;

/// Time a condition polled in these tests may take before it counts as never reached.
const POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// A proxy in front of `origin` with an admin listener; returns it and the admin address.
fn start_with_admin(setup: ProxyConfig) -> (Proxy, SocketAddr) {
    let admin = free_addr();
    let proxy = setup
        .set("admin", &format!("{{ addr: \"{admin}\" }}"))
        .start(bin());
    assert!(
        wait_for_port(admin, POLL_TIMEOUT),
        "admin listener {admin} does not accept; log:\n{}",
        proxy.log()
    );
    (proxy, admin)
}

fn requests(s: &Metrics, route: &str, class: &str) -> f64 {
    s.value(
        "pingora_requests_total",
        &[
            ("service", "web"),
            ("route", route),
            ("status_class", class),
        ],
    )
}

// ---------------------------------------------------------------------------------
// /health and /metrics.

#[test]
fn health_is_ok_while_serving_and_503_while_draining() {
    let origin = Origin::start(|req| {
        if req.path == "/slow" {
            Reply::Delay(Duration::from_millis(2500), Box::new(Reply::ok("late")))
        } else {
            Reply::ok("fast")
        }
    });
    let (mut proxy, admin) = start_with_admin(
        ProxyConfig::new(origin.addr())
            .read_timeout_ms(5000)
            .set("graceful_shutdown_timeout_seconds", "10")
            .set("grace_period_seconds", "0"),
    );
    let r = get(admin, "/health").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(get(admin, "/nope").unwrap().status, 404);
    let post = request(admin, "POST", "/health", &[], b"x").unwrap();
    assert_eq!(post.status, 405);

    let mut slow = proxy.client();
    slow.send(&request_bytes("GET", "/slow", &[("Host", "test")], b""))
        .unwrap();
    assert!(wait_until(POLL_TIMEOUT, || origin.requests() == 1));
    assert!(
        wait_until(POLL_TIMEOUT, || proxy.log().contains("ready:")),
        "never ready; log:\n{}",
        proxy.log()
    );
    proxy.process.signal(Signal::SIGTERM);

    let mut last = None;
    let draining = wait_until(POLL_TIMEOUT, || {
        let r = get(admin, "/health");
        let flipped = r
            .as_ref()
            .is_ok_and(|r| r.status == 503 && r.text() == "draining");
        last = Some(r.map(|r| (r.status, r.text())));
        flipped
    });
    assert!(draining, "health never said draining: {last:?}");
    // Metrics keep answering during the drain, and say so.
    let scrape = Metrics::scrape(admin);
    assert_eq!(scrape.value("pingora_draining", &[]), 1.0);
    assert!(scrape.value("pingora_downstream_connections_active", &[]) >= 1.0);

    let r = slow
        .read_final_response()
        .expect("the slow request finishes");
    assert_eq!((r.status, r.text().as_str()), (200, "late"));
    drop(slow);
    let status = proxy
        .process
        .wait_exit(Duration::from_secs(10))
        .expect("exits once drained");
    assert_eq!(status.code(), Some(0), "log:\n{}", proxy.log());
}

#[test]
fn after_a_hand_over_the_new_instance_answers_the_admin_address() {
    let origin = Origin::start(|req| {
        if req.path == "/slow" {
            Reply::Delay(Duration::from_millis(2500), Box::new(Reply::ok("late")))
        } else {
            Reply::ok("fast")
        }
    });
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let admin = free_addr();
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr())
        .set("admin", &format!("{{ addr: \"{admin}\" }}"));
    let old_conf = conf.clone().marker("old").write("old.yaml");
    let new_conf = conf.clone().marker("new").write("new.yaml");
    let pid_file = conf.pid_file();
    let target = Target::Tcp(listen);
    let mut old = ProxyProcess::spawn(bin(), dir.path(), "old", &old_conf, &[]);
    old.wait_serving(&target, &pid_file);
    assert!(wait_for_port(admin, POLL_TIMEOUT));
    assert_eq!(get(admin, "/health").unwrap().status, 200);

    // A slow request keeps the old instance draining after the hand-over.
    let mut slow = target.connect().unwrap();
    slow.send_get("/slow", true).unwrap();
    assert!(wait_until(POLL_TIMEOUT, || origin.requests() >= 1));
    let new = ProxyProcess::spawn(bin(), dir.path(), "new", &new_conf, &["-u"]);
    old.signal(Signal::SIGQUIT);
    let new_pid = new.pid();
    assert!(
        wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p == new_pid).is_some(),
        "no hand-over;\nold log:\n{}\nnew log:\n{}",
        old.log(),
        new.log()
    );
    assert!(
        old.wait_for_log("the new instance answers from now on", POLL_TIMEOUT),
        "old admin kept accepting; log:\n{}",
        old.log()
    );
    // Every new admin connection reaches the new instance, which serves.
    for _ in 0..20 {
        let r = get(admin, "/health").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "ok"));
        assert_eq!(Metrics::scrape(admin).value("pingora_draining", &[]), 0.0);
    }
    assert!(
        old.exited().is_none(),
        "the old instance was not draining any more"
    );
    let r = slow.read_response().expect("the slow request finishes");
    assert_eq!((r.status, r.text().as_str()), (200, "late"));
    assert!(old.wait_exit(Duration::from_secs(10)).is_some());
}

#[test]
fn metrics_count_exactly_what_was_served() {
    let body = "0123456789";
    let origin = Origin::start(move |_| Reply::ok(body));
    let (proxy, admin) = start_with_admin(ProxyConfig::new(origin.addr()));
    let before = Metrics::scrape(admin);
    assert_eq!(
        before.value(
            "pingora_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    for _ in 0..5 {
        let r = get(proxy.addr, "/data").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, body));
    }
    for _ in 0..2 {
        assert_eq!(get(proxy.addr, "/hello").unwrap().status, 200);
    }
    assert_eq!(get(proxy.addr, "/healthz").unwrap().status, 200);
    let posted = request(proxy.addr, "POST", "/data", &[], b"seven!!").unwrap();
    assert_eq!(posted.status, 200);

    // Responses are sent before the request is counted: wait for the last one.
    let mut after = Metrics::scrape(admin);
    assert!(wait_until(POLL_TIMEOUT, || {
        after = Metrics::scrape(admin);
        requests(&after, "1", "2xx") - requests(&before, "1", "2xx") >= 6.0
    }));
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(
        requests(&after, "1", "2xx") - requests(&before, "1", "2xx"),
        6.0
    );
    assert_eq!(
        requests(&after, "0", "2xx") - requests(&before, "0", "2xx"),
        2.0
    );
    assert_eq!(
        requests(&after, "health_path", "2xx") - requests(&before, "health_path", "2xx"),
        1.0
    );
    assert_eq!(
        requests(&after, "1", "5xx") - requests(&before, "1", "5xx"),
        0.0
    );
    let web = [("service", "web")];
    assert_eq!(delta("pingora_request_duration_seconds_count", &web), 9.0);
    // 6 origin bodies, "hi\n" twice, "ok" once.
    assert_eq!(
        delta("pingora_response_body_bytes_total", &web),
        (6 * body.len() + 2 * 3 + 2) as f64
    );
    assert_eq!(delta("pingora_request_body_bytes_total", &web), 7.0);
    assert_eq!(
        delta(
            "pingora_upstream_errors_total",
            &[("service", "web"), ("kind", "connect_refused")]
        ),
        0.0
    );
    // Six proxied requests, one after the other: at most one new upstream connection.
    let reused = delta(
        "pingora_upstream_connections_total",
        &[("service", "web"), ("reused", "true")],
    );
    let fresh = delta(
        "pingora_upstream_connections_total",
        &[("service", "web"), ("reused", "false")],
    );
    assert_eq!(reused + fresh, 6.0);
    assert!(reused >= 5.0, "reused {reused}, new {fresh}");
    // The pooled connection to the origin is idle now.
    assert_eq!(after.value("pingora_upstream_idle_connections", &web), 1.0);

    // An open client connection shows as active.
    let mut c = proxy.client();
    c.send_get("/hello", false).unwrap();
    assert_eq!(c.read_response().unwrap().status, 200);
    assert!(wait_until(POLL_TIMEOUT, || {
        Metrics::scrape(admin).value("pingora_downstream_connections_active", &[]) == 1.0
    }));
    drop(c);
    assert!(wait_until(POLL_TIMEOUT, || {
        Metrics::scrape(admin).value("pingora_downstream_connections_active", &[]) == 0.0
    }));
}

#[test]
fn refused_upstream_counts_one_5xx_and_one_upstream_error() {
    let refused = free_addr(); // nothing listens there
    let (proxy, admin) = start_with_admin(ProxyConfig::new(refused).set("max_retries", "2"));
    let before = Metrics::scrape(admin);
    let r = get(proxy.addr, "/data").unwrap();
    assert_eq!(r.status, 502);
    let kind = [("service", "web"), ("kind", "connect_refused")];
    let mut after = Metrics::scrape(admin);
    assert!(wait_until(POLL_TIMEOUT, || {
        after = Metrics::scrape(admin);
        requests(&after, "1", "5xx") > requests(&before, "1", "5xx")
    }));
    assert_eq!(
        requests(&after, "1", "5xx") - requests(&before, "1", "5xx"),
        1.0
    );
    assert_eq!(
        after.value("pingora_upstream_errors_total", &kind)
            - before.value("pingora_upstream_errors_total", &kind),
        1.0
    );
    assert_eq!(requests(&after, "1", "2xx"), requests(&before, "1", "2xx"));
}

// ---------------------------------------------------------------------------------
// The access log.

fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    assert!(
        wait_until(POLL_TIMEOUT, || log_lines(path).len() >= n),
        "{} has {:?}, expected {n} lines",
        path.display(),
        log_lines(path)
    );
    let lines = log_lines(path);
    assert_eq!(lines.len(), n, "{lines:#?}");
    lines
}

#[test]
fn json_access_log_has_one_line_per_request_and_reopens_on_sigusr1() {
    let origin = Origin::start(|_| Reply::full(201, &[], "created"));
    let proxy = ProxyConfig::new(origin.addr())
        .set("access_log", "{ path: \"{dir}/access.log\", format: json }")
        .start(bin());
    let log = proxy.process.dir().join("access.log");

    let r = request(
        proxy.addr,
        "POST",
        "/items?x=1",
        &[("User-Agent", "tester \"quoted\"")],
        b"12345",
    )
    .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(get(proxy.addr, "/hello").unwrap().status, 200);
    let lines = wait_for_lines(&log, 2);
    let first: serde_json::Value =
        serde_json::from_str(&lines[0]).unwrap_or_else(|e| panic!("{e}: {}", lines[0]));
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/items?x=1");
    assert_eq!(first["version"], "HTTP/1.1");
    assert_eq!(first["status"], 201);
    assert_eq!(first["bytes_in"], 5);
    assert_eq!(first["bytes_out"], 7);
    assert_eq!(first["service"], "web");
    assert_eq!(first["route"], "1");
    assert_eq!(first["upstream_addr"], origin.addr().to_string());
    assert_eq!(first["upstream_status"], 201);
    assert_eq!(first["user_agent"], "tester \"quoted\"");
    assert!(first["referer"].is_null());
    assert!(first["error"].is_null());
    assert!(first["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    let total = first["time"].as_f64().expect("time is a number");
    let upstream = first["upstream_time"]
        .as_f64()
        .expect("upstream_time is a number");
    assert!((0.0..EXCHANGE_TIMEOUT.as_secs_f64()).contains(&total));
    assert!(upstream <= total, "upstream {upstream} > total {total}");
    assert!(first["time"].is_f64());

    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["path"], "/hello");
    assert_eq!(second["route"], "0");
    assert_eq!(second["status"], 200);
    assert!(second["upstream_addr"].is_null());
    assert!(second["upstream_time"].is_null());

    // logrotate: rename, then SIGUSR1; new lines go to a new file.
    let rotated = proxy.process.dir().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    proxy.process.signal(Signal::SIGUSR1);
    assert!(
        proxy
            .process
            .wait_for_log("SIGUSR1: log files reopened", POLL_TIMEOUT),
        "log:\n{}",
        proxy.log()
    );
    assert_eq!(get(proxy.addr, "/after-rotation").unwrap().status, 201);
    let fresh = wait_for_lines(&log, 1);
    let line: serde_json::Value = serde_json::from_str(&fresh[0]).unwrap();
    assert_eq!(line["path"], "/after-rotation");
    assert_eq!(
        log_lines(&rotated).len(),
        2,
        "the rotated file got more lines"
    );
}

#[test]
fn text_access_log_line_format() {
    let origin = Origin::start(|_| Reply::ok("hello"));
    let proxy = ProxyConfig::new(origin.addr())
        .set("access_log", "{ path: \"{dir}/access.log\" }")
        .start(bin());
    let log = proxy.process.dir().join("access.log");
    let r = request(
        proxy.addr,
        "GET",
        "/data",
        &[("Referer", "http://r.example/"), ("User-Agent", "ua/1")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let lines = wait_for_lines(&log, 1);
    let line = &lines[0];
    assert!(line.starts_with("127.0.0.1:"), "{line}");
    let (client_part, rest) = line
        .split_once(" - - [")
        .unwrap_or_else(|| panic!("{line}"));
    assert!(client_part.parse::<SocketAddr>().is_ok(), "{line}");
    let (time, rest) = rest.split_once("] ").unwrap_or_else(|| panic!("{line}"));
    assert!(time.len() == 24 && time.ends_with('Z'), "timestamp {time}");
    let fields = format!(
        "\"GET /data HTTP/1.1\" 200 5 \"http://r.example/\" \"ua/1\" in=0 service=web route=1 upstream={} upstream_status=200 upstream_time=",
        origin.addr()
    );
    assert!(rest.starts_with(&fields), "{rest}\nexpected {fields}");
    assert!(rest.ends_with(" error=-"), "{rest}");
    let time: f64 = rest
        .split(" time=")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no time in {rest}"));
    assert!(time < EXCHANGE_TIMEOUT.as_secs_f64());
}

#[test]
fn log_level_from_config_filters_the_error_log() {
    let origin = Origin::start(|_| Reply::ok("x"));
    // At `error`, the info lines of a normal start are not written.
    let proxy = ProxyConfig::new(origin.addr())
        .set("log_level", "error")
        .start(bin());
    assert_eq!(get(proxy.addr, "/data").unwrap().status, 200);
    let quiet = proxy.log();
    assert!(
        !quiet.contains(" INFO "),
        "info lines at level error:\n{quiet}"
    );
    drop(proxy);
    let proxy = ProxyConfig::new(origin.addr())
        .set("log_level", "info")
        .start(bin());
    assert!(
        proxy.process.wait_for_log(" INFO ", POLL_TIMEOUT),
        "no info line at level info:\n{}",
        proxy.log()
    );
}

#[test]
#[cfg_attr(not(feature = "cache"), ignore = "needs the cache feature")]
fn cache_statuses_are_counted() {
    let origin =
        Origin::start(|_| Reply::full(200, &[("cache-control", "max-age=60")], "cached body"));
    let (listen, admin) = (free_addr(), free_addr());
    let yaml = format!(
        r#"version: 1
pid_file: {{dir}}/pingora.pid
upgrade_sock: {{dir}}/upgrade.sock
admin: {{ addr: "{admin}" }}
services:
  - name: web
    listeners: [ {{ addr: "{listen}" }} ]
    cache: {{ max_bytes: 1048576 }}
    routes: [ {{ upstream: origin, cache: true }} ]
    upstreams:
      origin: {{ peers: ["{origin}"] }}
"#,
        origin = origin.addr()
    );
    let _proxy = ProxyProcess::start(bin(), &yaml, &[listen, admin]).expect("proxy starts");
    let status = |s: &Metrics, st: &str| {
        s.value(
            "pingora_cache_responses_total",
            &[("service", "web"), ("status", st)],
        )
    };
    for _ in 0..3 {
        assert_eq!(get(listen, "/page").unwrap().status, 200);
    }
    let mut after = Metrics::scrape(admin);
    assert!(wait_until(POLL_TIMEOUT, || {
        after = Metrics::scrape(admin);
        status(&after, "HIT") >= 2.0
    }));
    assert_eq!(status(&after, "MISS"), 1.0);
    assert_eq!(status(&after, "HIT"), 2.0);
    assert_eq!(origin.requests(), 1);
}

#[test]
fn rejected_requests_are_logged_and_counted() {
    let origin = Origin::start(|_| Reply::ok("hello"));
    let (proxy, admin) = start_with_admin(
        ProxyConfig::new(origin.addr())
            .set("access_log", "{ path: \"{dir}/access.log\", format: json }"),
    );
    let log = proxy.process.dir().join("access.log");
    let mut answers = Vec::new();
    for raw in [
        // Content-Length together with Transfer-Encoding.
        "GET /smuggle HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_string(),
        // A head far past the size limit.
        format!(
            "GET /big HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
            "x".repeat(64 * 1024)
        ),
    ] {
        let mut client = test_support::RawClient::connect(proxy.addr).expect("connect");
        client.set_read_timeout(EXCHANGE_TIMEOUT).expect("timeout");
        client.send(raw.as_bytes()).expect("send");
        answers.push(client.read_response().expect("an answer").status);
    }
    assert_eq!(answers, [400, 431]);
    assert_eq!(get(proxy.addr, "/fine").unwrap().status, 200);

    let lines = wait_for_lines(&log, 3);
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for (line, status) in parsed[..2].iter().zip([400, 431]) {
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["route"], "rejected", "{line}");
        assert_eq!(line["method"], "-", "{line}");
        assert!(line["error"].is_string(), "{line}");
        assert!(line["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
    assert_eq!(parsed[2]["path"], "/fine");

    let scrape = Metrics::scrape(admin);
    assert_eq!(requests(&scrape, "rejected", "4xx"), 2.0);
    assert_eq!(requests(&scrape, "1", "2xx"), 1.0);
}

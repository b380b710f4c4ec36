//! Process signals as an operator uses them: SIGTERM drains in-flight requests and
//! exits 0 removing the pid file; SIGINT exits promptly.

use std::time::{Duration, Instant};

use test_support::{
    port_accepts, request_bytes, Origin, Proxy, ProxyConfig, ProxyProcess, Reply, Signal,
};

use crate::bin;

/// The listeners accept a little before the signal handlers are installed; the
/// "ready" log line comes after them.
fn wait_until_signals_are_handled(proxy: &Proxy) {
    assert!(
        proxy.process.wait_for_log("ready", Duration::from_secs(5)),
        "no ready line in the log:\n{}",
        proxy.log()
    );
}

#[test]
fn sigterm_as_soon_as_the_pid_file_appears_is_graceful() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let setup = ProxyConfig::new(origin.addr());
    let yaml = setup.yaml();
    let mut process = ProxyProcess::start(bin(), &yaml, &[]).expect("spawned");
    let pid_file = process.dir().join("pingora.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    // Spin rather than sleep: an operator's script may signal the moment it can.
    while !std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "no pid_file; log:\n{}",
            process.log()
        );
        std::thread::yield_now();
    }
    process.signal(Signal::SIGTERM);
    let status = process.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM right after start-up was not a graceful shutdown ({status}); log:\n{}",
        process.log()
    );
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_zero() {
    let origin = Origin::start(|_| {
        Reply::Delay(Duration::from_millis(800), Box::new(Reply::ok("finished")))
    });
    let mut proxy = ProxyConfig::new(origin.addr())
        .set("graceful_shutdown_timeout_seconds", "5")
        .set("grace_period_seconds", "0")
        .start(bin());
    let pid_file = proxy.process.dir().join("pingora.pid");
    // Written right after the listeners open, so poll for it briefly.
    let expected_pid = proxy.process.pid().to_string();
    assert!(
        test_support::wait_until(Duration::from_secs(3), || {
            std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == expected_pid)
        }),
        "pid_file {} does not name pid {expected_pid}",
        pid_file.display()
    );

    wait_until_signals_are_handled(&proxy);
    let mut c = proxy.client();
    c.send(&request_bytes("GET", "/slow", &[("Host", "test")], b""))
        .unwrap();
    assert!(test_support::wait_until(Duration::from_secs(3), || origin
        .requests()
        == 1));
    proxy.process.signal(Signal::SIGTERM);
    let r = c
        .read_final_response()
        .expect("the in-flight request is answered");
    assert_eq!((r.status, r.text().as_str()), (200, "finished"));
    assert!(
        r.has_token("connection", "close"),
        "draining response without Connection: close"
    );
    drop(c); // a client closes on `Connection: close`
    let answered = Instant::now();

    let status = proxy
        .process
        .wait_exit(Duration::from_secs(8))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "log:\n{}", proxy.log());
    let took = answered.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "exit took {took:?} once nothing was left to drain"
    );
    assert!(
        !pid_file.exists(),
        "pid_file left behind after a clean exit"
    );
    assert!(!port_accepts(proxy.addr), "still accepting after exit");
}

#[test]
fn sigint_exits_promptly() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let mut proxy = ProxyConfig::new(origin.addr()).start(bin());
    wait_until_signals_are_handled(&proxy);
    let mut idle = proxy.client();
    idle.send_get("/x", false).unwrap();
    assert_eq!(idle.read_final_response().unwrap().status, 200);
    let started = Instant::now();
    proxy.process.signal(Signal::SIGINT);
    let status = proxy.process.wait_exit(Duration::from_secs(3));
    assert!(
        status.is_some(),
        "still running {:?} after SIGINT",
        started.elapsed()
    );
}

#[test]
fn sigterm_still_serves_the_next_request_of_an_idle_keepalive_connection() {
    let origin = Origin::start(|req| Reply::ok(req.path.clone()));
    let mut proxy = ProxyConfig::new(origin.addr())
        .set("graceful_shutdown_timeout_seconds", "5")
        .set("grace_period_seconds", "0")
        .start(bin());
    wait_until_signals_are_handled(&proxy);
    let mut c = proxy.client();
    c.send_get("/before", false).unwrap();
    assert_eq!(c.read_final_response().unwrap().status, 200);

    proxy.process.signal(Signal::SIGTERM);
    assert!(
        proxy
            .process
            .wait_for_log("SIGTERM", Duration::from_secs(3)),
        "log:\n{}",
        proxy.log()
    );
    // The connection was idle when the drain began; a request sent now is served.
    c.send_get("/during", false).unwrap();
    let r = c.read_final_response().unwrap_or_else(|e| {
        panic!(
            "request on a draining keep-alive connection failed: {e}\nlog:\n{}",
            proxy.log()
        )
    });
    assert_eq!((r.status, r.text().as_str()), (200, "/during"));
    assert!(
        r.has_token("connection", "close"),
        "headers: {:?}",
        r.headers
    );
    drop(c);
    let status = proxy.process.wait_exit(Duration::from_secs(4));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "log:\n{}",
        proxy.log()
    );
}

//! The error phases (`fail_to_connect`, `error_while_proxy`, `fail_to_proxy`), errors
//! raised by phases (a status, a custom kind), and `logging` exactly once per request
//! whatever became of it.

use test_support::{free_addr, request, H2Client, H2Request, Origin, RawClient, Reply};

use crate::recorder::{InProcessProxy, Recorder, WAIT};

#[test]
fn a_dead_single_peer_goes_through_fail_to_connect_then_fail_to_proxy() {
    let dead = free_addr();
    let proxy = InProcessProxy::start(Recorder::new(&[dead]));
    let resp = request(proxy.addr, "GET", "/dead", &[], b"").unwrap();
    assert_eq!(resp.status, 502);
    let record = proxy.log.one("/dead");
    assert_eq!(
        record.order(),
        [
            "new_ctx",
            "early_request_filter",
            "request_filter",
            "upstream_peer",
            "retry_rule",
            "upstream_request_filter",
            "fail_to_connect",
            "upstream_peer",
            "fail_to_proxy",
            "logging"
        ]
    );
    assert_eq!(
        record.calls_of("fail_to_proxy"),
        ["fail_to_proxy(connect_refused,502)"]
    );
    assert_eq!(record.error.as_deref(), Some("connect_refused"));
}

#[test]
fn a_failure_after_the_response_started_reaches_error_while_proxy_and_nothing_is_answered() {
    let cut = Origin::start(|_| Reply::ResetAfter {
        head_and_partial_body: b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial".to_vec(),
    });
    let proxy = InProcessProxy::start(Recorder::new(&[cut.addr()]));
    let mut client = RawClient::connect(proxy.addr).unwrap();
    client.send_get("/cut", false).unwrap();
    let got = client.read_to_end_raw().unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "the head went out: {got:?}"
    );
    let record = proxy.log.one("/cut");
    let calls = record.calls_of("error_while_proxy");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].ends_with("retry=false,started=true)"), "{calls:?}");
    let answered = record.calls_of("fail_to_proxy");
    assert_eq!(answered.len(), 1);
    assert!(answered[0].ends_with(",nothing)"), "{answered:?}");
    assert!(record.error.is_some());
}

#[test]
fn a_status_raised_by_request_filter_is_answered_and_keeps_the_connection() {
    let origin = Origin::start(|_| Reply::ok("origin"));
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));
    let mut client = RawClient::connect(proxy.addr).unwrap();
    client
        .send(b"GET /refused HTTP/1.1\r\nHost: test\r\nx-test-refuse: 403\r\n\r\n")
        .unwrap();
    let resp = client.read_final_response().unwrap();
    assert_eq!(resp.status, 403);
    assert!(!resp.closes(), "a refusal keeps the connection");
    assert_eq!(client.get("/next", false).unwrap().text(), "origin");

    let record = proxy.log.one("/refused");
    assert_eq!(
        record.order(),
        [
            "new_ctx",
            "early_request_filter",
            "request_filter",
            "fail_to_proxy",
            "logging"
        ]
    );
    assert_eq!(
        record.calls_of("fail_to_proxy"),
        ["fail_to_proxy(http_status 403,403)"]
    );
    assert_eq!(record.error.as_deref(), Some("http_status 403"));
    proxy.log.one("/next");

    // The same over HTTP/2, with another status.
    let h2 = H2Client::connect(proxy.addr, WAIT).unwrap();
    let resp = h2
        .request(H2Request::get("/limited").header("x-test-refuse", "429"))
        .unwrap();
    assert_eq!(resp.status, 429);
    assert_eq!(
        proxy.log.one("/limited").error.as_deref(),
        Some("http_status 429")
    );
    assert_eq!(origin.requests(), 1);
}

#[test]
fn a_custom_error_is_a_500_with_its_kind_in_logging() {
    let origin = Origin::start(|_| Reply::ok("origin"));
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));
    let resp = request(
        proxy.addr,
        "GET",
        "/quota",
        &[("x-test-custom", "quota")],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 500);
    let record = proxy.log.one("/quota");
    assert_eq!(record.error.as_deref(), Some("quota"));
    assert_eq!(
        record.calls_of("fail_to_proxy"),
        ["fail_to_proxy(quota,500)"]
    );
}

#[test]
fn an_early_request_filter_error_stops_before_request_filter() {
    let origin = Origin::start(|_| Reply::ok("origin"));
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));
    let resp = request(
        proxy.addr,
        "GET",
        "/early",
        &[("x-test-early-fail", "1")],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 500);
    assert_eq!(
        proxy.log.one("/early").order(),
        [
            "new_ctx",
            "early_request_filter",
            "fail_to_proxy",
            "logging"
        ]
    );
    assert_eq!(origin.requests(), 0);
}

#[test]
fn logging_runs_once_per_request_on_a_busy_connection_and_over_http2() {
    let origin = Origin::start(|req| {
        if req.path == "/h1-fail" {
            Reply::CloseWithoutResponse
        } else {
            Reply::ok("ok")
        }
    });
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));
    let mut client = RawClient::connect(proxy.addr).unwrap();
    for i in 0..4 {
        assert_eq!(client.get(&format!("/h1-{i}"), false).unwrap().status, 200);
    }
    assert_eq!(
        request(proxy.addr, "GET", "/h1-fail", &[], b"")
            .unwrap()
            .status,
        502
    );
    let h2 = H2Client::connect(proxy.addr, WAIT).unwrap();
    let reqs = (0..8)
        .map(|i| H2Request::get(&format!("/h2-{i}")))
        .collect();
    for resp in h2.request_all(reqs) {
        assert_eq!(resp.unwrap().status, 200);
    }
    for path in (0..4)
        .map(|i| format!("/h1-{i}"))
        .chain(["/h1-fail".to_string()])
        .chain((0..8).map(|i| format!("/h2-{i}")))
    {
        let record = proxy.log.one(&path);
        assert_eq!(record.calls_of("logging").len(), 1);
        assert_eq!(record.calls_of("new_ctx").len(), 1);
    }
}

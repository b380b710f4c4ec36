//! Retries: `upstream_peer` is asked again and knows the peer that failed; the retry
//! rule (connect failures, statuses, resets, the per-try timeout) and its limits.

use std::time::Duration;

use http::StatusCode;
use pingora_proxy::{RetryOn, RetryRule};
use test_support::{free_addr, request, Origin, Reply};

use crate::recorder::{InProcessProxy, Recorder};

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap()
}

#[test]
fn a_connect_failure_asks_upstream_peer_again_with_the_failed_peer_known() {
    let dead = free_addr();
    let live = Origin::start(|_| Reply::ok("live"));
    let proxy = InProcessProxy::start(Recorder::new(&[dead, live.addr()]));

    let resp = request(proxy.addr, "POST", "/retried", &[], b"a body").unwrap();
    assert_eq!((resp.status, resp.text()), (200, "live".to_string()));
    assert_eq!(live.last_received().unwrap().body, b"a body");
    let record = proxy.log.one("/retried");
    assert_eq!(
        record.calls_of("upstream_peer"),
        [
            "upstream_peer(failed=[])".to_string(),
            format!("upstream_peer(failed=[{dead}])")
        ]
    );
    assert_eq!(
        record.calls_of("fail_to_connect"),
        ["fail_to_connect(connect_refused,retry=true)"]
    );
    assert_eq!(
        record.calls_of("connected_to_upstream"),
        ["connected_to_upstream(reused=false,attempt=2)"]
    );
    assert_eq!(record.calls_of("retry_rule").len(), 1, "asked once");
    assert_eq!(record.error, None);
}

#[test]
fn a_listed_status_is_retried_on_another_peer_and_never_reaches_the_client() {
    let busy = Origin::start(|_| Reply::full(503, &[], b"busy"));
    let fine = Origin::start(|_| Reply::ok("fine"));
    let rule = RetryRule::new(2).on(RetryOn::Status(status(503)));
    let proxy = InProcessProxy::start(Recorder::new(&[busy.addr(), fine.addr()]).with_rule(rule));

    let resp = request(proxy.addr, "GET", "/status", &[], b"").unwrap();
    assert_eq!((resp.status, resp.text()), (200, "fine".to_string()));
    assert_eq!((busy.requests(), fine.requests()), (1, 1));
    let record = proxy.log.one("/status");
    assert_eq!(
        record.calls_of("error_while_proxy"),
        ["error_while_proxy(http_status 503,retry=true,started=false)"]
    );
    assert_eq!(
        record.calls_of("upstream_response_filter"),
        ["upstream_response_filter(200)"],
        "the 503 head reached no phase"
    );
    assert_eq!(record.error, None);
}

#[test]
fn with_no_other_peer_the_listed_status_is_the_answer() {
    let busy = Origin::start(|_| Reply::full(503, &[("retry-after", "1")], b"busy"));
    let rule = RetryRule::new(2).on(RetryOn::Status(status(503)));
    let proxy = InProcessProxy::start(Recorder::new(&[busy.addr()]).with_rule(rule));

    let resp = request(proxy.addr, "GET", "/only", &[], b"").unwrap();
    assert_eq!((resp.status, resp.text()), (503, "busy".to_string()));
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_eq!(busy.requests(), 1, "the same peer is not asked twice");
    let record = proxy.log.one("/only");
    assert_eq!(record.calls_of("upstream_peer").len(), 2);
    assert_eq!(
        record.calls_of("upstream_response_filter"),
        ["upstream_response_filter(503)"]
    );
    assert_eq!(record.error, None);
}

#[test]
fn a_post_is_not_retried_on_a_status_or_a_reset() {
    let busy = Origin::start(|_| Reply::full(503, &[], b"busy"));
    let resetting = Origin::start(|_| Reply::ResetAfter {
        head_and_partial_body: Vec::new(),
    });
    let fine = Origin::start(|_| Reply::ok("fine"));
    let rule = RetryRule::new(2)
        .on(RetryOn::Status(status(503)))
        .on(RetryOn::Reset);

    let proxy = InProcessProxy::start(Recorder::new(&[busy.addr(), fine.addr()]).with_rule(rule));
    let resp = request(proxy.addr, "POST", "/post-503", &[], b"").unwrap();
    assert_eq!(resp.status, 503);
    let proxy2 =
        InProcessProxy::start(Recorder::new(&[resetting.addr(), fine.addr()]).with_rule(rule));
    let resp = request(proxy2.addr, "POST", "/post-reset", &[], b"x").unwrap();
    assert_eq!(resp.status, 502);
    assert_eq!(fine.requests(), 0, "nothing went to the other peer");
    assert_eq!(
        proxy.log.one("/post-503").calls_of("upstream_peer").len(),
        1
    );
    let record = proxy2.log.one("/post-reset");
    assert_eq!(record.calls_of("upstream_peer").len(), 1);
    assert!(record.error.is_some(), "{record:?}");
}

#[test]
fn a_reset_is_retried_only_when_the_rule_lists_it() {
    let resetting = Origin::start(|_| Reply::ResetAfter {
        head_and_partial_body: Vec::new(),
    });
    let fine = Origin::start(|_| Reply::ok("fine"));
    let peers = [resetting.addr(), fine.addr()];

    let without = InProcessProxy::start(Recorder::new(&peers));
    assert_eq!(
        request(without.addr, "GET", "/no-rule", &[], b"")
            .unwrap()
            .status,
        502
    );
    let record = without.log.one("/no-rule");
    let calls = record.calls_of("error_while_proxy");
    assert!(
        calls == ["error_while_proxy(connection_reset,retry=false,started=false)"]
            || calls == ["error_while_proxy(connection_closed,retry=false,started=false)"],
        "{calls:?}"
    );

    let rule = RetryRule::new(1).on(RetryOn::Reset);
    let with = InProcessProxy::start(Recorder::new(&peers).with_rule(rule));
    let resp = request(with.addr, "GET", "/rule", &[], b"").unwrap();
    assert_eq!((resp.status, resp.text()), (200, "fine".to_string()));
}

#[test]
fn the_per_try_timeout_bounds_an_attempt_and_the_next_peer_answers() {
    let slow = Origin::start(|_| Reply::Delay(Duration::from_secs(3), Box::new(Reply::ok("slow"))));
    let fine = Origin::start(|_| Reply::ok("fine"));
    let rule = RetryRule::new(1)
        .on(RetryOn::Timeout)
        .per_try_timeout(Duration::from_millis(200));
    let proxy = InProcessProxy::start(Recorder::new(&[slow.addr(), fine.addr()]).with_rule(rule));

    let resp = request(proxy.addr, "GET", "/slow", &[], b"").unwrap();
    assert_eq!((resp.status, resp.text()), (200, "fine".to_string()));
    let record = proxy.log.one("/slow");
    assert_eq!(
        record.calls_of("error_while_proxy"),
        ["error_while_proxy(read_timeout,retry=true,started=false)"]
    );

    // Not listed: the timeout is the answer (504).
    let rule = RetryRule::new(1)
        .on(RetryOn::Reset)
        .per_try_timeout(Duration::from_millis(200));
    let proxy = InProcessProxy::start(Recorder::new(&[slow.addr(), fine.addr()]).with_rule(rule));
    assert_eq!(
        request(proxy.addr, "GET", "/slow", &[], b"")
            .unwrap()
            .status,
        504
    );
    assert_eq!(fine.requests(), 1);
}

#[test]
fn the_rule_s_retries_cap_the_attempts() {
    let a = Origin::start(|_| Reply::full(503, &[], b"a"));
    let b = Origin::start(|_| Reply::full(503, &[], b"b"));
    let c = Origin::start(|_| Reply::ok("c"));
    let rule = RetryRule::new(1).on(RetryOn::Status(status(503)));
    let proxy =
        InProcessProxy::start(Recorder::new(&[a.addr(), b.addr(), c.addr()]).with_rule(rule));
    let resp = request(proxy.addr, "GET", "/capped", &[], b"").unwrap();
    assert_eq!((resp.status, resp.text()), (503, "b".to_string()));
    assert_eq!((a.requests(), b.requests(), c.requests()), (1, 1, 0));
}

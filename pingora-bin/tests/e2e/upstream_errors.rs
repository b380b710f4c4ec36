//! Upstream failures as the client sees them: 502 for refused, reset, closed or
//! garbled upstreams, 504 for a slow one, a cut response when it fails mid-body,
//! and a transparent retry when a pooled connection went stale.

use std::time::{Duration, Instant};

use test_support::{free_addr, wait_until, Origin, Proxy, ProxyConfig, Reply};

use crate::bin;

fn get_status(proxy: &Proxy, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut c = proxy.client();
    c.send_get(path, false).unwrap();
    let r = c
        .read_final_response()
        .unwrap_or_else(|e| panic!("no response for {path}: {e}\nlog:\n{}", proxy.log()));
    (r.status, started.elapsed())
}

#[test]
fn refused_connection_gives_502() {
    let nothing_there = free_addr();
    let proxy = ProxyConfig::new(nothing_there).start(bin());
    let (status, took) = get_status(&proxy, "/x");
    assert_eq!(status, 502);
    assert!(took < Duration::from_secs(3), "502 took {took:?}");
    assert!(
        proxy.process.wait_for_log("502", Duration::from_secs(2)),
        "log:\n{}",
        proxy.log()
    );
}

/// An upstream failure leaves the client's connection sound: after the 502 it carries
/// the next request (as nginx does), unless the request had a body the proxy did not
/// read, in which case the connection closes after the answer.
#[test]
fn a_502_keeps_the_client_connection_when_the_request_was_read() {
    let nothing_there = free_addr();
    let proxy = ProxyConfig::new(nothing_there).start(bin());
    let mut c = proxy.client();
    for path in ["/one", "/two", "/three"] {
        c.send_get(path, false).unwrap();
        let r = c.read_final_response().unwrap_or_else(|e| {
            panic!("{path} on the same connection: {e}\nlog:\n{}", proxy.log())
        });
        assert_eq!(r.status, 502, "{r:?}");
        assert!(!r.has_token("connection", "close"), "{r:?}");
    }
    // A body the proxy never read (the upstream failed first): the connection closes.
    let mut c = proxy.client();
    c.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")
        .unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!(r.status, 502, "{r:?}");
    assert!(
        r.has_token("connection", "close") || c.is_closed_by_peer(Duration::from_secs(3)),
        "a connection with an unread body was kept: {r:?}"
    );
}

#[test]
fn reset_before_any_response_gives_502() {
    let origin = Origin::start(|_| Reply::ResetAfter {
        head_and_partial_body: Vec::new(),
    });
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    assert_eq!(get_status(&proxy, "/x").0, 502);
}

#[test]
fn close_without_response_gives_502() {
    let origin = Origin::start(|_| Reply::CloseWithoutResponse);
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    assert_eq!(get_status(&proxy, "/x").0, 502);
}

#[test]
fn garbage_from_upstream_gives_502() {
    let origin = Origin::start(|req| match req.path.as_str() {
        "/not-http" => Reply::Raw(b"this is not http at all\r\n\r\n".to_vec()),
        _ => Reply::Raw(b"HTTP/1.1 2x0 What\r\nContent-Length: 0\r\n\r\n".to_vec()),
    });
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    assert_eq!(get_status(&proxy, "/not-http").0, 502);
    assert_eq!(get_status(&proxy, "/bad-status").0, 502);
}

#[test]
fn reset_mid_response_cuts_the_client_response() {
    let origin = Origin::start(|_| Reply::ResetAfter {
        head_and_partial_body: b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a part"
            .to_vec(),
    });
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send_get("/x", false).unwrap();
    match c.read_final_response() {
        // The response had started: the client must see it cut short.
        Err(_) => {}
        // Or the proxy had not sent anything yet and could still answer 502.
        Ok(r) => assert_eq!(
            r.status, 502,
            "a cut upstream response was passed on as complete: {r:?}"
        ),
    }
    assert!(
        c.is_closed_by_peer(Duration::from_secs(3)),
        "client connection left open"
    );
}

#[test]
fn slow_upstream_gives_504() {
    let origin =
        Origin::start(|_| Reply::Delay(Duration::from_secs(3), Box::new(Reply::ok("late"))));
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(500)
        .start(bin());
    let (status, took) = get_status(&proxy, "/slow");
    assert_eq!(status, 504);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(2500),
        "504 after {took:?}"
    );
}

#[test]
fn stale_pooled_connection_is_retried_on_a_fresh_one() {
    // The origin closes idle keep-alive connections after 100 ms.
    let origin = Origin::builder()
        .idle_timeout(Duration::from_millis(100))
        .start(|req| Reply::ok(req.path.clone()));
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    for (i, path) in ["/first", "/second", "/third"].into_iter().enumerate() {
        c.send_get(path, false).unwrap();
        let r = c.read_final_response().unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, path),
            "log:\n{}",
            proxy.log()
        );
        // Wait until the origin has closed the pooled connection behind the proxy's back.
        assert!(wait_until(Duration::from_secs(3), || origin
            .open_connections()
            == 0));
        assert_eq!(origin.connections(), i + 1);
    }
}

#[test]
fn differing_content_lengths_from_upstream_give_502() {
    let origin = Origin::start(|_| {
        Reply::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        )
    });
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    assert_eq!(get_status(&proxy, "/x").0, 502);
}

#[test]
fn bad_chunk_from_upstream_cuts_the_client_response() {
    let origin = Origin::start(|_| {
        Reply::Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nbad\r\n0\r\n\r\n".to_vec())
    });
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send_get("/x", false).unwrap();
    match c.read_final_response() {
        Err(_) => {}
        Ok(r) => assert_eq!(
            r.status, 502,
            "a broken upstream body was passed on as complete: {r:?}"
        ),
    }
    assert!(
        c.is_closed_by_peer(Duration::from_secs(3)),
        "client connection left open"
    );
}

#[test]
fn request_with_a_body_after_the_pooled_connection_went_stale() {
    let origin = Origin::builder()
        .idle_timeout(Duration::from_millis(100))
        .start(|_| Reply::Echo);
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    for body in ["first body", "second body"] {
        c.send(&test_support::request_bytes(
            "POST",
            "/echo",
            &[("Host", "test")],
            body.as_bytes(),
        ))
        .unwrap();
        let r = c.read_final_response().unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, body),
            "log:\n{}",
            proxy.log()
        );
        assert!(wait_until(Duration::from_secs(3), || origin
            .open_connections()
            == 0));
    }
}

#[test]
fn pooled_connection_closed_on_arrival_of_a_request_is_retried() {
    // The origin drops any connection's second request without answering, as a server
    // whose keep-alive timer fired just as the request arrived would.
    let seen = std::sync::Mutex::new(std::collections::HashMap::<usize, usize>::new());
    let origin = Origin::start(move |req| {
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        let n = seen.entry(req.connection).or_insert(0);
        *n += 1;
        if *n > 1 {
            Reply::CloseWithoutResponse
        } else {
            Reply::ok(req.path.clone())
        }
    });
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    for path in ["/one", "/two", "/three"] {
        c.send_get(path, false).unwrap();
        let r = c.read_final_response().unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, path),
            "log:\n{}",
            proxy.log()
        );
    }
    assert_eq!(origin.connections(), 3);
}

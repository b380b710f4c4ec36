//! Message framing through the proxy: lengths, chunked bodies and trailers,
//! close-delimited bodies, bodiless responses, interim responses, HTTP/1.0, pipelining.

use std::time::Duration;

use test_support::{chunked_body, owned, request_bytes, Framing, Origin, ProxyConfig, Reply};

use crate::bin;

fn framing_origin() -> Origin {
    Origin::start(|req| match req.path.as_str() {
        "/echo" => Reply::Echo,
        "/chunked" => Reply::Chunked {
            status: 200,
            headers: owned(&[("content-type", "text/plain")]),
            chunks: vec![b"first,".to_vec(), b"second".to_vec()],
            trailers: owned(&[("x-origin-trailer", "from-origin")]),
        },
        "/close" => Reply::CloseDelimited {
            status: 200,
            headers: owned(&[("content-type", "text/plain")]),
            body: b"close-delimited body".to_vec(),
        },
        "/head" => Reply::ok("eleven byte"),
        "/204" => Reply::full(204, &[("x-kind", "no-content")], ""),
        "/304" => Reply::full(304, &[("etag", "\"v1\""), ("content-length", "5")], ""),
        "/early" => Reply::Interim(vec![103], Box::new(Reply::ok("final"))),
        _ => Reply::ok(format!("{} {}", req.method, req.path)),
    })
}

#[test]
fn content_length_bodies_pass_both_ways() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes(
        "POST",
        "/echo",
        &[("Host", "test")],
        b"0123456789",
    ))
    .unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::ContentLength(10));
    assert_eq!(r.body, b"0123456789");
    let got = origin.last_received().unwrap();
    assert_eq!(got.body, b"0123456789");
    assert_eq!(got.header("content-length"), Some("10"));
}

#[test]
fn chunked_bodies_keep_their_trailers_both_ways() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    let mut req = request_bytes(
        "POST",
        "/chunked",
        &[
            ("Host", "test"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("Trailer", "X-Client-Trailer"),
        ],
        b"",
    );
    req.extend(chunked_body(
        &[b"abc", b"defgh"],
        &[("X-Client-Trailer", "from-client")],
    ));
    c.send(&req).unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::Chunked);
    assert_eq!(r.body, b"first,second");
    assert_eq!(
        r.trailers,
        owned(&[("x-origin-trailer", "from-origin")]),
        "trailers reaching the client"
    );

    let got = origin.last_received().unwrap();
    assert_eq!(got.body, b"abcdefgh");
    assert_eq!(
        got.trailers,
        owned(&[("x-client-trailer", "from-client")]),
        "trailers reaching the origin"
    );
}

#[test]
fn close_delimited_response_becomes_chunked_for_http11() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes("GET", "/close", &[("Host", "test")], b""))
        .unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::Chunked, "headers: {:?}", r.headers);
    assert_eq!(r.body, b"close-delimited body");
    // The client connection survives: the body had an end of its own.
    c.send(&request_bytes("GET", "/after", &[("Host", "test")], b""))
        .unwrap();
    assert_eq!(c.read_final_response().unwrap().text(), "GET /after");
}

#[test]
fn close_delimited_response_stays_close_delimited_for_http10() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(b"GET /close HTTP/1.0\r\nHost: test\r\n\r\n")
        .unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::Close, "headers: {:?}", r.headers);
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.body, b"close-delimited body");
}

#[test]
fn head_204_and_304_carry_no_body() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes("HEAD", "/head", &[("Host", "test")], b""))
        .unwrap();
    let head = c.read_response_for_head().unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("11"));
    // Any stray body bytes after these bodiless responses would garble what follows.
    c.send(
        &[
            request_bytes("GET", "/204", &[("Host", "test")], b""),
            request_bytes("GET", "/304", &[("Host", "test")], b""),
            request_bytes("GET", "/after", &[("Host", "test")], b""),
        ]
        .concat(),
    )
    .unwrap();
    let r204 = c.read_final_response().unwrap();
    assert_eq!((r204.status, r204.body.len()), (204, 0));
    assert_eq!(r204.header("x-kind"), Some("no-content"));
    assert_eq!(r204.header("transfer-encoding"), None);
    let r304 = c.read_final_response().unwrap();
    assert_eq!((r304.status, r304.body.len()), (304, 0));
    assert_eq!(r304.header("etag"), Some("\"v1\""));
    let after = c.read_final_response().unwrap();
    assert_eq!((after.status, after.text().as_str()), (200, "GET /after"));
    assert!(c
        .read_available(Duration::from_millis(100))
        .unwrap()
        .is_empty());
    assert_eq!(origin.received()[0].method, "HEAD");
}

#[test]
fn early_hints_pass_before_the_final_response() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes("GET", "/early", &[("Host", "test")], b""))
        .unwrap();
    let hint = c.read_response().unwrap();
    assert_eq!(hint.status, 103);
    assert!(
        hint.header("link")
            .is_some_and(|l| l.contains("/style.css")),
        "103 headers: {:?}",
        hint.headers
    );
    let last = c.read_response().unwrap();
    assert_eq!((last.status, last.text().as_str()), (200, "final"));
}

#[test]
fn expect_continue_gets_100_then_the_response() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes(
        "POST",
        "/echo",
        &[
            ("Host", "test"),
            ("Expect", "100-continue"),
            ("Content-Length", "7"),
        ],
        b"",
    ))
    .unwrap();
    // Nothing of the body is sent until the proxy says to go on.
    let cont = c.read_response().unwrap();
    assert_eq!(cont.status, 100);
    c.send(b"payload").unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"payload"[..]));
    assert!(
        r.interim.is_empty(),
        "a second interim response came: {:?}",
        r.interim
    );
    assert_eq!(origin.last_received().unwrap().body, b"payload");
}

#[test]
fn http10_client_without_keep_alive_is_closed_after_the_response() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(b"GET /one HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "GET /one"));
    assert!(
        c.is_closed_by_peer(Duration::from_secs(3)),
        "HTTP/1.0 connection left open"
    );
}

#[test]
fn http10_request_without_host_gets_the_upstream_as_host() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(b"GET /nohost HTTP/1.0\r\n\r\n").unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "GET /nohost"));
    let seen = origin.last_received().unwrap();
    assert_eq!(
        seen.header("host"),
        Some(origin.addr().to_string().as_str())
    );
}

#[test]
fn http10_client_with_keep_alive_keeps_its_connection() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    for path in ["/one", "/two"] {
        c.send(
            format!("GET {path} HTTP/1.0\r\nHost: test\r\nConnection: keep-alive\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let r = c.read_final_response().unwrap();
        assert_eq!((r.status, r.text()), (200, format!("GET {path}")));
        assert!(
            r.has_token("connection", "keep-alive"),
            "headers: {:?}",
            r.headers
        );
        assert!(
            matches!(r.framing, Framing::ContentLength(_)),
            "framing {:?}",
            r.framing
        );
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    let batch = [
        request_bytes("GET", "/p1", &[("Host", "test")], b""),
        request_bytes("POST", "/echo", &[("Host", "test")], b"second"),
        request_bytes("GET", "/hello", &[("Host", "test")], b""),
        request_bytes("GET", "/p4", &[("Host", "test")], b""),
    ]
    .concat();
    c.send(&batch).unwrap();
    let bodies: Vec<String> = (0..4)
        .map(|_| c.read_final_response().unwrap().text())
        .collect();
    assert_eq!(bodies, ["GET /p1", "second", "hi\n", "GET /p4"]);
}

#[test]
fn head_responses_without_a_body_do_not_wait_for_one() {
    // Chunked and close-delimited heads announce a body that a HEAD response never has.
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    for path in ["/chunked", "/close"] {
        c.send(&request_bytes("HEAD", path, &[("Host", "test")], b""))
            .unwrap();
        let r = c.read_response_for_head().unwrap();
        assert_eq!(r.status, 200, "HEAD {path}");
    }
    c.send(&request_bytes("GET", "/after", &[("Host", "test")], b""))
        .unwrap();
    let after = c.read_final_response().unwrap();
    assert_eq!(after.text(), "GET /after");
}

#[test]
fn http10_upstream_response_is_read_to_the_close() {
    let origin = Origin::start(|_| {
        Reply::Raw(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold-style body".to_vec())
    });
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes("GET", "/old", &[("Host", "test")], b""))
        .unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "old-style body"));
    assert_eq!(r.framing, Framing::Chunked, "headers: {:?}", r.headers);
}

#[test]
fn chunked_upstream_response_is_close_delimited_for_http10() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(b"GET /chunked HTTP/1.0\r\nHost: test\r\n\r\n")
        .unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("transfer-encoding"),
        None,
        "chunked sent to an HTTP/1.0 client"
    );
    assert_eq!(r.body, b"first,second");
}

#[test]
fn unsolicited_100_and_repeated_103_are_not_the_final_response() {
    let origin =
        Origin::start(|_| Reply::Interim(vec![100, 103, 103], Box::new(Reply::ok("final"))));
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes("GET", "/x", &[("Host", "test")], b""))
        .unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "final"));
    // The connection is still in step: the next answer is the next request's.
    c.send(&request_bytes("GET", "/y", &[("Host", "test")], b""))
        .unwrap();
    assert_eq!(c.read_final_response().unwrap().text(), "final");
}

#[test]
fn pipelined_request_after_a_chunked_body() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    let mut batch = request_bytes(
        "POST",
        "/echo",
        &[("Host", "test"), ("Transfer-Encoding", "chunked")],
        b"",
    );
    batch.extend(chunked_body(&[b"one", b"two"], &[]));
    batch.extend(request_bytes("GET", "/next", &[("Host", "test")], b""));
    c.send(&batch).unwrap();
    assert_eq!(c.read_final_response().unwrap().body, b"onetwo");
    assert_eq!(c.read_final_response().unwrap().text(), "GET /next");
}

#[test]
fn body_of_a_locally_answered_request_is_not_taken_for_the_next_request() {
    // `/hello` is answered by the proxy itself; its request body must still be consumed.
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    let mut batch = request_bytes(
        "POST",
        "/hello",
        &[("Host", "test")],
        b"GET /smuggled HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    batch.extend(request_bytes(
        "POST",
        "/healthz",
        &[("Host", "test"), ("Transfer-Encoding", "chunked")],
        b"",
    ));
    batch.extend(chunked_body(&[b"GET /smuggled2 HTTP/1.1\r\n\r\n"], &[]));
    batch.extend(request_bytes("GET", "/after", &[("Host", "test")], b""));
    c.send(&batch).unwrap();
    // Either the proxy skips each body and answers every request in order, or it
    // announces `Connection: close` on the first answer and stops there; it must never
    // take body bytes for a request.
    let first = c.read_final_response().unwrap();
    assert_eq!(first.text(), "hi\n");
    if first.has_token("connection", "close") {
        assert!(
            c.is_closed_by_peer(Duration::from_secs(3)),
            "closing announced but not done"
        );
        assert!(origin.received().is_empty(), "{:?}", origin.received());
        return;
    }
    let second = c.read_final_response().unwrap();
    assert_eq!(second.text().trim(), "ok");
    if second.has_token("connection", "close") {
        assert!(
            c.is_closed_by_peer(Duration::from_secs(3)),
            "closing announced but not done"
        );
        assert!(origin.received().is_empty(), "{:?}", origin.received());
        return;
    }
    assert_eq!(c.read_final_response().unwrap().text(), "GET /after");
    let paths: Vec<String> = origin.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/after"]);
}

#[test]
fn upstream_response_with_length_and_chunked_is_read_as_chunked() {
    let origin = Origin::start(|_| {
        Reply::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
        )
    });
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes("GET", "/x", &[("Host", "test")], b""))
        .unwrap();
    let r = c.read_final_response().unwrap();
    // Either refuse the ambiguous response or honour chunked (RFC 9112 section 6.3);
    // never use the Content-Length.
    if r.status != 502 {
        assert_eq!((r.status, r.text().as_str()), (200, "hello"), "{r:?}");
    }
}

#[test]
fn keep_alive_survives_a_locally_answered_request_with_a_body() {
    let origin = framing_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes(
        "POST",
        "/hello",
        &[("Host", "test")],
        b"form=data",
    ))
    .unwrap();
    let first = c.read_final_response().unwrap();
    assert_eq!((first.status, first.text().as_str()), (200, "hi\n"));
    if first.has_token("connection", "close") {
        // Announced: the client knows to reconnect.
        assert!(c.is_closed_by_peer(Duration::from_secs(3)));
        return;
    }
    c.send(&request_bytes("GET", "/after", &[("Host", "test")], b""))
        .unwrap();
    let second = c.read_final_response().unwrap_or_else(|e| {
        panic!(
            "connection closed after a keep-alive response (headers {:?}): {e}",
            first.headers
        )
    });
    assert_eq!(second.text(), "GET /after");
}

//! HTTP/2 through the real binary, client side: h2c with prior knowledge on a plain
//! listener in front of HTTP/1 and HTTP/2 origins, HTTP/1 clients and broken prefaces
//! on the same listener, and HTTP/2 over TLS chosen by ALPN. Bodies are checked by
//! checksum; every exchange has a deadline. Upstream HTTP/2 (`http2: true`) is in
//! `http2_upstream.rs`.

use std::thread;
use std::time::Duration;

use test_support::{
    deterministic_checksum, wait_until, H2Body, H2Origin, H2Request, Origin, ProxyConfig, Reply,
    LARGE_EXCHANGE_TIMEOUT, LARGE_STREAM_SEED, MIB, REQUEST_BODY_SEED, SETTLE_TIMEOUT,
};

use crate::bin;
use crate::http2_upstream::h2_upstream_proxy;

// ---- h2c clients in front of an HTTP/1 origin ----

#[test]
fn h2c_get_reaches_an_http1_origin_with_authority_as_host() {
    let origin = Origin::start(|_| Reply::full(200, &[("x-origin", "one")], "hello over h2"));
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(15_000)
        .start(bin());
    let client = proxy.h2_client();
    let r = proxy.expect_h2(
        client.request(H2Request::get("/some/path?q=1").authority(Some("site.example:8443"))),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "hello over h2"));
    assert_eq!(r.header("x-origin"), Some("one"));
    let got = origin.last_received().expect("origin got the request");
    assert_eq!(
        (got.method.as_str(), got.path.as_str(), got.version.as_str()),
        ("GET", "/some/path?q=1", "HTTP/1.1")
    );
    assert_eq!(got.header_all("host"), vec!["site.example:8443"]);
    // A bodiless HTTP/2 request is sent upstream without a body.
    assert_eq!(got.body_len, 0);
    assert!(got.header("transfer-encoding").is_none(), "{got:?}");
    // The proxy's own answers work over HTTP/2 too.
    let hi = proxy.expect_h2(client.request(H2Request::get("/hello")));
    assert_eq!((hi.status, hi.text().as_str()), (200, "hi\n"));
}

/// Uploads `len` bytes over HTTP/2 to an origin that reads them all, then answers
/// with `len` bytes of its own: large bodies both ways, one after the other. (Both at
/// once is `full_duplex_*` below.)
fn h2c_upload_then_download(with_length: bool) {
    let len = 24 * MIB;
    let origin = Origin::start(move |_| Reply::LargeStream {
        len,
        chunk: 64 * 1024,
    });
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(15_000)
        .start(bin());
    let before = proxy.process.memory().expect("proxy memory").rss_kib;
    let client = proxy.h2_client();
    let mut req = H2Request::new("POST", "/upload").body(H2Body::Pattern {
        len,
        seed: REQUEST_BODY_SEED,
    });
    if with_length {
        req = req.header("content-length", &len.to_string());
    }
    let r = proxy.expect_h2(client.request(req));
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body_len, r.body_checksum),
        (len, deterministic_checksum(len, LARGE_STREAM_SEED)),
        "download corrupted"
    );
    let got = origin.last_received().expect("origin got the upload");
    assert_eq!(
        (got.body_len, got.body_checksum),
        (len, deterministic_checksum(len, REQUEST_BODY_SEED)),
        "upload corrupted"
    );
    if with_length {
        assert_eq!(got.header("content-length"), Some(len.to_string().as_str()));
    } else {
        assert_eq!(got.header("transfer-encoding"), Some("chunked"));
    }
    let peak = proxy.process.memory().expect("proxy memory").peak_rss_kib;
    eprintln!("proxy RSS {before} KiB before, peak {peak} KiB after {len} bytes each way");
    assert!(
        peak.saturating_sub(before) < 12 * 1024,
        "proxy grew by {} KiB streaming {len} bytes each way",
        peak.saturating_sub(before)
    );
}

#[test]
fn h2c_upload_with_content_length_and_large_download() {
    h2c_upload_then_download(true);
}

#[test]
fn h2c_upload_without_length_goes_upstream_chunked() {
    h2c_upload_then_download(false);
}

#[test]
fn h2c_large_download() {
    let len = 32 * MIB;
    let origin = Origin::start(move |_| Reply::LargeStream {
        len,
        chunk: 64 * 1024,
    });
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(15_000)
        .start(bin());
    let client = proxy.h2_client();
    let r = proxy.expect_h2(client.request(H2Request::get("/big")));
    assert_eq!(r.status, 200);
    assert_eq!(r.body_len, len);
    assert_eq!(
        r.body_checksum,
        deterministic_checksum(len, LARGE_STREAM_SEED)
    );
    assert!(r.header("transfer-encoding").is_none());
}

#[test]
fn h2c_many_concurrent_streams_on_one_connection() {
    // More streams than the proxy's default SETTINGS_MAX_CONCURRENT_STREAMS (100): the
    // client queues the rest, so every stream slot is reused too.
    let count = 150;
    let origin = Origin::start(|_| Reply::Echo);
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(15_000)
        .start(bin());
    let client = proxy.h2_client();
    let body = |i: usize| {
        format!("body of stream {i} ")
            .repeat(i % 7 + 1)
            .into_bytes()
    };
    let reqs = (0..count)
        .map(|i| {
            H2Request::new("POST", &format!("/n/{i}"))
                .header("x-request-id", &i.to_string())
                .body(H2Body::Bytes(body(i)))
        })
        .collect();
    let results = client.request_all(reqs);
    for (i, r) in results.into_iter().enumerate() {
        let r = proxy.expect_h2(r);
        assert_eq!(r.status, 200, "stream {i}");
        assert_eq!(r.body, body(i), "stream {i} got another stream's body");
    }
    assert_eq!(origin.received().len(), count);
}

#[test]
fn h2c_response_trailers_reach_the_client() {
    let origin = Origin::start(|_| Reply::Chunked {
        status: 200,
        headers: Vec::new(),
        chunks: vec![b"first,".to_vec(), b"second".to_vec()],
        trailers: vec![("x-checksum".into(), "c0ffee".into())],
    });
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(15_000)
        .start(bin());
    let client = proxy.h2_client();
    let r = proxy.expect_h2(client.request(H2Request::get("/t").header("te", "trailers")));
    assert_eq!((r.status, r.text().as_str()), (200, "first,second"));
    assert_eq!(r.trailer("x-checksum"), Some("c0ffee"), "{r:?}");
    assert!(r.header("trailer").is_none() || r.header("trailer") == Some("x-checksum"));
}

#[test]
fn h2c_head_204_and_304_have_no_body() {
    let origin = Origin::start(|head| match head.path.as_str() {
        "/204" => Reply::full(204, &[("x-kind", "none")], Vec::new()),
        "/304" => Reply::full(304, &[("etag", "\"v1\"")], Vec::new()),
        _ => Reply::ok(vec![b'x'; 1000]),
    });
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(15_000)
        .start(bin());
    let client = proxy.h2_client();
    let head = proxy.expect_h2(client.request(H2Request::new("HEAD", "/doc")));
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1000"));
    let no_content = proxy.expect_h2(client.request(H2Request::get("/204")));
    assert_eq!(no_content.status, 204);
    assert_eq!(no_content.header("x-kind"), Some("none"));
    let not_modified =
        proxy.expect_h2(client.request(H2Request::get("/304").header("if-none-match", "\"v1\"")));
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some("\"v1\""));
    for r in [&head, &no_content, &not_modified] {
        assert_eq!(r.body_len, 0, "{r:?}");
        assert!(
            r.ended_with_head,
            "END_STREAM should come with the head: {r:?}"
        );
        assert!(r.trailers.is_empty(), "{r:?}");
    }
    // The connection is still good for a request with a body afterwards.
    let get = proxy.expect_h2(client.request(H2Request::get("/doc")));
    assert_eq!((get.status, get.body_len), (200, 1000));
}

#[test]
fn h2c_hop_by_hop_response_headers_are_not_forwarded() {
    let origin = Origin::start(|_| Reply::Chunked {
        status: 200,
        headers: test_support::owned(&[
            ("connection", "x-private, keep-alive"),
            ("keep-alive", "timeout=5"),
            ("x-private", "secret"),
            ("proxy-connection", "keep-alive"),
            ("x-public", "ok"),
        ]),
        chunks: vec![b"body".to_vec()],
        trailers: Vec::new(),
    });
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(15_000)
        .start(bin());
    let client = proxy.h2_client();
    // HTTP/2 forbids connection-specific fields: the h2 client would reject the
    // response outright if the proxy passed any on.
    let r = proxy.expect_h2(client.request(H2Request::get("/hop")));
    assert_eq!((r.status, r.text().as_str()), (200, "body"));
    assert_eq!(r.header("x-public"), Some("ok"));
    for name in [
        "connection",
        "keep-alive",
        "x-private",
        "proxy-connection",
        "transfer-encoding",
    ] {
        assert!(r.header(name).is_none(), "{name} was forwarded: {r:?}");
    }
}

#[test]
fn h2c_x_forwarded_for_is_appended() {
    let origin = Origin::start(|_| Reply::ok("ok"));
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(15_000)
        .start(bin());
    let client = proxy.h2_client();
    proxy.expect_h2(client.request(H2Request::get("/a").header("x-forwarded-for", "203.0.113.9")));
    let got = origin.last_received().expect("first request");
    assert_eq!(
        got.header_all("x-forwarded-for"),
        vec!["203.0.113.9, 127.0.0.1"]
    );
    proxy.expect_h2(client.request(H2Request::get("/b")));
    let got = origin.last_received().expect("second request");
    assert_eq!(got.header_all("x-forwarded-for"), vec!["127.0.0.1"]);
}

// ---- HTTP/2 on both sides ----

#[test]
fn h2_client_to_h2_upstream_end_to_end() {
    let origin = H2Origin::start();
    let proxy = h2_upstream_proxy(&origin);
    let client = proxy.h2_client();
    let len = 16 * MIB;
    let r = proxy.expect_h2(
        client.request(
            H2Request::new("POST", "/sink")
                .authority(Some("svc.example"))
                .header("te", "trailers")
                .body(H2Body::Pattern {
                    len,
                    seed: REQUEST_BODY_SEED,
                })
                .trailer("x-client-trailer", "c1"),
        ),
    );
    assert_eq!((r.status, r.body_len), (200, 0));
    assert_eq!(r.header("x-authority"), Some("svc.example"));
    assert_eq!(r.trailer("x-body-len"), Some(len.to_string().as_str()));
    assert_eq!(
        r.trailer("x-body-checksum"),
        Some(
            deterministic_checksum(len, REQUEST_BODY_SEED)
                .to_string()
                .as_str()
        )
    );
    assert_eq!(r.trailer("x-client-trailer"), Some("c1"), "{r:?}");

    // An echo, streamed both ways at once (within the windows: see full_duplex_*).
    let echo_len = 512 * 1024;
    let r = proxy.expect_h2(client.request(H2Request::new("POST", "/echo").body(
        H2Body::Pattern {
            len: echo_len,
            seed: REQUEST_BODY_SEED,
        },
    )));
    let want = deterministic_checksum(echo_len, REQUEST_BODY_SEED);
    assert_eq!(
        (r.status, r.body_len, r.body_checksum),
        (200, echo_len, want)
    );
    assert_eq!(
        r.trailer("x-body-checksum"),
        Some(want.to_string().as_str())
    );

    let down = proxy.expect_h2(client.request(H2Request::get("/bytes/20000000")));
    assert_eq!(
        (down.body_len, down.body_checksum),
        (
            20_000_000,
            deterministic_checksum(20_000_000, LARGE_STREAM_SEED)
        )
    );

    // Many streams from one client connection share one upstream connection.
    let count = 40;
    let reqs: Vec<_> = (0..count)
        .map(|i| H2Request::get(&format!("/hold/{i}")).header("x-request-id", &i.to_string()))
        .collect();
    let results = thread::scope(|s| {
        let running = s.spawn(|| client.request_all(reqs));
        let all_held = wait_until(SETTLE_TIMEOUT, || origin.held() == count);
        origin.release_held();
        let results = running.join().expect("client");
        assert!(all_held, "only {} streams held at once", origin.held());
        results
    });
    for (i, r) in results.into_iter().enumerate() {
        let r = proxy.expect_h2(r);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-request-id"), Some(i.to_string().as_str()));
    }
    assert_eq!(origin.connections(), 1);
}

// ---- HTTP/1 on the same plain listener ----

#[test]
fn http1_clients_still_work_on_the_h2c_listener() {
    let origin = Origin::start(|_| Reply::Echo);
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(15_000)
        .start(bin());
    let h2 = proxy.h2_client();
    let mut c = proxy.client_with_timeout(LARGE_EXCHANGE_TIMEOUT);
    // Methods that start like the preface ("P") and diverge at the second byte.
    for (method, body) in [("POST", "post body"), ("PUT", "put body"), ("PATCH", "p")] {
        c.send(&test_support::request_bytes(
            method,
            "/x",
            &[("Host", "test")],
            body.as_bytes(),
        ))
        .unwrap();
        let r = c.read_final_response().expect("HTTP/1 response");
        assert_eq!((r.status, r.text().as_str()), (200, body), "{method}");
        assert_eq!(r.version, "HTTP/1.1");
    }
    // A request line trickling in byte by byte, first bytes matching the preface.
    let mut slow = proxy.client_with_timeout(LARGE_EXCHANGE_TIMEOUT);
    slow.send_slowly(
        b"PUT /slow HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nok",
        Duration::from_millis(5),
    )
    .unwrap();
    let r = slow.read_final_response().expect("slow HTTP/1 response");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    // HTTP/2 on the same listener meanwhile.
    let r = proxy.expect_h2(
        h2.request(H2Request::new("POST", "/y").body(H2Body::Bytes(b"h2 body".to_vec()))),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "h2 body"));
}

#[test]
fn bad_prefaces_are_refused_without_harming_the_proxy() {
    let origin = Origin::start(|_| Reply::ok("fine"));
    let mut proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(15_000)
        .start(bin());
    // Looks like the preface up to its last line: not HTTP/2, not valid HTTP/1.
    let mut c = proxy.client_with_timeout(LARGE_EXCHANGE_TIMEOUT);
    c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").unwrap();
    let r = c
        .read_final_response()
        .expect("an answer to a broken preface");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(c.is_closed_by_peer(SETTLE_TIMEOUT));
    // Half a preface, then the client goes away.
    let mut c = proxy.client_with_timeout(LARGE_EXCHANGE_TIMEOUT);
    c.send(b"PRI * HTTP/2").unwrap();
    c.shutdown_write().unwrap();
    let _ = c.read_available(Duration::from_millis(500));
    // The whole preface followed by garbage instead of SETTINGS: the connection ends.
    let mut c = proxy.client_with_timeout(LARGE_EXCHANGE_TIMEOUT);
    c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
        .unwrap();
    c.set_read_timeout(SETTLE_TIMEOUT).unwrap();
    match c.read_to_end_raw() {
        Ok(_) => {}
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "a connection with a garbled HTTP/2 start stays open"
        ),
    }
    // The proxy is alive and serves both protocols.
    assert!(
        proxy
            .process
            .wait_exit(Duration::from_millis(100))
            .is_none(),
        "proxy died"
    );
    let mut r = proxy.client_with_timeout(LARGE_EXCHANGE_TIMEOUT);
    r.send_get("/after", false).unwrap();
    assert_eq!(r.read_final_response().unwrap().status, 200);
    let r = proxy.expect_h2(proxy.h2_client().request(H2Request::get("/after")));
    assert_eq!((r.status, r.text().as_str()), (200, "fine"));
}

// ---- HTTP/2 over TLS, chosen by ALPN ----

#[cfg(feature = "tls")]
#[test]
fn h2_over_tls_chosen_by_alpn() {
    use test_support::{free_addr, H2Client, Proxy, ProxyProcess, TestCa, TestDir};

    let origin = H2Origin::start();
    let ca = TestCa::new("h2 test CA");
    let certs = TestDir::new().expect("cert dir");
    let (cert, key) = ca
        .issue(&["h2.example.test"])
        .write(certs.path(), "h2")
        .expect("cert files");
    let listen = free_addr();
    let yaml = format!(
        "version: 1\npid_file: {{dir}}/pingora.pid\nupgrade_sock: {{dir}}/upgrade.sock\n\
         services:\n  - name: web\n    listeners:\n      - addr: \"{listen}\"\n        \
         tls: {{ cert: \"{}\", key: \"{}\" }}\n    routes:\n      - upstream: origin\n    \
         upstreams:\n      origin:\n        peers: [\"{}\"]\n        http2: true\n        \
         read_timeout_ms: 15000\n",
        cert.display(),
        key.display(),
        origin.addr()
    );
    let process = ProxyProcess::start(bin(), &yaml, &[listen])
        .unwrap_or_else(|e| panic!("proxy did not start: {e}\nconfig:\n{yaml}"));
    let proxy = Proxy {
        process,
        addr: listen,
    };
    let client = H2Client::connect_tls(
        listen,
        "h2.example.test",
        ca.cert_pem(),
        LARGE_EXCHANGE_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("h2 over TLS: {e}\nproxy log:\n{}", proxy.log()));
    let len = 8 * MIB;
    let up = proxy.expect_h2(
        client.request(
            H2Request::new("POST", "/sink")
                .authority(Some("h2.example.test"))
                .body(H2Body::Pattern {
                    len,
                    seed: REQUEST_BODY_SEED,
                }),
        ),
    );
    assert_eq!(up.status, 200);
    assert_eq!(up.header("x-authority"), Some("h2.example.test"));
    assert_eq!(
        up.trailer("x-body-checksum"),
        Some(
            deterministic_checksum(len, REQUEST_BODY_SEED)
                .to_string()
                .as_str()
        )
    );
    let reqs = (0..10)
        .map(|_| H2Request::get("/bytes/4194304").authority(Some("h2.example.test")))
        .collect();
    for r in client.request_all(reqs) {
        let r = proxy.expect_h2(r);
        assert_eq!(
            (r.status, r.body_len, r.body_checksum),
            (
                200,
                4 * MIB,
                deterministic_checksum(4 * MIB, LARGE_STREAM_SEED)
            )
        );
    }
    assert_eq!(origin.connections(), 1);
}

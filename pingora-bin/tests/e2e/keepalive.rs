//! Connection reuse and header handling: upstream keep-alive pooling, hop-by-hop
//! headers, X-Forwarded-For and Host.

use std::time::Duration;

use test_support::{owned, request_bytes, Origin, ProxyConfig, Reply};

use crate::bin;

fn path_origin() -> Origin {
    Origin::start(|req| Reply::ok(req.path.clone()))
}

#[test]
fn sequential_requests_reuse_upstream_connections() {
    let origin = path_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut served = 0;
    for conn in 0..4 {
        let mut c = proxy.client();
        for i in 0..50 {
            let path = format!("/c{conn}/r{i}");
            c.send(&request_bytes("GET", &path, &[("Host", "test")], b""))
                .unwrap();
            let r = c.read_final_response().unwrap();
            assert_eq!((r.status, r.text()), (200, path));
            served += 1;
        }
    }
    assert_eq!(origin.requests(), served);
    assert!(
        origin.connections() <= 4,
        "{} upstream connections for {served} sequential requests",
        origin.connections()
    );
}

#[test]
fn client_connection_close_does_not_close_the_upstream_connection() {
    let origin = path_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    for i in 0..5 {
        let mut c = proxy.client();
        let path = format!("/close{i}");
        c.send(&request_bytes(
            "GET",
            &path,
            &[("Host", "test"), ("Connection", "close")],
            b"",
        ))
        .unwrap();
        let r = c.read_final_response().unwrap();
        assert_eq!((r.status, r.text()), (200, path));
        assert!(
            r.has_token("connection", "close"),
            "headers: {:?}",
            r.headers
        );
        assert!(
            c.is_closed_by_peer(Duration::from_secs(3)),
            "client connection left open"
        );
    }
    assert_eq!(
        origin.connections(),
        1,
        "the upstream connection was not reused"
    );
    for got in origin.received() {
        assert!(
            !got.header_all("connection")
                .iter()
                .any(|v| v.to_ascii_lowercase().contains("close")),
            "client's Connection: close reached the origin: {:?}",
            got.headers
        );
    }
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let origin = Origin::start(|_| {
        Reply::full(
            200,
            &[
                ("Connection", "X-Origin-Hop"),
                ("X-Origin-Hop", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Connection", "keep-alive"),
                ("X-Origin-End", "kept"),
            ],
            "ok",
        )
    });
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes(
        "GET",
        "/hop",
        &[
            ("Host", "test"),
            ("Connection", "keep-alive, X-Client-Hop"),
            ("X-Client-Hop", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-Never"),
            ("Upgrade", "something/1.0"),
            ("Proxy-Connection", "keep-alive"),
            ("X-End-To-End", "yes"),
        ],
        b"",
    ))
    .unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!(r.status, 200);
    let got = origin.last_received().unwrap();
    for hop in [
        "x-client-hop",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    ] {
        assert_eq!(
            got.header(hop),
            None,
            "{hop} reached the origin: {:?}",
            got.headers
        );
    }
    for v in got.header_all("connection") {
        assert!(
            !v.to_ascii_lowercase().contains("x-client-hop"),
            "client's Connection forwarded: {v}"
        );
    }
    assert_eq!(got.header("x-end-to-end"), Some("yes"));

    for hop in ["x-origin-hop", "keep-alive", "proxy-connection"] {
        assert_eq!(
            r.header(hop),
            None,
            "{hop} reached the client: {:?}",
            r.headers
        );
    }
    for v in r.header_all("connection") {
        assert!(
            !v.to_ascii_lowercase().contains("x-origin-hop"),
            "origin's Connection forwarded: {v}"
        );
    }
    assert_eq!(r.header("x-origin-end"), Some("kept"));
}

#[test]
fn x_forwarded_for_is_appended() {
    let origin = path_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());

    let mut c = proxy.client();
    c.send(&request_bytes(
        "GET",
        "/a",
        &[("Host", "test"), ("X-Forwarded-For", "10.1.2.3")],
        b"",
    ))
    .unwrap();
    assert_eq!(c.read_final_response().unwrap().status, 200);
    let got = origin.last_received().unwrap();
    assert_eq!(
        got.header_all("x-forwarded-for").join(", "),
        "10.1.2.3, 127.0.0.1"
    );

    c.send(&request_bytes("GET", "/b", &[("Host", "test")], b""))
        .unwrap();
    assert_eq!(c.read_final_response().unwrap().status, 200);
    let got = origin.last_received().unwrap();
    assert_eq!(got.header_all("x-forwarded-for"), ["127.0.0.1"]);
}

#[test]
fn host_is_kept_as_sent() {
    let origin = path_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes(
        "GET",
        "/h",
        &[("Host", "Example.COM:8443"), ("X-Other", "v")],
        b"",
    ))
    .unwrap();
    assert_eq!(c.read_final_response().unwrap().status, 200);
    let got = origin.last_received().unwrap();
    assert_eq!(got.header_all("host"), ["Example.COM:8443"]);
    assert_eq!(got.path, "/h");
    assert_eq!(got.method, "GET");
    assert!(got.headers.contains(&owned(&[("x-other", "v")])[0]));
}

#[test]
fn several_x_forwarded_for_headers_keep_every_hop() {
    let origin = path_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes(
        "GET",
        "/a",
        &[
            ("Host", "test"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("X-Forwarded-For", "10.0.0.2, 10.0.0.3"),
        ],
        b"",
    ))
    .unwrap();
    assert_eq!(c.read_final_response().unwrap().status, 200);
    let got = origin.last_received().unwrap();
    assert_eq!(
        got.header_all("x-forwarded-for").join(", "),
        "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"
    );
}

#[test]
fn upstream_connection_close_is_not_pooled() {
    let origin =
        Origin::start(|req| Reply::full(200, &[("Connection", "close")], req.path.clone()));
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    for path in ["/one", "/two", "/three"] {
        c.send(&request_bytes("GET", path, &[("Host", "test")], b""))
            .unwrap();
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

#[test]
fn client_abort_mid_download_does_not_poison_the_pool() {
    let origin = Origin::start(|req| match req.path.as_str() {
        "/big" => Reply::LargeStream {
            len: 32 * 1024 * 1024,
            chunk: 16 * 1024,
        },
        _ => Reply::ok(req.path.clone()),
    });
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(5000)
        .start(bin());
    {
        let mut c = proxy.client();
        c.send(&request_bytes("GET", "/big", &[("Host", "test")], b""))
            .unwrap();
        let first = c.read_available(Duration::from_secs(3)).unwrap();
        assert!(
            first.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&first[..first.len().min(64)])
        );
    } // dropped: the client goes away mid-body
    for path in ["/small1", "/small2"] {
        let mut c = proxy.client();
        c.send(&request_bytes("GET", path, &[("Host", "test")], b""))
            .unwrap();
        let r = c.read_final_response().unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, path),
            "log:\n{}",
            proxy.log()
        );
    }
}

#[test]
fn client_abort_mid_upload_does_not_poison_the_pool() {
    let origin = Origin::start(|req| Reply::ok(req.path.clone()));
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    {
        let mut c = proxy.client();
        c.send(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000\r\n\r\n")
            .unwrap();
        c.send(&vec![b'x'; 100_000]).unwrap();
        // Wait until the origin has the request, then go away mid-body.
        assert!(test_support::wait_until(Duration::from_secs(3), || origin
            .requests()
            == 1));
    }
    let mut c = proxy.client();
    c.send(&request_bytes("GET", "/after", &[("Host", "test")], b""))
        .unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "/after"),
        "log:\n{}",
        proxy.log()
    );
    // The cut request never completed at the origin, and its upstream connection was
    // closed (the origin saw its body end early) rather than left hanging.
    assert!(origin.received().iter().all(|r| r.path != "/upload"));
    assert!(
        test_support::wait_until(Duration::from_secs(3), || origin
            .errors()
            .iter()
            .any(|e| e.starts_with("connection 0:"))),
        "the upstream connection of the aborted upload was not closed"
    );
}

#[test]
fn idle_client_connection_is_closed_after_keepalive_timeout() {
    let origin = path_origin();
    let proxy = ProxyConfig::new(origin.addr())
        .service("keepalive_timeout_ms: 300")
        .start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes("GET", "/a", &[("Host", "test")], b""))
        .unwrap();
    assert_eq!(c.read_final_response().unwrap().status, 200);
    let idle_since = std::time::Instant::now();
    assert!(
        c.is_closed_by_peer(Duration::from_secs(3)),
        "idle connection kept open"
    );
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(250),
        "closed after only {idle:?}"
    );
}

#[test]
fn concurrent_clients_each_get_their_own_responses() {
    let origin = Origin::start(|req| Reply::ok(req.path.clone()));
    let proxy = ProxyConfig::new(origin.addr())
        .set("threads", "2")
        .start(bin());
    let addr = proxy.addr;
    let workers: Vec<_> = (0..16)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = test_support::RawClient::connect(addr).expect("connect");
                for i in 0..25 {
                    let path = format!("/w{w}/r{i}?q={w}-{i}");
                    c.send(&request_bytes("GET", &path, &[("Host", "test")], b""))
                        .expect("send");
                    let r = c.read_final_response().expect("response");
                    assert_eq!((r.status, r.text()), (200, path));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a client saw a wrong or missing response");
    }
    assert_eq!(origin.received().len(), 16 * 25);
    assert!(
        origin.connections() <= 16,
        "{} upstream connections",
        origin.connections()
    );
}

#[test]
fn request_target_is_forwarded_unchanged() {
    let origin = path_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    let target = "/a%20b/c?x=1&y=%2F&z=a+b";
    c.send(&request_bytes("GET", target, &[("Host", "test")], b""))
        .unwrap();
    assert_eq!(c.read_final_response().unwrap().text(), target);
}

//! HTTP/2 through the real binary: h2c with prior knowledge from clients on a plain
//! listener (to HTTP/1 and to HTTP/2 origins), HTTP/2 to upstreams with `http2: true`
//! (multiplexing, more connections when one is full, GOAWAY and REFUSED_STREAM
//! retried), and HTTP/1 clients on the same listener. Bodies are checked by checksum;
//! every exchange has a deadline.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::{Proxy, Setup};
use test_support::{
    checksum, chunked_body, deterministic_checksum, wait_until, ByteStream, H2Body, H2Client,
    H2Origin, H2Request, H2Response, Origin, RawClient, Reply, Response, LARGE_STREAM_SEED,
};

/// Deadline of one HTTP/2 exchange (large bodies included) and of HTTP/1 reads.
const DEADLINE: Duration = Duration::from_secs(30);
/// Most time to wait for a state the test drives towards (requests held, ...).
const SETTLE: Duration = Duration::from_secs(10);
const MIB: u64 = 1024 * 1024;
const SEED: u64 = 0x2f2f_4832;

fn proxy_to(setup: Setup) -> Proxy {
    setup.read_timeout_ms(15_000).start()
}

/// A proxy whose upstream `origin` speaks HTTP/2 (h2c) at `origin`.
fn h2_upstream_proxy(origin: &H2Origin) -> Proxy {
    proxy_to(Setup::new(origin.addr()).upstream("http2: true"))
}

fn h2_client(proxy: &Proxy) -> H2Client {
    H2Client::connect(proxy.addr, DEADLINE).unwrap_or_else(|e| {
        panic!(
            "h2c connection to the proxy: {e}\nproxy log:\n{}",
            proxy.log()
        )
    })
}

fn must(proxy: &Proxy, r: std::io::Result<H2Response>) -> H2Response {
    r.unwrap_or_else(|e| panic!("HTTP/2 request failed: {e}\nproxy log:\n{}", proxy.log()))
}

fn h1_client(proxy: &Proxy) -> RawClient {
    let c = proxy.client();
    c.set_read_timeout(DEADLINE).expect("read timeout");
    c
}

/// Writes `len` bytes of the stream seeded with [`SEED`], raw or in 64 KiB chunks.
fn spawn_body_writer(mut w: TcpStream, len: u64, chunked: bool) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut gen = ByteStream::new(SEED);
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            gen.fill(&mut buf[..n]);
            if chunked {
                w.write_all(format!("{n:x}\r\n").as_bytes())
                    .expect("chunk size");
                w.write_all(&buf[..n]).expect("chunk");
                w.write_all(b"\r\n").expect("chunk end");
            } else {
                w.write_all(&buf[..n]).expect("body");
            }
            left -= n as u64;
        }
        if chunked {
            w.write_all(b"0\r\n\r\n").expect("last chunk");
        }
    })
}

/// Runs `count` HTTP/1.1 GETs of `path(i)` at once, each on its own connection, with
/// `x-request-id: i`; returns the threads (joined by [`join_all`]).
fn spawn_h1_gets(
    proxy: &Proxy,
    count: usize,
    path: impl Fn(usize) -> String,
) -> Vec<JoinHandle<std::io::Result<Response>>> {
    (0..count)
        .map(|i| {
            let mut c = h1_client(proxy);
            let req = format!(
                "GET {} HTTP/1.1\r\nHost: test\r\nx-request-id: {i}\r\n\r\n",
                path(i)
            );
            thread::spawn(move || {
                c.send(req.as_bytes())?;
                c.read_final_response()
            })
        })
        .collect()
}

fn join_all(proxy: &Proxy, threads: Vec<JoinHandle<std::io::Result<Response>>>) -> Vec<Response> {
    threads
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let r = t.join().expect("client thread");
            let r = r.unwrap_or_else(|e| panic!("request {i} failed: {e}\nlog:\n{}", proxy.log()));
            assert_eq!(r.status, 200, "request {i}: {r:?}\nlog:\n{}", proxy.log());
            assert_eq!(r.header("x-request-id"), Some(i.to_string().as_str()));
            r
        })
        .collect()
}

// ---- h2c clients in front of an HTTP/1 origin ----

#[test]
fn h2c_get_reaches_an_http1_origin_with_authority_as_host() {
    let origin = Origin::start(|_| Reply::full(200, &[("x-origin", "one")], "hello over h2"));
    let proxy = proxy_to(Setup::new(origin.addr()));
    let client = h2_client(&proxy);
    let r = must(
        &proxy,
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
    let hi = must(&proxy, client.request(H2Request::get("/hello")));
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
    let proxy = proxy_to(Setup::new(origin.addr()));
    let before = proxy.process.memory().expect("proxy memory").rss_kib;
    let client = h2_client(&proxy);
    let mut req = H2Request::new("POST", "/upload").body(H2Body::Pattern { len, seed: SEED });
    if with_length {
        req = req.header("content-length", &len.to_string());
    }
    let r = must(&proxy, client.request(req));
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body_len, r.body_checksum),
        (len, deterministic_checksum(len, LARGE_STREAM_SEED)),
        "download corrupted"
    );
    let got = origin.last_received().expect("origin got the upload");
    assert_eq!(
        (got.body_len, got.body_checksum),
        (len, deterministic_checksum(len, SEED)),
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
    let proxy = proxy_to(Setup::new(origin.addr()));
    let client = h2_client(&proxy);
    let r = must(&proxy, client.request(H2Request::get("/big")));
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
    let proxy = proxy_to(Setup::new(origin.addr()));
    let client = h2_client(&proxy);
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
        let r = must(&proxy, r);
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
    let proxy = proxy_to(Setup::new(origin.addr()));
    let client = h2_client(&proxy);
    let r = must(
        &proxy,
        client.request(H2Request::get("/t").header("te", "trailers")),
    );
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
    let proxy = proxy_to(Setup::new(origin.addr()));
    let client = h2_client(&proxy);
    let head = must(&proxy, client.request(H2Request::new("HEAD", "/doc")));
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1000"));
    let no_content = must(&proxy, client.request(H2Request::get("/204")));
    assert_eq!(no_content.status, 204);
    assert_eq!(no_content.header("x-kind"), Some("none"));
    let not_modified = must(
        &proxy,
        client.request(H2Request::get("/304").header("if-none-match", "\"v1\"")),
    );
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
    let get = must(&proxy, client.request(H2Request::get("/doc")));
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
    let proxy = proxy_to(Setup::new(origin.addr()));
    let client = h2_client(&proxy);
    // HTTP/2 forbids connection-specific fields: the h2 client would reject the
    // response outright if the proxy passed any on.
    let r = must(&proxy, client.request(H2Request::get("/hop")));
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
    let proxy = proxy_to(Setup::new(origin.addr()));
    let client = h2_client(&proxy);
    must(
        &proxy,
        client.request(H2Request::get("/a").header("x-forwarded-for", "203.0.113.9")),
    );
    let got = origin.last_received().expect("first request");
    assert_eq!(
        got.header_all("x-forwarded-for"),
        vec!["203.0.113.9, 127.0.0.1"]
    );
    must(&proxy, client.request(H2Request::get("/b")));
    let got = origin.last_received().expect("second request");
    assert_eq!(got.header_all("x-forwarded-for"), vec!["127.0.0.1"]);
}

// ---- HTTP/1 clients in front of an HTTP/2 origin (`http2: true`) ----

#[test]
fn http1_client_to_h2_upstream_large_bodies_both_ways() {
    let len = 16 * MIB;
    let origin = H2Origin::start();
    let proxy = h2_upstream_proxy(&origin);
    let mut c = h1_client(&proxy);
    // Upload: the origin reads it all and answers with what it received, in trailers.
    let head = format!(
        "POST /sink HTTP/1.1\r\nHost: site.example\r\nTE: trailers\r\nContent-Length: {len}\r\n\r\n"
    );
    c.send(head.as_bytes()).unwrap();
    let writer = spawn_body_writer(c.writer_clone().unwrap(), len, false);
    let r = c
        .read_final_response()
        .unwrap_or_else(|e| panic!("upload: {e}\nlog:\n{}", proxy.log()));
    writer.join().expect("body writer");
    assert_eq!(r.status, 200, "{r:?}\nlog:\n{}", proxy.log());
    assert_eq!(
        (
            r.header("x-method"),
            r.header("x-authority"),
            r.header("x-scheme")
        ),
        (Some("POST"), Some("site.example"), Some("http"))
    );
    let trailer = |r: &Response, n: &str| test_support::header(&r.trailers, n).map(str::to_string);
    assert_eq!(trailer(&r, "x-body-len"), Some(len.to_string()), "{r:?}");
    assert_eq!(
        trailer(&r, "x-body-checksum"),
        Some(deterministic_checksum(len, SEED).to_string())
    );

    // An echo, streamed both ways at once (within the windows: see full_duplex_*). The
    // origin answers before the body ended, which makes that response the client
    // connection's last (the proxy's HTTP/1 rule): a new connection for each.
    let echo_len = 512 * 1024;
    let mut c = h1_client(&proxy);
    c.send(format!("PUT /echo HTTP/1.1\r\nHost: site.example\r\nTE: trailers\r\nContent-Length: {echo_len}\r\n\r\n").as_bytes())
        .unwrap();
    let writer = spawn_body_writer(c.writer_clone().unwrap(), echo_len, false);
    let r = c
        .read_response_digest()
        .unwrap_or_else(|e| panic!("echo: {e}\nlog:\n{}", proxy.log()));
    writer.join().expect("body writer");
    let want = deterministic_checksum(echo_len, SEED);
    assert_eq!(
        (r.status, r.body_len, r.body_checksum),
        (200, echo_len, want)
    );
    assert_eq!(trailer(&r, "x-body-checksum"), Some(want.to_string()));
    assert!(r.has_token("connection", "close"), "{r:?}");

    let mut c = h1_client(&proxy);
    c.send(b"GET /bytes/33554432 HTTP/1.1\r\nHost: site.example\r\n\r\n")
        .unwrap();
    let r = c
        .read_response_digest()
        .unwrap_or_else(|e| panic!("download: {e}\nlog:\n{}", proxy.log()));
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body_len, r.body_checksum),
        (
            32 * MIB,
            deterministic_checksum(32 * MIB, LARGE_STREAM_SEED)
        )
    );
    assert_eq!((origin.connections(), origin.streams()), (1, 3));
}

#[test]
fn chunked_request_with_trailers_to_h2_upstream() {
    let origin = H2Origin::start();
    let proxy = h2_upstream_proxy(&origin);
    let mut c = h1_client(&proxy);
    let chunks: [&[u8]; 3] = [b"alpha-", b"beta-", b"gamma"];
    let body = chunked_body(&chunks, &[("x-req-trailer", "t1")]);
    let mut req = b"PUT /echo HTTP/1.1\r\nHost: test\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\nTrailer: x-req-trailer\r\n\r\n".to_vec();
    req.extend_from_slice(&body);
    c.send(&req).unwrap();
    let r = c.read_final_response().expect("response");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "alpha-beta-gamma"),
        "{r:?}"
    );
    let trailer = |n: &str| test_support::header(&r.trailers, n).map(str::to_string);
    assert_eq!(
        trailer("x-body-checksum"),
        Some(checksum(b"alpha-beta-gamma").to_string())
    );
    // The request's own trailer reached the origin (it echoes them in its trailers).
    assert_eq!(trailer("x-req-trailer"), Some("t1".to_string()), "{r:?}");
}

#[test]
fn h2_upstream_multiplexes_50_concurrent_requests_on_one_connection() {
    let count = 50;
    let origin = H2Origin::start();
    let proxy = h2_upstream_proxy(&origin);
    let threads = spawn_h1_gets(&proxy, count, |i| format!("/hold/{i}"));
    let all_held = wait_until(SETTLE, || origin.held() == count);
    let held = origin.held();
    origin.release_held();
    let responses = join_all(&proxy, threads);
    assert!(
        all_held,
        "only {held} of {count} requests reached the origin at once"
    );
    let conns: BTreeSet<_> = responses
        .iter()
        .map(|r| r.header("x-conn").map(str::to_string))
        .collect();
    assert_eq!(origin.connections(), 1, "connections used: {conns:?}");
    assert_eq!(origin.peak_concurrent_streams(), count);
}

#[test]
fn h2_upstream_opens_more_connections_when_streams_are_full() {
    let count = 20;
    let origin = H2Origin::builder().max_concurrent_streams(5).start();
    let proxy = h2_upstream_proxy(&origin);
    let threads = spawn_h1_gets(&proxy, count, |i| format!("/hold/{i}"));
    let all_held = wait_until(SETTLE, || origin.held() == count);
    let held = origin.held();
    origin.release_held();
    let responses = join_all(&proxy, threads);
    assert!(
        all_held,
        "only {held} of {count} requests reached the origin at once"
    );
    let mut per_conn: BTreeMap<String, usize> = BTreeMap::new();
    for r in &responses {
        *per_conn
            .entry(r.header("x-conn").unwrap_or("?").to_string())
            .or_default() += 1;
    }
    eprintln!(
        "streams per upstream connection: {per_conn:?}; {} connections",
        origin.connections()
    );
    // All 20 at once need at least 4 connections of 5 streams; opening one per
    // request would defeat HTTP/2.
    assert!(
        (4..=8).contains(&origin.connections()),
        "{} upstream connections for {count} requests of at most 5 streams each: {per_conn:?}",
        origin.connections()
    );
}

/// `rounds` rounds of `per_round` concurrent GETs (ids unique across rounds); every one
/// must succeed, and the origin must have served each exactly once.
fn run_load_expecting_no_failure(
    proxy: &Proxy,
    origin: &H2Origin,
    rounds: usize,
    per_round: usize,
) {
    let mut ids = Vec::new();
    for round in 0..rounds {
        let threads: Vec<_> = (0..per_round)
            .map(|k| {
                let id = round * per_round + k;
                ids.push(id.to_string());
                let mut c = h1_client(proxy);
                thread::spawn(move || {
                    c.send(
                        format!("GET /r/{id} HTTP/1.1\r\nHost: test\r\nx-request-id: {id}\r\n\r\n")
                            .as_bytes(),
                    )?;
                    c.read_final_response()
                })
            })
            .collect();
        for (k, t) in threads.into_iter().enumerate() {
            let id = round * per_round + k;
            let r = t.join().expect("client thread");
            let r = r.unwrap_or_else(|e| panic!("request {id} failed: {e}\nlog:\n{}", proxy.log()));
            assert_eq!(r.status, 200, "request {id}: {r:?}\nlog:\n{}", proxy.log());
            assert_eq!(r.header("x-path"), Some(format!("/r/{id}").as_str()));
        }
    }
    let mut served = origin.served_ids();
    served.sort();
    ids.sort();
    assert_eq!(
        served, ids,
        "the origin must serve every request exactly once"
    );
}

#[test]
fn goaway_from_the_upstream_mid_load_loses_no_request() {
    let origin = H2Origin::builder().goaway_after(7).start();
    let proxy = h2_upstream_proxy(&origin);
    run_load_expecting_no_failure(&proxy, &origin, 6, 10);
    eprintln!(
        "{} upstream connections, {} streams for 60 requests",
        origin.connections(),
        origin.streams()
    );
    assert!(
        origin.connections() >= 60 / 7 / 2,
        "GOAWAY after 7 streams, yet only {} connections for 60 requests",
        origin.connections()
    );
}

#[test]
fn refused_streams_are_retried_and_no_request_fails() {
    let origin = H2Origin::builder().refuse_after(3).start();
    let proxy = h2_upstream_proxy(&origin);
    run_load_expecting_no_failure(&proxy, &origin, 4, 8);
    eprintln!(
        "{} streams refused, {} upstream connections for 32 requests",
        origin.refused(),
        origin.connections()
    );
    assert!(
        origin.refused() > 0,
        "the test should have made the origin refuse streams"
    );
    // A request is refused at most twice: once on the connection it was given, once
    // more if the pool offers that connection again; then it gets a new connection,
    // whose first stream the origin serves.
    assert!(
        origin.refused() <= 2 * 32,
        "{} refusals for 32 requests: retries keep going to the refusing connection",
        origin.refused()
    );
}

// ---- HTTP/2 on both sides ----

#[test]
fn h2_client_to_h2_upstream_end_to_end() {
    let origin = H2Origin::start();
    let proxy = h2_upstream_proxy(&origin);
    let client = h2_client(&proxy);
    let len = 16 * MIB;
    let r = must(
        &proxy,
        client.request(
            H2Request::new("POST", "/sink")
                .authority(Some("svc.example"))
                .header("te", "trailers")
                .body(H2Body::Pattern { len, seed: SEED })
                .trailer("x-client-trailer", "c1"),
        ),
    );
    assert_eq!((r.status, r.body_len), (200, 0));
    assert_eq!(r.header("x-authority"), Some("svc.example"));
    assert_eq!(r.trailer("x-body-len"), Some(len.to_string().as_str()));
    assert_eq!(
        r.trailer("x-body-checksum"),
        Some(deterministic_checksum(len, SEED).to_string().as_str())
    );
    assert_eq!(r.trailer("x-client-trailer"), Some("c1"), "{r:?}");

    // An echo, streamed both ways at once (within the windows: see full_duplex_*).
    let echo_len = 512 * 1024;
    let r = must(
        &proxy,
        client.request(H2Request::new("POST", "/echo").body(H2Body::Pattern {
            len: echo_len,
            seed: SEED,
        })),
    );
    let want = deterministic_checksum(echo_len, SEED);
    assert_eq!(
        (r.status, r.body_len, r.body_checksum),
        (200, echo_len, want)
    );
    assert_eq!(
        r.trailer("x-body-checksum"),
        Some(want.to_string().as_str())
    );

    let down = must(&proxy, client.request(H2Request::get("/bytes/20000000")));
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
        let all_held = wait_until(SETTLE, || origin.held() == count);
        origin.release_held();
        let results = running.join().expect("client");
        assert!(all_held, "only {} streams held at once", origin.held());
        results
    });
    for (i, r) in results.into_iter().enumerate() {
        let r = must(&proxy, r);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-request-id"), Some(i.to_string().as_str()));
    }
    assert_eq!(origin.connections(), 1);
}

// ---- HTTP/1 on the same plain listener ----

#[test]
fn http1_clients_still_work_on_the_h2c_listener() {
    let origin = Origin::start(|_| Reply::Echo);
    let proxy = proxy_to(Setup::new(origin.addr()));
    let h2 = h2_client(&proxy);
    let mut c = h1_client(&proxy);
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
    let mut slow = h1_client(&proxy);
    slow.send_slowly(
        b"PUT /slow HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nok",
        Duration::from_millis(5),
    )
    .unwrap();
    let r = slow.read_final_response().expect("slow HTTP/1 response");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    // HTTP/2 on the same listener meanwhile.
    let r = must(
        &proxy,
        h2.request(H2Request::new("POST", "/y").body(H2Body::Bytes(b"h2 body".to_vec()))),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "h2 body"));
}

#[test]
fn bad_prefaces_are_refused_without_harming_the_proxy() {
    let origin = Origin::start(|_| Reply::ok("fine"));
    let mut proxy = proxy_to(Setup::new(origin.addr()));
    // Looks like the preface up to its last line: not HTTP/2, not valid HTTP/1.
    let mut c = h1_client(&proxy);
    c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").unwrap();
    let r = c
        .read_final_response()
        .expect("an answer to a broken preface");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(c.is_closed_by_peer(SETTLE));
    // Half a preface, then the client goes away.
    let mut c = h1_client(&proxy);
    c.send(b"PRI * HTTP/2").unwrap();
    c.shutdown_write().unwrap();
    let _ = c.read_available(Duration::from_millis(500));
    // The whole preface followed by garbage instead of SETTINGS: the connection ends.
    let mut c = h1_client(&proxy);
    c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
        .unwrap();
    c.set_read_timeout(SETTLE).unwrap();
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
    let mut r = h1_client(&proxy);
    r.send(&common::get_bytes("/after")).unwrap();
    assert_eq!(r.read_final_response().unwrap().status, 200);
    let r = must(&proxy, h2_client(&proxy).request(H2Request::get("/after")));
    assert_eq!((r.status, r.text().as_str()), (200, "fine"));
}

// ---- Full duplex: the response flows while the request body is blocked ----
//
// Known bug (ignored until fixed): the proxy's exchange loop awaits each upstream
// write of request body inside its select, so while the upstream does not take more
// request body (its window or socket buffer is full) the proxy reads no response.
// An upstream that answers before reading the whole request (allowed by HTTP, and
// what gRPC bidi streams and echo services do) then blocks on its own writes: both
// sides wait for each other until the write timeout. Seen here with a body larger than
// the upstream windows (HTTP/2: 1 MiB stream window) or socket buffers (HTTP/1: a few
// MiB, timing-dependent). Run with `cargo test --test http2 -- --ignored`.

/// A request with an `len`-byte body to an HTTP/2 origin that sends `len` bytes
/// before it reads the body at all.
fn answer_before_reading_the_body(client: &H2Client, proxy: &Proxy, len: u64) {
    let r = must(
        proxy,
        client.request(
            H2Request::new("POST", &format!("/bytes/{len}"))
                .body(H2Body::Pattern { len, seed: SEED }),
        ),
    );
    assert_eq!(
        (r.status, r.body_len, r.body_checksum),
        (200, len, deterministic_checksum(len, LARGE_STREAM_SEED))
    );
    assert_eq!(
        r.trailer("x-body-checksum"),
        Some(deterministic_checksum(len, SEED).to_string().as_str())
    );
}

#[test]
fn full_duplex_within_the_windows_works() {
    let origin = H2Origin::start();
    let proxy = h2_upstream_proxy(&origin);
    let client = h2_client(&proxy);
    answer_before_reading_the_body(&client, &proxy, 512 * 1024);
}

#[test]
#[ignore = "known bug: the exchange stops reading the response while a request body write waits"]
fn full_duplex_upstream_answering_before_reading_the_body() {
    let origin = H2Origin::start();
    let proxy = h2_upstream_proxy(&origin);
    let mut client = h2_client(&proxy);
    // Directly against the origin this takes a few seconds in a debug build.
    client.set_timeout(Duration::from_secs(20));
    answer_before_reading_the_body(&client, &proxy, 8 * MIB);
}

#[test]
#[ignore = "known bug: the exchange stops reading the response while a request body write waits"]
fn full_duplex_echo_from_an_http1_origin() {
    // Timing-dependent: fails about one run in seven on a loaded 2-core machine.
    let len = 24 * MIB;
    let origin = Origin::start(|_| Reply::StreamEcho);
    let proxy = proxy_to(Setup::new(origin.addr()));
    let client = h2_client(&proxy);
    for _ in 0..5 {
        let r = must(
            &proxy,
            client
                .request(H2Request::new("POST", "/echo").body(H2Body::Pattern { len, seed: SEED })),
        );
        assert_eq!(
            (r.status, r.body_len, r.body_checksum),
            (200, len, deterministic_checksum(len, SEED))
        );
    }
}

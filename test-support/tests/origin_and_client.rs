//! Checks the origin server and raw client against each other (no proxy involved).

use std::io::Write;
use std::time::Duration;

use test_support::*;

fn routed_origin() -> Origin {
    Origin::start(|req| match req.path.as_str() {
        "/echo" => Reply::Echo,
        "/stream-echo" => Reply::StreamEcho,
        "/chunked" => Reply::Chunked {
            status: 200,
            headers: owned(&[("x-kind", "chunked")]),
            chunks: vec![b"ab".to_vec(), b"cde".to_vec()],
            trailers: owned(&[("x-trailer", "t1")]),
        },
        "/close" => Reply::CloseDelimited {
            status: 200,
            headers: Vec::new(),
            body: b"until-close".to_vec(),
        },
        "/early" => Reply::Interim(vec![103], Box::new(Reply::ok("final"))),
        "/large" => Reply::LargeStream {
            len: 1_000_003,
            chunk: 65536,
        },
        "/reset" => Reply::ResetAfter {
            head_and_partial_body: b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart".to_vec(),
        },
        "/ws" => Reply::WebSocketEcho,
        "/none" => Reply::CloseWithoutResponse,
        "/204" => Reply::full(204, &[], ""),
        _ => Reply::ok(format!("path={}", req.path)),
    })
}

#[test]
fn keep_alive_and_pipelining_on_one_connection() {
    let origin = routed_origin();
    let mut c = RawClient::connect(origin.addr()).unwrap();
    let two = [
        request_bytes("GET", "/a", &[("Host", "x")], b""),
        request_bytes("POST", "/echo", &[("Host", "x")], b"hello"),
    ]
    .concat();
    c.send(&two).unwrap();
    assert_eq!(c.read_final_response().unwrap().text(), "path=/a");
    let echoed = c.read_final_response().unwrap();
    assert_eq!(echoed.body, b"hello");
    assert_eq!(echoed.framing, Framing::ContentLength(5));
    c.send(&request_bytes("GET", "/204", &[("Host", "x")], b""))
        .unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!((r.status, r.framing), (204, Framing::None));
    assert_eq!(origin.connections(), 1);
    assert_eq!(origin.requests(), 3);
    let received = origin.received();
    assert_eq!(received[1].body, b"hello");
    assert_eq!(received[1].header("host"), Some("x"));
    assert_eq!(received[1].connection, 0);
}

#[test]
fn chunked_request_with_trailers_and_chunked_response() {
    let origin = routed_origin();
    let mut c = RawClient::connect(origin.addr()).unwrap();
    let mut req = request_bytes(
        "POST",
        "/chunked",
        &[("Host", "x"), ("Transfer-Encoding", "chunked")],
        b"",
    );
    req.extend(chunked_body(&[b"12", b"345"], &[("X-Req-Trailer", "yes")]));
    c.send(&req).unwrap();
    let r = c.read_final_response().unwrap();
    assert_eq!(r.framing, Framing::Chunked);
    assert_eq!(r.body, b"abcde");
    assert_eq!(r.trailers, owned(&[("x-trailer", "t1")]));
    assert_eq!(r.header("trailer"), Some("x-trailer"));
    let got = origin.last_received().unwrap();
    assert_eq!(got.body, b"12345");
    assert_eq!(got.trailers, owned(&[("x-req-trailer", "yes")]));
}

#[test]
fn close_delimited_interim_and_head() {
    let origin = routed_origin();
    let r = get(origin.addr(), "/close").unwrap();
    assert_eq!(
        (r.framing, r.text().as_str()),
        (Framing::Close, "until-close")
    );
    let r = get(origin.addr(), "/early").unwrap();
    assert_eq!(
        (r.status, r.interim.clone(), r.text()),
        (200, vec![103], "final".to_string())
    );
    let r = request(origin.addr(), "HEAD", "/x", &[], b"").unwrap();
    assert_eq!(r.header("content-length"), Some("7"));
    assert!(r.body.is_empty());
}

#[test]
fn large_stream_matches_deterministic_checksum() {
    let origin = routed_origin();
    let mut c = RawClient::connect(origin.addr()).unwrap();
    c.send(&request_bytes("GET", "/large", &[("Host", "x")], b""))
        .unwrap();
    let r = c.read_response_digest().unwrap();
    assert_eq!(r.body_len, 1_000_003);
    assert_eq!(
        r.body_checksum,
        deterministic_checksum(1_000_003, LARGE_STREAM_SEED)
    );
}

#[test]
fn stream_echo_is_full_duplex() {
    let origin = routed_origin();
    let mut c = RawClient::connect(origin.addr()).unwrap();
    let len: u64 = 8 * 1024 * 1024;
    c.send(&request_bytes(
        "PUT",
        "/stream-echo",
        &[("Host", "x"), ("Content-Length", &len.to_string())],
        b"",
    ))
    .unwrap();
    // Write the body from another thread while this one reads the echo: both
    // directions must flow at once or this deadlocks (and the read times out).
    let mut w = c.writer_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut gen = ByteStream::new(3);
        let mut buf = vec![0u8; 256 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            gen.fill(&mut buf[..n]);
            w.write_all(&buf[..n]).unwrap();
            left -= n as u64;
        }
    });
    let r = c.read_response_digest().unwrap();
    writer.join().unwrap();
    assert_eq!(r.body_len, len);
    assert_eq!(r.body_checksum, deterministic_checksum(len, 3));
    let got = origin.last_received().unwrap();
    assert_eq!((got.body_len, got.body_checksum), (len, r.body_checksum));
}

#[test]
fn reset_close_and_websocket() {
    let origin = routed_origin();
    let mut c = RawClient::connect(origin.addr()).unwrap();
    c.send(&request_bytes("GET", "/reset", &[("Host", "x")], b""))
        .unwrap();
    assert!(
        c.read_final_response().is_err(),
        "truncated body must be an error"
    );

    let mut c = RawClient::connect(origin.addr()).unwrap();
    c.send(&request_bytes("GET", "/none", &[("Host", "x")], b""))
        .unwrap();
    assert!(c.is_closed_by_peer(Duration::from_secs(2)));

    let mut c = RawClient::connect(origin.addr()).unwrap();
    c.send(&request_bytes(
        "GET",
        "/ws",
        &[
            ("Host", "x"),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
        ],
        b"",
    ))
    .unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 101);
    c.send(b"ping-bytes").unwrap();
    assert_eq!(c.read_exact_raw(10).unwrap(), b"ping-bytes");
    c.shutdown_write().unwrap();
    assert!(c.is_closed_by_peer(Duration::from_secs(2)));
}

#[test]
fn expect_continue_and_connection_close() {
    let origin = routed_origin();
    let mut c = RawClient::connect(origin.addr()).unwrap();
    c.send(&request_bytes(
        "POST",
        "/echo",
        &[
            ("Host", "x"),
            ("Expect", "100-continue"),
            ("Content-Length", "3"),
        ],
        b"",
    ))
    .unwrap();
    let interim = c.read_response().unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"abc").unwrap();
    assert_eq!(c.read_final_response().unwrap().body, b"abc");

    c.send(&request_bytes(
        "GET",
        "/a",
        &[("Host", "x"), ("Connection", "close")],
        b"",
    ))
    .unwrap();
    let r = c.read_final_response().unwrap();
    assert!(r.has_token("connection", "close"));
    assert!(c.is_closed_by_peer(Duration::from_secs(2)));
}

#[test]
fn idle_timeout_closes_kept_alive_connection() {
    let origin = Origin::builder()
        .idle_timeout(Duration::from_millis(100))
        .start(|_| Reply::ok("x"));
    let mut c = RawClient::connect(origin.addr()).unwrap();
    c.send(&request_bytes("GET", "/", &[("Host", "x")], b""))
        .unwrap();
    assert_eq!(c.read_final_response().unwrap().status, 200);
    assert!(c.is_closed_by_peer(Duration::from_secs(2)));
    assert!(wait_until(Duration::from_secs(2), || origin
        .open_connections()
        == 0));
}

#[test]
fn ports_and_commands() {
    let addr = free_addr();
    assert!(!port_accepts(addr));
    let origin = Origin::start(|_| Reply::ok(""));
    assert!(wait_for_port(origin.addr(), Duration::from_secs(1)));
    let out = run_command(
        std::path::Path::new("/bin/sh"),
        &["-c", "echo out; echo err >&2; exit 3"],
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        (out.code(), out.stdout.as_str(), out.stderr.as_str()),
        (Some(3), "out\n", "err\n")
    );
    let timed_out = run_command(
        std::path::Path::new("/bin/sleep"),
        &["5"],
        Duration::from_millis(100),
    )
    .unwrap_err();
    assert_eq!(timed_out.kind(), std::io::ErrorKind::TimedOut);
    let mem = process_memory(std::process::id()).unwrap();
    assert!(mem.peak_rss_kib >= mem.rss_kib && mem.rss_kib > 0);
}

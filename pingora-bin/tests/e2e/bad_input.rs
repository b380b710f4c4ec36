//! Malformed requests: each is refused with 400 (431 for an oversized head), the
//! connection is closed, the failure is logged once, and the proxy keeps serving.

use std::time::{Duration, Instant};

use test_support::{Origin, Proxy, ProxyConfig, Reply};

use crate::bin;

fn ok_origin() -> Origin {
    Origin::start(|req| Reply::ok(format!("origin saw {}", req.path)))
}

/// Sends `raw` on a new connection and checks: `status` comes back, the connection is
/// then closed, the proxy logs one line naming the client and the status, and a
/// normal request on a new connection still works. Returns the proxy's log.
fn assert_refused(proxy: &Proxy, origin: &Origin, raw: &[u8], status: u16) -> String {
    let mut c = proxy.client();
    let client_addr = c.local_addr().unwrap().to_string();
    c.send(raw).unwrap();
    let r = c
        .read_final_response()
        .unwrap_or_else(|e| panic!("no response to {:?}: {e}", String::from_utf8_lossy(raw)));
    assert_eq!(
        r.status,
        status,
        "request {:?}, response {:?}",
        String::from_utf8_lossy(raw),
        r
    );
    assert!(
        c.is_closed_by_peer(Duration::from_secs(3)),
        "connection left open after {status}"
    );

    let status_text = status.to_string();
    let logged = proxy
        .process
        .wait_for_log(&client_addr, Duration::from_secs(2));
    let log = proxy.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&client_addr) && l.contains(&status_text))
        .collect();
    assert!(
        logged && lines.len() == 1,
        "expected one log line for {client_addr} with {status}; log:\n{log}"
    );

    let before = origin.requests();
    let mut fresh = proxy.client();
    fresh.send_get("/after", false).unwrap();
    let r = fresh.read_final_response().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "origin saw /after"));
    assert_eq!(origin.requests(), before + 1);
    lines[0].to_string()
}

fn refused_before_the_origin(raw: &[u8], status: u16) -> String {
    let origin = ok_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let line = assert_refused(&proxy, &origin, raw, status);
    assert_eq!(
        origin.requests(),
        1,
        "the malformed request reached the origin: {:?}",
        origin.received().first()
    );
    line
}

/// Checks that the logged line gives the cause: it mentions `word` (case-insensitively).
fn assert_cause(line: &str, word: &str) {
    assert!(
        line.to_ascii_lowercase().contains(word),
        "log line does not say the cause ({word}): {line}"
    );
}

#[test]
fn content_length_with_transfer_encoding() {
    let line = refused_before_the_origin(
        b"POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    assert_cause(&line, "transfer-encoding");
}

#[test]
fn two_differing_content_lengths() {
    let line = refused_before_the_origin(
        b"POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    );
    assert_cause(&line, "content-length");
}

#[test]
fn bad_chunk_size() {
    // The head is fine, so the proxy may already have contacted the origin; only the
    // client side is checked here.
    let origin = ok_origin();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    assert_refused(
        &proxy,
        &origin,
        b"POST /x HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn obs_fold() {
    refused_before_the_origin(
        b"GET /x HTTP/1.1\r\nHost: test\r\nX-Folded: a\r\n  continued\r\n\r\n",
        400,
    );
}

#[test]
fn bad_request_line() {
    refused_before_the_origin(b"this is not http\r\nHost: test\r\n\r\n", 400);
}

#[test]
fn nul_in_head() {
    refused_before_the_origin(b"GET /x HTTP/1.1\r\nHost: test\r\nX-Nul: a\0b\r\n\r\n", 400);
}

#[test]
fn bare_cr_in_head() {
    refused_before_the_origin(b"GET /x HTTP/1.1\r\nHost: test\r\nX-Cr: a\rb\r\n\r\n", 400);
}

#[test]
fn http11_without_host() {
    let line = refused_before_the_origin(b"GET /x HTTP/1.1\r\nUser-Agent: t\r\n\r\n", 400);
    assert_cause(&line, "host");
}

#[test]
fn two_host_headers() {
    let line = refused_before_the_origin(
        b"GET /x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        400,
    );
    assert_cause(&line, "host");
}

#[test]
fn oversized_head_gets_431() {
    let big = "a".repeat(40 * 1024);
    let raw = format!("GET /x HTTP/1.1\r\nHost: test\r\nX-Big: {big}\r\n\r\n");
    let line = refused_before_the_origin(raw.as_bytes(), 431);
    assert_cause(&line, "large");
}

#[test]
fn slow_head_is_cut_off_after_client_header_timeout() {
    let origin = ok_origin();
    let proxy = ProxyConfig::new(origin.addr())
        .service("client_header_timeout_ms: 1000")
        .start(bin());
    let mut c = proxy.client();
    let started = Instant::now();
    let mut w = c.writer_clone().unwrap();
    // One byte per second; the writer stops at the first error (the proxy closed).
    std::thread::spawn(move || {
        use std::io::Write;
        for b in b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n" {
            if w.write_all(std::slice::from_ref(b)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let rest = c
        .read_to_end_raw()
        .expect("the proxy closes the connection");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(3000),
        "slow client cut off after {elapsed:?} (timeout 1000 ms)"
    );
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "unexpected answer: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(origin.requests(), 0);
    // Still serving.
    let mut fresh = proxy.client();
    fresh.send_get("/after", false).unwrap();
    assert_eq!(fresh.read_final_response().unwrap().status, 200);
}

#[test]
fn too_many_headers_gets_431() {
    let mut raw = String::from("GET /x HTTP/1.1\r\nHost: test\r\n");
    for i in 0..200 {
        raw.push_str(&format!("X-H{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    refused_before_the_origin(raw.as_bytes(), 431);
}

#[test]
fn stalled_request_body_is_cut_off_after_client_body_timeout() {
    let origin = ok_origin();
    let proxy = ProxyConfig::new(origin.addr())
        .service("client_body_timeout_ms: 1000")
        .read_timeout_ms(10_000)
        .start(bin());
    let mut c = proxy.client();
    c.send(b"POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nhalf!")
        .unwrap();
    let started = Instant::now();
    // Whatever is answered (e.g. 408), the connection must end soon after the timeout.
    let rest = c
        .read_to_end_raw()
        .expect("the proxy closes the connection");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(3000),
        "stalled body cut off after {elapsed:?} (timeout 1000 ms); got {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        origin.received().is_empty(),
        "the origin got a complete request"
    );
    let mut fresh = proxy.client();
    fresh.send_get("/after", false).unwrap();
    assert_eq!(fresh.read_final_response().unwrap().status, 200);
}

#[test]
fn transfer_coding_other_than_chunked_last() {
    refused_before_the_origin(
        b"POST /x HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, gzip\r\n\r\nhello",
        400,
    );
}

#[test]
fn non_numeric_content_length() {
    refused_before_the_origin(
        b"POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: -5\r\n\r\nhello",
        400,
    );
}

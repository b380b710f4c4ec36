//! A response cut mid-body by the origin reaches the client as a truncated message,
//! never as a complete-looking one: over HTTP/1.1 the connection closes before the
//! announced length (or before the last chunk of a chunked body); over HTTP/2 the stream
//! is reset instead of ended.

use std::time::Duration;

use test_support::{H2Outcome, Origin, Proxy, ProxyConfig, RawH2, Reply};

use crate::bin;

/// Announced body length; the origin sends only [`SENT`] bytes of it, then closes.
const ANNOUNCED: usize = 1 << 20;
/// Body bytes the origin sends before closing: more than a few reads, less than an
/// HTTP/2 stream window, so the proxy has surely started the response.
const SENT: usize = 32 * 1024;

fn cut_with_length() -> Origin {
    Origin::start(|_| {
        let mut raw =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {ANNOUNCED}\r\n\r\n").into_bytes();
        raw.extend(std::iter::repeat_n(b'x', SENT));
        Reply::Raw(raw)
    })
}

fn cut_chunked() -> Origin {
    Origin::start(|_| {
        let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..4 {
            raw.extend_from_slice(format!("{:x}\r\n", SENT / 4).as_bytes());
            raw.extend(std::iter::repeat_n(b'y', SENT / 4));
            raw.extend_from_slice(b"\r\n");
        }
        Reply::Raw(raw)
    })
}

/// Reads everything the proxy sends on one HTTP/1.1 request until it closes.
fn h1_raw(proxy: &Proxy) -> Vec<u8> {
    let mut c = proxy.client_with_timeout(Duration::from_secs(5));
    c.send_get("/cut", false).unwrap();
    c.read_to_end_raw().unwrap()
}

fn split(raw: &[u8]) -> (String, &[u8]) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    (
        String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase(),
        &raw[end + 4..],
    )
}

/// The body is either length-framed and short, or chunked without its last chunk.
fn assert_truncated(head: &str, body: &[u8]) {
    assert!(head.starts_with("http/1.1 200"), "{head}");
    if head.contains("transfer-encoding: chunked") {
        assert!(
            !body.ends_with(b"0\r\n\r\n"),
            "a cut body ended with the last chunk: it looks complete"
        );
    } else {
        assert!(
            head.contains(&format!("content-length: {ANNOUNCED}")),
            "neither the announced length nor chunked: {head}"
        );
        assert!(
            body.len() < ANNOUNCED,
            "a cut body arrived whole ({} bytes)",
            body.len()
        );
    }
    assert!(!body.is_empty(), "nothing of the body was passed on");
}

#[test]
fn http1_length_body_cut_by_the_origin_is_cut_for_the_client() {
    let origin = cut_with_length();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let raw = h1_raw(&proxy);
    let (head, body) = split(&raw);
    assert_truncated(&head, body);
    assert!(body.len() <= SENT, "{} bytes passed on", body.len());
}

#[test]
fn http1_chunked_body_cut_by_the_origin_ends_without_its_last_chunk() {
    let origin = cut_chunked();
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let raw = h1_raw(&proxy);
    let (head, body) = split(&raw);
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert_truncated(&head, body);
}

#[test]
fn http2_body_cut_by_the_origin_resets_the_stream() {
    for origin in [cut_with_length(), cut_chunked()] {
        let proxy = ProxyConfig::new(origin.addr()).start(bin());
        let mut c = RawH2::connect(proxy.addr).unwrap();
        let fields: Vec<(Vec<u8>, Vec<u8>)> = [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "test"),
            (":path", "/cut"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        c.headers(1, &fields, true).unwrap();
        let head = c.outcome(1, Duration::from_secs(5)).unwrap();
        assert_eq!(head, H2Outcome::Response(200));
        let (received, end) = c.finish(1, Duration::from_secs(5)).unwrap();
        assert!(
            matches!(end, H2Outcome::Reset(_) | H2Outcome::GoAway(_)),
            "a cut body ended as {end:?} after {received} bytes (END_STREAM looks complete)"
        );
        assert!(received < ANNOUNCED);
    }
}

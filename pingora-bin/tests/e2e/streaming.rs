//! Large bodies are streamed: 50 MiB through the proxy in each direction, checked by
//! checksum, while the proxy's resident memory grows by far less than the body.

use std::thread;
use std::time::Duration;

use test_support::{
    deterministic_checksum, spawn_pattern_writer, Origin, Proxy, ProxyConfig, Reply,
    LARGE_STREAM_SEED, REQUEST_BODY_SEED,
};

use crate::bin;

const BODY: u64 = 50 * 1024 * 1024;
/// Most the proxy's peak RSS may exceed its RSS before the transfer.
const MAX_GROWTH_KIB: u64 = 16 * 1024;

/// RSS of the proxy after it served one small request (so lazy start-up costs are paid).
fn warm_rss_kib(proxy: &Proxy) -> u64 {
    let mut c = proxy.client();
    c.send_get("/hello", false).unwrap();
    assert_eq!(c.read_final_response().unwrap().status, 200);
    proxy.process.memory().expect("proxy memory").rss_kib
}

fn assert_small_growth(proxy: &Proxy, before_kib: u64) {
    let after = proxy.process.memory().expect("proxy memory");
    let growth = after.peak_rss_kib.saturating_sub(before_kib);
    eprintln!(
        "proxy RSS before {before_kib} KiB, peak after {} KiB: growth {growth} KiB",
        after.peak_rss_kib
    );
    assert!(
        growth < MAX_GROWTH_KIB,
        "proxy peak RSS grew by {growth} KiB (from {before_kib} KiB to a peak of {} KiB) for a {} MiB body",
        after.peak_rss_kib,
        BODY / (1024 * 1024)
    );
}

fn upload(chunked: bool) {
    let origin = Origin::start(|_| Reply::ok("stored"));
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(10_000)
        .start(bin());
    let before = warm_rss_kib(&proxy);
    let mut c = proxy.client();
    c.set_read_timeout(Duration::from_secs(30)).unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {BODY}")
    };
    c.send(format!("PUT /upload HTTP/1.1\r\nHost: test\r\n{framing}\r\n\r\n").as_bytes())
        .unwrap();
    let writer = spawn_pattern_writer(c.writer_clone().unwrap(), BODY, REQUEST_BODY_SEED, chunked);
    let r = c.read_final_response().unwrap();
    writer.join().expect("writer thread").expect("body written");
    assert_eq!((r.status, r.text().as_str()), (200, "stored"));
    let got = origin.last_received().unwrap();
    assert_eq!(got.body_len, BODY);
    assert_eq!(
        got.body_checksum,
        deterministic_checksum(BODY, REQUEST_BODY_SEED),
        "upload corrupted"
    );
    assert_small_growth(&proxy, before);
}

#[test]
fn upload_50mib_with_content_length() {
    upload(false);
}

#[test]
fn upload_50mib_chunked() {
    upload(true);
}

#[test]
fn download_50mib_to_a_slow_reader() {
    let origin = Origin::start(|_| Reply::LargeStream {
        len: BODY,
        chunk: 64 * 1024,
    });
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(10_000)
        .start(bin());
    let before = warm_rss_kib(&proxy);
    let mut c = proxy.client();
    c.set_read_timeout(Duration::from_secs(30)).unwrap();
    c.send_get("/download", false).unwrap();
    // Deliberately read nothing for a while: a proxy that does not apply back-pressure
    // would buffer what the (fast) origin sends meanwhile.
    thread::sleep(Duration::from_millis(700));
    let r = c.read_response_digest().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_len, BODY);
    assert_eq!(
        r.body_checksum,
        deterministic_checksum(BODY, LARGE_STREAM_SEED),
        "download corrupted"
    );
    assert_small_growth(&proxy, before);
}

#[test]
fn request_and_response_bodies_flow_at_the_same_time() {
    // The origin echoes each piece as it reads it: if the proxy only read the response
    // after sending the whole request body, socket buffers would fill and both stall.
    let len: u64 = 16 * 1024 * 1024;
    let origin = Origin::start(|_| Reply::StreamEcho);
    let proxy = ProxyConfig::new(origin.addr())
        .read_timeout_ms(10_000)
        .start(bin());
    let mut c = proxy.client();
    c.set_read_timeout(Duration::from_secs(20)).unwrap();
    c.send(
        format!("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let writer = spawn_pattern_writer(c.writer_clone().unwrap(), len, REQUEST_BODY_SEED, false);
    let r = c.read_response_digest().unwrap();
    writer.join().expect("writer thread").expect("body written");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_len, len);
    assert_eq!(
        r.body_checksum,
        deterministic_checksum(len, REQUEST_BODY_SEED)
    );
}

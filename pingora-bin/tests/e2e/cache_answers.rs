//! Answers the cache gives from what it stored, black-box: a client's own
//! `If-None-Match` / `If-Modified-Since` answered `304`, `Range` answered `206` with
//! the right bytes (`416` past the end; several separate ranges: the whole response),
//! a range asked on a miss (the whole response is fetched and stored, the client gets
//! its range), and a range asked while another request fills the entry.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use test_support::{request, wait_until, Gate, Origin, Proxy, ProxyConfig, Reply, Response};

use crate::bin;

const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

/// 100 bytes: `0123456789` ten times.
fn body() -> Vec<u8> {
    (0..100u8).map(|i| b'0' + i % 10).collect()
}

fn proxy(origin: &Origin) -> Proxy {
    ProxyConfig::new(origin.addr())
        .read_timeout_ms(15_000)
        .cached("{ max_bytes: 4194304, lock_timeout_ms: 10000 }")
        .start(bin())
}

fn send(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", path, headers, b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn cache_status(r: &Response) -> &str {
    r.header("x-cache-status").unwrap_or("<none>")
}

/// An origin answering 100 bytes, cacheable for a minute, with validators.
fn validated_origin() -> Origin {
    Origin::start(|_| {
        Reply::full(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("last-modified", LAST_MODIFIED),
                ("content-type", "text/plain"),
            ],
            body(),
        )
    })
}

#[test]
fn conditional_requests_are_answered_304_from_a_fresh_entry() {
    let origin = validated_origin();
    let p = proxy(&origin);
    // The client's validators are not sent when the cache fills: it gets the 200.
    let first = send(p.addr, "/c", &[("if-none-match", "\"v1\"")]);
    assert_eq!((first.status, cache_status(&first)), (200, "MISS"));
    assert_eq!(first.body, body());
    assert_eq!(
        origin.last_received().unwrap().header("if-none-match"),
        None
    );
    for (header, value) in [
        ("if-none-match", "\"v1\""),
        ("if-none-match", "W/\"v1\""),
        ("if-none-match", "\"x\", \"v1\""),
        ("if-none-match", "*"),
        ("if-modified-since", LAST_MODIFIED),
        ("if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT"),
    ] {
        let r = send(p.addr, "/c", &[(header, value)]);
        assert_eq!(
            (r.status, cache_status(&r)),
            (304, "HIT"),
            "{header}: {value}"
        );
        assert!(r.body.is_empty(), "{header}: {value}");
        assert_eq!(
            r.header("etag"),
            Some("\"v1\""),
            "a 304 names the validator"
        );
        assert_eq!(r.header("cache-control"), Some("max-age=60"));
    }
    for (header, value) in [
        ("if-none-match", "\"v2\""),
        ("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT"),
        ("if-modified-since", "not a date"),
    ] {
        let r = send(p.addr, "/c", &[(header, value)]);
        assert_eq!(
            (r.status, cache_status(&r)),
            (200, "HIT"),
            "{header}: {value}"
        );
        assert_eq!(r.body, body());
    }
    // If-None-Match decides when both are sent.
    let r = send(
        p.addr,
        "/c",
        &[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", LAST_MODIFIED),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(origin.requests(), 1, "every answer came from the cache");
}

#[test]
fn ranges_are_answered_206_from_the_stored_response() {
    let origin = validated_origin();
    let p = proxy(&origin);
    assert_eq!(cache_status(&send(p.addr, "/r", &[])), "MISS");
    let whole = body();
    for (range, start, end) in [
        ("bytes=10-19", 10, 19),
        ("bytes=95-", 95, 99),
        ("bytes=-5", 95, 99),
        ("bytes=90-500", 90, 99),
        ("bytes=0-0", 0, 0),
        // Overlapping ranges are merged into one.
        ("bytes=0-9,5-14", 0, 14),
    ] {
        let r = send(p.addr, "/r", &[("range", range)]);
        assert_eq!((r.status, cache_status(&r)), (206, "HIT"), "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/100").as_str()),
            "{range}"
        );
        assert_eq!(r.body, &whole[start..=end], "{range}");
        assert_eq!(
            r.header("content-length"),
            Some((end - start + 1).to_string().as_str())
        );
    }
    let past = send(p.addr, "/r", &[("range", "bytes=100-")]);
    assert_eq!((past.status, cache_status(&past)), (416, "HIT"));
    assert_eq!(past.header("content-range"), Some("bytes */100"));
    assert!(past.body.is_empty());
    // Several separate ranges, a malformed one, another unit, an If-Range that does
    // not match: the whole response.
    for headers in [
        vec![("range", "bytes=0-1,10-11")],
        vec![("range", "bytes=9-1")],
        vec![("range", "items=0-1")],
        vec![("range", "bytes=0-1"), ("if-range", "\"v0\"")],
        vec![("range", "bytes=0-1"), ("if-range", "W/\"v1\"")],
    ] {
        let r = send(p.addr, "/r", &headers);
        assert_eq!((r.status, cache_status(&r)), (200, "HIT"), "{headers:?}");
        assert_eq!(r.body, whole, "{headers:?}");
    }
    let matching = send(
        p.addr,
        "/r",
        &[("range", "bytes=0-1"), ("if-range", "\"v1\"")],
    );
    assert_eq!((matching.status, matching.text().as_str()), (206, "01"));
    // A conditional request whose copy is current gets 304 even with a Range.
    let both = send(
        p.addr,
        "/r",
        &[("range", "bytes=0-1"), ("if-none-match", "\"v1\"")],
    );
    assert_eq!(both.status, 304);
    // A HEAD ignores the Range.
    let head = request(p.addr, "HEAD", "/r", &[("range", "bytes=0-1")], b"").unwrap();
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("100"))
    );
    assert_eq!(origin.requests(), 1);
}

#[test]
fn a_range_on_a_miss_fetches_the_whole_response_and_answers_the_range() {
    let origin = validated_origin();
    let p = proxy(&origin);
    let first = send(
        p.addr,
        "/m",
        &[("range", "bytes=20-29"), ("if-range", "\"v1\"")],
    );
    assert_eq!((first.status, cache_status(&first)), (206, "MISS"));
    assert_eq!(first.header("content-range"), Some("bytes 20-29/100"));
    assert_eq!(first.text(), "0123456789");
    let asked = origin.last_received().unwrap();
    assert_eq!(
        asked.header("range"),
        None,
        "the cache asks for the whole response"
    );
    assert_eq!(asked.header("if-range"), None);
    // It was stored whole.
    let whole = send(p.addr, "/m", &[]);
    assert_eq!((whole.status, cache_status(&whole)), (200, "HIT"));
    assert_eq!(whole.body, body());
    // A range past the end on a miss: 416, and the entry is stored all the same.
    let past = send(p.addr, "/m2", &[("range", "bytes=500-")]);
    assert_eq!((past.status, cache_status(&past)), (416, "MISS"));
    assert_eq!(past.header("content-range"), Some("bytes */100"));
    assert_eq!(cache_status(&send(p.addr, "/m2", &[])), "HIT");
    assert_eq!(origin.requests(), 2);
}

#[test]
fn a_range_is_answered_while_the_entry_is_filled_once_its_bytes_arrived() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = Origin::start(move |_| Reply::Gated {
        status: 200,
        headers: test_support::owned(&[("cache-control", "max-age=60")]),
        body: body(),
        split: 50,
        gate: origin_gate.clone(),
    });
    let p = proxy(&origin);
    let addr = p.addr;
    // The first request fills the entry; its body stops after 50 bytes.
    let filler = thread::spawn(move || send(addr, "/g", &[]));
    assert!(
        wait_until(Duration::from_secs(5), || origin.requests() == 1),
        "the fill reached the origin"
    );
    // Bytes 10-19 have arrived (or will, before the gate): answered now.
    let early = send(p.addr, "/g", &[("range", "bytes=10-19")]);
    assert_eq!((early.status, cache_status(&early)), (206, "HIT"));
    assert_eq!(early.header("content-range"), Some("bytes 10-19/100"));
    assert_eq!(early.text(), "0123456789");
    assert!(!filler.is_finished(), "answered before the fill completed");
    // Bytes 80-89 have not arrived: that request waits for them.
    let late = thread::spawn(move || send(addr, "/g", &[("range", "bytes=80-89")]));
    gate.open();
    let late = late.join().expect("late range");
    assert_eq!((late.status, late.text().as_str()), (206, "0123456789"));
    let filled = filler.join().expect("filler");
    assert_eq!((filled.status, cache_status(&filled)), (200, "MISS"));
    assert_eq!(filled.body, body());
    assert_eq!(origin.requests(), 1, "one fetch for all three");
}

#[test]
fn a_range_of_a_response_that_will_not_be_stored_is_asked_of_the_origin() {
    // 100 KiB, more than max_object_bytes (64 KiB) at /big; not storable at /private.
    // The origin answers ranges itself.
    let origin = Origin::start(|req| {
        let body: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8).collect();
        let cc = if req.path == "/private" {
            "private, max-age=60"
        } else {
            "max-age=60"
        };
        match req.header("range") {
            Some("bytes=10-19") => Reply::full(
                206,
                &[
                    ("cache-control", cc),
                    ("content-range", "bytes 10-19/102400"),
                ],
                body[10..20].to_vec(),
            ),
            _ => Reply::full(200, &[("cache-control", cc)], body),
        }
    });
    let p = ProxyConfig::new(origin.addr())
        .cached("{ max_bytes: 4194304, max_object_bytes: 65536 }")
        .start(bin());
    for path in ["/big", "/private"] {
        let before = origin.requests();
        let r = send(p.addr, path, &[("range", "bytes=10-19")]);
        assert_eq!((r.status, cache_status(&r)), (206, "MISS"), "{path}");
        assert_eq!(
            r.body,
            (10..20).map(|i| i as u8).collect::<Vec<_>>(),
            "{path}"
        );
        let asked: Vec<_> = origin.received()[before..]
            .iter()
            .map(|q| q.header("range").map(str::to_string))
            .collect();
        assert_eq!(
            asked,
            [None, Some("bytes=10-19".to_string())],
            "{path}: the whole response first (to store it), then the range alone"
        );
    }
}

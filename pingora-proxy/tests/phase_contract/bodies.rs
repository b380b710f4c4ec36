//! The body filters: every piece once, then exactly one `end_of_stream` call, last;
//! bodies changed both ways with the framing kept right.

use test_support::{
    chunked_body, request, Framing, H2Body, H2Client, H2Request, Origin, RawClient, Reply,
};

use crate::recorder::{InProcessProxy, Record, Recorder, WAIT};

/// The calls of a body filter: pieces then exactly one end call, which is last.
fn assert_pieces_then_one_end(record: &Record, phase: &str, pieces: usize) {
    let calls = record.calls_of(phase);
    assert_eq!(calls.len(), pieces + 1, "{phase}: {calls:?}");
    let (last, rest) = calls.split_last().unwrap();
    assert_eq!(*last, format!("{phase}(end none)"), "{phase}: {calls:?}");
    assert!(
        rest.iter()
            .all(|c| c.contains("(piece ") && !c.contains("none")),
        "{phase}: {calls:?}"
    );
}

fn chunked_origin() -> Origin {
    Origin::start(|req| match req.path.as_str() {
        "/empty" => Reply::full(204, &[], b""),
        "/upload" => Reply::Echo,
        _ => Reply::Chunked {
            status: 200,
            headers: Vec::new(),
            chunks: vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()],
            trailers: Vec::new(),
        },
    })
}

#[test]
fn response_body_filters_see_each_piece_then_one_end() {
    let origin = chunked_origin();
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));
    let resp = request(proxy.addr, "GET", "/three", &[], b"").unwrap();
    assert_eq!(resp.text(), "abbccc");
    let record = proxy.log.one("/three");
    // The pieces may come merged or split: at least one, and 6 bytes in all.
    let pieces = record.calls_of("response_body_filter").len() - 1;
    assert!(pieces >= 1, "{record:?}");
    assert_pieces_then_one_end(&record, "upstream_response_body_filter", pieces);
    assert_pieces_then_one_end(&record, "response_body_filter", pieces);
    let bytes: usize = record
        .calls_of("response_body_filter")
        .iter()
        .filter_map(|c| c.strip_prefix("response_body_filter(piece "))
        .map(|n| n.trim_end_matches(')').parse::<usize>().unwrap())
        .sum();
    assert_eq!(bytes, 6);
}

#[test]
fn an_empty_or_head_response_still_gets_one_end_call() {
    let origin = chunked_origin();
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));
    let resp = request(proxy.addr, "GET", "/empty", &[], b"").unwrap();
    assert_eq!(resp.status, 204);
    let record = proxy.log.one("/empty");
    assert_pieces_then_one_end(&record, "upstream_response_body_filter", 0);
    assert_pieces_then_one_end(&record, "response_body_filter", 0);

    let resp = request(proxy.addr, "HEAD", "/head", &[], b"").unwrap();
    assert_eq!((resp.status, resp.body_len), (200, 0));
    let record = proxy.log.one("/head");
    assert_pieces_then_one_end(&record, "response_body_filter", 0);
}

#[test]
fn request_body_filter_sees_each_piece_then_one_end_and_nothing_without_a_body() {
    let origin = chunked_origin();
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));
    let mut client = RawClient::connect(proxy.addr).unwrap();
    let head = "POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n";
    client.send(head.as_bytes()).unwrap();
    client.send(&chunked_body(&[b"xx", b"yyy"], &[])).unwrap();
    let resp = client.read_final_response().unwrap();
    assert_eq!(resp.text(), "xxyyy");
    let record = proxy.log.one("/upload");
    let pieces = record.calls_of("request_body_filter").len() - 1;
    assert!(pieces >= 1, "{record:?}");
    assert_pieces_then_one_end(&record, "request_body_filter", pieces);

    request(proxy.addr, "GET", "/no-body", &[], b"").unwrap();
    let record = proxy.log.one("/no-body");
    assert!(
        record.calls_of("request_body_filter").is_empty(),
        "{record:?}"
    );
}

#[test]
fn bodies_changed_both_ways_keep_their_framing_http1() {
    let origin = Origin::start(|req| match req.path.as_str() {
        "/json" => Reply::full(
            200,
            &[("content-type", "application/json")],
            br#"{"a":1,"b":[1,2,3]}"#.to_vec(),
        ),
        _ => Reply::Echo,
    });
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));

    // Up: "hello" with Content-Length 5 becomes "HELLO!" (6 bytes), sent chunked.
    let resp = request(
        proxy.addr,
        "POST",
        "/shout",
        &[("x-test-shout", "1")],
        b"hello",
    )
    .unwrap();
    assert_eq!((resp.status, resp.text()), (200, "HELLO!".to_string()));
    let got = origin.last_received().unwrap();
    assert_eq!(got.body, b"HELLO!");
    assert_eq!(got.header("transfer-encoding"), Some("chunked"));
    assert_eq!(got.header("content-length"), None);

    // Down: the JSON grows by a field; the client gets all of it, chunked, and the
    // connection still carries the next request.
    let mut client = RawClient::connect(proxy.addr).unwrap();
    client
        .send(b"GET /json HTTP/1.1\r\nHost: test\r\nx-test-json: 1\r\n\r\n")
        .unwrap();
    let resp = client.read_final_response().unwrap();
    assert_eq!(resp.text(), r#"{"a":1,"b":[1,2,3],"proxied":true}"#);
    assert_eq!(resp.framing, Framing::Chunked);
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(client.get("/after", false).unwrap().status, 200);
}

#[test]
fn bodies_changed_both_ways_keep_their_framing_http2() {
    let origin = Origin::start(|req| match req.path.as_str() {
        "/json" => Reply::full(200, &[], br#"{"a":1}"#.to_vec()),
        _ => Reply::Echo,
    });
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));
    let client = H2Client::connect(proxy.addr, WAIT).unwrap();

    let shout = H2Request::new("POST", "/shout")
        .header("x-test-shout", "1")
        .header("content-length", "5")
        .body(H2Body::Bytes(b"hello".to_vec()));
    let resp = client.request(shout).unwrap();
    assert_eq!((resp.status, resp.text()), (200, "HELLO!".to_string()));
    assert_eq!(origin.last_received().unwrap().body, b"HELLO!");

    let json = H2Request::get("/json").header("x-test-json", "1");
    let resp = client.request(json).unwrap();
    assert_eq!(resp.text(), r#"{"a":1,"proxied":true}"#);
    assert_eq!(resp.header("content-length"), None);
}

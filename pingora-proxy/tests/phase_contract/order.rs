//! Which phases run, in which order, for HTTP/1.1 and HTTP/2 clients.

use test_support::{request, H2Body, H2Client, H2Request, Origin, RawClient, Reply};

use crate::recorder::{InProcessProxy, Recorder, WAIT};

/// The phases of a GET answered by the origin with a body, in order.
const GET_ORDER: &[&str] = &[
    "new_ctx",
    "early_request_filter",
    "request_filter",
    "upstream_peer",
    "retry_rule",
    "upstream_request_filter",
    "connected_to_upstream",
    "upstream_response_filter",
    "response_filter",
    "upstream_response_body_filter(end)",
    "response_body_filter(end)",
    "logging",
];

/// The phases of a POST with a body (the origin answers once it read it all).
const POST_ORDER: &[&str] = &[
    "new_ctx",
    "early_request_filter",
    "request_filter",
    "upstream_peer",
    "retry_rule",
    "upstream_request_filter",
    "connected_to_upstream",
    "request_body_filter(end)",
    "upstream_response_filter",
    "response_filter",
    "upstream_response_body_filter(end)",
    "response_body_filter(end)",
    "logging",
];

fn origin() -> Origin {
    Origin::start(|req| match req.method.as_str() {
        "POST" => Reply::Echo,
        _ => Reply::Chunked {
            status: 200,
            headers: Vec::new(),
            chunks: vec![b"one ".to_vec(), b"two".to_vec()],
            trailers: if req.path.contains("trailers") {
                vec![("x-sum".into(), "7".into())]
            } else {
                Vec::new()
            },
        },
    })
}

#[test]
fn http1_get_and_post_go_through_every_phase_in_order() {
    let origin = origin();
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));

    let resp = request(proxy.addr, "GET", "/h1-get", &[], b"").unwrap();
    assert_eq!((resp.status, resp.text()), (200, "one two".to_string()));
    assert_eq!(proxy.log.one("/h1-get").order(), GET_ORDER);

    let resp = request(proxy.addr, "POST", "/h1-post", &[], b"hello").unwrap();
    assert_eq!((resp.status, resp.text()), (200, "hello".to_string()));
    assert_eq!(proxy.log.one("/h1-post").order(), POST_ORDER);
}

#[test]
fn http2_get_and_post_go_through_every_phase_in_order() {
    let origin = origin();
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));
    let client = H2Client::connect(proxy.addr, WAIT).unwrap();

    let resp = client.request(H2Request::get("/h2-get")).unwrap();
    assert_eq!((resp.status, resp.text()), (200, "one two".to_string()));
    assert_eq!(proxy.log.one("/h2-get").order(), GET_ORDER);

    let post = H2Request::new("POST", "/h2-post").body(H2Body::Bytes(b"hello".to_vec()));
    let resp = client.request(post).unwrap();
    assert_eq!((resp.status, resp.text()), (200, "hello".to_string()));
    assert_eq!(proxy.log.one("/h2-post").order(), POST_ORDER);
}

#[test]
fn trailers_go_through_the_trailer_filter_after_the_body() {
    let origin = origin();
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));

    let resp = request(
        proxy.addr,
        "GET",
        "/h1-trailers",
        &[("TE", "trailers")],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let trailers = |name: &str| {
        resp.trailers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(trailers("x-sum").as_deref(), Some("7"));
    assert_eq!(
        trailers("x-trailer-seen").as_deref(),
        Some("1"),
        "the filter's edit"
    );
    let record = proxy.log.one("/h1-trailers");
    let order = record.order();
    let tail = &order[order.len() - 3..];
    assert_eq!(
        tail,
        [
            "response_body_filter(end)",
            "response_trailer_filter",
            "logging"
        ]
    );
    assert_eq!(
        record.calls_of("response_trailer_filter"),
        ["response_trailer_filter(1)"]
    );

    // HTTP/2 too.
    let client = H2Client::connect(proxy.addr, WAIT).unwrap();
    let resp = client.request(H2Request::get("/h2-trailers")).unwrap();
    assert_eq!(resp.trailer("x-sum"), Some("7"));
    assert_eq!(resp.trailer("x-trailer-seen"), Some("1"));
    assert_eq!(
        proxy
            .log
            .one("/h2-trailers")
            .calls_of("response_trailer_filter"),
        ["response_trailer_filter(1)"]
    );

    // No trailers, no trailer filter.
    request(proxy.addr, "GET", "/h1-plain", &[], b"").unwrap();
    assert!(proxy
        .log
        .one("/h1-plain")
        .calls_of("response_trailer_filter")
        .is_empty());
}

#[test]
fn connected_to_upstream_says_whether_the_connection_was_reused() {
    let origin = origin();
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));
    let mut client = RawClient::connect(proxy.addr).unwrap();
    assert_eq!(client.get("/first", false).unwrap().status, 200);
    assert_eq!(client.get("/second", false).unwrap().status, 200);
    assert_eq!(
        proxy.log.one("/first").calls_of("connected_to_upstream"),
        ["connected_to_upstream(reused=false,attempt=1)"]
    );
    assert_eq!(
        proxy.log.one("/second").calls_of("connected_to_upstream"),
        ["connected_to_upstream(reused=true,attempt=1)"]
    );
    assert_eq!(origin.connections(), 1);
}

#[test]
fn a_request_answered_by_request_filter_reaches_no_upstream_phase() {
    let origin = origin();
    let proxy = InProcessProxy::start(Recorder::new(&[origin.addr()]));
    let resp = request(
        proxy.addr,
        "GET",
        "/answered",
        &[("x-test-answer", "1")],
        b"",
    )
    .unwrap();
    assert_eq!(
        (resp.status, resp.text()),
        (200, "answered by request_filter".to_string())
    );
    let record = proxy.log.one("/answered");
    assert_eq!(
        record.order(),
        [
            "new_ctx",
            "early_request_filter",
            "request_filter",
            "logging"
        ]
    );
    assert_eq!(record.error, None);
    assert_eq!(origin.requests(), 0);
}

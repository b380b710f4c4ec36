//! HTTP/2 <-> HTTP/1 head conversion: whatever an HTTP/2 client can send (the h2 crate
//! has already checked names are lowercase tokens and values have no CR, LF or NUL)
//! becomes one HTTP/1 head that an HTTP/1 origin reads as exactly one request with the
//! same framing, with no connection-specific field left; and an HTTP/1 head becomes an
//! HTTP/2 one without them.

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request};
use pingora_core::protocols::http::v1::{
    parse_request, parse_response, request_framing, set_request_framing_headers,
    write_request_head, BodyFraming, HeadLimits,
};
use pingora_core::protocols::http::v2::convert::{
    request_body_framing, request_from_h2, request_to_h2, response_to_h2, trailers_to_h2,
};
use pingora_core::protocols::http::v2::H2ServerOptions;

/// Fields that must never reach an HTTP/2 peer (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

fn assert_no_connection_fields(headers: &HeaderMap) {
    for name in CONNECTION_SPECIFIC {
        assert!(!headers.contains_key(name), "{name} sent over HTTP/2");
    }
    if let Some(te) = headers.get("te") {
        assert_eq!(te, "trailers", "te other than trailers sent over HTTP/2");
    }
}

/// Input: line 1 the method, line 2 the `:authority`, line 3 the `:path`, then
/// `name: value` lines; a line `--` ends the HTTP/2 request and starts an HTTP/1
/// response head checked the other way.
pub fn h2_h1_headers(data: &[u8]) {
    let (h2_part, h1_part) = match data.windows(4).position(|w| w == b"\n--\n") {
        Some(i) => (&data[..i], Some(&data[i + 4..])),
        None => (data, None),
    };
    h2_to_h1(h2_part);
    if let Some(h1) = h1_part {
        h1_to_h2(h1);
    }
}

fn h2_to_h1(data: &[u8]) {
    let mut lines = data.split(|&b| b == b'\n');
    let (Some(method), Some(authority), Some(path)) = (lines.next(), lines.next(), lines.next())
    else {
        return;
    };
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    let mut builder = Request::builder().method(method);
    // What the h2 crate hands the server: an absolute URI from the pseudo-headers.
    let uri = if authority.is_empty() {
        path.to_vec()
    } else {
        [b"http://".as_slice(), authority, path].concat()
    };
    builder = builder.uri(uri.as_slice());
    let mut end_of_stream = false;
    for line in lines {
        if line == b"!eos" {
            end_of_stream = true;
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        // The h2 crate refuses uppercase names and connection-specific fields.
        if name.as_str().bytes().any(|b| b.is_ascii_uppercase())
            || CONNECTION_SPECIFIC.contains(&name.as_str())
        {
            continue;
        }
        builder = builder.header(name, value);
    }
    let Ok(mut req) = builder.body(()) else {
        return;
    };
    // The HTTP/2 server answers 431 past the HTTP/1 limit before converting.
    if req.headers().len() > H2ServerOptions::default().max_headers {
        return;
    }
    let Ok(mut head) = request_from_h2(&mut req) else {
        return;
    };
    let framing = request_body_framing(&head.headers, end_of_stream);
    // What the HTTP/1 client session does with it on the way upstream.
    head.version = http::Version::HTTP_11;
    set_request_framing_headers(&mut head.headers, framing);
    let mut out = BytesMut::new();
    write_request_head(&head, &mut out);
    let mut wire = out.clone();
    let parsed = parse_request(&mut wire, &HeadLimits::default());
    let Ok(Some(upstream)) = parsed else {
        // A head the origin would refuse is not a smuggling risk, but the proxy should
        // have refused it first: only a target or Host HTTP/1 forbids may get here.
        let err = parsed.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains("target") || err.contains("Host") || err.contains("too large"),
            "an HTTP/2 request became an unreadable HTTP/1 head ({err}): {:?}",
            String::from_utf8_lossy(&out)
        );
        return;
    };
    assert!(
        wire.is_empty(),
        "one HTTP/2 request became two HTTP/1 heads"
    );
    let upstream_framing = request_framing(&upstream).expect("the proxy's own framing");
    let expected = match framing {
        BodyFraming::UntilClose => BodyFraming::Chunked,
        f => f,
    };
    assert_eq!(
        upstream_framing, expected,
        "the origin would frame the body otherwise"
    );
}

fn h1_to_h2(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let Ok(Some(resp)) = parse_response(&mut buf, &HeadLimits::default()) else {
        return;
    };
    let h2 = response_to_h2(&resp);
    assert_no_connection_fields(h2.headers());
    assert_no_connection_fields(&trailers_to_h2(&resp.headers));
    // The same fields as a request head going to an HTTP/2 origin.
    let mut req = pingora_core::protocols::http::RequestHeader::new(
        Method::POST,
        http::Uri::from_static("/"),
    );
    req.headers = resp.headers.clone();
    if !req.headers.contains_key(http::header::HOST) {
        req.headers
            .insert(http::header::HOST, HeaderValue::from_static("example"));
    }
    for framing in [
        BodyFraming::Empty,
        BodyFraming::Length(3),
        BodyFraming::Chunked,
    ] {
        if let Ok(h2) = request_to_h2(&req, framing, false) {
            assert_no_connection_fields(h2.headers());
            let cl = h2
                .headers()
                .get_all(http::header::CONTENT_LENGTH)
                .iter()
                .count();
            match framing {
                BodyFraming::Length(_) => assert_eq!(cl, 1),
                BodyFraming::Chunked => assert_eq!(cl, 0),
                _ => {}
            }
        }
    }
}

//! Property tests of the HTTP/1 codec: it never panics on arbitrary input, what it
//! writes it reads back unchanged, and what it accepts is clean.

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use pingora_core::protocols::http::v1::{
    parse_request, parse_response, request_framing, response_framing, write_request_head,
    BodyDecoder, BodyEncoder, BodyEvent, BodyFraming, HeadLimits,
};
use pingora_core::protocols::http::RequestHeader;
use pingora_core::ErrorKind;
use proptest::prelude::*;

/// What decoding a whole body gave, or the error kind that stopped it.
#[derive(Debug)]
struct Decoded {
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
    rest: BytesMut,
}

/// Feeds `wire` to a decoder in pieces of the given sizes (cycled), then signals EOF.
/// Panics if the decoder stops making progress.
fn decode_in_pieces(
    framing: BodyFraming,
    wire: &[u8],
    pieces: &[usize],
) -> Result<Decoded, ErrorKind> {
    let mut decoder = BodyDecoder::new(framing);
    let mut buf = BytesMut::new();
    let mut out = Decoded {
        body: Vec::new(),
        trailers: None,
        rest: BytesMut::new(),
    };
    let mut fed = 0;
    let mut piece = 0;
    // Every decode call consumes bytes, ends, or asks for more: bound the calls.
    for _ in 0..(4 * wire.len() + 16) {
        match decoder.decode(&mut buf).map_err(|e| e.kind)? {
            Some(BodyEvent::Data(b)) => {
                assert!(!b.is_empty(), "empty data event");
                out.body.extend_from_slice(&b);
            }
            Some(BodyEvent::Trailers(t)) => {
                assert!(out.trailers.is_none(), "trailers twice");
                out.trailers = Some(t);
            }
            Some(BodyEvent::End) => {
                out.rest = buf;
                return Ok(out);
            }
            None if fed == wire.len() => {
                return match decoder.on_eof().map_err(|e| e.kind)? {
                    Some(BodyEvent::End) | None => {
                        out.rest = buf;
                        Ok(out)
                    }
                    Some(other) => panic!("unexpected event at EOF: {other:?}"),
                };
            }
            None => {
                let step = pieces[piece % pieces.len()].max(1);
                piece += 1;
                let end = (fed + step).min(wire.len());
                buf.extend_from_slice(&wire[fed..end]);
                fed = end;
            }
        }
    }
    panic!("decoder made no progress");
}

fn token() -> impl Strategy<Value = String> {
    "[a-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn header_value() -> impl Strategy<Value = String> {
    // Visible ASCII with inner spaces and tabs, no surrounding whitespace.
    "[!-~]([ \t!-~]{0,30}[!-~])?"
}

/// A request the codec should carry unchanged.
#[derive(Debug, Clone)]
struct GeneratedRequest {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunked: bool,
    chunk_sizes: Vec<usize>,
    trailers: Vec<(String, String)>,
}

fn generated_request() -> impl Strategy<Value = GeneratedRequest> {
    let method = prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::PATCH),
        Just(Method::OPTIONS),
        "[A-Z]{3,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ];
    let path = "(/[A-Za-z0-9._~%-]{0,10}){1,4}(\\?[A-Za-z0-9=&%._-]{0,20})?";
    let reserved = ["host", "content-length", "transfer-encoding", "connection"];
    let headers = proptest::collection::vec((token(), header_value()), 0..12).prop_map(move |hs| {
        hs.into_iter()
            .filter(|(n, _)| !reserved.contains(&n.as_str()))
            .collect::<Vec<_>>()
    });
    let trailers = proptest::collection::vec(("x-[a-z]{1,8}", header_value()), 0..3);
    (
        method,
        path,
        headers,
        proptest::collection::vec(any::<u8>(), 0..3000),
        any::<bool>(),
        proptest::collection::vec(1usize..700, 1..6),
        trailers,
    )
        .prop_map(
            |(method, path, headers, body, chunked, chunk_sizes, trailers)| GeneratedRequest {
                method,
                path,
                headers,
                body,
                chunked,
                chunk_sizes,
                trailers,
            },
        )
}

/// Serializes `g` with the codec: head, then the body framed by a `BodyEncoder`.
fn serialize(g: &GeneratedRequest) -> (BytesMut, HeaderMap, HeaderMap) {
    let mut req = RequestHeader::new(g.method.clone(), Uri::try_from(g.path.as_str()).unwrap());
    req.headers
        .append(http::header::HOST, HeaderValue::from_static("example.com"));
    for (n, v) in &g.headers {
        req.headers.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let framing = if g.chunked {
        req.headers.append(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        BodyFraming::Chunked
    } else {
        req.headers.append(
            http::header::CONTENT_LENGTH,
            HeaderValue::from(g.body.len()),
        );
        BodyFraming::Length(g.body.len() as u64)
    };
    let mut trailers = HeaderMap::new();
    if g.chunked {
        for (n, v) in &g.trailers {
            trailers.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
    }
    let mut wire = BytesMut::new();
    write_request_head(&req, &mut wire);
    let mut encoder = BodyEncoder::new(framing);
    let mut rest = &g.body[..];
    let mut i = 0;
    while !rest.is_empty() {
        let n = g.chunk_sizes[i % g.chunk_sizes.len()].min(rest.len());
        i += 1;
        let frame = encoder.frame_data(n).unwrap();
        wire.extend_from_slice(frame.prefix());
        wire.extend_from_slice(&rest[..n]);
        wire.extend_from_slice(frame.suffix());
        rest = &rest[n..];
    }
    encoder.finish(Some(&trailers), &mut wire).unwrap();
    assert!(encoder.is_done());
    (wire, req.headers, trailers)
}

/// Request-ish bytes: a plausible request line and header lines mixed with arbitrary
/// bytes, so that the parser gets past its first checks.
fn request_like() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        3 => ("(?i)content-length", "[ 0-9,+-]{0,8}")
            .prop_map(|(n, v)| format!("{n}:{v}").into_bytes()),
        3 => ("(?i)transfer-encoding", "[ a-z,]{0,20}")
            .prop_map(|(n, v)| format!("{n}: {v}").into_bytes()),
        2 => "[0-9]{1,4}(, ?[0-9]{1,4})?"
            .prop_map(|v| format!("Content-Length: {v}").into_bytes()),
        1 => Just(b"Transfer-Encoding: chunked".to_vec()),
        1 => Just(b"Host: b.example".to_vec()),
        3 => (token(), header_value()).prop_map(|(n, v)| format!("{n}: {v}").into_bytes()),
        2 => (token(), proptest::collection::vec(any::<u8>(), 0..12)).prop_map(|(n, v)| {
            let mut l = format!("{n}: ").into_bytes();
            l.extend(v);
            l
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..20),
    ];
    let start = prop_oneof![
        3 => Just(b"GET / HTTP/1.1".to_vec()),
        3 => Just(b"POST /x HTTP/1.1".to_vec()),
        2 => Just(b"PUT /x?y HTTP/1.0".to_vec()),
        1 => Just(b"CONNECT a:1 HTTP/1.1".to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..24),
    ];
    (
        start,
        proptest::bool::weighted(0.8),
        proptest::collection::vec(line, 0..6),
        proptest::bool::weighted(0.9),
    )
        .prop_map(|(start, host, lines, crlf)| {
            let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let mut raw = start;
            if host {
                raw.extend_from_slice(eol);
                raw.extend_from_slice(b"Host: a.example");
            }
            for l in lines {
                raw.extend_from_slice(eol);
                raw.extend(l);
            }
            raw.extend_from_slice(eol);
            raw.extend_from_slice(eol);
            raw
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn head_parsers_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..600),
                                max_head in 0usize..700, max_headers in 0usize..140) {
        let limits = HeadLimits { max_head_bytes: max_head, max_headers };
        for limits in [limits, HeadLimits::default()] {
            let mut buf = BytesMut::from(&raw[..]);
            if let Ok(Some(req)) = parse_request(&mut buf, &limits) {
                let _ = request_framing(&req);
            }
            let mut buf = BytesMut::from(&raw[..]);
            if let Ok(Some(resp)) = parse_response(&mut buf, &limits) {
                let _ = response_framing(&Method::GET, &resp);
            }
        }
    }

    #[test]
    fn chunked_decoder_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..400),
                                    pieces in proptest::collection::vec(1usize..50, 1..4)) {
        let _ = decode_in_pieces(BodyFraming::Chunked, &raw, &pieces);
    }

    #[test]
    fn chunked_decoder_never_panics_on_chunk_like_input(
        parts in proptest::collection::vec(
            prop_oneof![
                "[0-9a-fA-F]{1,3}(;[ -~]{0,6})?\r\n",
                "[ -~]{0,10}",
                Just("\r\n".to_string()),
                Just("0\r\n".to_string()),
                "[A-Za-z-]{1,6}: [ -~]{0,6}\r\n",
                "[\r\n\t ;0-9]{0,4}",
            ],
            0..12),
        pieces in proptest::collection::vec(1usize..20, 1..4)) {
        let raw = parts.concat();
        match decode_in_pieces(BodyFraming::Chunked, raw.as_bytes(), &pieces) {
            Ok(_) => {}
            Err(kind) => prop_assert!(
                matches!(kind, ErrorKind::InvalidBody | ErrorKind::ConnectionClosed),
                "{kind:?}"
            ),
        }
    }

    #[test]
    fn requests_survive_serialize_parse_decode(g in generated_request(),
                                               pieces in proptest::collection::vec(1usize..4000, 1..4)) {
        let (wire, headers, trailers) = serialize(&g);
        // The head arrives in pieces too: None until it is complete.
        let mut buf = BytesMut::new();
        let mut fed = 0;
        let mut i = 0;
        let req = loop {
            if let Some(req) = parse_request(&mut buf, &HeadLimits::default()).unwrap() {
                break req;
            }
            prop_assert!(fed < wire.len(), "head never completed");
            let end = (fed + pieces[i % pieces.len()]).min(wire.len());
            i += 1;
            buf.extend_from_slice(&wire[fed..end]);
            fed = end;
        };
        prop_assert_eq!(&req.method, &g.method);
        prop_assert_eq!(req.path_and_query(), g.path.as_str());
        prop_assert_eq!(&req.headers, &headers);
        let framing = request_framing(&req).unwrap();
        let want = match (g.chunked, g.body.len()) {
            (true, _) => BodyFraming::Chunked,
            (false, 0) => BodyFraming::Empty,
            (false, n) => BodyFraming::Length(n as u64),
        };
        prop_assert_eq!(framing, want);
        let mut rest = buf.to_vec();
        rest.extend_from_slice(&wire[fed..]);
        let decoded = decode_in_pieces(framing, &rest, &pieces).unwrap();
        prop_assert_eq!(&decoded.body, &g.body);
        prop_assert!(decoded.rest.is_empty());
        let got_trailers = decoded.trailers.unwrap_or_default();
        prop_assert_eq!(got_trailers, trailers);
    }

    #[test]
    fn accepted_requests_are_clean(raw in request_like()) {
        let mut buf = BytesMut::from(&raw[..]);
        let before = buf.len();
        match parse_request(&mut buf, &HeadLimits::default()) {
            Ok(Some(req)) => {
                prop_assert!(buf.len() < before);
                for (name, value) in &req.headers {
                    prop_assert!(!name.as_str().is_empty());
                    prop_assert!(
                        !value.as_bytes().iter().any(|&b| b == 0 || b == b'\r' || b == b'\n'),
                        "{:?}", value
                    );
                }
                prop_assert!(req.path_and_query().is_ascii());
                match request_framing(&req) {
                    Ok(BodyFraming::UntilClose) => prop_assert!(false, "close-delimited request"),
                    Ok(_) => {}
                    // A transfer coding other than chunked is refused with 501.
                    Err(e) => prop_assert!(
                        matches!(e.kind, ErrorKind::InvalidHead | ErrorKind::NotImplemented),
                        "{:?}", e
                    ),
                }
            }
            Ok(None) => {}
            Err(e) => prop_assert!(
                matches!(e.kind, ErrorKind::InvalidHead | ErrorKind::HeadTooLarge),
                "{:?}", e
            ),
        }
    }

    #[test]
    fn length_bodies_stop_at_their_length(body in proptest::collection::vec(any::<u8>(), 0..500),
                                          extra in proptest::collection::vec(any::<u8>(), 0..100),
                                          pieces in proptest::collection::vec(1usize..64, 1..4)) {
        let mut wire = body.clone();
        wire.extend_from_slice(&extra);
        let framing = if body.is_empty() {
            BodyFraming::Empty
        } else {
            BodyFraming::Length(body.len() as u64)
        };
        let decoded = decode_in_pieces(framing, &wire, &pieces).unwrap();
        prop_assert_eq!(&decoded.body, &body);
        // Whatever was read past the body stays in the buffer, untouched.
        prop_assert!(extra.starts_with(&decoded.rest));
    }
}

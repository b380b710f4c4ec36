//! Which responses are compressed, what their heads become, and that every encoding
//! round-trips piece by piece, each piece decodable on arrival.

use std::io::Write;

use super::*;
use http::Uri;

fn request(method: Method, accept: Option<&str>) -> RequestHeader {
    let mut req = RequestHeader::new(method, Uri::from_static("/x"));
    if let Some(a) = accept {
        req.headers.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_str(a).unwrap(),
        );
    }
    req
}

fn response(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
    let mut resp = ResponseHeader::new(StatusCode::from_u16(status).unwrap());
    for (k, v) in headers {
        resp.headers.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    resp
}

fn all() -> ResponseCompression {
    ResponseCompression::new(Encoding::ALL)
}

const JSON: (&str, &str) = ("content-type", "application/json; charset=utf-8");

#[test]
fn compressed_head() {
    let req = request(Method::GET, Some("gzip, br"));
    let mut resp = response(
        200,
        &[
            JSON,
            ("content-length", "5000"),
            ("etag", "\"v1\""),
            ("accept-ranges", "bytes"),
            ("vary", "Origin"),
        ],
    );
    let c = all().start(&req, &mut resp).unwrap().unwrap();
    assert_eq!(c.encoding(), Encoding::Br);
    let h = &resp.headers;
    assert_eq!(h["content-encoding"], "br");
    assert!(h.get("content-length").is_none());
    assert!(h.get("accept-ranges").is_none());
    assert_eq!(h["etag"], "W/\"v1\"");
    let vary: Vec<_> = h.get_all("vary").iter().collect();
    assert_eq!(vary, ["Origin", "Accept-Encoding"]);
}

#[test]
fn weak_etags_and_listed_vary_stay() {
    let req = request(Method::GET, Some("gzip"));
    let mut resp = response(
        200,
        &[JSON, ("etag", "W/\"v1\""), ("vary", "accept-encoding")],
    );
    assert!(all().start(&req, &mut resp).unwrap().is_some());
    assert_eq!(resp.headers["etag"], "W/\"v1\"");
    assert_eq!(resp.headers.get_all("vary").iter().count(), 1);
}

#[test]
fn a_compressible_response_varies_even_when_sent_as_is() {
    let req = request(Method::GET, None);
    let mut resp = response(200, &[JSON, ("content-length", "5000"), ("etag", "\"v1\"")]);
    assert!(all().start(&req, &mut resp).unwrap().is_none());
    assert_eq!(resp.headers["vary"], "Accept-Encoding");
    assert_eq!(resp.headers["content-length"], "5000");
    assert_eq!(resp.headers["etag"], "\"v1\"");
}

#[test]
fn left_alone() {
    let gzip = Some("gzip");
    let cases: Vec<(RequestHeader, ResponseHeader, &str)> = vec![
        (request(Method::HEAD, gzip), response(200, &[JSON]), "HEAD"),
        (request(Method::GET, gzip), response(204, &[JSON]), "204"),
        (request(Method::GET, gzip), response(206, &[JSON]), "206"),
        (request(Method::GET, gzip), response(304, &[JSON]), "304"),
        (request(Method::GET, gzip), response(101, &[JSON]), "101"),
        (
            request(Method::GET, gzip),
            response(200, &[JSON, ("content-encoding", "gzip")]),
            "already encoded",
        ),
        (
            request(Method::GET, gzip),
            response(200, &[JSON, ("content-encoding", "identity")]),
            "any content-encoding",
        ),
        (
            request(Method::GET, gzip),
            response(200, &[JSON, ("content-range", "bytes 0-1/10")]),
            "a range",
        ),
        (
            request(Method::GET, gzip),
            response(200, &[JSON, ("cache-control", "public, No-Transform")]),
            "no-transform",
        ),
        (
            request(Method::GET, gzip),
            response(200, &[("content-type", "image/png")]),
            "other type",
        ),
        (request(Method::GET, gzip), response(200, &[]), "no type"),
        (
            request(Method::GET, gzip),
            response(200, &[JSON, ("content-length", "1023")]),
            "short",
        ),
    ];
    for (req, mut resp, what) in cases {
        let before = resp.headers.clone();
        assert!(all().start(&req, &mut resp).unwrap().is_none(), "{what}");
        assert_eq!(resp.headers, before, "{what}: head changed");
    }
}

#[test]
fn types_and_lengths() {
    let c = all().types(["TEXT/*", "application/json"]).min_bytes(10);
    assert!(c.type_matches(b"text/html; charset=utf-8"));
    assert!(c.type_matches(b"Text/Plain"));
    assert!(c.type_matches(b"application/JSON"));
    assert!(!c.type_matches(b"application/jsonx"));
    assert!(!c.type_matches(b"textual/html"));
    assert!(!c.type_matches(b"text"));
    assert!(all().types(["*/*"]).type_matches(b"image/png"));
    let req = request(Method::GET, Some("gzip"));
    let mut resp = response(
        200,
        &[("content-type", "text/html"), ("content-length", "10")],
    );
    assert!(c.start(&req, &mut resp).unwrap().is_some(), "at min_bytes");
    let mut resp = response(200, &[("content-type", "text/html")]);
    assert!(
        c.start(&req, &mut resp).unwrap().is_some(),
        "unknown length"
    );
}

#[test]
fn no_algorithms_is_off() {
    let req = request(Method::GET, Some("gzip"));
    let mut resp = response(200, &[JSON]);
    assert!(ResponseCompression::new([])
        .start(&req, &mut resp)
        .unwrap()
        .is_none());
    assert!(resp.headers.get("vary").is_none());
}

/// A decoder fed piece by piece; `decoded` is what it produced so far.
enum Decoder {
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    /// Brotli's writer-side decoder holds output back: every piece so far is decoded
    /// again with the reader, up to where the input ends.
    Br(Vec<u8>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl Decoder {
    fn new(e: Encoding) -> Self {
        match e {
            Encoding::Gzip => Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new()))),
            Encoding::Br => Decoder::Br(Vec::new()),
            Encoding::Zstd => Decoder::Zstd(zstd::stream::write::Decoder::new(Vec::new()).unwrap()),
        }
    }

    fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        match self {
            Decoder::Gzip(d) => {
                d.write_all(data).unwrap();
                d.flush().unwrap();
                d.get_ref().clone()
            }
            Decoder::Br(all) => {
                all.extend_from_slice(data);
                let mut r = brotli::Decompressor::new(&all[..], 4096);
                let mut out = Vec::new();
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = std::io::Read::read(&mut r, &mut buf) {
                    out.extend_from_slice(&buf[..n]);
                }
                out
            }
            Decoder::Zstd(d) => {
                d.write_all(data).unwrap();
                d.flush().unwrap();
                d.get_ref().clone()
            }
        }
    }
}

/// Text that compresses like a real page: repeated with variation.
fn text(n: usize, seed: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut i = seed;
    while out.len() < n {
        out.extend_from_slice(
            format!(
                "{{\"id\":{i},\"name\":\"item {}\",\"ok\":true}},",
                i * 7 % 13
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

#[test]
fn every_encoding_round_trips_and_each_piece_decodes_on_arrival() {
    for encoding in Encoding::ALL {
        for level in [1, 6] {
            let req = request(Method::GET, Some(encoding.as_str()));
            let mut resp = response(200, &[JSON]);
            let mut c = all()
                .level(encoding, level)
                .start(&req, &mut resp)
                .unwrap()
                .unwrap();
            assert_eq!(c.encoding(), encoding);
            let mut decoder = Decoder::new(encoding);
            let mut sent = Vec::new();
            for (i, size) in [1usize, 100, 70_000, 0, 3, 20_000].into_iter().enumerate() {
                let piece = text(size, i);
                sent.extend_from_slice(&piece);
                let mut body = Some(Bytes::from(piece));
                c.filter(&mut body, false).unwrap();
                let decoded = decoder.feed(body.as_deref().unwrap_or_default());
                assert!(
                    decoded == sent,
                    "{encoding} {level}: piece {i}: {} of {} bytes decodable, prefix: {}",
                    decoded.len(),
                    sent.len(),
                    sent.starts_with(&decoded)
                );
            }
            let mut end = None;
            c.filter(&mut end, true).unwrap();
            let out = end.expect("the end of the stream");
            assert!(
                decoder.feed(&out) == sent,
                "{encoding} {level}: the whole body"
            );
            assert_eq!(c.bytes_in(), sent.len() as u64);
            assert!(
                c.bytes_out() < c.bytes_in() / 3,
                "{encoding}: {} of {}",
                c.bytes_out(),
                c.bytes_in()
            );
        }
    }
}

#[test]
fn the_last_piece_may_carry_data() {
    let req = request(Method::GET, Some("zstd"));
    let mut resp = response(200, &[JSON]);
    let mut c = all().start(&req, &mut resp).unwrap().unwrap();
    let mut body = Some(Bytes::from(text(5000, 0)));
    c.filter(&mut body, true).unwrap();
    let out = body.unwrap();
    assert_eq!(zstd::decode_all(&out[..]).unwrap(), text(5000, 0));
}

#[test]
fn an_empty_body_is_a_valid_empty_stream() {
    let req = request(Method::GET, Some("gzip"));
    let mut resp = response(200, &[JSON]);
    let mut c = all().start(&req, &mut resp).unwrap().unwrap();
    let mut body = None;
    c.filter(&mut body, true).unwrap();
    let body = body.unwrap();
    let mut d = flate2::read::GzDecoder::new(&body[..]);
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut d, &mut out).unwrap();
    assert!(out.is_empty());
}

//! Writing request and response heads.
//!
//! Header names go out as `http::HeaderName` stores them (lowercase), in the map's
//! order (repeated names together). Values were validated when they were built, so the
//! head cannot be split by what it carries.

use bytes::BytesMut;
use http::{HeaderMap, Method, Version};

use crate::protocols::http::{RequestHeader, ResponseHeader};

/// Appends `METHOD target HTTP/1.x`, the headers and the blank line to `out`. The target
/// is the path and query (origin-form, also for an absolute-form URI), the authority
/// for CONNECT, or `*`. An absolute-form target with an empty path
/// (`http://h.example?q`) goes out as `/?q`: origin-form always starts with `/`. The
/// version is HTTP/1.0 when the head says so, else HTTP/1.1.
pub fn write_request_head(req: &RequestHeader, out: &mut BytesMut) {
    let target = match (req.uri.path_and_query(), req.uri.authority()) {
        (_, Some(authority)) if req.method == Method::CONNECT => authority.as_str(),
        (Some(pq), _) => pq.as_str(),
        (None, Some(authority)) => authority.as_str(),
        (None, None) => "/",
    };
    let method = req.method.as_str();
    out.reserve(method.len() + target.len() + 13 + headers_len(&req.headers));
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b" ");
    if target.starts_with('?') {
        out.extend_from_slice(b"/");
    }
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(if req.version == Version::HTTP_10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    write_headers(&req.headers, out);
}

/// Appends `HTTP/1.1 CODE REASON`, the headers and the blank line to `out`. The reason
/// is the stored one if it is a valid reason phrase, else the canonical one for the
/// code, else empty.
pub fn write_response_head(resp: &ResponseHeader, out: &mut BytesMut) {
    let reason = match &resp.reason {
        Some(r) if is_reason_phrase(r) => r,
        _ => resp.status.canonical_reason().unwrap_or("").as_bytes(),
    };
    out.reserve(15 + reason.len() + headers_len(&resp.headers));
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(resp.status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    write_headers(&resp.headers, out);
}

/// RFC 9112 §4: `reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )`.
fn is_reason_phrase(r: &[u8]) -> bool {
    r.iter().all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f))
}

/// Bytes the header lines and the blank line take.
fn headers_len(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + 2
}

fn write_headers(headers: &HeaderMap, out: &mut BytesMut) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::http::v1::{parse_request, parse_response, HeadLimits};
    use bytes::Bytes;
    use http::{StatusCode, Uri};

    fn request_bytes(req: &RequestHeader) -> BytesMut {
        let mut out = BytesMut::new();
        write_request_head(req, &mut out);
        out
    }

    fn response_bytes(resp: &ResponseHeader) -> BytesMut {
        let mut out = BytesMut::new();
        write_response_head(resp, &mut out);
        out
    }

    #[test]
    fn request_round_trip_is_byte_exact() {
        let raw = b"PUT /a/b?c=d HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 0\r\n\r\n";
        let req = parse_request(&mut BytesMut::from(&raw[..]), &HeadLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(&request_bytes(&req)[..], &raw[..]);
    }

    #[test]
    fn request_targets_and_versions() {
        let mut req = RequestHeader::new(Method::GET, Uri::from_static("http://h.example/p?q"));
        req.headers.insert("host", "h.example".parse().unwrap());
        assert_eq!(
            &request_bytes(&req)[..],
            b"GET /p?q HTTP/1.1\r\nhost: h.example\r\n\r\n"
        );
        // Found by fuzzing: an empty path before the query went out as `GET ?q`.
        let no_path = parse_request(
            &mut BytesMut::from(&b"GET http://h.example?q HTTP/1.1\r\nHost: h.example\r\n\r\n"[..]),
            &HeadLimits::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            &request_bytes(&no_path)[..],
            b"GET /?q HTTP/1.1\r\nhost: h.example\r\n\r\n"
        );
        req.version = Version::HTTP_10;
        req.headers.clear();
        assert_eq!(&request_bytes(&req)[..], b"GET /p?q HTTP/1.0\r\n\r\n");
        let req = RequestHeader::new(Method::CONNECT, Uri::from_static("h.example:443"));
        assert_eq!(
            &request_bytes(&req)[..],
            b"CONNECT h.example:443 HTTP/1.1\r\n\r\n"
        );
        let req = RequestHeader::new(Method::OPTIONS, Uri::from_static("*"));
        assert_eq!(&request_bytes(&req)[..], b"OPTIONS * HTTP/1.1\r\n\r\n");
        let method = Method::from_bytes(b"PURGE").unwrap();
        let req = RequestHeader::new(method, Uri::from_static("/x"));
        assert_eq!(&request_bytes(&req)[..], b"PURGE /x HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn headers_keep_their_order() {
        let mut req = RequestHeader::new(Method::GET, Uri::from_static("/"));
        for (n, v) in [("host", "h"), ("x-z", "1"), ("accept", "*/*"), ("x-a", "2")] {
            req.headers.append(n, v.parse().unwrap());
        }
        assert_eq!(
            &request_bytes(&req)[..],
            b"GET / HTTP/1.1\r\nhost: h\r\nx-z: 1\r\naccept: */*\r\nx-a: 2\r\n\r\n"
        );
    }

    #[test]
    fn response_reasons() {
        let mut r = ResponseHeader::new(StatusCode::NOT_FOUND);
        r.headers.insert("content-length", "0".parse().unwrap());
        assert_eq!(
            &response_bytes(&r)[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
        );
        r.reason = Some(Bytes::from_static(b"Nope \xe9"));
        r.headers.clear();
        assert_eq!(&response_bytes(&r)[..], b"HTTP/1.1 404 Nope \xe9\r\n\r\n");
        // A reason that would split the head is replaced by the canonical one.
        r.reason = Some(Bytes::from_static(b"x\r\nSet-Cookie: a=b"));
        assert_eq!(&response_bytes(&r)[..], b"HTTP/1.1 404 Not Found\r\n\r\n");
        let r = ResponseHeader::new(StatusCode::from_u16(599).unwrap());
        assert_eq!(&response_bytes(&r)[..], b"HTTP/1.1 599 \r\n\r\n");
    }

    #[test]
    fn response_round_trip() {
        let raw = b"HTTP/1.1 201 Made It\r\nlocation: /x\r\nset-cookie: a\r\nset-cookie: b\r\n\r\n";
        let resp = parse_response(&mut BytesMut::from(&raw[..]), &HeadLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(&response_bytes(&resp)[..], &raw[..]);
    }
}

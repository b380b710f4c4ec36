//! Writing request and response heads.

use bytes::BytesMut;
use http::{HeaderMap, Version};

use crate::protocols::http::{RequestHeader, ResponseHeader};

/// Appends `METHOD target HTTP/1.x`, the headers and the blank line to `out`.
pub fn write_request_head(req: &RequestHeader, out: &mut BytesMut) {
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    match req.uri.path_and_query() {
        Some(pq) => out.extend_from_slice(pq.as_str().as_bytes()),
        None => match req.uri.authority() {
            // authority-form (CONNECT)
            Some(a) => out.extend_from_slice(a.as_str().as_bytes()),
            None => out.extend_from_slice(b"/"),
        },
    }
    out.extend_from_slice(version_str(req.version));
    out.extend_from_slice(b"\r\n");
    write_headers(&req.headers, out);
}

/// Appends `HTTP/1.1 CODE REASON`, the headers and the blank line to `out`.
pub fn write_response_head(resp: &ResponseHeader, out: &mut BytesMut) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(resp.status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    match &resp.reason {
        Some(r) => out.extend_from_slice(r),
        None => out.extend_from_slice(resp.status.canonical_reason().unwrap_or("").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    write_headers(&resp.headers, out);
}

fn version_str(v: Version) -> &'static [u8] {
    if v == Version::HTTP_10 {
        b" HTTP/1.0"
    } else {
        b" HTTP/1.1"
    }
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
    use crate::protocols::http::v1::{parse_request, HeadLimits};

    #[test]
    fn request_round_trip() {
        let raw = b"PUT /a/b?c=d HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\nx-a: 2\r\n\r\n";
        let req = parse_request(&mut BytesMut::from(&raw[..]), &HeadLimits::default())
            .unwrap()
            .unwrap();
        let mut out = BytesMut::new();
        write_request_head(&req, &mut out);
        assert_eq!(&out[..], &raw[..]);
    }

    #[test]
    fn response_head() {
        let mut r = ResponseHeader::new(http::StatusCode::NOT_FOUND);
        r.headers.insert("content-length", "0".parse().unwrap());
        let mut out = BytesMut::new();
        write_response_head(&r, &mut out);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
        );
    }
}

//! Parsing request and response heads (httparse), strictly, without copying values.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::http::{RequestHeader, ResponseHeader};

/// Limits applied while reading a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Most bytes of request line (or status line) plus headers.
    pub max_head_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head_bytes: 32 * 1024,
            max_headers: 128,
        }
    }
}

/// Header slots parsed on the stack; more than this uses the heap.
const STACK_HEADERS: usize = 128;

/// Parses a request head from the front of `buf`. `Ok(Some(head))` consumes exactly the
/// head (a body or a pipelined request stays in `buf`); `Ok(None)` means more bytes are
/// needed. Errors are `InvalidHead` (answer 400) or `HeadTooLarge` (answer 431).
pub fn parse_request(buf: &mut BytesMut, limits: &HeadLimits) -> Result<Option<RequestHeader>> {
    skip_empty_lines(buf);
    let side = Side::Downstream;
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap;
    let slots: &mut [httparse::Header<'_>] = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap = vec![httparse::EMPTY_HEADER; limits.max_headers];
        &mut heap
    };
    let mut req = httparse::Request::new(slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial(buf, limits, side),
        Err(httparse::Error::TooManyHeaders) => return Err(too_many(limits, side)),
        Err(e) => return Err(invalid(side, format!("malformed request head: {e}"))),
    };
    if len > limits.max_head_bytes {
        return Err(too_large(limits, side));
    }
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(invalid(side, "unsupported HTTP version")),
    };
    let base = buf.as_ptr() as usize;
    let method_bytes = req.method.unwrap_or_default().as_bytes();
    let method = Method::from_bytes(method_bytes).map_err(|_| invalid(side, "invalid method"))?;
    let path = req.path.unwrap_or_default();
    let path_range = range_of(base, path.as_bytes());
    let mut ranges = HeaderRanges::new(req.headers.len());
    for h in req.headers.iter() {
        ranges.push(range_of(base, h.name.as_bytes()), range_of(base, h.value));
    }
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path_range))
        .map_err(|_| invalid(side, "invalid request target"))?;
    let headers = build_headers(&head, &ranges, side)?;
    if version == Version::HTTP_11 {
        let hosts = headers.get_all(http::header::HOST).iter().count();
        if hosts != 1 {
            return Err(invalid(
                side,
                if hosts == 0 {
                    "HTTP/1.1 request without Host"
                } else {
                    "request with more than one Host"
                },
            ));
        }
    } else if headers.get_all(http::header::HOST).iter().count() > 1 {
        return Err(invalid(side, "request with more than one Host"));
    }
    Ok(Some(RequestHeader {
        method,
        uri,
        version,
        headers,
    }))
}

/// Parses a response head from the front of `buf`, as [`parse_request`] does.
pub fn parse_response(buf: &mut BytesMut, limits: &HeadLimits) -> Result<Option<ResponseHeader>> {
    let side = Side::Upstream;
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap;
    let slots: &mut [httparse::Header<'_>] = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap = vec![httparse::EMPTY_HEADER; limits.max_headers];
        &mut heap
    };
    let mut resp = httparse::Response::new(slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial(buf, limits, side),
        Err(httparse::Error::TooManyHeaders) => return Err(too_many(limits, side)),
        Err(e) => return Err(invalid(side, format!("malformed response head: {e}"))),
    };
    if len > limits.max_head_bytes {
        return Err(too_large(limits, side));
    }
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(invalid(side, "unsupported HTTP version")),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| invalid(side, "invalid status code"))?;
    let base = buf.as_ptr() as usize;
    let reason_range = resp
        .reason
        .filter(|r| !r.is_empty())
        .map(|r| range_of(base, r.as_bytes()));
    let mut ranges = HeaderRanges::new(resp.headers.len());
    for h in resp.headers.iter() {
        ranges.push(range_of(base, h.name.as_bytes()), range_of(base, h.value));
    }
    let head = buf.split_to(len).freeze();
    let headers = build_headers(&head, &ranges, side)?;
    Ok(Some(ResponseHeader {
        status,
        version,
        headers,
        reason: reason_range.map(|r| head.slice(r)),
    }))
}

/// Drops the empty lines a client may send before a request line (RFC 9112 §2.2).
fn skip_empty_lines(buf: &mut BytesMut) {
    let n = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if n > 0 {
        buf.advance(n);
    }
}

fn partial<T>(buf: &BytesMut, limits: &HeadLimits, side: Side) -> Result<Option<T>> {
    if buf.len() > limits.max_head_bytes {
        Err(too_large(limits, side))
    } else {
        Ok(None)
    }
}

type Range = std::ops::Range<usize>;

/// Header name and value positions within the head, found before it is frozen.
struct HeaderRanges {
    items: Vec<(Range, Range)>,
}

impl HeaderRanges {
    fn new(n: usize) -> Self {
        HeaderRanges {
            items: Vec::with_capacity(n),
        }
    }
    fn push(&mut self, name: Range, value: Range) {
        self.items.push((name, value));
    }
}

fn range_of(base: usize, part: &[u8]) -> Range {
    let start = part.as_ptr() as usize - base;
    start..start + part.len()
}

fn build_headers(head: &Bytes, ranges: &HeaderRanges, side: Side) -> Result<HeaderMap> {
    let mut map = HeaderMap::with_capacity(ranges.items.len());
    for (name, value) in &ranges.items {
        let name = HeaderName::from_bytes(&head[name.clone()])
            .map_err(|_| invalid(side, "invalid header name"))?;
        // Validates: no NUL, CR, LF or other control characters in the value.
        let value = HeaderValue::from_maybe_shared(head.slice(value.clone()))
            .map_err(|_| invalid(side, format!("invalid value of header {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}

fn invalid(side: Side, msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidHead, side, msg)
}

fn too_large(limits: &HeadLimits, side: Side) -> Error {
    Error::new(
        ErrorKind::HeadTooLarge,
        side,
        format!("head larger than {} bytes", limits.max_head_bytes),
    )
}

fn too_many(limits: &HeadLimits, side: Side) -> Error {
    Error::new(
        ErrorKind::HeadTooLarge,
        side,
        format!("more than {} header fields", limits.max_headers),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &[u8]) -> Result<Option<RequestHeader>> {
        parse_request(&mut BytesMut::from(raw), &HeadLimits::default())
    }

    fn kind(raw: &[u8]) -> ErrorKind {
        req(raw).unwrap_err().kind
    }

    #[test]
    fn parses_a_request_and_leaves_the_rest() {
        let mut buf = BytesMut::from(
            &b"\r\nGET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET / HTTP/1.1\r\n"[..],
        );
        let r = parse_request(&mut buf, &HeadLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(r.method, Method::GET);
        assert_eq!(r.path_and_query(), "/a?b=1");
        assert_eq!(r.host(), Some("x"));
        assert_eq!(r.headers.get_all("x-two").iter().count(), 2);
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n");
        assert!(parse_request(&mut buf, &HeadLimits::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn every_split_point_is_partial_then_complete() {
        let raw = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
        for cut in 0..raw.len() {
            let mut buf = BytesMut::from(&raw[..cut]);
            assert!(
                parse_request(&mut buf, &HeadLimits::default())
                    .unwrap()
                    .is_none(),
                "cut {cut}"
            );
            buf.extend_from_slice(&raw[cut..]);
            assert!(parse_request(&mut buf, &HeadLimits::default())
                .unwrap()
                .is_some());
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn rejects_malformed_requests() {
        let bad: &[&[u8]] = &[
            b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\r\n  folded\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET /a HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET  HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a HTTP/2.0\r\nHost: x\r\n\r\n",
            b"G@T /a HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a\0 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a HTTP/1.1\rHost: x\r\n\r\n",
        ];
        for raw in bad {
            assert_eq!(
                kind(raw),
                ErrorKind::InvalidHead,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn http10_needs_no_host() {
        let r = req(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(r.version, Version::HTTP_10);
    }

    #[test]
    fn too_large_heads() {
        let limits = HeadLimits {
            max_head_bytes: 64,
            max_headers: 2,
        };
        let mut buf = BytesMut::from(&[b'a'; 65][..]);
        assert_eq!(
            parse_request(&mut buf, &limits).unwrap_err().kind,
            ErrorKind::HeadTooLarge
        );
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &limits).unwrap_err().kind,
            ErrorKind::HeadTooLarge
        );
    }

    #[test]
    fn parses_responses() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 404 Gone Away\r\nContent-Length: 0\r\n\r\nrest"[..]);
        let r = parse_response(&mut buf, &HeadLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.reason.as_deref(), Some(&b"Gone Away"[..]));
        assert_eq!(&buf[..], b"rest");
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"[..]);
        assert_eq!(
            parse_response(&mut buf, &HeadLimits::default())
                .unwrap_err()
                .kind,
            ErrorKind::InvalidHead
        );
        let mut buf = BytesMut::from(&b"garbage\r\n\r\n"[..]);
        assert!(parse_response(&mut buf, &HeadLimits::default()).is_err());
    }
}

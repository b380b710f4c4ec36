//! Parsing request and response heads, strictly and without copying values.
//!
//! httparse finds the head and its parts; this module adds the checks httparse leaves
//! out (bare LF line ends, the request-target form, the `Host` rules) and builds the
//! [`RequestHeader`] / [`ResponseHeader`] whose target, header values and reason are
//! slices of the frozen head bytes.
//!
//! Line ends must be CRLF: httparse accepts a bare LF, which RFC 9112 §2.2 allows but
//! does not require; we reject it so that we never read a head differently from a
//! stricter peer in front of us.

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

/// Header slots kept on the stack; a larger `max_headers` uses the heap.
const STACK_HEADERS: usize = 128;

/// Most empty lines skipped before a request line in one call.
const MAX_LEADING_EMPTY_LINES: usize = 8;

/// Parses a request head from the front of `buf`. `Ok(Some(head))` consumes exactly the
/// head (a body or a pipelined request stays in `buf`); `Ok(None)` means more bytes are
/// needed. Errors are `InvalidHead` (answer 400) or `HeadTooLarge` (answer 431), with
/// side `Downstream`. Empty lines before the request line are dropped from `buf` even
/// when the head is not complete yet.
pub fn parse_request(buf: &mut BytesMut, limits: &HeadLimits) -> Result<Option<RequestHeader>> {
    let side = Side::Downstream;
    skip_empty_lines(buf)?;
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, limits.max_headers);
    let mut spans = SpanList::new(limits.max_headers);

    let mut req = httparse::Request::new(slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial(buf, limits, side),
        Err(httparse::Error::TooManyHeaders) => return Err(too_many(limits, side)),
        Err(e) => return Err(invalid(side, format!("malformed request head: {e}"))),
    };
    check_head_bytes(&buf[..len], limits, side)?;
    let version = version_of(req.version, side)?;
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| invalid(side, "invalid method"))?;
    let base = buf.as_ptr() as usize;
    let target = Span::of(base, len, req.path.unwrap_or_default().as_bytes());
    for h in req.headers.iter() {
        spans.push(
            Span::of(base, len, h.name.as_bytes()),
            Span::of(base, len, h.value),
        );
    }

    if !buf[target.start..target.end].is_ascii() {
        return Err(invalid(side, "non-ASCII request target"));
    }
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(target.slice(&head))
        .map_err(|_| invalid(side, "invalid request target"))?;
    check_target_form(&method, &uri, side)?;
    let headers = build_headers(&head, spans.as_slice(), side)?;
    check_host(version, &headers, side)?;
    Ok(Some(RequestHeader {
        method,
        uri,
        version,
        headers,
    }))
}

/// Parses a response head from the front of `buf`, as [`parse_request`] does (side
/// `Upstream`). Any three-digit status from 100 to 999 is accepted; the reason phrase is
/// kept as received (it may hold obs-text).
pub fn parse_response(buf: &mut BytesMut, limits: &HeadLimits) -> Result<Option<ResponseHeader>> {
    let side = Side::Upstream;
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, limits.max_headers);
    let mut spans = SpanList::new(limits.max_headers);

    let mut resp = httparse::Response::new(slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial(buf, limits, side),
        Err(httparse::Error::TooManyHeaders) => return Err(too_many(limits, side)),
        Err(e) => return Err(invalid(side, format!("malformed response head: {e}"))),
    };
    check_head_bytes(&buf[..len], limits, side)?;
    let version = version_of(resp.version, side)?;
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| invalid(side, "invalid status code"))?;
    let base = buf.as_ptr() as usize;
    for h in resp.headers.iter() {
        spans.push(
            Span::of(base, len, h.name.as_bytes()),
            Span::of(base, len, h.value),
        );
    }
    let reason = reason_span(&buf[..len]);

    let head = buf.split_to(len).freeze();
    let headers = build_headers(&head, spans.as_slice(), side)?;
    Ok(Some(ResponseHeader {
        status,
        version,
        headers,
        reason: reason.map(|r| r.slice(&head)),
    }))
}

/// Picks header slots: on the stack when `max` fits, else in `heap`.
fn header_slots<'a, 'h>(
    stack: &'a mut [httparse::Header<'h>; STACK_HEADERS],
    heap: &'a mut Vec<httparse::Header<'h>>,
    max: usize,
) -> &'a mut [httparse::Header<'h>] {
    if max <= STACK_HEADERS {
        &mut stack[..max]
    } else {
        heap.resize(max, httparse::EMPTY_HEADER);
        heap
    }
}

/// Drops the empty lines (CRLF) a client may send before a request line (RFC 9112
/// §2.2), at most [`MAX_LEADING_EMPTY_LINES`] of them.
fn skip_empty_lines(buf: &mut BytesMut) -> Result<()> {
    let mut lines = 0;
    while buf.len() >= 2 && buf[0] == b'\r' && buf[1] == b'\n' {
        if lines == MAX_LEADING_EMPTY_LINES {
            return Err(invalid(
                Side::Downstream,
                "too many empty lines before the request line",
            ));
        }
        buf.advance(2);
        lines += 1;
    }
    Ok(())
}

fn partial<T>(buf: &BytesMut, limits: &HeadLimits, side: Side) -> Result<Option<T>> {
    if buf.len() > limits.max_head_bytes {
        Err(too_large(limits, side))
    } else {
        Ok(None)
    }
}

/// Size limit, and the byte rules httparse does not enforce: every LF ends a CRLF, every
/// CR starts one, and there is no NUL anywhere.
fn check_head_bytes(head: &[u8], limits: &HeadLimits, side: Side) -> Result<()> {
    if head.len() > limits.max_head_bytes {
        return Err(too_large(limits, side));
    }
    let mut prev = 0u8;
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\n' if prev != b'\r' => return Err(invalid(side, "bare LF in head")),
            b'\r' if head.get(i + 1) != Some(&b'\n') => {
                return Err(invalid(side, "bare CR in head"))
            }
            0 => return Err(invalid(side, "NUL in head")),
            _ => {}
        }
        prev = b;
    }
    Ok(())
}

fn version_of(v: Option<u8>, side: Side) -> Result<Version> {
    match v {
        Some(0) => Ok(Version::HTTP_10),
        Some(1) => Ok(Version::HTTP_11),
        _ => Err(invalid(side, "unsupported HTTP version")),
    }
}

/// The request target must have the form its method calls for (RFC 9112 §3.2):
/// authority-form (with a port) exactly for CONNECT, `*` only for OPTIONS, otherwise
/// origin-form (`/...`) or absolute-form (`scheme://authority/...`).
fn check_target_form(method: &Method, uri: &Uri, side: Side) -> Result<()> {
    let ok = if method == Method::CONNECT {
        uri.scheme().is_none() && uri.path_and_query().is_none() && uri.port().is_some()
    } else if let Some(pq) = uri.path_and_query().filter(|_| uri.scheme().is_none()) {
        pq.as_str().starts_with('/') || (pq.as_str() == "*" && method == Method::OPTIONS)
    } else {
        uri.scheme().is_some() && uri.authority().is_some()
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(side, "request target does not fit the method"))
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`, an HTTP/1.0 one at most
/// one, and its value must be a valid (possibly empty) authority without userinfo.
fn check_host(version: Version, headers: &HeaderMap, side: Side) -> Result<()> {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Err(invalid(side, "request with more than one Host")),
        (None, None) if version == Version::HTTP_11 => {
            Err(invalid(side, "HTTP/1.1 request without Host"))
        }
        (None, None) => Ok(()),
        (Some(host), None) => {
            if host.as_bytes().iter().all(|&b| is_authority_byte(b)) {
                Ok(())
            } else {
                Err(invalid(side, "invalid Host value"))
            }
        }
    }
}

/// Bytes allowed in a `Host` value: unreserved, sub-delims, `%`, `:`, `[` and `]`.
fn is_authority_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b)
}

/// The reason phrase of a complete, checked status line: whatever follows
/// `HTTP/1.x NNN ` (taken from the bytes, since httparse drops a non-UTF-8 reason).
fn reason_span(head: &[u8]) -> Option<Span> {
    const PREFIX: usize = "HTTP/1.1 200 ".len();
    let line_start = head.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let line_end = line_start + head[line_start..].iter().position(|&b| b == b'\r')?;
    (line_end > line_start + PREFIX).then_some(Span {
        start: line_start + PREFIX,
        end: line_end,
    })
}

/// A byte range of the head, found while httparse still borrows the buffer.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// The range of `part` within the buffer starting at `base` of `len` bytes (empty
    /// if `part` is not inside it, which httparse never does).
    fn of(base: usize, len: usize, part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(base);
        match start.checked_add(part.len()) {
            Some(end) if end <= len => Span { start, end },
            _ => Span::default(),
        }
    }

    fn slice(self, head: &Bytes) -> Bytes {
        head.slice(self.start..self.end)
    }
}

/// Name and value spans of each header, on the stack unless there are many.
struct SpanList {
    stack: [(Span, Span); STACK_HEADERS],
    heap: Vec<(Span, Span)>,
    len: usize,
}

impl SpanList {
    fn new(max: usize) -> Self {
        SpanList {
            stack: [(Span::default(), Span::default()); STACK_HEADERS],
            heap: if max > STACK_HEADERS {
                Vec::with_capacity(max)
            } else {
                Vec::new()
            },
            len: 0,
        }
    }

    fn push(&mut self, name: Span, value: Span) {
        if self.len < STACK_HEADERS && self.heap.is_empty() {
            self.stack[self.len] = (name, value);
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.stack[..self.len]);
            }
            self.heap.push((name, value));
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[(Span, Span)] {
        if self.heap.is_empty() {
            &self.stack[..self.len]
        } else {
            &self.heap
        }
    }
}

fn build_headers(head: &Bytes, spans: &[(Span, Span)], side: Side) -> Result<HeaderMap> {
    let mut map = HeaderMap::with_capacity(spans.len());
    for &(name, value) in spans {
        let name = HeaderName::from_bytes(&head[name.start..name.end])
            .map_err(|_| invalid(side, "invalid header name"))?;
        // Checked again here (no control characters but HTAB); the value shares `head`.
        let value = HeaderValue::from_maybe_shared(value.slice(head))
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

    fn req_err(raw: &[u8]) -> Error {
        match req(raw) {
            Err(e) => e,
            Ok(r) => panic!("accepted {:?}: {r:?}", String::from_utf8_lossy(raw)),
        }
    }

    fn resp(raw: &[u8]) -> Result<Option<ResponseHeader>> {
        parse_response(&mut BytesMut::from(raw), &HeadLimits::default())
    }

    #[test]
    fn parses_a_request_and_leaves_the_rest() {
        let mut buf = BytesMut::from(
            &b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET / HTTP/1.1\r\n"[..],
        );
        let r = parse_request(&mut buf, &HeadLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(r.method, Method::GET);
        assert_eq!(r.version, Version::HTTP_11);
        assert_eq!(r.path_and_query(), "/a?b=1");
        assert_eq!(r.host(), Some("x"));
        let twos: Vec<_> = r.headers.get_all("x-two").iter().collect();
        assert_eq!(twos, ["1", "2"]);
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n");
        assert!(parse_request(&mut buf, &HeadLimits::default())
            .unwrap()
            .is_none());
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn pipelined_requests_parse_one_by_one() {
        let mut buf = BytesMut::from(
            &b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
               POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody\
               HEAD /3 HTTP/1.0\r\n\r\n"[..],
        );
        let limits = HeadLimits::default();
        let first = parse_request(&mut buf, &limits).unwrap().unwrap();
        assert_eq!(first.path_and_query(), "/1");
        let second = parse_request(&mut buf, &limits).unwrap().unwrap();
        assert_eq!(second.method, Method::POST);
        assert_eq!(second.path_and_query(), "/2");
        assert!(buf.starts_with(b"body"));
        buf.advance(4);
        let third = parse_request(&mut buf, &limits).unwrap().unwrap();
        assert_eq!(third.method, Method::HEAD);
        assert_eq!(third.version, Version::HTTP_10);
        assert!(buf.is_empty());
        assert!(parse_request(&mut buf, &limits).unwrap().is_none());
    }

    #[test]
    fn every_split_point_is_partial_then_complete() {
        let raw = b"\r\nPOST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
        for cut in 0..raw.len() {
            let mut buf = BytesMut::from(&raw[..cut]);
            assert!(
                parse_request(&mut buf, &HeadLimits::default())
                    .unwrap()
                    .is_none(),
                "cut {cut}"
            );
            buf.extend_from_slice(&raw[cut..]);
            let r = parse_request(&mut buf, &HeadLimits::default())
                .unwrap()
                .unwrap();
            assert_eq!(r.headers.get("content-length").unwrap(), "3");
            assert!(buf.is_empty(), "cut {cut}");
        }
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
        for cut in 0..raw.len() {
            let mut buf = BytesMut::from(&raw[..cut]);
            assert!(parse_response(&mut buf, &HeadLimits::default())
                .unwrap()
                .is_none());
            buf.extend_from_slice(&raw[cut..]);
            assert!(parse_response(&mut buf, &HeadLimits::default())
                .unwrap()
                .is_some());
            assert!(buf.is_empty(), "cut {cut}");
        }
    }

    #[test]
    fn values_and_target_share_the_read_buffer() {
        let mut buf =
            BytesMut::from(&b"GET /path HTTP/1.1\r\nHost: x\r\nX-Long: abcdef\r\n\r\n"[..]);
        let range = buf.as_ptr_range();
        let r = parse_request(&mut buf, &HeadLimits::default())
            .unwrap()
            .unwrap();
        let value = r.headers.get("x-long").unwrap().as_bytes();
        assert!(range.contains(&value.as_ptr()));
        assert!(range.contains(&r.path_and_query().as_ptr()));
    }

    #[test]
    fn leading_empty_lines_are_skipped_but_bounded() {
        let r = req(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.path_and_query(), "/");
        // A lone CR may be the start of an empty line: wait for more.
        let mut buf = BytesMut::from(&b"\r\n\r"[..]);
        assert!(parse_request(&mut buf, &HeadLimits::default())
            .unwrap()
            .is_none());
        assert_eq!(&buf[..], b"\r");
        let many = b"\r\n".repeat(MAX_LEADING_EMPTY_LINES + 1);
        assert_eq!(req_err(&many).kind, ErrorKind::InvalidHead);
        assert_eq!(
            req_err(b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").kind,
            ErrorKind::InvalidHead
        );
        assert_eq!(
            req_err(b"\rGET / HTTP/1.1\r\nHost: x\r\n\r\n").kind,
            ErrorKind::InvalidHead
        );
    }

    #[test]
    fn rejects_malformed_requests() {
        let bad: &[(&str, &[u8])] = &[
            (
                "obs-fold",
                b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\r\n  folded\r\n\r\n",
            ),
            (
                "obs-fold tab",
                b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\r\n\tfolded\r\n\r\n",
            ),
            (
                "space before first header",
                b"GET /a HTTP/1.1\r\n Host: x\r\n\r\n",
            ),
            (
                "NUL in value",
                b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
            ),
            ("NUL in target", b"GET /a\0 HTTP/1.1\r\nHost: x\r\n\r\n"),
            (
                "NUL in name",
                b"GET /a HTTP/1.1\r\nHost: x\r\nX\0: a\r\n\r\n",
            ),
            (
                "DEL in value",
                b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n",
            ),
            (
                "control in value",
                b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
            ),
            (
                "bare CR in value",
                b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
            ),
            (
                "bare CR ending a line",
                b"GET /a HTTP/1.1\r\nHost: x\r\r\n\r\n",
            ),
            (
                "bare CR in request line",
                b"GET /a HTTP/1.1\rHost: x\r\n\r\n",
            ),
            (
                "bare CR ending the head",
                b"GET /a HTTP/1.1\r\nHost: x\r\n\r\r\n",
            ),
            ("bare LF line ends", b"GET /a HTTP/1.1\nHost: x\n\n"),
            (
                "bare LF ending a header",
                b"GET /a HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
            ),
            (
                "bare LF ending the head",
                b"GET /a HTTP/1.1\r\nHost: x\r\n\n",
            ),
            ("space before colon", b"GET /a HTTP/1.1\r\nHost : x\r\n\r\n"),
            ("tab before colon", b"GET /a HTTP/1.1\r\nHost\t: x\r\n\r\n"),
            ("empty name", b"GET /a HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n"),
            ("bad name", b"GET /a HTTP/1.1\r\nHost: x\r\nX(y): v\r\n\r\n"),
            ("no colon", b"GET /a HTTP/1.1\r\nHost: x\r\nXY\r\n\r\n"),
            ("no Host", b"GET /a HTTP/1.1\r\n\r\n"),
            ("two Host", b"GET /a HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            (
                "two Host 1.0",
                b"GET /a HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n",
            ),
            (
                "Host with userinfo",
                b"GET /a HTTP/1.1\r\nHost: u@a\r\n\r\n",
            ),
            ("Host with path", b"GET /a HTTP/1.1\r\nHost: a/b\r\n\r\n"),
            ("Host with space", b"GET /a HTTP/1.1\r\nHost: a b\r\n\r\n"),
            ("missing target", b"GET  HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("missing version", b"GET /a\r\nHost: x\r\n\r\n"),
            ("two spaces", b"GET  /a HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("tab separator", b"GET\t/a HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("trailing space", b"GET /a HTTP/1.1 \r\nHost: x\r\n\r\n"),
            ("space in target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("HTTP/2.0", b"GET /a HTTP/2.0\r\nHost: x\r\n\r\n"),
            ("HTTP/1.2", b"GET /a HTTP/1.2\r\nHost: x\r\n\r\n"),
            ("lowercase version", b"GET /a http/1.1\r\nHost: x\r\n\r\n"),
            ("HTTP/0.9 style", b"GET /a\r\n\r\n"),
            ("bad method", b"G@T /a HTTP/1.1\r\nHost: x\r\n\r\n"),
            (
                "non-ASCII target",
                b"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
            ),
            ("relative target", b"GET a/b HTTP/1.1\r\nHost: x\r\n\r\n"),
            (
                "authority target for GET",
                b"GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n",
            ),
            ("asterisk for GET", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n"),
            (
                "origin target for CONNECT",
                b"CONNECT /a HTTP/1.1\r\nHost: x\r\n\r\n",
            ),
            (
                "CONNECT without port",
                b"CONNECT x.com HTTP/1.1\r\nHost: x\r\n\r\n",
            ),
            (
                "garbage",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            ),
        ];
        for (what, raw) in bad {
            let err = req_err(raw);
            assert_eq!(err.kind, ErrorKind::InvalidHead, "{what}");
            assert_eq!(err.side, Side::Downstream, "{what}");
        }
    }

    #[test]
    fn accepts_every_target_form() {
        let ok: &[(&[u8], &str)] = &[
            (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "*"),
            (
                b"CONNECT x.com:443 HTTP/1.1\r\nHost: x.com:443\r\n\r\n",
                "/",
            ),
            (
                b"GET http://x.com/p?q HTTP/1.1\r\nHost: x.com\r\n\r\n",
                "/p?q",
            ),
            (
                b"GET /%7Ea?b=%20 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
                "/%7Ea?b=%20",
            ),
        ];
        for (raw, pq) in ok {
            let r = req(raw).unwrap().unwrap();
            assert_eq!(r.path_and_query(), *pq);
        }
        let connect = req(b"CONNECT x.com:443 HTTP/1.1\r\nHost: x.com:443\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(connect.uri.authority().unwrap().as_str(), "x.com:443");
    }

    #[test]
    fn lenient_where_the_rfc_allows() {
        let r = req(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(r.version, Version::HTTP_10);
        assert_eq!(r.host(), None);
        // Empty Host, tab and obs-text in values, OWS trimmed, extension method.
        let r = req(b"PURGE / HTTP/1.1\r\nHost:\r\nX:\t a\tb\xe9 \r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.method.as_str(), "PURGE");
        assert_eq!(r.host(), Some(""));
        assert_eq!(r.headers.get("x").unwrap().as_bytes(), b"a\tb\xe9");
    }

    #[test]
    fn head_size_limits() {
        let limits = HeadLimits {
            max_head_bytes: 64,
            max_headers: 2,
        };
        // Incomplete and already past the limit.
        let mut buf = BytesMut::from(&[b'a'; 65][..]);
        let err = parse_request(&mut buf, &limits).unwrap_err();
        assert_eq!(err.kind, ErrorKind::HeadTooLarge);
        // Incomplete, at the limit: keep reading.
        let mut buf = BytesMut::from(&b"GET /"[..]);
        buf.extend_from_slice(&[b'a'; 59]);
        assert!(parse_request(&mut buf, &limits).unwrap().is_none());
        // Complete but longer than the limit.
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(40));
        let err = parse_request(&mut BytesMut::from(long.as_bytes()), &limits).unwrap_err();
        assert_eq!(err.kind, ErrorKind::HeadTooLarge);
        // Exactly at the limit.
        let exact = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(64 - 27));
        assert_eq!(exact.len(), 64);
        assert!(
            parse_request(&mut BytesMut::from(exact.as_bytes()), &limits)
                .unwrap()
                .is_some()
        );
        // Too many fields, even before the head is complete.
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n"[..]);
        let err = parse_request(&mut buf, &limits).unwrap_err();
        assert_eq!(err.kind, ErrorKind::HeadTooLarge);
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"[..]);
        let err = parse_response(&mut buf, &limits).unwrap_err();
        assert_eq!(
            (err.kind, err.side),
            (ErrorKind::HeadTooLarge, Side::Upstream)
        );
    }

    #[test]
    fn more_headers_than_the_stack_holds() {
        let limits = HeadLimits {
            max_head_bytes: 64 * 1024,
            max_headers: 300,
        };
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..250 {
            raw.push_str(&format!("X-{i}: {i}\r\n"));
        }
        raw.push_str("\r\n");
        let r = parse_request(&mut BytesMut::from(raw.as_bytes()), &limits)
            .unwrap()
            .unwrap();
        assert_eq!(r.headers.len(), 251);
        assert_eq!(r.headers.get("x-249").unwrap(), "249");
        let err = req_err(raw.as_bytes());
        assert_eq!(err.kind, ErrorKind::HeadTooLarge);
    }

    #[test]
    fn parses_responses() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 404 Gone Away\r\nContent-Length: 0\r\n\r\nrest"[..]);
        let r = parse_response(&mut buf, &HeadLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.version, Version::HTTP_11);
        assert_eq!(r.reason.as_deref(), Some(&b"Gone Away"[..]));
        assert_eq!(r.headers.get("content-length").unwrap(), "0");
        assert_eq!(&buf[..], b"rest");

        let r = resp(b"HTTP/1.0 999 \xe9t\xe9\r\n\r\n").unwrap().unwrap();
        assert_eq!(r.status.as_u16(), 999);
        assert_eq!(r.version, Version::HTTP_10);
        assert_eq!(r.reason.as_deref(), Some(&b"\xe9t\xe9"[..]));
        for no_reason in [&b"HTTP/1.1 200\r\n\r\n"[..], b"HTTP/1.1 200 \r\n\r\n"] {
            assert_eq!(resp(no_reason).unwrap().unwrap().reason, None);
        }
        let r = resp(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap().unwrap();
        assert_eq!(r.status, StatusCode::CONTINUE);
    }

    #[test]
    fn rejects_malformed_responses() {
        let bad: &[(&str, &[u8])] = &[
            ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
            ("space before colon", b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n"),
            ("bare LF", b"HTTP/1.1 200 OK\nX: a\n\n"),
            ("bare CR", b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"),
            ("NUL", b"HTTP/1.1 200 OK\r\nX: \0\r\n\r\n"),
            ("control in reason", b"HTTP/1.1 200 O\x01K\r\n\r\n"),
            ("status below 100", b"HTTP/1.1 099 Low\r\n\r\n"),
            ("two-digit status", b"HTTP/1.1 20 OK\r\n\r\n"),
            ("four-digit status", b"HTTP/1.1 2000 OK\r\n\r\n"),
            ("HTTP/2", b"HTTP/2.0 200 OK\r\n\r\n"),
            ("garbage", b"garbage\r\n\r\n"),
        ];
        for (what, raw) in bad {
            let err = resp(raw).unwrap_err();
            assert_eq!(
                (err.kind, err.side),
                (ErrorKind::InvalidHead, Side::Upstream),
                "{what}"
            );
        }
    }
}

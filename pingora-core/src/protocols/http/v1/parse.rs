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

use std::mem::MaybeUninit;

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

/// Most empty lines skipped before a request line.
const MAX_LEADING_EMPTY_LINES: usize = 8;

/// Parses a request head from the front of `buf`. `Ok(Some(head))` consumes exactly the
/// head (a body or a pipelined request stays in `buf`); `Ok(None)` means more bytes are
/// needed. Errors are `InvalidHead` (answer 400) or `HeadTooLarge` (answer 431), with
/// side `Downstream`. Empty lines before the request line are dropped from `buf` even
/// when the head is not complete yet.
pub fn parse_request(buf: &mut BytesMut, limits: &HeadLimits) -> Result<Option<RequestHeader>> {
    let side = Side::Downstream;
    skip_empty_lines(buf)?;
    let mut stack = [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, limits.max_headers);

    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
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
    let mut spans = SpanList::new(req.headers.len());
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
    let mut stack = [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, limits.max_headers);

    let mut resp = httparse::Response::new(&mut []);
    let parsed =
        httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, slots);
    let len = match parsed {
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
    let mut spans = SpanList::new(resp.headers.len());
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

/// Header slots for httparse, left uninitialized (httparse only reads what it wrote):
/// on the stack when `max` fits, else in `heap`.
fn header_slots<'a, 'h>(
    stack: &'a mut [UninitHeader<'h>; STACK_HEADERS],
    heap: &'a mut Vec<UninitHeader<'h>>,
    max: usize,
) -> &'a mut [UninitHeader<'h>] {
    if max <= STACK_HEADERS {
        &mut stack[..max]
    } else {
        heap.resize_with(max, MaybeUninit::uninit);
        heap
    }
}

type UninitHeader<'h> = MaybeUninit<httparse::Header<'h>>;

/// Drops the empty lines (CRLF) a client may send before a request line (RFC 9112
/// §2.2), at most [`MAX_LEADING_EMPTY_LINES`] of them. They are dropped only once
/// something else follows them: until then every call sees them all again, so the
/// limit holds however the bytes arrive (found by fuzzing: nine empty lines in one
/// read were refused, the same nine in two reads were not; then the same with the
/// second read starting between the CR and the LF of an empty line).
fn skip_empty_lines(buf: &mut BytesMut) -> Result<()> {
    let mut lines = 0;
    while buf.len() >= 2 * lines + 2 && buf[2 * lines] == b'\r' && buf[2 * lines + 1] == b'\n' {
        if lines == MAX_LEADING_EMPTY_LINES {
            return Err(invalid(
                Side::Downstream,
                "too many empty lines before the request line",
            ));
        }
        lines += 1;
    }
    // A lone CR after them may be the start of one more empty line: not "something else".
    let rest = &buf[2 * lines..];
    if !rest.is_empty() && rest != b"\r" {
        buf.advance(2 * lines);
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

/// Size limit, and the byte rule httparse does not enforce (see [`find_bare_lf`]).
fn check_head_bytes(head: &[u8], limits: &HeadLimits, side: Side) -> Result<()> {
    if head.len() > limits.max_head_bytes {
        return Err(too_large(limits, side));
    }
    if find_bare_lf(head) {
        return Err(invalid(side, "bare LF in head"));
    }
    Ok(())
}

/// Whether a head or trailer section that httparse accepted has an LF not preceded by
/// CR. That is the one line-end rule httparse relaxes: it already rejects a bare CR
/// and a NUL anywhere (the tests hold it to that).
pub(super) fn find_bare_lf(head: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = find_lf(&head[from..]) {
        let at = from + i;
        if at == 0 || head[at - 1] != b'\r' {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Position of the first LF, eight bytes at a time.
fn find_lf(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = hay.chunks_exact(8);
    for (n, word) in words.by_ref().enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes) ^ LFS;
        // Non-zero iff some byte of `x` is zero; the lowest flagged byte is exact.
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(8 * n + (zero.trailing_zeros() / 8) as usize);
        }
    }
    let tail = words.remainder();
    let done = hay.len() - tail.len();
    tail.iter().position(|&b| b == b'\n').map(|i| done + i)
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
            if host
                .as_bytes()
                .iter()
                .all(|&b| AUTHORITY_BYTES[usize::from(b)])
            {
                Ok(())
            } else {
                Err(invalid(side, "invalid Host value"))
            }
        }
    }
}

/// Bytes allowed in a `Host` value: unreserved, sub-delims, `%`, `:`, `[` and `]`.
static AUTHORITY_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
                    | b':'
                    | b'['
                    | b']'
            );
        b += 1;
    }
    table
};

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

/// Header spans kept on the stack; more headers than this use the heap.
const STACK_SPANS: usize = 48;

/// Name and value spans of each header, on the stack unless there are many.
struct SpanList {
    stack: [(Span, Span); STACK_SPANS],
    heap: Vec<(Span, Span)>,
    len: usize,
}

impl SpanList {
    /// Room for `count` headers.
    fn new(count: usize) -> Self {
        SpanList {
            stack: [(Span::default(), Span::default()); STACK_SPANS],
            heap: if count > STACK_SPANS {
                Vec::with_capacity(count)
            } else {
                Vec::new()
            },
            len: 0,
        }
    }

    fn push(&mut self, name: Span, value: Span) {
        match self.stack.get_mut(self.len) {
            Some(slot) if self.heap.capacity() == 0 => *slot = (name, value),
            _ => self.heap.push((name, value)),
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[(Span, Span)] {
        if self.heap.capacity() == 0 {
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
        // A lone CR may be the start of an empty line: wait for more, dropping nothing.
        let mut buf = BytesMut::from(&b"\r\n\r"[..]);
        assert!(parse_request(&mut buf, &HeadLimits::default())
            .unwrap()
            .is_none());
        assert_eq!(&buf[..], b"\r\n\r");
        // So ten empty lines split between the CR and LF of one are still too many.
        let ten = b"\r\n".repeat(10);
        let mut buf = BytesMut::from(&ten[..9]);
        assert!(parse_request(&mut buf, &HeadLimits::default())
            .unwrap()
            .is_none());
        buf.extend_from_slice(&ten[9..]);
        let err = parse_request(&mut buf, &HeadLimits::default()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidHead);
        let many = b"\r\n".repeat(MAX_LEADING_EMPTY_LINES + 1);
        assert_eq!(req_err(&many).kind, ErrorKind::InvalidHead);
        // However they arrive (found by fuzzing): the limit, then one more later.
        let mut buf = BytesMut::from(&b"\r\n".repeat(MAX_LEADING_EMPTY_LINES)[..]);
        assert!(parse_request(&mut buf, &HeadLimits::default())
            .unwrap()
            .is_none());
        buf.extend_from_slice(b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let err = parse_request(&mut buf, &HeadLimits::default()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidHead);
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
        // Header sections after `GET /a HTTP/1.1\r\nHost: x\r\n`.
        let bad_fields: &[&[u8]] = &[
            b"X: a\r\n  obs-fold\r\n\r\n",
            b"X: a\r\n\tobs-fold\r\n\r\n",
            b"X: a\0b\r\n\r\n",
            b"X\0: a\r\n\r\n",
            b"X: a\x7fb\r\n\r\n",
            b"X: a\x01b\r\n\r\n",
            b"X: a\rb\r\n\r\n",
            b"X: a\r\r\n\r\n",
            b"\r\r\n",
            b"X: a\nY: b\r\n\r\n",
            b"\n",
            b"X : space before colon\r\n\r\n",
            b"X\t: tab before colon\r\n\r\n",
            b": empty name\r\n\r\n",
            b"X(y): bad name\r\n\r\n",
            b"NoColon\r\n\r\n",
            b"Host: a\r\n\r\n",
        ];
        let bad_heads: &[&[u8]] = &[
            b"GET /a HTTP/1.1\r\n Host: x\r\n\r\n",
            b"GET /a\0 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a HTTP/1.1\rHost: x\r\n\r\n",
            b"GET /a HTTP/1.1\nHost: x\n\n",
            b"GET /a HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: u@a\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: a/b\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"GET  HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a\r\nHost: x\r\n\r\n",
            b"GET  /a HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET\t/a HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a HTTP/1.1 \r\nHost: x\r\n\r\n",
            b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a HTTP/2.0\r\nHost: x\r\n\r\n",
            b"GET /a HTTP/1.2\r\nHost: x\r\n\r\n",
            b"GET /a http/1.1\r\nHost: x\r\n\r\n",
            b"GET /a\r\n\r\n",
            b"G@T /a HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET a/b HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT /a HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT x.com HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        ];
        let with_host = bad_fields
            .iter()
            .map(|f| [&b"GET /a HTTP/1.1\r\nHost: x\r\n"[..], f].concat());
        for raw in with_host.chain(bad_heads.iter().map(|h| h.to_vec())) {
            let err = req_err(&raw);
            let what = String::from_utf8_lossy(&raw);
            assert_eq!(err.kind, ErrorKind::InvalidHead, "{what:?}");
            assert_eq!(err.side, Side::Downstream, "{what:?}");
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
    fn finds_every_bare_lf() {
        for len in 0..40 {
            let mut line = vec![b'a'; len];
            assert!(!find_bare_lf(&line));
            assert_eq!(find_lf(&line), None);
            for at in 0..len {
                line[at] = b'\n';
                assert_eq!(find_lf(&line), Some(at), "len {len} at {at}");
                assert!(find_bare_lf(&line));
                if at > 0 {
                    line[at - 1] = b'\r';
                    assert!(!find_bare_lf(&line), "len {len} at {at}");
                    line[at - 1] = b'a';
                }
                line[at] = b'a';
            }
        }
        assert!(find_bare_lf(b"\r\n\r\n\n"));
        assert!(!find_bare_lf(b"\r\n\r\n"));
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

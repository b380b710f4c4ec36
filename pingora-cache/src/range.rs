//! Byte ranges (RFC 9110 §14): a client's `Range` (and `If-Range`) resolved against a
//! response of known length, for answers from the cache.
//!
//! One range (or several that overlap or touch, merged into one) is answered `206` with
//! `Content-Range`; ranges that all lie past the end are answered `416`. Several
//! separate ranges get the whole response (`200`), which RFC 9110 §14.2 allows: a
//! `multipart/byteranges` answer is seldom asked for (browsers and media players ask
//! for one range) and many small ranges are a known way to make a server work hard.

use http::header::{HeaderMap, HeaderValue, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use http::{Method, StatusCode};
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};

use crate::etag::EntityTag;
use crate::http_date;

/// More ranges than this in one request are not looked at: the whole response is sent.
const MAX_RANGES: usize = 64;

/// Bytes `start..=end` of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// The first byte.
    pub start: u64,
    /// The last byte (included).
    pub end: u64,
}

impl ByteRange {
    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// `Content-Range` of this range of a response of `complete` bytes.
    pub fn content_range(&self, complete: u64) -> HeaderValue {
        HeaderValue::try_from(format!("bytes {}-{}/{complete}", self.start, self.end))
            .unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
    }
}

/// `Content-Range` of a `416` for a response of `complete` bytes.
pub fn unsatisfiable_content_range(complete: u64) -> HeaderValue {
    HeaderValue::try_from(format!("bytes */{complete}"))
        .unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
}

/// How to answer a request's `Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole response: no `Range`, one that does not apply (not `GET`, not a `200`,
    /// not in bytes, malformed, an `If-Range` that does not match), or several separate
    /// ranges.
    Whole,
    /// `206 Partial Content` with this range.
    Partial(ByteRange),
    /// `416 Range Not Satisfiable`: no range overlaps the response.
    Unsatisfiable,
}

/// One member of a `bytes=` range set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last`.
    From(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// The ranges a request asks for, before the response's length is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRequest {
    specs: Vec<Spec>,
}

impl RangeRequest {
    /// The `Range` of `req` when the cache should act on it: a `GET` with one valid
    /// `bytes=` field. `None` otherwise (the whole response is then sent).
    pub fn from_request(req: &RequestHeader) -> Option<RangeRequest> {
        if req.method != Method::GET {
            return None;
        }
        let mut fields = req.headers.get_all(RANGE).iter();
        let field = fields.next()?;
        if fields.next().is_some() {
            return None;
        }
        RangeRequest::parse(field.to_str().ok()?)
    }

    /// Parses `bytes=0-99,200-,-50`; `None` for another unit, a syntax error, a range
    /// whose last byte comes before its first, or too many ranges.
    pub fn parse(value: &str) -> Option<RangeRequest> {
        let (unit, set) = value.trim().split_once('=')?;
        if !unit.trim().eq_ignore_ascii_case("bytes") {
            return None;
        }
        let mut specs = Vec::new();
        for member in set.split(',') {
            let member = member.trim();
            if member.is_empty() {
                continue;
            }
            if specs.len() == MAX_RANGES {
                return None;
            }
            let (first, last) = member.split_once('-')?;
            let (first, last) = (first.trim(), last.trim());
            let spec = if first.is_empty() {
                Spec::Suffix(digits(last)?)
            } else {
                let first = digits(first)?;
                let last = if last.is_empty() {
                    None
                } else {
                    Some(digits(last)?)
                };
                if last.is_some_and(|l| l < first) {
                    return None;
                }
                Spec::From(first, last)
            };
            specs.push(spec);
        }
        (!specs.is_empty()).then_some(RangeRequest { specs })
    }

    /// The answer for a response of `len` bytes.
    pub fn resolve(&self, len: u64) -> RangeAnswer {
        let mut ranges: Vec<ByteRange> = self
            .specs
            .iter()
            .filter_map(|spec| match *spec {
                Spec::From(first, _) if first >= len => None,
                Spec::From(first, last) => Some(ByteRange {
                    start: first,
                    end: last.map_or(len - 1, |l| l.min(len - 1)),
                }),
                Spec::Suffix(0) => None,
                Spec::Suffix(_) if len == 0 => None,
                Spec::Suffix(n) => Some(ByteRange {
                    start: len.saturating_sub(n),
                    end: len - 1,
                }),
            })
            .collect();
        if ranges.is_empty() {
            return RangeAnswer::Unsatisfiable;
        }
        ranges.sort_unstable_by_key(|r| r.start);
        let mut merged = ranges[0];
        for r in &ranges[1..] {
            if r.start > merged.end.saturating_add(1) {
                return RangeAnswer::Whole;
            }
            merged.end = merged.end.max(r.end);
        }
        RangeAnswer::Partial(merged)
    }
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A number too large for u64 is past the end of any response.
    Some(s.parse().unwrap_or(u64::MAX))
}

/// Whether the request's `If-Range` (if any) lets its `Range` apply to `response`
/// (RFC 9110 §13.1.5): an entity tag must equal the response's `ETag` by the strong
/// comparison; a date must equal its `Last-Modified`. Without `If-Range`, true.
pub fn if_range_matches(request: &HeaderMap, response: &HeaderMap) -> bool {
    let Some(condition) = request.get(IF_RANGE) else {
        return true;
    };
    let condition = condition.as_bytes().trim_ascii();
    if condition.starts_with(b"\"") || condition.starts_with(b"W/") {
        let (Some(wanted), Some(current)) = (
            EntityTag::parse(condition),
            response
                .get(ETAG)
                .and_then(|v| EntityTag::parse(v.as_bytes())),
        ) else {
            return false;
        };
        return wanted.strong_eq(&current);
    }
    let date = |v: &[u8]| std::str::from_utf8(v).ok().and_then(http_date::parse);
    match (
        date(condition),
        response.get(LAST_MODIFIED).and_then(|v| date(v.as_bytes())),
    ) {
        (Some(wanted), Some(modified)) => wanted == modified,
        _ => false,
    }
}

/// How to answer `req` from `response` (head) whose body has `len` bytes: ranges apply
/// to a `200` only, for a `GET` whose `If-Range` matches.
pub fn range_answer(req: &RequestHeader, response: &ResponseHeader, len: u64) -> RangeAnswer {
    match applicable_range(req, response) {
        Some(range) => range.resolve(len),
        None => RangeAnswer::Whole,
    }
}

/// The request's ranges, when they apply to `response` (a `200` for a `GET` whose
/// `If-Range` matches); the length need not be known yet.
pub fn applicable_range(req: &RequestHeader, response: &ResponseHeader) -> Option<RangeRequest> {
    if response.status != StatusCode::OK {
        return None;
    }
    let range = RangeRequest::from_request(req)?;
    if_range_matches(&req.headers, &response.headers).then_some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(value: &str, len: u64) -> Option<RangeAnswer> {
        RangeRequest::parse(value).map(|r| r.resolve(len))
    }

    fn partial(start: u64, end: u64) -> Option<RangeAnswer> {
        Some(RangeAnswer::Partial(ByteRange { start, end }))
    }

    #[test]
    fn single_ranges() {
        assert_eq!(resolve("bytes=0-9", 100), partial(0, 9));
        assert_eq!(resolve("bytes=90-", 100), partial(90, 99));
        assert_eq!(resolve("bytes=90-500", 100), partial(90, 99));
        assert_eq!(resolve("bytes=-10", 100), partial(90, 99));
        assert_eq!(resolve("bytes=-500", 100), partial(0, 99));
        assert_eq!(resolve("Bytes = 5-5", 100), partial(5, 5));
        assert_eq!(resolve("bytes=99-", 100), partial(99, 99));
        assert_eq!(
            resolve("bytes=99999999999999999999999-", 100),
            Some(RangeAnswer::Unsatisfiable)
        );
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(resolve("bytes=100-", 100), Some(RangeAnswer::Unsatisfiable));
        assert_eq!(resolve("bytes=-0", 100), Some(RangeAnswer::Unsatisfiable));
        assert_eq!(resolve("bytes=0-", 0), Some(RangeAnswer::Unsatisfiable));
        assert_eq!(
            resolve("bytes=200-300, 400-", 100),
            Some(RangeAnswer::Unsatisfiable)
        );
        // Syntax errors and other units: the Range is ignored.
        for bad in [
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes=",
            "bytes 0-1",
            "bytes=1-2-3",
            "bytes=--1",
        ] {
            assert_eq!(resolve(bad, 100), None, "{bad}");
        }
        let many = format!("bytes={}", vec!["0-1"; MAX_RANGES + 1].join(","));
        assert_eq!(resolve(&many, 100), None);
    }

    #[test]
    fn several_ranges_merge_or_give_the_whole_response() {
        assert_eq!(resolve("bytes=0-9,10-19", 100), partial(0, 19));
        assert_eq!(resolve("bytes=10-19,0-15", 100), partial(0, 19));
        assert_eq!(resolve("bytes=0-9,200-300", 100), partial(0, 9));
        assert_eq!(resolve("bytes=0-9,20-29", 100), Some(RangeAnswer::Whole));
        assert_eq!(resolve("bytes=0-0,-1", 100), Some(RangeAnswer::Whole));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn if_range_needs_a_strong_match() {
        const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
        let resp = headers(&[("etag", "\"v1\""), ("last-modified", LM)]);
        let matches = |v| if_range_matches(&headers(&[("if-range", v)]), &resp);
        assert!(if_range_matches(&HeaderMap::new(), &resp));
        assert!(matches("\"v1\""));
        assert!(!matches("W/\"v1\""));
        assert!(!matches("\"v2\""));
        assert!(matches(LM));
        assert!(!matches("Mon, 07 Nov 1994 08:49:37 GMT"));
        assert!(!matches("garbage"));
        let weak = headers(&[("etag", "W/\"v1\"")]);
        assert!(!if_range_matches(
            &headers(&[("if-range", "W/\"v1\"")]),
            &weak
        ));
    }

    #[test]
    fn ranges_apply_to_a_get_answered_200() {
        let mut req = RequestHeader::new(Method::GET, http::Uri::from_static("/x"));
        req.headers
            .insert(RANGE, HeaderValue::from_static("bytes=0-1"));
        let ok = ResponseHeader::new(StatusCode::OK);
        assert_eq!(range_answer(&req, &ok, 10), partial(0, 1).unwrap());
        let not_found = ResponseHeader::new(StatusCode::NOT_FOUND);
        assert_eq!(range_answer(&req, &not_found, 10), RangeAnswer::Whole);
        req.method = Method::HEAD;
        assert_eq!(range_answer(&req, &ok, 10), RangeAnswer::Whole);
        assert_eq!(
            ByteRange { start: 2, end: 5 }.content_range(10),
            "bytes 2-5/10"
        );
        assert_eq!(unsatisfiable_content_range(10), "bytes */10");
    }
}

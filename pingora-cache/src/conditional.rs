//! A client's own conditional request answered by the cache (RFC 9110 §13.2, RFC 9111
//! §4.3.2): `If-None-Match` and `If-Modified-Since` evaluated against the stored
//! response that would answer it, and the head of the `304 Not Modified` sent instead.

use http::header::{
    CONTENT_LENGTH, CONTENT_RANGE, DATE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
    TRANSFER_ENCODING,
};
use http::{Method, StatusCode};
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};

use crate::etag::{tag_list, EntityTag, TagList};
use crate::http_date;

/// Whether the client already has the stored response `stored`, so that the cache
/// answers `304 Not Modified` instead of sending it again.
///
/// Only `GET` and `HEAD` with a stored `2xx` response are evaluated. `If-None-Match`
/// decides when present: `*`, or any listed tag equal to the stored `ETag` by the weak
/// comparison. Otherwise `If-Modified-Since`: the stored `Last-Modified` (or, without
/// one, its `Date`) is not later than the date given. An invalid date is ignored.
pub fn client_copy_is_current(req: &RequestHeader, stored: &ResponseHeader) -> bool {
    if req.method != Method::GET && req.method != Method::HEAD {
        return false;
    }
    if !stored.status.is_success() {
        return false;
    }
    if let Some(list) = tag_list(&req.headers, &IF_NONE_MATCH) {
        return match list {
            TagList::Any => true,
            TagList::Tags(tags) => {
                let Some(current) = stored
                    .headers
                    .get(ETAG)
                    .and_then(|v| EntityTag::parse(v.as_bytes()))
                else {
                    return false;
                };
                tags.iter().any(|t| t.weak_eq(&current))
            }
        };
    }
    let Some(since) = date_of(req.headers.get(IF_MODIFIED_SINCE)) else {
        return false;
    };
    let modified =
        date_of(stored.headers.get(LAST_MODIFIED)).or_else(|| date_of(stored.headers.get(DATE)));
    modified.is_some_and(|m| m <= since)
}

fn date_of(value: Option<&http::HeaderValue>) -> Option<std::time::SystemTime> {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(http_date::parse)
}

/// The head of the `304` that answers from `stored`: its status changed, its fields
/// kept (`ETag`, `Cache-Control`, `Expires`, `Vary`, `Content-Location`, `Date` and
/// the others a `200` would carry: RFC 9110 §15.4.5) except those describing the body
/// it does not carry (`Content-Length`, `Content-Range`, `Transfer-Encoding`).
pub fn not_modified_head(stored: &ResponseHeader) -> ResponseHeader {
    let mut head = stored.clone();
    head.status = StatusCode::NOT_MODIFIED;
    head.reason = None;
    for name in [CONTENT_LENGTH, CONTENT_RANGE, TRANSFER_ENCODING] {
        head.headers.remove(name);
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const OLD: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const NEW: &str = "Mon, 07 Nov 1994 08:49:37 GMT";

    fn req(method: Method, pairs: &[(&'static str, &'static str)]) -> RequestHeader {
        let mut r = RequestHeader::new(method, http::Uri::from_static("/x"));
        for (k, v) in pairs {
            r.headers.append(*k, HeaderValue::from_static(v));
        }
        r
    }

    fn stored(status: u16, pairs: &[(&'static str, &'static str)]) -> ResponseHeader {
        let mut h = ResponseHeader::new(StatusCode::from_u16(status).unwrap());
        for (k, v) in pairs {
            h.headers.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison_and_wins() {
        let s = stored(200, &[("etag", "\"v1\""), ("last-modified", OLD)]);
        let current = |pairs| client_copy_is_current(&req(Method::GET, pairs), &s);
        assert!(current(&[("if-none-match", "\"v1\"")]));
        assert!(current(&[("if-none-match", "W/\"v1\"")]));
        assert!(current(&[("if-none-match", "\"v0\", \"v1\"")]));
        assert!(current(&[("if-none-match", "*")]));
        assert!(!current(&[("if-none-match", "\"v2\"")]));
        // If-None-Match present: If-Modified-Since is not looked at.
        assert!(!current(&[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", NEW)
        ]));
        let no_etag = stored(200, &[]);
        assert!(!client_copy_is_current(
            &req(Method::GET, &[("if-none-match", "\"v1\"")]),
            &no_etag
        ));
    }

    #[test]
    fn if_modified_since_compares_last_modified_or_date() {
        let s = stored(200, &[("last-modified", OLD)]);
        let current = |pairs| client_copy_is_current(&req(Method::GET, pairs), &s);
        assert!(current(&[("if-modified-since", OLD)]));
        assert!(current(&[("if-modified-since", NEW)]));
        assert!(!current(&[(
            "if-modified-since",
            "Sat, 05 Nov 1994 08:49:37 GMT"
        )]));
        assert!(!current(&[("if-modified-since", "yesterday")]));
        assert!(!current(&[]));
        let dated = stored(200, &[("date", OLD)]);
        assert!(client_copy_is_current(
            &req(Method::GET, &[("if-modified-since", NEW)]),
            &dated
        ));
    }

    #[test]
    fn only_get_and_head_of_a_success() {
        let s = stored(200, &[("etag", "\"v1\"")]);
        let inm = [("if-none-match", "\"v1\"")];
        assert!(client_copy_is_current(&req(Method::HEAD, &inm), &s));
        assert!(!client_copy_is_current(&req(Method::POST, &inm), &s));
        let not_found = stored(404, &[("etag", "\"v1\"")]);
        assert!(!client_copy_is_current(&req(Method::GET, &inm), &not_found));
    }

    #[test]
    fn the_304_head_keeps_metadata_but_not_framing() {
        let s = stored(
            200,
            &[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=60"),
                ("content-length", "10"),
                ("content-type", "text/plain"),
            ],
        );
        let h = not_modified_head(&s);
        assert_eq!(h.status, StatusCode::NOT_MODIFIED);
        assert_eq!(h.headers["etag"], "\"v1\"");
        assert_eq!(h.headers["cache-control"], "max-age=60");
        assert!(!h.headers.contains_key("content-length"));
    }
}

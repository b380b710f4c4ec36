//! Conditional revalidation (RFC 9111 §4.3): the conditional request sent for a stale
//! entry, and the stored head updated by a `304 Not Modified`.

use http::header::{
    HeaderMap, HeaderName, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED, TRANSFER_ENCODING,
};
use pingora_core::protocols::http::ResponseHeader;

/// Removes the client's `If-None-Match`/`If-Modified-Since`: a fetch that fills the cache
/// needs the full response, not a `304` meant for the client's own copy.
pub fn strip_conditionals(request: &mut HeaderMap) {
    request.remove(IF_NONE_MATCH);
    request.remove(IF_MODIFIED_SINCE);
}

/// Turns `request` into a revalidation of `stored`: `If-None-Match` with its `ETag`,
/// `If-Modified-Since` with its `Last-Modified` (the client's own conditionals are
/// replaced). False when `stored` has no validator (the request is then a plain fetch).
pub fn make_conditional(stored: &ResponseHeader, request: &mut HeaderMap) -> bool {
    strip_conditionals(request);
    let mut any = false;
    if let Some(etag) = stored.headers.get(ETAG) {
        request.insert(IF_NONE_MATCH, etag.clone());
        any = true;
    }
    if let Some(lm) = stored.headers.get(LAST_MODIFIED) {
        request.insert(IF_MODIFIED_SINCE, lm.clone());
        any = true;
    }
    any
}

/// The stored head updated with the header fields of a `304` (RFC 9111 §3.2): each
/// field the `304` carries replaces the stored one, except the framing fields that
/// describe the stored body.
pub fn merge_not_modified(
    stored: &ResponseHeader,
    not_modified: &ResponseHeader,
) -> ResponseHeader {
    const KEEP: [HeaderName; 3] = [CONTENT_LENGTH, TRANSFER_ENCODING, CONTENT_RANGE];
    let mut merged = stored.clone();
    let mut replaced: Vec<&HeaderName> = Vec::new();
    for (name, value) in &not_modified.headers {
        if KEEP.contains(name) {
            continue;
        }
        if !replaced.contains(&name) {
            merged.headers.remove(name);
            replaced.push(name);
        }
        merged.headers.append(name.clone(), value.clone());
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, StatusCode};

    fn head(status: u16, pairs: &[(&'static str, &'static str)]) -> ResponseHeader {
        let mut h = ResponseHeader::new(StatusCode::from_u16(status).unwrap());
        for (k, v) in pairs {
            h.headers.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn conditional_request_uses_the_stored_validators() {
        let stored = head(
            200,
            &[
                ("etag", "\"v1\""),
                ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
        );
        let mut req = HeaderMap::new();
        req.insert(IF_NONE_MATCH, HeaderValue::from_static("\"client\""));
        assert!(make_conditional(&stored, &mut req));
        assert_eq!(req.get(IF_NONE_MATCH).unwrap(), "\"v1\"");
        assert_eq!(
            req.get(IF_MODIFIED_SINCE).unwrap(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        let mut req = HeaderMap::new();
        req.insert(IF_NONE_MATCH, HeaderValue::from_static("\"client\""));
        assert!(!make_conditional(&head(200, &[]), &mut req));
        assert!(req.is_empty());
    }

    #[test]
    fn a_304_updates_headers_but_not_framing() {
        let stored = head(
            200,
            &[
                ("content-length", "5"),
                ("cache-control", "max-age=1"),
                ("x-a", "1"),
                ("x-a", "2"),
                ("etag", "\"v1\""),
            ],
        );
        let nm = head(
            304,
            &[
                ("cache-control", "max-age=60"),
                ("content-length", "0"),
                ("x-a", "3"),
                ("x-new", "n"),
            ],
        );
        let m = merge_not_modified(&stored, &nm);
        assert_eq!(m.status, StatusCode::OK);
        assert_eq!(m.headers.get("content-length").unwrap(), "5");
        assert_eq!(m.headers.get("cache-control").unwrap(), "max-age=60");
        let xa: Vec<_> = m.headers.get_all("x-a").iter().collect();
        assert_eq!(xa, ["3"]);
        assert_eq!(m.headers.get("x-new").unwrap(), "n");
        assert_eq!(m.headers.get("etag").unwrap(), "\"v1\"");
    }
}

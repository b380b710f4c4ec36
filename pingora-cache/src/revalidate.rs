//! Conditional revalidation (RFC 9111 §4.3): the conditional request sent for a stale
//! entry, and the stored head updated by a `304 Not Modified`.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, AGE, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_RANGE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, TE, TRANSFER_ENCODING,
    UPGRADE, WARNING,
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

/// Fields a `304` never changes in the stored head: the framing and encoding of the
/// stored body (RFC 9111 §3.2: `Content-Length`, and fields the stored body depends on),
/// the validators that identify it (§4.3.4), and hop-by-hop fields (§3.1).
const KEPT: [HeaderName; 11] = [
    CONTENT_LENGTH,
    CONTENT_ENCODING,
    CONTENT_RANGE,
    TRANSFER_ENCODING,
    ETAG,
    LAST_MODIFIED,
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    UPGRADE,
];

/// Whether a `304` answers for the stored response, so that it may freshen it
/// (RFC 9111 §4.3.4): a strong `ETag` in the `304` must be the stored strong `ETag`; a
/// weak one must have the stored one's value (weak comparison); without `ETag`, a
/// `Last-Modified` must equal the stored one; a `304` with neither validator matches.
/// When this is false the stored response must not be updated: fetch it anew.
pub fn not_modified_matches(stored: &ResponseHeader, not_modified: &ResponseHeader) -> bool {
    if let Some(new) = not_modified.headers.get(ETAG) {
        let Some(old) = stored.headers.get(ETAG) else {
            return false;
        };
        let (new_weak, new_tag) = entity_tag(new.as_bytes());
        let (old_weak, old_tag) = entity_tag(old.as_bytes());
        if new_tag != old_tag {
            return false;
        }
        return new_weak || !old_weak;
    }
    if let Some(new) = not_modified.headers.get(LAST_MODIFIED) {
        return stored
            .headers
            .get(LAST_MODIFIED)
            .is_some_and(|old| old.as_bytes().trim_ascii() == new.as_bytes().trim_ascii());
    }
    true
}

/// Splits an entity tag into its weakness and its opaque part.
fn entity_tag(value: &[u8]) -> (bool, &[u8]) {
    let value = value.trim_ascii();
    match value.strip_prefix(b"W/") {
        Some(tag) => (true, tag),
        None => (false, value),
    }
}

/// The stored head updated with the header fields of a `304` (RFC 9111 §3.2 and
/// §4.3.4): each field the `304` carries replaces every stored field of that name,
/// except `Content-Length`, `Content-Encoding`, `Content-Range`, `Transfer-Encoding`,
/// the validators (`ETag`, `Last-Modified`), hop-by-hop fields (`Connection`,
/// `Keep-Alive`, `Proxy-Connection`, `TE`, `Upgrade`) and the fields the `304`'s
/// `Connection` lists; the stored
/// `Age` is dropped (it described the stored response's first arrival, not this
/// validation) and stored `Warning`s with a 1xx code are removed. When the `304` does
/// not match the stored response ([`not_modified_matches`]) the stored head is returned
/// unchanged.
pub fn merge_not_modified(
    stored: &ResponseHeader,
    not_modified: &ResponseHeader,
) -> ResponseHeader {
    let mut merged = stored.clone();
    if !not_modified_matches(stored, not_modified) {
        return merged;
    }
    let hop_by_hop: Vec<String> = not_modified
        .headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    merged.headers.remove(AGE);
    let warnings: Vec<HeaderValue> = merged
        .headers
        .get_all(WARNING)
        .iter()
        .filter(|w| !w.as_bytes().starts_with(b"1"))
        .cloned()
        .collect();
    merged.headers.remove(WARNING);
    for w in warnings {
        merged.headers.append(WARNING, w);
    }
    let mut replaced: Vec<&HeaderName> = Vec::new();
    for (name, value) in &not_modified.headers {
        if KEPT.contains(name) || hop_by_hop.iter().any(|h| h == name.as_str()) {
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

    #[test]
    fn a_304_keeps_encoding_validators_and_hop_by_hop_fields() {
        let stored = head(
            200,
            &[
                ("content-encoding", "gzip"),
                ("content-type", "text/plain"),
                ("etag", "\"v1\""),
                ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("age", "500"),
                ("warning", "110 - \"stale\""),
                ("warning", "214 - \"transformed\""),
            ],
        );
        let nm = head(
            304,
            &[
                ("content-encoding", "identity"),
                ("content-type", "text/html"),
                ("etag", "W/\"v1\""),
                ("last-modified", "Mon, 07 Nov 1994 08:49:37 GMT"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("transfer-encoding", "chunked"),
                ("date", "Tue, 08 Nov 1994 08:49:37 GMT"),
            ],
        );
        assert!(not_modified_matches(&stored, &nm));
        let m = merge_not_modified(&stored, &nm);
        assert_eq!(m.headers["content-encoding"], "gzip");
        assert_eq!(m.headers["content-type"], "text/html");
        assert_eq!(m.headers["etag"], "\"v1\"");
        assert_eq!(m.headers["last-modified"], "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(m.headers["date"], "Tue, 08 Nov 1994 08:49:37 GMT");
        for gone in [
            "age",
            "x-hop",
            "keep-alive",
            "connection",
            "transfer-encoding",
        ] {
            assert!(!m.headers.contains_key(gone), "{gone}");
        }
        let warnings: Vec<_> = m.headers.get_all("warning").iter().collect();
        assert_eq!(warnings, ["214 - \"transformed\""]);
    }

    #[test]
    fn a_304_for_another_representation_updates_nothing() {
        let stored = head(
            200,
            &[
                ("etag", "\"v1\""),
                ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("cache-control", "max-age=1"),
            ],
        );
        let other = head(304, &[("etag", "\"v2\""), ("cache-control", "max-age=60")]);
        assert!(!not_modified_matches(&stored, &other));
        let m = merge_not_modified(&stored, &other);
        assert_eq!(m.headers["cache-control"], "max-age=1");
        // A strong 304 tag does not match a weak stored one.
        let weak = head(200, &[("etag", "W/\"v1\"")]);
        assert!(!not_modified_matches(
            &weak,
            &head(304, &[("etag", "\"v1\"")])
        ));
        assert!(not_modified_matches(
            &weak,
            &head(304, &[("etag", "W/\"v1\"")])
        ));
        // Without ETag, Last-Modified decides; without either, it matches.
        assert!(not_modified_matches(
            &stored,
            &head(304, &[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")])
        ));
        assert!(!not_modified_matches(
            &stored,
            &head(304, &[("last-modified", "Mon, 07 Nov 1994 08:49:37 GMT")])
        ));
        assert!(not_modified_matches(&stored, &head(304, &[])));
        assert!(!not_modified_matches(
            &head(200, &[]),
            &head(304, &[("etag", "\"v1\"")])
        ));
    }
}

//! Converting heads between the proxy's HTTP/1-shaped types and HTTP/2 messages.
//!
//! HTTP/2 has no connection-specific header fields (RFC 9113 §8.2.2): `Connection`
//! and every field it names, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`
//! and `Upgrade` are dropped, and `TE` survives only as `te: trailers` on requests.
//! The target moves between the request line plus `Host` and the `:scheme`,
//! `:authority` and `:path` pseudo-headers.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri, Version};

use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::http::header::is_forbidden_trailer;
use crate::protocols::http::v1::BodyFraming;
use crate::protocols::http::{RequestHeader, ResponseHeader};

/// Header fields that only describe one connection and never appear in HTTP/2.
const CONNECTION_SPECIFIC: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes connection-specific fields: those named by `Connection`, then the fixed
/// set above. `TE` is kept as `te: trailers` when `keep_te_trailers` and the client
/// offered `trailers`; otherwise it is removed.
pub fn strip_connection_headers(headers: &mut HeaderMap, keep_te_trailers: bool) {
    // Most heads have none of them: one pass over the names, no hashing, no removal.
    let any = headers
        .keys()
        .any(|name| name == header::TE || CONNECTION_SPECIFIC.contains(name));
    if !any {
        return;
    }
    let mut named = Vec::new();
    for v in headers.get_all(header::CONNECTION) {
        let Ok(s) = v.to_str() else { continue };
        for token in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(name);
            }
        }
    }
    for name in named {
        headers.remove(&name);
    }
    for name in CONNECTION_SPECIFIC {
        headers.remove(name);
    }
    let trailers_offered = headers.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.split(';').next().unwrap_or("").trim() == "trailers")
        })
    });
    headers.remove(header::TE);
    if keep_te_trailers && trailers_offered {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Joins the `cookie` fields an HTTP/2 client may split (RFC 9113 §8.2.3) into the
/// single field HTTP/1.1 expects, separated by `"; "`.
fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// Turns a request received over HTTP/2 into the proxy's request head: the target
/// becomes origin-form (authority-form for CONNECT), `:authority` becomes the `Host`
/// field (replacing one the client also sent), split cookies are joined, and the
/// version is HTTP/2. The header fields are moved out of `req` (not copied).
pub fn request_from_h2<B>(req: &mut Request<B>) -> Result<RequestHeader> {
    let headers = std::mem::take(req.headers_mut());
    let uri = req.uri();
    let target = if req.method() == Method::CONNECT {
        match uri.authority() {
            Some(a) => Uri::from_maybe_shared(bytes::Bytes::copy_from_slice(a.as_str().as_bytes())),
            None => return Err(bad_request("CONNECT without :authority")),
        }
    } else {
        match uri.path_and_query() {
            // An origin-form path is the target as it is (a shared copy, no parsing).
            Some(pq) if pq.as_str().starts_with('/') => Ok(Uri::from(pq.clone())),
            other => {
                let pq = other.map_or("/", PathAndQuery::as_str);
                let pq = if pq.is_empty() { "/" } else { pq };
                Uri::from_maybe_shared(bytes::Bytes::copy_from_slice(pq.as_bytes()))
            }
        }
    }
    .map_err(|e| Error::because(ErrorKind::InvalidHead, Side::Downstream, "bad :path", e))?;
    let mut head = RequestHeader::new(req.method().clone(), target);
    head.version = Version::HTTP_2;
    head.headers = headers;
    if let Some(authority) = uri.authority() {
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| {
            Error::because(
                ErrorKind::InvalidHead,
                Side::Downstream,
                "bad :authority",
                e,
            )
        })?;
        head.headers.insert(header::HOST, host);
    }
    join_cookies(&mut head.headers);
    Ok(head)
}

/// Turns an extended CONNECT (RFC 8441: `:method CONNECT` with `:protocol`, such as a
/// WebSocket over HTTP/2) into the HTTP/1.1 upgrade request it stands for: `GET` of
/// `:path`, `Host` from `:authority`, `Connection: upgrade` and `Upgrade: PROTOCOL`;
/// for `websocket`, a `Sec-WebSocket-Key` nonce is added (HTTP/2 clients send none,
/// HTTP/1.1 origins require one). The version stays HTTP/2.
pub fn upgrade_from_extended_connect<B>(req: &Request<B>, protocol: &str) -> Result<RequestHeader> {
    let uri = req.uri();
    let pq = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let pq = if pq.is_empty() { "/" } else { pq };
    let target = Uri::from_maybe_shared(bytes::Bytes::copy_from_slice(pq.as_bytes()))
        .map_err(|e| Error::because(ErrorKind::InvalidHead, Side::Downstream, "bad :path", e))?;
    let upgrade = HeaderValue::from_str(protocol).map_err(|e| {
        Error::because(ErrorKind::InvalidHead, Side::Downstream, "bad :protocol", e)
    })?;
    let authority = uri
        .authority()
        .ok_or_else(|| bad_request("extended CONNECT without :authority"))?;
    let host = HeaderValue::from_str(authority.as_str()).map_err(|e| {
        Error::because(
            ErrorKind::InvalidHead,
            Side::Downstream,
            "bad :authority",
            e,
        )
    })?;
    let mut head = RequestHeader::new(Method::GET, target);
    head.version = Version::HTTP_2;
    head.headers = req.headers().clone();
    head.headers.insert(header::HOST, host);
    head.headers.insert(header::UPGRADE, upgrade);
    head.headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    head.headers.remove(header::CONTENT_LENGTH);
    if protocol.eq_ignore_ascii_case("websocket")
        && !head.headers.contains_key(header::SEC_WEBSOCKET_KEY)
    {
        head.headers
            .insert(header::SEC_WEBSOCKET_KEY, websocket_key());
    }
    join_cookies(&mut head.headers);
    Ok(head)
}

/// A fresh `Sec-WebSocket-Key`: 16 unpredictable bytes in base64 (RFC 6455 §4.1; the
/// key guards against caches, not attackers, so a keyed hash of a counter suffices).
fn websocket_key() -> HeaderValue {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let keys = std::collections::hash_map::RandomState::new();
    let mut bytes = [0u8; 16];
    for (i, half) in bytes.chunks_exact_mut(8).enumerate() {
        let mut h = keys.build_hasher();
        h.write_u64(n);
        h.write_usize(i);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    HeaderValue::from_bytes(&base64(&bytes))
        .unwrap_or_else(|_| HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAA=="))
}

/// Standard base64 with padding (RFC 4648), for the WebSocket handshake fields.
fn base64(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..=chunk.len() {
            out.push(ALPHABET[(v >> (18 - 6 * k)) as usize & 63]);
        }
    }
    while !out.len().is_multiple_of(4) {
        out.push(b'=');
    }
    out
}

/// The `Sec-WebSocket-Accept` answering a `Sec-WebSocket-Key` (RFC 6455, section 4.2.2).
pub fn websocket_accept(key: &HeaderValue) -> HeaderValue {
    use sha1::{Digest, Sha1};
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID);
    let digest = h.finalize();
    HeaderValue::from_bytes(&base64(&digest))
        .unwrap_or_else(|_| HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAAAAAAA="))
}

/// Turns an HTTP/1.1 upgrade request to `protocol` (see
/// [`upgrade_protocol`](crate::protocols::http::v1::upgrade_protocol)) into the
/// extended CONNECT that stands for it on HTTP/2 (RFC 8441): `CONNECT` with
/// `:protocol`, the request's `:scheme`, `:path` and `:authority`, without the
/// connection-specific fields and without `Sec-WebSocket-Key` (HTTP/2 has no key).
/// The counterpart of [`upgrade_from_extended_connect`].
pub fn extended_connect_to_h2(
    req: &RequestHeader,
    protocol: &str,
    https: bool,
) -> Result<Request<()>> {
    let mut out = request_to_h2(req, BodyFraming::Empty, https)?;
    out.headers_mut().remove(header::SEC_WEBSOCKET_KEY);
    *out.method_mut() = Method::CONNECT;
    out.extensions_mut()
        .insert(h2::ext::Protocol::from(protocol));
    Ok(out)
}

/// The value of a well-formed `Content-Length` field, if there is one.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::CONTENT_LENGTH)?;
    v.to_str().ok()?.trim().parse().ok()
}

/// How the body of a request received over HTTP/2 is to be forwarded: `Empty` when the
/// head ended the stream (or said `content-length: 0`), `Length` when a length was
/// given, else `Chunked` (the body is streamed with no known length).
pub fn request_body_framing(headers: &HeaderMap, end_of_stream: bool) -> BodyFraming {
    if end_of_stream {
        return BodyFraming::Empty;
    }
    match content_length(headers) {
        Some(0) => BodyFraming::Empty,
        Some(n) => BodyFraming::Length(n),
        None => BodyFraming::Chunked,
    }
}

/// Turns the proxy's request head into an HTTP/2 request: `:scheme` from `https`,
/// `:authority` from the target's authority or else `Host` (which is then removed),
/// `:path` from the target; connection-specific fields stripped (`te: trailers` kept);
/// `content-length` set for a `Length` body and removed for a streamed one.
pub fn request_to_h2(
    req: &RequestHeader,
    framing: BodyFraming,
    https: bool,
) -> Result<Request<()>> {
    let authority = match req.uri.authority() {
        Some(a) => a.clone(),
        None => {
            let host = req.headers.get(header::HOST).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidHead,
                    Side::Internal,
                    "the request has no Host to send as :authority",
                )
            })?;
            Authority::try_from(host.as_bytes()).map_err(|e| {
                Error::because(
                    ErrorKind::InvalidHead,
                    Side::Internal,
                    "bad Host for :authority",
                    e,
                )
            })?
        }
    };
    let mut parts = http::uri::Parts::default();
    if req.method != Method::CONNECT {
        parts.scheme = Some(if https { Scheme::HTTPS } else { Scheme::HTTP });
        parts.path_and_query = Some(
            req.uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
    }
    parts.authority = Some(authority);
    let uri = Uri::from_parts(parts).map_err(|e| {
        Error::because(
            ErrorKind::InvalidHead,
            Side::Internal,
            "cannot build the HTTP/2 target",
            e,
        )
    })?;
    let mut headers = req.headers.clone();
    strip_connection_headers(&mut headers, true);
    headers.remove(header::HOST);
    match framing {
        BodyFraming::Length(n) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        BodyFraming::Chunked | BodyFraming::UntilClose => {
            headers.remove(header::CONTENT_LENGTH);
        }
        BodyFraming::Empty => {}
    }
    let mut out = Request::new(());
    *out.method_mut() = req.method.clone();
    *out.uri_mut() = uri;
    *out.version_mut() = Version::HTTP_2;
    *out.headers_mut() = headers;
    Ok(out)
}

/// Turns the proxy's response head into an HTTP/2 response (connection-specific fields
/// stripped, reason phrase dropped: HTTP/2 has none).
pub fn response_to_h2(resp: &ResponseHeader) -> Response<()> {
    let mut headers = resp.headers.clone();
    strip_connection_headers(&mut headers, false);
    let mut out = Response::new(());
    *out.status_mut() = resp.status;
    *out.version_mut() = Version::HTTP_2;
    *out.headers_mut() = headers;
    out
}

/// Turns a response received over HTTP/2 into the proxy's response head (version
/// HTTP/2, `content-length` kept when present).
pub fn response_from_h2<B>(resp: &Response<B>) -> ResponseHeader {
    let mut head = ResponseHeader::new(resp.status());
    head.version = Version::HTTP_2;
    head.headers = resp.headers().clone();
    head
}

/// Trailers safe to send in HTTP/2: connection-specific fields and the fields that
/// may not be trailers ([`is_forbidden_trailer`]) removed.
pub fn trailers_to_h2(trailers: &HeaderMap) -> HeaderMap {
    let mut t = trailers.clone();
    strip_connection_headers(&mut t, false);
    let forbidden: Vec<HeaderName> = t
        .keys()
        .filter(|n| is_forbidden_trailer(n))
        .cloned()
        .collect();
    for name in forbidden {
        t.remove(name);
    }
    t
}

fn bad_request(what: &str) -> Error {
    Error::new(ErrorKind::InvalidHead, Side::Downstream, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn hv(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn strips_connection_specific_fields_and_the_ones_connection_names() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, hv("keep-alive, x-hop"));
        h.insert("x-hop", hv("1"));
        h.insert("keep-alive", hv("timeout=5"));
        h.insert("proxy-connection", hv("keep-alive"));
        h.insert(header::TRANSFER_ENCODING, hv("chunked"));
        h.insert(header::UPGRADE, hv("websocket"));
        h.insert(header::TE, hv("gzip, trailers;q=1"));
        h.insert("x-end", hv("kept"));
        let mut req_side = h.clone();
        strip_connection_headers(&mut req_side, true);
        assert_eq!(req_side.len(), 2, "{req_side:?}");
        assert_eq!(req_side.get(header::TE).unwrap(), "trailers");
        assert_eq!(req_side.get("x-end").unwrap(), "kept");
        strip_connection_headers(&mut h, false);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn te_without_trailers_is_dropped() {
        let mut h = HeaderMap::new();
        h.insert(header::TE, hv("gzip"));
        strip_connection_headers(&mut h, true);
        assert!(h.is_empty());
    }

    #[test]
    fn h2_request_becomes_origin_form_with_host() {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("https://a.example:8443/p/q?x=1")
            .header(header::HOST, "ignored.example")
            .header(header::COOKIE, "a=1")
            .header(header::COOKIE, "b=2")
            .body(())
            .unwrap();
        let head = request_from_h2(&mut req).unwrap();
        assert_eq!(head.method, Method::POST);
        assert_eq!(head.uri, "/p/q?x=1");
        assert_eq!(head.version, Version::HTTP_2);
        assert_eq!(head.host(), Some("a.example:8443"));
        assert_eq!(head.headers.get_all(header::HOST).iter().count(), 1);
        assert_eq!(head.headers.get(header::COOKIE).unwrap(), "a=1; b=2");
        assert_eq!(head.headers.get_all(header::COOKIE).iter().count(), 1);
    }

    #[test]
    fn body_framing_of_h2_requests() {
        let mut h = HeaderMap::new();
        assert_eq!(request_body_framing(&h, true), BodyFraming::Empty);
        assert_eq!(request_body_framing(&h, false), BodyFraming::Chunked);
        h.insert(header::CONTENT_LENGTH, hv("12"));
        assert_eq!(request_body_framing(&h, false), BodyFraming::Length(12));
        h.insert(header::CONTENT_LENGTH, hv("0"));
        assert_eq!(request_body_framing(&h, false), BodyFraming::Empty);
    }

    #[test]
    fn request_to_h2_uses_host_as_authority() {
        let mut head = RequestHeader::new(Method::PUT, Uri::from_static("/up?z"));
        head.headers.insert(header::HOST, hv("b.example"));
        head.headers.insert(header::CONNECTION, hv("close"));
        head.headers
            .insert(header::TRANSFER_ENCODING, hv("chunked"));
        head.headers.insert(header::CONTENT_LENGTH, hv("5"));
        let r = request_to_h2(&head, BodyFraming::Chunked, true).unwrap();
        assert_eq!(r.uri(), "https://b.example/up?z");
        assert_eq!(r.version(), Version::HTTP_2);
        assert!(r.headers().is_empty(), "{:?}", r.headers());
        let r = request_to_h2(&head, BodyFraming::Length(7), false).unwrap();
        assert_eq!(r.uri(), "http://b.example/up?z");
        assert_eq!(r.headers().get(header::CONTENT_LENGTH).unwrap(), "7");
    }

    #[test]
    fn extended_connect_becomes_an_upgrade() {
        let mut req = Request::new(());
        *req.method_mut() = Method::CONNECT;
        *req.uri_mut() = Uri::from_static("https://ws.example:8443/chat?room=1");
        req.headers_mut()
            .insert(header::SEC_WEBSOCKET_VERSION, hv("13"));
        let head = upgrade_from_extended_connect(&req, "websocket").unwrap();
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.uri, "/chat?room=1");
        assert_eq!(head.headers[header::HOST], "ws.example:8443");
        assert_eq!(head.headers[header::UPGRADE], "websocket");
        assert_eq!(head.headers[header::CONNECTION], "upgrade");
        assert_eq!(head.headers[header::SEC_WEBSOCKET_VERSION], "13");
        let key = head.headers[header::SEC_WEBSOCKET_KEY].to_str().unwrap();
        assert_eq!(key.len(), 24, "{key}");
        assert!(key.ends_with("=="), "{key}");
        let again = upgrade_from_extended_connect(&req, "websocket").unwrap();
        assert_ne!(
            again.headers[header::SEC_WEBSOCKET_KEY],
            key,
            "a nonce per request"
        );
    }

    #[test]
    fn request_without_host_is_refused() {
        let head = RequestHeader::new(Method::GET, Uri::from_static("/"));
        let e = request_to_h2(&head, BodyFraming::Empty, false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidHead);
    }

    #[test]
    fn responses_convert_both_ways() {
        let mut head = ResponseHeader::new(StatusCode::CREATED);
        head.headers.insert(header::CONNECTION, hv("keep-alive"));
        head.headers.insert(header::CONTENT_LENGTH, hv("3"));
        head.reason = Some(bytes::Bytes::from_static(b"Made"));
        let r = response_to_h2(&head);
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers().len(), 1);
        let back = response_from_h2(&r);
        assert_eq!(back.version, Version::HTTP_2);
        assert_eq!(back.headers.get(header::CONTENT_LENGTH).unwrap(), "3");
    }

    #[test]
    fn the_websocket_accept_is_rfc_6455_s() {
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(websocket_accept(&key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn an_upgrade_becomes_an_extended_connect() {
        let mut req = RequestHeader::new(Method::GET, Uri::from_static("/chat?room=1"));
        for (k, v) in [
            ("host", "chat.test"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "chat"),
        ] {
            req.headers.insert(
                header::HeaderName::from_static(k),
                HeaderValue::from_static(v),
            );
        }
        assert_eq!(
            crate::protocols::http::v1::upgrade_protocol(&req),
            Some("websocket")
        );
        let h2 = extended_connect_to_h2(&req, "websocket", true).unwrap();
        assert_eq!(h2.method(), Method::CONNECT);
        assert_eq!(h2.uri().to_string(), "https://chat.test/chat?room=1");
        assert_eq!(
            h2.extensions()
                .get::<h2::ext::Protocol>()
                .map(|p| p.as_str()),
            Some("websocket")
        );
        for gone in ["connection", "upgrade", "sec-websocket-key", "host"] {
            assert!(!h2.headers().contains_key(gone), "{gone} kept");
        }
        assert_eq!(h2.headers()["sec-websocket-protocol"], "chat");
        assert_eq!(h2.headers()["sec-websocket-version"], "13");
    }
}

//! HTTP message heads: the request and response types the proxy passes around.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};

/// A request head: method, target, version and headers.
#[derive(Debug, Clone)]
pub struct RequestHeader {
    /// The method.
    pub method: Method,
    /// The request target (usually origin-form: a path and query).
    pub uri: Uri,
    /// The protocol version.
    pub version: Version,
    /// The headers (names lowercase).
    pub headers: HeaderMap,
}

impl RequestHeader {
    /// An HTTP/1.1 request with no headers.
    pub fn new(method: Method, uri: Uri) -> Self {
        RequestHeader {
            method,
            uri,
            version: Version::HTTP_11,
            headers: HeaderMap::new(),
        }
    }

    /// The path and query of the target (`/` when it has none).
    pub fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// The host the request is for: the authority of an absolute-form (or CONNECT)
    /// target, which wins over `Host` as RFC 9112 §3.2.2 requires, else the `Host`
    /// header (None when absent or not visible ASCII).
    pub fn host(&self) -> Option<&str> {
        match self.uri.authority() {
            Some(a) => Some(a.as_str()),
            None => self
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok()),
        }
    }
}

/// A response head: status, version, headers and reason phrase.
#[derive(Debug, Clone)]
pub struct ResponseHeader {
    /// The status code.
    pub status: StatusCode,
    /// The protocol version.
    pub version: Version,
    /// The headers (names lowercase).
    pub headers: HeaderMap,
    /// The reason phrase as received, if any.
    pub reason: Option<Bytes>,
}

impl ResponseHeader {
    /// An HTTP/1.1 response with no headers.
    pub fn new(status: StatusCode) -> Self {
        ResponseHeader {
            status,
            version: Version::HTTP_11,
            headers: HeaderMap::new(),
            reason: None,
        }
    }

    /// The head of a complete small response the server makes up itself (errors,
    /// built-in answers): `Content-Type` (when it is a valid header value) and
    /// `Content-Length: body_len`.
    pub fn for_local_body(status: StatusCode, content_type: &str, body_len: usize) -> Self {
        let mut resp = ResponseHeader::new(status);
        if let Ok(v) = HeaderValue::from_str(content_type) {
            resp.headers.insert(header::CONTENT_TYPE, v);
        }
        resp.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
        resp
    }
}

/// Whether a field must never be sent in a trailer section (RFC 9110 §6.5.1): message
/// framing, routing, request modifiers, authentication, response control data and
/// content handling fields. The proxy drops such trailers instead of forwarding them:
/// a recipient that merged them into the head would read, say, a `content-length` it
/// never framed by.
pub fn is_forbidden_trailer(name: &http::HeaderName) -> bool {
    use http::header::*;
    [
        CONTENT_LENGTH,
        TRANSFER_ENCODING,
        HOST,
        TE,
        TRAILER,
        CONNECTION,
        UPGRADE,
        CACHE_CONTROL,
        EXPECT,
        MAX_FORWARDS,
        PRAGMA,
        RANGE,
        IF_MATCH,
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_UNMODIFIED_SINCE,
        IF_RANGE,
        AUTHORIZATION,
        PROXY_AUTHORIZATION,
        PROXY_AUTHENTICATE,
        WWW_AUTHENTICATE,
        SET_COOKIE,
        COOKIE,
        AGE,
        EXPIRES,
        DATE,
        LOCATION,
        RETRY_AFTER,
        VARY,
        CONTENT_ENCODING,
        CONTENT_TYPE,
        CONTENT_RANGE,
    ]
    .contains(name)
        || name == "keep-alive"
        || name == "proxy-connection"
}

/// The text body of an error response the server makes up itself: `"502 Bad Gateway\n"`.
pub fn error_body(status: StatusCode) -> Bytes {
    let reason = status.canonical_reason().unwrap_or("Error");
    Bytes::from(format!("{} {}\n", status.as_u16(), reason))
}

/// The content type of [`error_body`].
pub const ERROR_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_answers_have_type_length_and_a_reason() {
        let head = ResponseHeader::for_local_body(StatusCode::BAD_GATEWAY, ERROR_CONTENT_TYPE, 16);
        assert_eq!(head.headers[header::CONTENT_TYPE], ERROR_CONTENT_TYPE);
        assert_eq!(head.headers[header::CONTENT_LENGTH], "16");
        assert_eq!(error_body(StatusCode::BAD_GATEWAY), "502 Bad Gateway\n");
        let odd = ResponseHeader::for_local_body(StatusCode::OK, "bad\ntype", 0);
        assert!(!odd.headers.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn new_heads_are_http11_and_empty() {
        let r = RequestHeader::new(Method::GET, Uri::from_static("/a?b"));
        assert_eq!(r.version, Version::HTTP_11);
        assert!(r.headers.is_empty());
        assert_eq!(r.path_and_query(), "/a?b");
        let r = ResponseHeader::new(StatusCode::IM_A_TEAPOT);
        assert_eq!(r.version, Version::HTTP_11);
        assert!(r.headers.is_empty() && r.reason.is_none());
    }

    #[test]
    fn path_and_query_defaults_to_slash() {
        let r = RequestHeader::new(Method::CONNECT, Uri::from_static("x.com:443"));
        assert_eq!(r.path_and_query(), "/");
    }

    #[test]
    fn host_prefers_the_target_authority() {
        let mut r = RequestHeader::new(Method::GET, Uri::from_static("/"));
        assert_eq!(r.host(), None);
        r.headers
            .insert(http::header::HOST, "h.example".parse().unwrap());
        assert_eq!(r.host(), Some("h.example"));
        r.uri = Uri::from_static("http://a.example:8080/p");
        assert_eq!(r.host(), Some("a.example:8080"));
    }
}

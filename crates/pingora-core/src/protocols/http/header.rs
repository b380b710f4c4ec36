//! HTTP message heads: the request and response types the proxy passes around.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, Version};

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

    /// The `Host` header, or the authority of an absolute-form target.
    pub fn host(&self) -> Option<&str> {
        match self.headers.get(http::header::HOST) {
            Some(v) => v.to_str().ok(),
            None => self.uri.authority().map(|a| a.as_str()),
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
}

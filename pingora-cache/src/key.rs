//! [`CacheKey`]: what identifies a cached response.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use http::{HeaderMap, HeaderName, Method};
use pingora_core::protocols::http::RequestHeader;

/// Identifies one cached entry: by default the method, host, path and query of the
/// request; a response with `Vary` is stored under a variant key derived from it.
///
/// Cheap to clone (the text is shared); hashing uses a hash computed once.
#[derive(Debug, Clone)]
pub struct CacheKey {
    text: Arc<str>,
    hash: u64,
}

impl CacheKey {
    /// A key with this exact text.
    pub fn new(text: impl AsRef<str>) -> CacheKey {
        let text: Arc<str> = Arc::from(text.as_ref());
        let mut h = DefaultHasher::new();
        text.hash(&mut h);
        CacheKey {
            hash: h.finish(),
            text,
        }
    }

    /// The key of `method host path?query`. The host is lowercased.
    pub fn from_parts(method: &Method, host: &str, path_and_query: &str) -> CacheKey {
        // Header values never contain a newline, so it separates the parts unambiguously.
        let mut text =
            String::with_capacity(method.as_str().len() + host.len() + path_and_query.len() + 2);
        text.push_str(method.as_str());
        text.push('\n');
        text.extend(host.chars().map(|c| c.to_ascii_lowercase()));
        text.push('\n');
        text.push_str(path_and_query);
        CacheKey::new(text)
    }

    /// The default key of a request: method, host, path and query. `HEAD` and `PURGE`
    /// use the key of `GET`, so that a `HEAD` is answered from a cached `GET` and a
    /// `PURGE` removes it.
    pub fn from_request(req: &RequestHeader) -> CacheKey {
        let method = if req.method == Method::HEAD || req.method.as_str() == "PURGE" {
            &Method::GET
        } else {
            &req.method
        };
        CacheKey::from_parts(method, req.host().unwrap_or(""), req.path_and_query())
    }

    /// The key of one variant of this (primary) key: the stored `Vary` header names with
    /// the request's values for them, and the generation of the variant index, so that
    /// variants stored before a purge are never found again.
    pub fn variant(&self, generation: u64, names: &[HeaderName], headers: &HeaderMap) -> CacheKey {
        use std::fmt::Write;
        let mut text = String::with_capacity(self.text.len() + 32);
        text.push_str(&self.text);
        let _ = write!(text, "\nvary#{generation}");
        for name in names {
            text.push('\n');
            text.push_str(name.as_str());
            let mut values = headers.get_all(name).iter().peekable();
            if values.peek().is_none() {
                text.push('!');
                continue;
            }
            text.push('=');
            let mut first = true;
            for v in values {
                if !first {
                    text.push(',');
                }
                first = false;
                // Values are compared as bytes, with surrounding whitespace ignored.
                text.push_str(String::from_utf8_lossy(v.as_bytes()).trim());
            }
        }
        CacheKey::new(text)
    }

    /// The host and the path with query of a key made by [`CacheKey::from_parts`] or
    /// [`CacheKey::from_request`] (and of its variants); `None` for a key of another
    /// shape.
    pub fn request_target(&self) -> Option<(&str, &str)> {
        let mut parts = self.text.splitn(4, '\n');
        let _method = parts.next()?;
        let host = parts.next()?;
        let path_and_query = parts.next()?;
        Some((host, path_and_query))
    }

    /// The text of the key.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The hash computed once when the key was made (used to pick a storage shard).
    pub fn hash_value(&self) -> u64 {
        self.hash
    }

    /// Bytes this key takes, for size accounting.
    pub fn size(&self) -> u64 {
        self.text.len() as u64
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.text == other.text
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text.replace('\n', " "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Uri};

    fn req(method: &str, host: &str, target: &str) -> RequestHeader {
        let mut r = RequestHeader::new(
            Method::from_bytes(method.as_bytes()).unwrap(),
            Uri::try_from(target).unwrap(),
        );
        r.headers
            .insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
        r
    }

    #[test]
    fn key_uses_method_host_path_and_query() {
        let a = CacheKey::from_request(&req("GET", "Example.com", "/a?x=1"));
        assert_eq!(
            a,
            CacheKey::from_request(&req("GET", "example.com", "/a?x=1"))
        );
        assert_ne!(
            a,
            CacheKey::from_request(&req("GET", "example.com", "/a?x=2"))
        );
        assert_ne!(
            a,
            CacheKey::from_request(&req("GET", "other.com", "/a?x=1"))
        );
        assert_ne!(
            a,
            CacheKey::from_request(&req("POST", "example.com", "/a?x=1"))
        );
        assert_eq!(
            a,
            CacheKey::from_request(&req("HEAD", "example.com", "/a?x=1"))
        );
        assert_eq!(
            a,
            CacheKey::from_request(&req("PURGE", "example.com", "/a?x=1"))
        );
    }

    #[test]
    fn variants_differ_by_header_values_and_generation() {
        let base = CacheKey::new("k");
        let names = [HeaderName::from_static("accept-encoding")];
        let mut gzip = HeaderMap::new();
        gzip.insert("accept-encoding", HeaderValue::from_static("gzip"));
        let mut gzip_spaced = HeaderMap::new();
        gzip_spaced.insert("accept-encoding", HeaderValue::from_static(" gzip "));
        let none = HeaderMap::new();
        let mut empty = HeaderMap::new();
        empty.insert("accept-encoding", HeaderValue::from_static(""));
        let g = base.variant(1, &names, &gzip);
        assert_eq!(g, base.variant(1, &names, &gzip_spaced));
        assert_ne!(g, base.variant(2, &names, &gzip));
        assert_ne!(g, base.variant(1, &names, &none));
        assert_ne!(
            base.variant(1, &names, &none),
            base.variant(1, &names, &empty)
        );
        assert_ne!(g, base);
    }
}

//! `Surrogate-Control` (W3C Edge Architecture 1.0): directives an origin addresses to
//! the reverse proxies and CDNs in front of it rather than to browsers.
//!
//! As CDNs do, this cache honours `no-store` and `max-age` (which takes precedence over
//! `Cache-Control`'s `s-maxage`, `max-age` and `Expires`), and `stale-while-revalidate`
//! / `stale-if-error`. Directives aimed at a named device (`max-age=60;edge1`) are
//! ignored: this cache has no device name. The header is meant for the surrogate only:
//! [`strip_surrogate_control`] removes it before a response goes to the client.

use http::header::{HeaderMap, HeaderName};

use crate::cache_control::{delta_seconds, directives};

/// The `Surrogate-Control` header name.
pub const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// The `Surrogate-Control` directives this cache acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SurrogateControl {
    /// `no-store`: do not store the response.
    pub no_store: bool,
    /// `max-age=N`: the freshness lifetime for this cache, in seconds.
    pub max_age: Option<u64>,
    /// `stale-while-revalidate=N`, in seconds.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N`, in seconds.
    pub stale_if_error: Option<u64>,
}

impl SurrogateControl {
    /// The directives of every `Surrogate-Control` field of `headers` (the first
    /// occurrence of a directive counts; an invalid `max-age` counts as 0).
    pub fn from_headers(headers: &HeaderMap) -> SurrogateControl {
        let mut sc = SurrogateControl::default();
        for value in headers.get_all(SURROGATE_CONTROL) {
            let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
                continue;
            };
            for (name, arg) in directives(text) {
                let targeted =
                    name.contains(';') || arg.as_deref().is_some_and(|a| a.contains(';'));
                if targeted {
                    continue;
                }
                let seconds = || arg.as_deref().and_then(delta_seconds);
                match name.as_str() {
                    "no-store" => sc.no_store = true,
                    "max-age" if sc.max_age.is_none() => sc.max_age = Some(seconds().unwrap_or(0)),
                    "stale-while-revalidate" if sc.stale_while_revalidate.is_none() => {
                        sc.stale_while_revalidate = seconds();
                    }
                    "stale-if-error" if sc.stale_if_error.is_none() => {
                        sc.stale_if_error = seconds();
                    }
                    _ => {}
                }
            }
        }
        sc
    }
}

/// Removes `Surrogate-Control` from a response head about to be sent to a client (it
/// is kept in the stored copy, where it still decides freshness after a `304`).
pub fn strip_surrogate_control(headers: &mut HeaderMap) {
    headers.remove(SURROGATE_CONTROL);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn sc(values: &[&str]) -> SurrogateControl {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(SURROGATE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        SurrogateControl::from_headers(&h)
    }

    #[test]
    fn parses_the_directives_cdns_honour() {
        let s = sc(&["max-age=300, content=\"ESI/1.0\"", "stale-if-error=60"]);
        assert_eq!(s.max_age, Some(300));
        assert_eq!(s.stale_if_error, Some(60));
        assert!(!s.no_store);
        assert!(sc(&["No-Store"]).no_store);
        assert_eq!(sc(&["max-age=abc"]).max_age, Some(0));
        assert_eq!(sc(&["max-age=5, max-age=9"]).max_age, Some(5));
        assert_eq!(sc(&[]), SurrogateControl::default());
    }

    #[test]
    fn directives_for_a_named_device_are_ignored() {
        let s = sc(&["max-age=60;edge1, no-store;edge2, max-age=10"]);
        assert_eq!(s.max_age, Some(10));
        assert!(!s.no_store);
    }

    #[test]
    fn stripping_removes_every_field() {
        let mut h = HeaderMap::new();
        h.append(SURROGATE_CONTROL, HeaderValue::from_static("max-age=1"));
        h.append(SURROGATE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("cache-control", HeaderValue::from_static("max-age=5"));
        strip_surrogate_control(&mut h);
        assert!(!h.contains_key(SURROGATE_CONTROL));
        assert!(h.contains_key("cache-control"));
    }
}

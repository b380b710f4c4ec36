//! [`CacheControl`]: the `Cache-Control` directives of a request or response
//! (RFC 9111 §5.2) that this cache acts on.

use http::header::{HeaderMap, CACHE_CONTROL, PRAGMA};

/// The largest delta-seconds value kept (RFC 9111 §1.2.2: 2^31).
const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// Parsed `Cache-Control` directives. Unknown directives are ignored; when a directive
/// appears twice, the first occurrence counts. An invalid `max-age`/`s-maxage` value
/// counts as 0 (the response is stale at once), as RFC 9111 §4.2.1 advises.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (with or without field names: both make the cache revalidate).
    pub no_cache: bool,
    /// `private` (with or without field names: a shared cache stores neither).
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `max-age=N`, in seconds.
    pub max_age: Option<u64>,
    /// `s-maxage=N`, in seconds (shared caches only).
    pub s_maxage: Option<u64>,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `stale-while-revalidate=N` (RFC 5861), in seconds.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N` (RFC 5861), in seconds.
    pub stale_if_error: Option<u64>,
    /// `only-if-cached` (requests).
    pub only_if_cached: bool,
    /// `must-understand` (RFC 9111 §5.2.2.3): store only if the cache implements the
    /// caching rules of the response's status code.
    pub must_understand: bool,
}

impl CacheControl {
    /// The directives of every `Cache-Control` field in `headers`.
    pub fn from_headers(headers: &HeaderMap) -> CacheControl {
        let mut cc = CacheControl::default();
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
                continue;
            };
            for (name, arg) in directives(text) {
                cc.apply(&name, arg.as_deref());
            }
        }
        cc
    }

    /// The directives of a request: `Cache-Control`, or `Pragma: no-cache` when the
    /// request has no `Cache-Control` (RFC 9111 §5.4).
    pub fn from_request_headers(headers: &HeaderMap) -> CacheControl {
        let mut cc = CacheControl::from_headers(headers);
        if !headers.contains_key(CACHE_CONTROL) {
            cc.no_cache = headers.get_all(PRAGMA).iter().any(|v| {
                v.to_str().is_ok_and(|s| {
                    s.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("no-cache"))
                })
            });
        }
        cc
    }

    fn apply(&mut self, name: &str, arg: Option<&str>) {
        let seconds = |arg: Option<&str>| -> u64 { arg.and_then(delta_seconds).unwrap_or(0) };
        match name {
            "no-store" => self.no_store = true,
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "only-if-cached" => self.only_if_cached = true,
            "must-understand" => self.must_understand = true,
            "max-age" if self.max_age.is_none() => self.max_age = Some(seconds(arg)),
            "s-maxage" if self.s_maxage.is_none() => self.s_maxage = Some(seconds(arg)),
            "stale-while-revalidate" if self.stale_while_revalidate.is_none() => {
                self.stale_while_revalidate = arg.and_then(delta_seconds);
            }
            "stale-if-error" if self.stale_if_error.is_none() => {
                self.stale_if_error = arg.and_then(delta_seconds);
            }
            _ => {}
        }
    }
}

/// Non-negative whole seconds, capped at 2^31; `None` when not a number.
pub(crate) fn delta_seconds(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u64>()
            .unwrap_or(MAX_DELTA_SECONDS)
            .min(MAX_DELTA_SECONDS),
    )
}

/// Splits a `Cache-Control` value into lowercase directive names and their arguments
/// (unquoted), honouring commas inside quoted strings.
pub(crate) fn directives(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // The directive name runs to '=' or ','.
        let end = rest.find(['=', ',']).unwrap_or(rest.len());
        let name = rest[..end].trim().to_ascii_lowercase();
        rest = &rest[end..];
        let mut arg = None;
        if let Some(after_eq) = rest.strip_prefix('=') {
            let after_eq = after_eq.trim_start();
            if let Some(quoted) = after_eq.strip_prefix('"') {
                let (value, used) = quoted_string(quoted);
                arg = Some(value);
                rest = &quoted[used..];
            } else {
                let end = after_eq.find(',').unwrap_or(after_eq.len());
                arg = Some(after_eq[..end].trim().to_string());
                rest = &after_eq[end..];
            }
            // Skip anything up to the next separator.
            let end = rest.find(',').unwrap_or(rest.len());
            rest = &rest[end..];
        }
        rest = rest.strip_prefix(',').unwrap_or(rest);
        if !name.is_empty() {
            out.push((name, arg));
        }
    }
    out
}

/// The content of a quoted string (after its opening quote) and the bytes it used,
/// including the closing quote.
fn quoted_string(s: &str) -> (String, usize) {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (value, i + 1),
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            other => value.push(other),
        }
    }
    (value, s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cc(values: &[&str]) -> CacheControl {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        CacheControl::from_headers(&h)
    }

    #[test]
    fn parses_the_directives() {
        let c = cc(&["public, max-age=60, s-maxage=120", "stale-if-error=30"]);
        assert!(c.public);
        assert_eq!(c.max_age, Some(60));
        assert_eq!(c.s_maxage, Some(120));
        assert_eq!(c.stale_if_error, Some(30));
        assert!(!c.no_store && !c.private && !c.no_cache);
        let c = cc(&["No-Store, PRIVATE"]);
        assert!(c.no_store && c.private && !c.must_understand);
        assert!(cc(&["must-understand, no-store"]).must_understand);
    }

    #[test]
    fn quoted_arguments_may_hold_commas() {
        let c = cc(&["private=\"set-cookie, x-a\", max-age=\"5\", no-cache=\"x\""]);
        assert!(c.private && c.no_cache);
        assert_eq!(c.max_age, Some(5));
    }

    #[test]
    fn invalid_and_repeated_values() {
        assert_eq!(cc(&["max-age=abc"]).max_age, Some(0));
        assert_eq!(cc(&["max-age=-5"]).max_age, Some(0));
        assert_eq!(cc(&["max-age"]).max_age, Some(0));
        assert_eq!(cc(&["max-age=10, max-age=99"]).max_age, Some(10));
        assert_eq!(
            cc(&["max-age=99999999999999999999999"]).max_age,
            Some(1 << 31)
        );
        assert_eq!(cc(&["stale-if-error=x"]).stale_if_error, None);
        assert_eq!(cc(&[" , ,max-age=3,"]).max_age, Some(3));
    }

    #[test]
    fn pragma_no_cache_only_without_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        assert!(CacheControl::from_request_headers(&h).no_cache);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert!(!CacheControl::from_request_headers(&h).no_cache);
    }
}

//! Choosing a route for a request: [`RouteMatcher`] holds one route's conditions,
//! [`RouteTable`] finds the first route whose conditions hold, looking only at the
//! routes that can match the request's host.
//!
//! Matching allocates nothing, except for a request whose candidate routes test a
//! header against a regular expression (the `regex` crate may use its cache then).

use std::collections::HashMap;

use http::header::HeaderName;
use http::{HeaderValue, Method};
use pingora_core::protocols::http::RequestHeader;
use regex::Regex;

use super::vars::{strip_port, Captures};

/// The longest host name looked up in the host index (DNS names are at most 253).
const MAX_HOST_LEN: usize = 255;

/// How a route matches the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// This host (stored lowercase), compared case-insensitively.
    Exact(Box<str>),
    /// `*.SUFFIX`: exactly one label before `.SUFFIX` (stored lowercase, with the dot).
    Wildcard(Box<str>),
}

impl HostMatch {
    /// `*.example.com` is a wildcard, anything else an exact name.
    pub fn parse(host: &str) -> HostMatch {
        let lower = host.to_ascii_lowercase();
        match lower.strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') => HostMatch::Wildcard(suffix.into()),
            _ => HostMatch::Exact(lower.into()),
        }
    }

    /// Whether `host` (without port, any case) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(want) => host.eq_ignore_ascii_case(want),
            HostMatch::Wildcard(suffix) => {
                wildcard_suffix(host).is_some_and(|s| s.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

/// The part of `host` a wildcard compares: from the first dot on, when the first label
/// is not empty (`a.example.com` -> `.example.com`).
fn wildcard_suffix(host: &str) -> Option<&str> {
    let dot = host.find('.')?;
    (dot > 0 && dot + 1 < host.len()).then(|| &host[dot..])
}

/// How a route matches one request header.
#[derive(Debug, Clone)]
pub enum HeaderMatch {
    /// The header has exactly this value.
    Exact(HeaderValue),
    /// The header's value matches this expression (written `~REGEX`).
    Regex(Regex),
    /// The header is present, with any value (written `*`).
    Present,
}

impl HeaderMatch {
    /// `*` is presence, `~REGEX` a regular expression, anything else an exact value.
    pub fn parse(text: &str) -> Result<HeaderMatch, regex::Error> {
        if text == "*" {
            return Ok(HeaderMatch::Present);
        }
        if let Some(re) = text.strip_prefix('~') {
            return Regex::new(re).map(HeaderMatch::Regex);
        }
        HeaderValue::from_str(text)
            .map(HeaderMatch::Exact)
            .map_err(|_| regex::Error::Syntax(format!("`{text}` is not a header value")))
    }

    fn matches(&self, value: &HeaderValue) -> bool {
        match self {
            HeaderMatch::Exact(want) => value == want,
            HeaderMatch::Regex(re) => value.to_str().is_ok_and(|v| re.is_match(v)),
            HeaderMatch::Present => true,
        }
    }
}

/// The conditions of one route; all that are set must hold. The default matches
/// every request.
#[derive(Debug, Clone, Default)]
pub struct RouteMatcher {
    host: Option<HostMatch>,
    path: Option<Box<str>>,
    path_prefix: Option<Box<str>>,
    path_regex: Option<Regex>,
    methods: Option<Box<[Method]>>,
    headers: Vec<(HeaderName, HeaderMatch)>,
    query: Vec<(Box<str>, Box<str>)>,
}

impl RouteMatcher {
    /// A matcher taking every request.
    pub fn any() -> Self {
        RouteMatcher::default()
    }

    /// Requires the host (see [`HostMatch::parse`]).
    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(HostMatch::parse(host));
        self
    }

    /// Requires exactly this path (no query; compared as received, not decoded).
    pub fn path(mut self, path: &str) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Requires the path to start with `prefix`.
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Requires the path to match `regex`; its groups are the route's `$1`..`$9`.
    pub fn path_regex(mut self, regex: Regex) -> Self {
        self.path_regex = Some(regex);
        self
    }

    /// Requires one of these methods.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = Some(methods.into_iter().collect());
        self
    }

    /// Requires a header (any of its values) to match.
    pub fn header(mut self, name: HeaderName, matcher: HeaderMatch) -> Self {
        self.headers.push((name, matcher));
        self
    }

    /// Requires a query parameter with exactly this value (as received, not decoded).
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// The host condition, if any.
    pub fn host_match(&self) -> Option<&HostMatch> {
        self.host.as_ref()
    }

    /// Whether `req` satisfies every condition.
    pub fn matches(&self, req: &RequestHeader) -> bool {
        let host = req.host().map(strip_port);
        if let Some(want) = &self.host {
            if !host.is_some_and(|h| want.matches(h)) {
                return false;
            }
        }
        self.matches_rest(req)
    }

    /// Every condition but the host.
    fn matches_rest(&self, req: &RequestHeader) -> bool {
        let path = req.uri.path();
        if self.path.as_deref().is_some_and(|p| p != path) {
            return false;
        }
        if self
            .path_prefix
            .as_deref()
            .is_some_and(|p| !path.starts_with(p))
        {
            return false;
        }
        if let Some(methods) = &self.methods {
            if !methods.contains(&req.method) {
                return false;
            }
        }
        for (name, want) in &self.headers {
            if !req.headers.get_all(name).iter().any(|v| want.matches(v)) {
                return false;
            }
        }
        if !self.query.is_empty() {
            let query = req.uri.query().unwrap_or("");
            for (name, value) in &self.query {
                if !query_has(query, name, value) {
                    return false;
                }
            }
        }
        // The regular expression last: the cheap conditions usually decide first.
        if self
            .path_regex
            .as_ref()
            .is_some_and(|re| !re.is_match(path))
        {
            return false;
        }
        true
    }

    /// The captures of `path_regex` on the request's path (None without one, or when
    /// it does not match).
    pub fn captures(&self, req: &RequestHeader) -> Option<Captures> {
        Captures::of(self.path_regex.as_ref()?, req.uri.path())
    }
}

/// Whether `query` (`a=1&b=2`) has the parameter `name` with exactly `value`.
fn query_has(query: &str, name: &str, value: &str) -> bool {
    query.split('&').any(|pair| match pair.split_once('=') {
        Some((k, v)) => k == name && v == value,
        None => pair == name && value.is_empty(),
    })
}

/// Routes in order, each with its conditions and a value (what the route does); the
/// first route whose conditions hold wins.
///
/// Indexed by host: a request is tested only against the routes for its exact host,
/// for its wildcard suffix, and the routes with no host condition, in their order.
#[derive(Debug)]
pub struct RouteTable<T> {
    routes: Vec<(RouteMatcher, T)>,
    /// Exact host -> candidate routes (that host's, matching wildcards', host-less).
    by_host: HashMap<Box<str>, Box<[u32]>>,
    /// Wildcard suffix -> candidate routes (that wildcard's and host-less).
    by_suffix: HashMap<Box<str>, Box<[u32]>>,
    /// Routes with no host condition.
    any_host: Box<[u32]>,
}

impl<T> RouteTable<T> {
    /// A table of `routes`, first match wins.
    pub fn new(routes: Vec<(RouteMatcher, T)>) -> Self {
        let mut exact: Vec<Box<str>> = Vec::new();
        let mut suffixes: Vec<Box<str>> = Vec::new();
        let mut any_host = Vec::new();
        for (i, (m, _)) in routes.iter().enumerate() {
            match &m.host {
                Some(HostMatch::Exact(h)) => exact.push(h.clone()),
                Some(HostMatch::Wildcard(s)) => suffixes.push(s.clone()),
                None => any_host.push(index(i)),
            }
        }
        let candidates = |host: Option<&str>, suffix: Option<&str>| -> Box<[u32]> {
            routes
                .iter()
                .enumerate()
                .filter(|(_, (m, _))| match &m.host {
                    None => true,
                    Some(HostMatch::Exact(h)) => host == Some(&**h),
                    Some(HostMatch::Wildcard(s)) => suffix == Some(&**s),
                })
                .map(|(i, _)| index(i))
                .collect()
        };
        let mut by_host = HashMap::new();
        for h in exact {
            let list = candidates(Some(&h), wildcard_suffix(&h));
            by_host.insert(h, list);
        }
        let mut by_suffix = HashMap::new();
        for s in suffixes {
            let list = candidates(None, Some(&s));
            by_suffix.insert(s, list);
        }
        RouteTable {
            routes,
            by_host,
            by_suffix,
            any_host: any_host.into(),
        }
    }

    /// The index and value of the first route matching `req`.
    pub fn find(&self, req: &RequestHeader) -> Option<(usize, &T)> {
        let candidates = self.candidates(req.host().map(strip_port));
        candidates.iter().find_map(|&i| {
            let (m, value) = &self.routes[i as usize];
            m.matches_rest(req).then_some((i as usize, value))
        })
    }

    /// The routes that may match a request for `host`, in order.
    fn candidates(&self, host: Option<&str>) -> &[u32] {
        let Some(host) = host else {
            return &self.any_host;
        };
        if self.by_host.is_empty() && self.by_suffix.is_empty() {
            return &self.any_host;
        }
        let mut buf = [0u8; MAX_HOST_LEN];
        let Some(lower) = lowercase(host, &mut buf) else {
            return &self.any_host;
        };
        if let Some(list) = self.by_host.get(lower) {
            return list;
        }
        if let Some(list) = wildcard_suffix(lower).and_then(|s| self.by_suffix.get(s)) {
            return list;
        }
        &self.any_host
    }

    /// The route at `index`: its conditions and value.
    pub fn get(&self, index: usize) -> Option<&(RouteMatcher, T)> {
        self.routes.get(index)
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes in order.
    pub fn iter(&self) -> impl Iterator<Item = &(RouteMatcher, T)> {
        self.routes.iter()
    }
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// `host` in lowercase in `buf`; None when it does not fit.
fn lowercase<'b>(host: &str, buf: &'b mut [u8; MAX_HOST_LEN]) -> Option<&'b str> {
    let bytes = host.as_bytes();
    let out = buf.get_mut(..bytes.len())?;
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, uri: &str, host: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::new(method, uri.parse().unwrap());
        r.headers
            .insert("host", HeaderValue::from_str(host).unwrap());
        for (k, v) in headers {
            r.headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    fn get(uri: &str, host: &str) -> RequestHeader {
        req(Method::GET, uri, host, &[])
    }

    #[test]
    fn wildcard_host_matches_exactly_one_label() {
        let m = HostMatch::parse("*.Example.com");
        assert!(m.matches("a.example.com"));
        assert!(m.matches("A.EXAMPLE.COM"));
        assert!(!m.matches("a.b.example.com"));
        assert!(!m.matches("example.com"));
        assert!(!m.matches(".example.com"));
        assert!(HostMatch::parse("api.example.com").matches("API.example.com"));
    }

    #[test]
    fn every_condition() {
        let m = RouteMatcher::any()
            .host("*.example.com")
            .path_prefix("/api/")
            .path_regex(Regex::new("^/api/users/([0-9]+)$").unwrap())
            .methods([Method::GET, Method::HEAD])
            .header(
                HeaderName::from_static("x-env"),
                HeaderMatch::parse("canary").unwrap(),
            )
            .header(
                HeaderName::from_static("x-debug"),
                HeaderMatch::parse("~^(1|true)$").unwrap(),
            )
            .header(
                HeaderName::from_static("x-present"),
                HeaderMatch::parse("*").unwrap(),
            )
            .query("version", "2");
        let headers = [("x-env", "canary"), ("x-debug", "true"), ("x-present", "")];
        let ok = req(
            Method::GET,
            "/api/users/42?a=1&version=2",
            "a.example.com:8080",
            &headers,
        );
        assert!(m.matches(&ok));
        let caps = m.captures(&ok).unwrap();
        assert_eq!(caps.get(ok.uri.path(), 1), "42");
        let mut wrong = ok.clone();
        wrong.method = Method::POST;
        assert!(!m.matches(&wrong), "method");
        let wrong = req(
            Method::GET,
            "/api/users/42?version=3",
            "a.example.com",
            &headers,
        );
        assert!(!m.matches(&wrong), "query");
        let wrong = req(
            Method::GET,
            "/api/users/x?version=2",
            "a.example.com",
            &headers,
        );
        assert!(!m.matches(&wrong), "regex");
        let wrong = req(
            Method::GET,
            "/api/users/42?version=2",
            "a.example.com",
            &headers[..2],
        );
        assert!(!m.matches(&wrong), "header presence");
        let exact = RouteMatcher::any().path("/exact");
        assert!(exact.matches(&get("/exact?q", "h")));
        assert!(!exact.matches(&get("/exact/", "h")));
    }

    #[test]
    fn first_match_wins_across_host_index() {
        let table = RouteTable::new(vec![
            (RouteMatcher::any().path_prefix("/first"), 0),
            (RouteMatcher::any().host("api.example.com"), 1),
            (
                RouteMatcher::any().host("*.example.com").path_prefix("/w"),
                2,
            ),
            (RouteMatcher::any().path_prefix("/w"), 3),
            (RouteMatcher::any(), 4),
        ]);
        let find = |uri: &str, host: &str| table.find(&get(uri, host)).map(|(_, v)| *v);
        assert_eq!(find("/first", "api.example.com"), Some(0));
        assert_eq!(find("/x", "API.example.com:443"), Some(1));
        assert_eq!(find("/w", "api.example.com"), Some(1));
        assert_eq!(find("/w", "b.example.com"), Some(2));
        assert_eq!(find("/w", "b.c.example.com"), Some(3));
        assert_eq!(find("/x", "other"), Some(4));
        let mut no_host = get("/w", "x");
        no_host.headers.remove("host");
        assert_eq!(table.find(&no_host).map(|(_, v)| *v), Some(3));
    }
}

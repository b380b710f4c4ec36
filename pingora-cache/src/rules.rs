//! Cacheability (RFC 9111 §3 and §4): when a request may use the cache, and whether
//! (and how) a response may be stored by a shared cache.

use std::time::{Duration, Instant, SystemTime};

use http::header::{HeaderMap, AUTHORIZATION, ETAG, LAST_MODIFIED, SET_COOKIE, VARY};
use http::{Method, StatusCode};
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};

use crate::cache_control::CacheControl;
use crate::freshness::{age_field, freshness_lifetime, initial_age, AgeField, CacheMeta};
use crate::surrogate::SurrogateControl;

/// How a request may use the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPolicy {
    /// Look the request up; with `revalidate`, a stored response must be confirmed by the
    /// origin before use (request `no-cache` or `max-age=0`).
    Lookup {
        /// The request asks for a stored response to be revalidated.
        revalidate: bool,
    },
    /// Do not use the cache: forward to the origin and store nothing. `invalidates`:
    /// an unsafe method whose success removes the stored response (RFC 9111 §4.4).
    Bypass {
        /// Why the cache is not used.
        reason: &'static str,
        /// A successful response to it invalidates the stored response of the URI.
        invalidates: bool,
    },
}

/// Whether a request may use the cache: only `GET` and `HEAD` without a body are
/// looked up, and not with request `no-store`. A `Range` request is looked up too: the
/// cache answers it from a stored (or arriving) complete response
/// ([`crate::range`]), and fetches the whole response to fill an entry.
pub fn request_policy(req: &RequestHeader, has_body: bool) -> RequestPolicy {
    let bypass = |reason| RequestPolicy::Bypass {
        reason,
        invalidates: false,
    };
    if req.method != Method::GET && req.method != Method::HEAD {
        let unsafe_method = !matches!(
            req.method,
            Method::OPTIONS | Method::TRACE | Method::CONNECT
        );
        return RequestPolicy::Bypass {
            reason: "method is not GET or HEAD",
            invalidates: unsafe_method,
        };
    }
    if has_body {
        return bypass("request has a body");
    }
    let cc = CacheControl::from_request_headers(&req.headers);
    if cc.no_store {
        return bypass("request says no-store");
    }
    RequestPolicy::Lookup {
        revalidate: cc.no_cache || cc.max_age == Some(0),
    }
}

/// Whether a stored response may answer this request at all (RFC 9111 §3.5: a request
/// with `Authorization` only gets responses explicitly shareable).
pub fn may_answer(req: &RequestHeader, meta: &CacheMeta) -> bool {
    !req.headers.contains_key(AUTHORIZATION) || meta.shareable_with_auth
}

/// When a response's request was sent and the response received.
#[derive(Debug, Clone, Copy)]
pub struct ResponseTiming {
    /// When the request was sent upstream (wall clock).
    pub request_time: SystemTime,
    /// When the response head arrived (wall clock).
    pub response_time: SystemTime,
    /// When the response head arrived (monotonic clock).
    pub received_at: Instant,
}

impl ResponseTiming {
    /// A response received now, for a request sent at `request_time`.
    pub fn received_now(request_time: SystemTime) -> ResponseTiming {
        ResponseTiming {
            request_time,
            response_time: SystemTime::now(),
            received_at: Instant::now(),
        }
    }
}

/// What to do with a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cacheability {
    /// Store it, with this freshness information.
    Store(CacheMeta),
    /// Do not store it, for this reason.
    NoStore(&'static str),
}

/// Statuses the RFC lets a cache store without explicit permission (RFC 9110 §15.1),
/// less 206 (ranges are not cached).
const DEFAULT_CACHEABLE: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// Statuses whose caching rules this cache implements, for `must-understand`
/// (RFC 9111 §5.2.2.3): the default-cacheable ones and the other redirects.
const UNDERSTOOD: [u16; 14] = [
    200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
];

/// Whether the status is in RFC 9110's list of heuristically cacheable statuses.
pub fn is_default_cacheable(status: StatusCode) -> bool {
    DEFAULT_CACHEABLE.contains(&status.as_u16())
}

/// Whether this cache implements the caching rules of `status` (for `must-understand`).
pub fn is_understood(status: StatusCode) -> bool {
    UNDERSTOOD.contains(&status.as_u16())
}

/// The choices a cache makes on top of RFC 9111 when deciding what to store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreRules {
    /// Store responses that carry `Set-Cookie` (default off: a shared cache must never
    /// hand one client's cookie to another). When on, the stored copy is kept without
    /// its `Set-Cookie` fields: the client whose request filled the entry gets its
    /// cookie, later hits get none.
    pub store_set_cookie: bool,
}

/// Decides whether a shared cache may store `resp`, the answer to `req` (RFC 9111 §3),
/// with the default [`StoreRules`] (see [`StoreRules::response_cacheability`]).
pub fn response_cacheability(
    req: &RequestHeader,
    resp: &ResponseHeader,
    timing: &ResponseTiming,
) -> Cacheability {
    StoreRules::default().response_cacheability(req, resp, timing)
}

impl StoreRules {
    /// Decides whether a shared cache may store `resp`, the answer to `req` (RFC 9111 §3).
    ///
    /// Stored: responses to `GET` with an explicit freshness lifetime
    /// (`Surrogate-Control: max-age`, `s-maxage`, `max-age` or `Expires`; no heuristic
    /// freshness), or with `no-cache` and a validator (stored but always revalidated).
    /// Not stored: `no-store` (request, response, or `Surrogate-Control`), `private`,
    /// `Vary: *`, `Set-Cookie` (unless [`StoreRules::store_set_cookie`]), interim, `206`
    /// and `304` responses, `must-understand` with a status this cache does not
    /// understand, responses to requests with `Authorization` unless `public`,
    /// `s-maxage` or `must-revalidate` allow it, and statuses outside the
    /// default-cacheable list unless `public`/`s-maxage`/`max-age`/`Expires` say so
    /// explicitly. An invalid, list-valued or repeated `Age` makes the response stale
    /// at once (stored only when it can be revalidated).
    pub fn response_cacheability(
        &self,
        req: &RequestHeader,
        resp: &ResponseHeader,
        timing: &ResponseTiming,
    ) -> Cacheability {
        use Cacheability::NoStore;
        if req.method != Method::GET {
            return NoStore("only responses to GET are stored");
        }
        let status = resp.status;
        if status.is_informational()
            || status == StatusCode::PARTIAL_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return NoStore("status is never stored");
        }
        let cc = CacheControl::from_headers(&resp.headers);
        let sc = SurrogateControl::from_headers(&resp.headers);
        if cc.must_understand && !is_understood(status) {
            return NoStore("must-understand with a status this cache does not understand");
        }
        // RFC 9111 §5.2.2.3: must-understand overrides no-store for understood statuses.
        if cc.no_store && !cc.must_understand {
            return NoStore("response says no-store");
        }
        if sc.no_store {
            return NoStore("Surrogate-Control says no-store");
        }
        if cc.private {
            return NoStore("response is private");
        }
        if CacheControl::from_request_headers(&req.headers).no_store {
            return NoStore("request says no-store");
        }
        let shareable_with_auth = cc.public || cc.s_maxage.is_some() || cc.must_revalidate;
        if req.headers.contains_key(AUTHORIZATION) && !shareable_with_auth {
            return NoStore("request has Authorization");
        }
        if vary_names(&resp.headers).is_none() {
            return NoStore("response varies on everything (Vary: *)");
        }
        if resp.headers.contains_key(SET_COOKIE) && !self.store_set_cookie {
            return NoStore("response sets a cookie");
        }
        let lifetime = match sc.max_age {
            Some(s) => Some(Duration::from_secs(s)),
            None => freshness_lifetime(&cc, &resp.headers, timing.response_time),
        };
        let validators = has_validator(&resp.headers);
        let lifetime = match lifetime {
            Some(l) => l,
            None if cc.no_cache && validators => Duration::ZERO,
            None => return NoStore("no explicit freshness lifetime"),
        };
        let explicit = sc.max_age.is_some() || lifetime_is_explicit(&cc, &resp.headers);
        if !(is_default_cacheable(status) || cc.public || explicit) {
            return NoStore("status is not cacheable without explicit freshness");
        }
        // RFC 9111 §5.1: an Age this cache cannot read makes the response stale.
        let lifetime = match age_field(&resp.headers) {
            AgeField::Invalid => Duration::ZERO,
            _ => lifetime,
        };
        if (lifetime.is_zero() || cc.no_cache) && !validators {
            return NoStore("stale at once and cannot be revalidated");
        }
        let window = |surrogate: Option<u64>, control: Option<u64>| {
            Duration::from_secs(surrogate.or(control).unwrap_or(0))
        };
        Cacheability::Store(CacheMeta {
            stored_at: timing.received_at,
            initial_age: initial_age(&resp.headers, timing.request_time, timing.response_time),
            lifetime,
            always_revalidate: cc.no_cache,
            never_stale: cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some(),
            stale_while_revalidate: window(sc.stale_while_revalidate, cc.stale_while_revalidate),
            stale_if_error: window(sc.stale_if_error, cc.stale_if_error),
            shareable_with_auth,
        })
    }
}

fn lifetime_is_explicit(cc: &CacheControl, headers: &HeaderMap) -> bool {
    cc.s_maxage.is_some() || cc.max_age.is_some() || headers.contains_key(http::header::EXPIRES)
}

/// Whether the response carries `ETag` or `Last-Modified`.
pub fn has_validator(headers: &HeaderMap) -> bool {
    headers.contains_key(ETAG) || headers.contains_key(LAST_MODIFIED)
}

/// The header names listed in `Vary`, lowercased, sorted and without duplicates;
/// `None` for `Vary: *`.
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<http::HeaderName>> {
    let mut names = Vec::new();
    for v in headers.get_all(VARY) {
        let Ok(s) = v.to_str() else { continue };
        for token in s.split(',') {
            let token = token.trim();
            if token == "*" {
                return None;
            }
            if let Ok(name) = http::HeaderName::from_bytes(token.as_bytes()) {
                names.push(name);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue, Uri};

    fn req(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::new(
            Method::from_bytes(method.as_bytes()).unwrap(),
            Uri::from_static("/x"),
        );
        for (k, v) in headers {
            r.headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::new(StatusCode::from_u16(status).unwrap());
        for (k, v) in headers {
            r.headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    fn decide(req: &RequestHeader, resp: &ResponseHeader) -> Cacheability {
        response_cacheability(req, resp, &ResponseTiming::received_now(SystemTime::now()))
    }

    fn stored(c: Cacheability) -> CacheMeta {
        match c {
            Cacheability::Store(m) => m,
            Cacheability::NoStore(why) => panic!("expected Store, got NoStore({why})"),
        }
    }

    fn refused(c: Cacheability) -> &'static str {
        match c {
            Cacheability::NoStore(why) => why,
            Cacheability::Store(m) => panic!("expected NoStore, got {m:?}"),
        }
    }

    #[test]
    fn stores_explicitly_fresh_responses() {
        let get = req("GET", &[]);
        let m = stored(decide(&get, &resp(200, &[("cache-control", "max-age=60")])));
        assert_eq!(m.lifetime, Duration::from_secs(60));
        assert!(!m.always_revalidate && !m.never_stale);
        let m = stored(decide(
            &get,
            &resp(404, &[("cache-control", "s-maxage=5, max-age=60")]),
        ));
        assert_eq!(m.lifetime, Duration::from_secs(5));
        assert!(m.never_stale, "s-maxage implies proxy-revalidate");
        let m = stored(decide(
            &get,
            &resp(301, &[("expires", "Thu, 01 Jan 2099 00:00:00 GMT")]),
        ));
        assert!(m.lifetime > Duration::from_secs(3600));
        let m = stored(decide(
            &get,
            &resp(
                200,
                &[(
                    "cache-control",
                    "max-age=60, stale-if-error=30, stale-while-revalidate=9",
                )],
            ),
        ));
        assert_eq!(m.stale_if_error, Duration::from_secs(30));
        assert_eq!(m.stale_while_revalidate, Duration::from_secs(9));
    }

    #[test]
    fn refuses_what_the_rfc_forbids() {
        let get = req("GET", &[]);
        assert_eq!(
            refused(decide(
                &get,
                &resp(200, &[("cache-control", "no-store, max-age=60")])
            )),
            "response says no-store"
        );
        assert_eq!(
            refused(decide(
                &get,
                &resp(200, &[("cache-control", "private, max-age=60")])
            )),
            "response is private"
        );
        refused(decide(&get, &resp(200, &[])));
        refused(decide(&get, &resp(200, &[("cache-control", "public")])));
        refused(decide(
            &get,
            &resp(200, &[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]),
        ));
        refused(decide(
            &get,
            &resp(
                200,
                &[("cache-control", "max-age=60"), ("vary", "accept, *")],
            ),
        ));
        refused(decide(
            &get,
            &resp(
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
            ),
        ));
        refused(decide(&get, &resp(206, &[("cache-control", "max-age=60")])));
        refused(decide(&get, &resp(304, &[("cache-control", "max-age=60")])));
        refused(decide(
            &req("POST", &[]),
            &resp(200, &[("cache-control", "max-age=60")]),
        ));
        refused(decide(
            &req("HEAD", &[]),
            &resp(200, &[("cache-control", "max-age=60")]),
        ));
        refused(decide(
            &req("GET", &[("cache-control", "no-store")]),
            &resp(200, &[("cache-control", "max-age=60")]),
        ));
        // Stale at once with nothing to revalidate with.
        refused(decide(&get, &resp(200, &[("cache-control", "max-age=0")])));
        refused(decide(
            &get,
            &resp(200, &[("cache-control", "no-cache, max-age=60")]),
        ));
    }

    #[test]
    fn authorization_needs_explicit_sharing() {
        let auth = req("GET", &[("authorization", "Basic eDp5")]);
        assert_eq!(
            refused(decide(
                &auth,
                &resp(200, &[("cache-control", "max-age=60")])
            )),
            "request has Authorization"
        );
        stored(decide(
            &auth,
            &resp(200, &[("cache-control", "s-maxage=60")]),
        ));
        let m = stored(decide(
            &auth,
            &resp(200, &[("cache-control", "public, max-age=60")]),
        ));
        assert!(may_answer(&auth, &m));
        let m = stored(decide(
            &req("GET", &[]),
            &resp(200, &[("cache-control", "max-age=60")]),
        ));
        assert!(!may_answer(&auth, &m));
        assert!(may_answer(&req("GET", &[]), &m));
    }

    #[test]
    fn other_statuses_need_explicit_freshness() {
        let get = req("GET", &[]);
        stored(decide(&get, &resp(302, &[("cache-control", "max-age=60")])));
        stored(decide(
            &get,
            &resp(500, &[("expires", "Thu, 01 Jan 2099 00:00:00 GMT")]),
        ));
        refused(decide(&get, &resp(302, &[])));
        assert!(is_default_cacheable(StatusCode::OK));
        assert!(!is_default_cacheable(StatusCode::FOUND));
    }

    #[test]
    fn no_cache_is_stored_but_always_revalidated() {
        let get = req("GET", &[]);
        let m = stored(decide(
            &get,
            &resp(200, &[("cache-control", "no-cache"), ("etag", "\"v1\"")]),
        ));
        assert!(m.always_revalidate);
        assert!(!m.is_fresh(m.stored_at));
        let m = stored(decide(
            &get,
            &resp(200, &[("cache-control", "max-age=0"), ("etag", "\"v1\"")]),
        ));
        assert!(!m.is_fresh(m.stored_at));
    }

    #[test]
    fn request_policies() {
        assert_eq!(
            request_policy(&req("GET", &[]), false),
            RequestPolicy::Lookup { revalidate: false }
        );
        assert_eq!(
            request_policy(&req("HEAD", &[]), false),
            RequestPolicy::Lookup { revalidate: false }
        );
        assert_eq!(
            request_policy(&req("GET", &[("cache-control", "no-cache")]), false),
            RequestPolicy::Lookup { revalidate: true }
        );
        assert_eq!(
            request_policy(&req("GET", &[("pragma", "no-cache")]), false),
            RequestPolicy::Lookup { revalidate: true }
        );
        assert_eq!(
            request_policy(&req("GET", &[("cache-control", "max-age=0")]), false),
            RequestPolicy::Lookup { revalidate: true }
        );
        assert!(matches!(
            request_policy(&req("GET", &[]), true),
            RequestPolicy::Bypass {
                invalidates: false,
                ..
            }
        ));
        assert_eq!(
            request_policy(&req("GET", &[("range", "bytes=0-1")]), false),
            RequestPolicy::Lookup { revalidate: false }
        );
        assert!(matches!(
            request_policy(&req("GET", &[("cache-control", "no-store")]), false),
            RequestPolicy::Bypass { .. }
        ));
        assert!(matches!(
            request_policy(&req("POST", &[]), true),
            RequestPolicy::Bypass {
                invalidates: true,
                ..
            }
        ));
        assert!(matches!(
            request_policy(&req("DELETE", &[]), false),
            RequestPolicy::Bypass {
                invalidates: true,
                ..
            }
        ));
        assert!(matches!(
            request_policy(&req("OPTIONS", &[]), false),
            RequestPolicy::Bypass {
                invalidates: false,
                ..
            }
        ));
    }

    #[test]
    fn an_unreadable_age_makes_the_response_stale() {
        let get = req("GET", &[]);
        for age in [
            &["abc"][..],
            &["-7200"],
            &["7200.0"],
            &["0, 7200"],
            &["0", "0"],
        ] {
            let mut headers = vec![("cache-control", "max-age=3600")];
            headers.extend(age.iter().map(|a| ("age", *a)));
            // Without a validator it cannot be revalidated: not stored.
            refused(decide(&get, &resp(200, &headers)));
            // With one it is stored, stale at once.
            headers.push(("etag", "\"v1\""));
            let m = stored(decide(&get, &resp(200, &headers)));
            assert!(!m.is_fresh(m.stored_at), "{age:?}");
        }
        let m = stored(decide(
            &get,
            &resp(200, &[("cache-control", "max-age=3600"), ("age", "100")]),
        ));
        assert!(m.is_fresh(m.stored_at));
        assert!(m.initial_age >= Duration::from_secs(100));
    }

    #[test]
    fn must_understand_stores_only_understood_statuses() {
        let get = req("GET", &[]);
        let cc = ("cache-control", "max-age=60, must-understand, no-store");
        // Understood: must-understand overrides no-store.
        stored(decide(&get, &resp(200, &[cc])));
        stored(decide(&get, &resp(307, &[cc])));
        assert_eq!(
            refused(decide(&get, &resp(299, &[cc]))),
            "must-understand with a status this cache does not understand"
        );
        refused(decide(
            &get,
            &resp(
                599,
                &[("cache-control", "max-age=60, must-understand, public")],
            ),
        ));
        // Without must-understand, no-store wins as before.
        refused(decide(
            &get,
            &resp(200, &[("cache-control", "max-age=60, no-store")]),
        ));
    }

    #[test]
    fn surrogate_control_is_honoured_as_cdns_do() {
        let get = req("GET", &[]);
        let m = stored(decide(
            &get,
            &resp(
                200,
                &[
                    ("surrogate-control", "max-age=300, stale-if-error=20"),
                    ("cache-control", "max-age=5, s-maxage=10"),
                ],
            ),
        ));
        assert_eq!(m.lifetime, Duration::from_secs(300));
        assert_eq!(m.stale_if_error, Duration::from_secs(20));
        // A lifetime given only to the surrogate makes the response storable.
        let m = stored(decide(
            &get,
            &resp(200, &[("surrogate-control", "max-age=60")]),
        ));
        assert_eq!(m.lifetime, Duration::from_secs(60));
        assert_eq!(
            refused(decide(
                &get,
                &resp(
                    200,
                    &[
                        ("surrogate-control", "no-store"),
                        ("cache-control", "max-age=60")
                    ]
                )
            )),
            "Surrogate-Control says no-store"
        );
        // Cache-Control's own refusals still hold.
        refused(decide(
            &get,
            &resp(
                200,
                &[
                    ("surrogate-control", "max-age=60"),
                    ("cache-control", "private"),
                ],
            ),
        ));
    }

    #[test]
    fn set_cookie_is_stored_only_when_allowed() {
        let get = req("GET", &[]);
        let with_cookie = resp(
            200,
            &[("cache-control", "max-age=60"), ("set-cookie", "id=1")],
        );
        let timing = ResponseTiming::received_now(SystemTime::now());
        assert_eq!(
            refused(StoreRules::default().response_cacheability(&get, &with_cookie, &timing)),
            "response sets a cookie"
        );
        let allow = StoreRules {
            store_set_cookie: true,
        };
        stored(allow.response_cacheability(&get, &with_cookie, &timing));
    }

    #[test]
    fn vary_names_are_normalised() {
        let h = resp(
            200,
            &[
                ("vary", "Accept-Encoding, accept"),
                ("vary", "ACCEPT-encoding"),
            ],
        )
        .headers;
        let names: Vec<_> = vary_names(&h)
            .unwrap()
            .iter()
            .map(|n| n.as_str().to_string())
            .collect();
        assert_eq!(names, ["accept", "accept-encoding"]);
        assert_eq!(vary_names(&resp(200, &[("vary", "*")]).headers), None);
    }
}

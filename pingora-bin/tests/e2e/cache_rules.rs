//! RFC 9111 corners of the cache, black-box: `Age` rules, a `304` that freshens a
//! stored response (and one for another response, refetched), `must-understand`,
//! invalidation after unsafe requests (`Location`, `Content-Location`),
//! `stale-if-error` when the origin drops the connection or times out,
//! `Surrogate-Control`, and `store_set_cookie`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use test_support::{request, Origin, Proxy, ProxyConfig, Reply, RequestHead, Response};

use crate::bin;

/// Entries age with the clock: time has to pass for a `max-age=1` entry to go stale.
const PAST_ONE_SECOND: Duration = Duration::from_millis(1100);

fn proxy(origin: &Origin, cache: &str) -> Proxy {
    ProxyConfig::new(origin.addr())
        .read_timeout_ms(500)
        .cached(cache)
        .start(bin())
}

fn default_proxy(origin: &Origin) -> Proxy {
    proxy(origin, "{ max_bytes: 4194304 }")
}

fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, method, path, headers, b"").unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn get(addr: SocketAddr, path: &str) -> Response {
    send(addr, "GET", path, &[])
}

fn cache_status(r: &Response) -> &str {
    r.header("x-cache-status").unwrap_or("<none>")
}

/// Calls `handler` with the request and how many requests came before it.
fn counting(handler: impl Fn(&RequestHead, usize) -> Reply + Send + Sync + 'static) -> Origin {
    let calls = Arc::new(AtomicUsize::new(0));
    Origin::start(move |req| handler(req, calls.fetch_add(1, Ordering::SeqCst)))
}

#[test]
fn an_unreadable_age_makes_the_response_stale() {
    // Revalidated (not HIT) when it has a validator, not stored without one.
    let origin = Origin::start(|req| {
        let age: &[(&str, &str)] = match req.path.as_str() {
            p if p.starts_with("/abc") => &[("age", "abc")],
            p if p.starts_with("/list") => &[("age", "0, 7200")],
            p if p.starts_with("/twice") => &[("age", "1"), ("age", "2")],
            p if p.starts_with("/negative") => &[("age", "-1")],
            _ => &[],
        };
        let mut headers = vec![("cache-control", "max-age=60")];
        headers.extend_from_slice(age);
        if !req.path.ends_with("/plain") {
            if req.header("if-none-match") == Some("\"v1\"") {
                return Reply::full(304, &[("etag", "\"v1\"")], "");
            }
            headers.push(("etag", "\"v1\""));
        }
        Reply::full(200, &headers, "aged")
    });
    let p = default_proxy(&origin);
    for path in ["/abc", "/list", "/twice", "/negative"] {
        assert_eq!(cache_status(&get(p.addr, path)), "MISS", "{path}");
        let second = get(p.addr, path);
        assert_eq!(
            (cache_status(&second), second.text().as_str()),
            ("REVALIDATED", "aged"),
            "{path}: stale at once, revalidated"
        );
        // The 304 carried no Age: the refreshed entry is fresh.
        assert_eq!(cache_status(&get(p.addr, path)), "HIT", "{path}");
        let plain = format!("{path}/plain");
        assert_eq!(cache_status(&get(p.addr, &plain)), "MISS", "{plain}");
        assert_eq!(
            cache_status(&get(p.addr, &plain)),
            "MISS",
            "{plain}: not stored"
        );
    }
}

#[test]
fn a_valid_age_counts_towards_the_lifetime() {
    let origin = Origin::start(|req| {
        let age = if req.path == "/old" { "120" } else { "30" };
        Reply::full(200, &[("cache-control", "max-age=60"), ("age", age)], "x")
    });
    let p = default_proxy(&origin);
    assert_eq!(cache_status(&get(p.addr, "/young")), "MISS");
    let hit = get(p.addr, "/young");
    assert_eq!(cache_status(&hit), "HIT");
    let age: u64 = hit.header("age").unwrap().parse().unwrap();
    assert!(
        (30..60).contains(&age),
        "Age {age} counts the origin's 30 s"
    );
    // Older than its lifetime already: stale at once, fetched again.
    get(p.addr, "/old");
    assert_eq!(cache_status(&get(p.addr, "/old")), "EXPIRED");
}

#[test]
fn a_304_freshens_the_stored_head_but_not_its_body_fields() {
    let origin = counting(|req, n| {
        if n == 0 {
            return Reply::full(
                200,
                &[
                    ("cache-control", "max-age=1"),
                    ("etag", "\"v1\""),
                    ("content-encoding", "x-custom"),
                    ("content-type", "text/plain"),
                    ("x-version", "1"),
                ],
                "0123456789",
            );
        }
        assert_eq!(req.header("if-none-match"), Some("\"v1\""));
        Reply::full(
            304,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "W/\"v1\""),
                ("content-encoding", "identity"),
                ("content-length", "0"),
                ("x-version", "2"),
            ],
            "",
        )
    });
    let p = default_proxy(&origin);
    assert_eq!(cache_status(&get(p.addr, "/f")), "MISS");
    thread::sleep(PAST_ONE_SECOND);
    for expected in ["REVALIDATED", "HIT"] {
        let r = get(p.addr, "/f");
        assert_eq!((r.status, cache_status(&r)), (200, expected));
        assert_eq!(r.text(), "0123456789");
        assert_eq!(r.header("content-length"), Some("10"));
        assert_eq!(r.header("content-encoding"), Some("x-custom"));
        assert_eq!(
            r.header("etag"),
            Some("\"v1\""),
            "the stored validator stays"
        );
        assert_eq!(r.header("x-version"), Some("2"), "other fields are updated");
        assert_eq!(r.header("cache-control"), Some("max-age=60"));
    }
    assert_eq!(origin.requests(), 2);
}

#[test]
fn a_304_for_another_response_is_not_used_and_the_response_is_fetched_again() {
    let origin = counting(|req, n| match n {
        0 => Reply::full(
            200,
            &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
            "old body",
        ),
        // The revalidation is answered for another representation...
        1 => Reply::full(
            304,
            &[("etag", "\"v2\""), ("cache-control", "max-age=60")],
            "",
        ),
        // ...so the cache asks again, unconditionally.
        _ => {
            assert_eq!(
                req.header("if-none-match"),
                None,
                "refetched without validators"
            );
            Reply::full(
                200,
                &[("cache-control", "max-age=60"), ("etag", "\"v2\"")],
                "new body",
            )
        }
    });
    let p = default_proxy(&origin);
    assert_eq!(get(p.addr, "/n").text(), "old body");
    thread::sleep(PAST_ONE_SECOND);
    let refetched = get(p.addr, "/n");
    assert_eq!(
        (
            refetched.status,
            cache_status(&refetched),
            refetched.text().as_str()
        ),
        (200, "EXPIRED", "new body")
    );
    let hit = get(p.addr, "/n");
    assert_eq!(
        (cache_status(&hit), hit.text().as_str()),
        ("HIT", "new body")
    );
    assert_eq!(origin.requests(), 3);
}

#[test]
fn must_understand_stores_only_statuses_the_cache_understands() {
    let origin = Origin::start(|req| match req.path.as_str() {
        // must-understand overrides no-store for a status the cache understands.
        "/ok" => Reply::full(
            200,
            &[("cache-control", "max-age=60, must-understand, no-store")],
            "understood",
        ),
        "/odd" => Reply::full(
            299,
            &[("cache-control", "max-age=60, must-understand")],
            "odd",
        ),
        _ => Reply::full(299, &[("cache-control", "max-age=60")], "odd, explicit"),
    });
    let p = default_proxy(&origin);
    for (path, second) in [("/ok", "HIT"), ("/odd", "MISS"), ("/odd-plain", "HIT")] {
        assert_eq!(cache_status(&get(p.addr, path)), "MISS", "{path}");
        assert_eq!(cache_status(&get(p.addr, path)), second, "{path}");
    }
}

#[test]
fn a_successful_unsafe_request_invalidates_its_uri_and_same_origin_locations() {
    let origin = Origin::start(|req| {
        if req.method == "POST" {
            let status = if req.path == "/fail" { 500 } else { 201 };
            return Reply::full(
                status,
                &[
                    ("location", "/b"),
                    ("content-location", "http://other.example/c"),
                ],
                "",
            );
        }
        if req.method == "PUT" {
            return Reply::full(
                204,
                &[("content-location", "c?x=1"), ("location", "//app.test/d")],
                "",
            );
        }
        Reply::full(200, &[("cache-control", "max-age=60")], req.path.clone())
    });
    let p = default_proxy(&origin);
    let host = [("host", "app.test")];
    let fill = |path: &str| {
        assert_eq!(
            cache_status(&send(p.addr, "GET", path, &host)),
            "MISS",
            "{path}"
        );
        assert_eq!(
            cache_status(&send(p.addr, "GET", path, &host)),
            "HIT",
            "{path}"
        );
    };
    for path in ["/a", "/b", "/c", "/c?x=1", "/d"] {
        fill(path);
    }
    // Another host's /b is another entry.
    send(p.addr, "GET", "/b", &[("host", "elsewhere.test")]);
    let status_of = |path: &str, host: &str| {
        cache_status(&send(p.addr, "GET", path, &[("host", host)])).to_string()
    };
    // A failed POST invalidates nothing.
    send(p.addr, "POST", "/fail", &host);
    assert_eq!(status_of("/b", "app.test"), "HIT");
    // POST /a -> 201, Location: /b (same origin), Content-Location on another host.
    send(p.addr, "POST", "/a", &host);
    assert_eq!(status_of("/a", "app.test"), "MISS", "the target URI");
    assert_eq!(status_of("/b", "app.test"), "MISS", "Location");
    assert_eq!(
        status_of("/c", "app.test"),
        "HIT",
        "another host's URI is left alone"
    );
    assert_eq!(status_of("/b", "elsewhere.test"), "HIT");
    // PUT /c -> 204, a relative Content-Location and a network-path Location.
    send(p.addr, "PUT", "/c", &host);
    assert_eq!(status_of("/c", "app.test"), "MISS");
    assert_eq!(status_of("/c?x=1", "app.test"), "MISS", "Content-Location");
    assert_eq!(status_of("/d", "app.test"), "MISS", "Location //app.test/d");
}

#[test]
fn stale_if_error_covers_a_dropped_connection_and_a_timeout() {
    let origin = Origin::start(|req| {
        if req.header("if-none-match").is_none() {
            let cc = if req.path.starts_with("/strict") {
                "max-age=1"
            } else {
                "max-age=1, stale-if-error=60"
            };
            return Reply::full(200, &[("cache-control", cc), ("etag", "\"v1\"")], "good");
        }
        if req.path.contains("drop") {
            Reply::CloseWithoutResponse
        } else {
            // Longer than the upstream's read timeout (500 ms).
            Reply::Delay(Duration::from_secs(2), Box::new(Reply::ok("late")))
        }
    });
    let p = default_proxy(&origin);
    for path in ["/drop", "/slow", "/strict-drop"] {
        assert_eq!(cache_status(&get(p.addr, path)), "MISS", "{path}");
    }
    thread::sleep(PAST_ONE_SECOND);
    for path in ["/drop", "/slow"] {
        let r = get(p.addr, path);
        assert_eq!(
            (r.status, cache_status(&r), r.text().as_str()),
            (200, "STALE", "good"),
            "{path}"
        );
    }
    // Without stale-if-error, the failure shows.
    assert_eq!(get(p.addr, "/strict-drop").status, 502);
    let log = p.log();
    assert!(
        log.contains("serving stale"),
        "the fallback is logged:\n{log}"
    );
}

#[test]
fn surrogate_control_is_honoured_and_never_reaches_the_client() {
    let origin = Origin::start(|req| {
        let headers: &[(&str, &str)] = if req.path == "/keep" {
            &[
                ("cache-control", "max-age=0"),
                ("surrogate-control", "max-age=60"),
            ]
        } else {
            &[
                ("cache-control", "max-age=60"),
                ("surrogate-control", "no-store"),
            ]
        };
        Reply::full(200, headers, "s")
    });
    let p = default_proxy(&origin);
    // Surrogate-Control: max-age=60 wins over Cache-Control: max-age=0 for this cache.
    for expected in ["MISS", "HIT"] {
        let r = get(p.addr, "/keep");
        assert_eq!(cache_status(&r), expected);
        assert_eq!(r.header("surrogate-control"), None);
        assert_eq!(
            r.header("cache-control"),
            Some("max-age=0"),
            "meant for the client"
        );
    }
    // Surrogate-Control: no-store wins over Cache-Control: max-age=60.
    for _ in 0..2 {
        let r = get(p.addr, "/drop");
        assert_eq!(cache_status(&r), "MISS");
        assert_eq!(r.header("surrogate-control"), None);
    }
    assert_eq!(origin.requests(), 3);
}

#[test]
fn set_cookie_responses_are_stored_only_with_store_set_cookie() {
    let origin = Origin::start(|_| {
        Reply::full(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("set-cookie", "session=abc"),
            ],
            "with cookie",
        )
    });
    let off = default_proxy(&origin);
    for _ in 0..2 {
        let r = get(off.addr, "/k");
        assert_eq!(cache_status(&r), "MISS", "not stored by default");
        assert_eq!(r.header("set-cookie"), Some("session=abc"));
    }
    let on = proxy(&origin, "{ max_bytes: 4194304, store_set_cookie: true }");
    let first = get(on.addr, "/k");
    assert_eq!(cache_status(&first), "MISS");
    assert_eq!(
        first.header("set-cookie"),
        Some("session=abc"),
        "the filler's cookie"
    );
    let hit = get(on.addr, "/k");
    assert_eq!(
        (cache_status(&hit), hit.text().as_str()),
        ("HIT", "with cookie")
    );
    assert_eq!(
        hit.header("set-cookie"),
        None,
        "never another client's cookie"
    );
}

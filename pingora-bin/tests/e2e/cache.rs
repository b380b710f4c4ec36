//! The HTTP cache, black-box: a `web` service with a `cache:` section in front of an
//! origin that counts the requests it gets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use test_support::{free_addr, request, Origin, ProxyProcess, Reply, Response};

use crate::bin;

/// A proxy with a cache of `max_bytes`: `/plain` routes uncached, everything else
/// through the cache, both to `origin`.
struct CachedProxy {
    _process: ProxyProcess,
    addr: SocketAddr,
}

impl CachedProxy {
    fn start(origin: SocketAddr, max_bytes: u64, lock_timeout_ms: u64) -> CachedProxy {
        let listen = free_addr();
        let yaml = format!(
            r#"version: 1
pid_file: {{dir}}/pingora.pid
upgrade_sock: {{dir}}/upgrade.sock
services:
  - name: web
    listeners: [ {{ addr: "{listen}" }} ]
    routes:
      - match: {{ path_prefix: /plain }}
        upstream: origin
      - upstream: origin
        cache: true
    upstreams:
      origin:
        peers: ["{origin}"]
        connect_timeout_ms: 500
        read_timeout_ms: 3000
    cache:
      max_bytes: {max_bytes}
      lock_timeout_ms: {lock_timeout_ms}
"#
        );
        let process = ProxyProcess::start(bin(), &yaml, &[listen])
            .unwrap_or_else(|e| panic!("proxy did not start: {e}\nconfig:\n{yaml}"));
        CachedProxy {
            _process: process,
            addr: listen,
        }
    }

    fn with_defaults(origin: SocketAddr) -> CachedProxy {
        CachedProxy::start(origin, 16 << 20, 5000)
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, method, path, headers, b"")
            .unwrap_or_else(|e| panic!("{method} {path}: no response: {e}"))
    }

    fn get(&self, path: &str) -> Response {
        self.send("GET", path, &[])
    }
}

fn status_of(r: &Response) -> &str {
    r.header("x-cache-status").unwrap_or("<none>")
}

/// A handler answering `body` with `cache-control`.
fn cacheable(
    cache_control: &'static str,
    body: &'static str,
) -> impl Fn(&test_support::RequestHead) -> Reply + Send + Sync + 'static {
    move |_| Reply::full(200, &[("cache-control", cache_control)], body)
}

/// How long to wait for a `max-age=1` response to become stale. Entries age with the
/// clock, so time has to pass: no readiness to poll for.
const PAST_ONE_SECOND: Duration = Duration::from_millis(1100);

#[test]
fn miss_then_hit_with_one_origin_fetch() {
    let origin = Origin::start(cacheable("max-age=60", "cached body"));
    let proxy = CachedProxy::with_defaults(origin.addr());
    let first = proxy.get("/a?x=1");
    assert_eq!((first.status, first.text().as_str()), (200, "cached body"));
    assert_eq!(status_of(&first), "MISS");
    let second = proxy.get("/a?x=1");
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "cached body")
    );
    assert_eq!(status_of(&second), "HIT");
    assert!(
        second.header("age").is_some(),
        "a cached answer carries Age"
    );
    assert_eq!(origin.requests(), 1);
    // Another query string is another entry.
    assert_eq!(status_of(&proxy.get("/a?x=2")), "MISS");
    assert_eq!(origin.requests(), 2);
    // A route without `cache: true` neither caches nor labels.
    let plain = proxy.get("/plain");
    assert_eq!(plain.header("x-cache-status"), None);
    proxy.get("/plain");
    assert_eq!(origin.requests(), 4);
}

#[test]
fn head_is_answered_from_a_cached_get() {
    let origin = Origin::start(cacheable("max-age=60", "0123456789"));
    let proxy = CachedProxy::with_defaults(origin.addr());
    assert_eq!(status_of(&proxy.get("/h")), "MISS");
    let head = proxy.send("HEAD", "/h", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(status_of(&head), "HIT");
    assert_eq!(head.header("content-length"), Some("10"));
    assert!(head.body.is_empty());
    assert_eq!(origin.requests(), 1);
}

#[test]
fn max_age_expiry_fetches_again() {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let origin = Origin::start(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::full(
            200,
            &[("cache-control", "max-age=1")],
            format!("version {n}"),
        )
    });
    let proxy = CachedProxy::with_defaults(origin.addr());
    assert_eq!(proxy.get("/e").text(), "version 1");
    assert_eq!(status_of(&proxy.get("/e")), "HIT");
    thread::sleep(PAST_ONE_SECOND);
    let expired = proxy.get("/e");
    assert_eq!(status_of(&expired), "EXPIRED");
    assert_eq!(expired.text(), "version 2");
    let hit = proxy.get("/e");
    assert_eq!((status_of(&hit), hit.text().as_str()), ("HIT", "version 2"));
    assert_eq!(origin.requests(), 2);
}

#[test]
fn stale_entry_is_revalidated_by_etag() {
    let origin = Origin::start(|req| {
        if req.header("if-none-match") == Some("\"v1\"") {
            Reply::full(
                304,
                &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
                "",
            )
        } else {
            Reply::full(
                200,
                &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
                "etagged body",
            )
        }
    });
    let proxy = CachedProxy::with_defaults(origin.addr());
    assert_eq!(status_of(&proxy.get("/r")), "MISS");
    thread::sleep(PAST_ONE_SECOND);
    let revalidated = proxy.get("/r");
    assert_eq!(revalidated.status, 200);
    assert_eq!(status_of(&revalidated), "REVALIDATED");
    assert_eq!(revalidated.text(), "etagged body");
    let conditional = origin.last_received().expect("origin saw the revalidation");
    assert_eq!(conditional.header("if-none-match"), Some("\"v1\""));
    // The 304's max-age=60 now applies.
    assert_eq!(status_of(&proxy.get("/r")), "HIT");
    assert_eq!(origin.requests(), 2);
}

#[test]
fn stale_if_error_serves_the_stale_entry_when_the_origin_fails() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let origin = Origin::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::full(
                200,
                &[("cache-control", "max-age=1, stale-if-error=60")],
                "good",
            )
        } else {
            Reply::full(503, &[], "down")
        }
    });
    let proxy = CachedProxy::with_defaults(origin.addr());
    assert_eq!(status_of(&proxy.get("/s")), "MISS");
    thread::sleep(PAST_ONE_SECOND);
    let stale = proxy.get("/s");
    assert_eq!((stale.status, stale.text().as_str()), (200, "good"));
    assert_eq!(status_of(&stale), "STALE");
    assert_eq!(origin.requests(), 2);
}

#[test]
fn no_store_and_private_are_not_cached() {
    let origin = Origin::start(|req| {
        let cc = if req.path.starts_with("/ns") {
            "no-store, max-age=60"
        } else if req.path.starts_with("/pv") {
            "private, max-age=60"
        } else {
            "no-cache"
        };
        Reply::full(200, &[("cache-control", cc)], "secret")
    });
    let proxy = CachedProxy::with_defaults(origin.addr());
    for path in ["/ns", "/pv", "/nc"] {
        for _ in 0..2 {
            let r = proxy.get(path);
            assert_eq!((r.status, status_of(&r)), (200, "MISS"), "{path}");
        }
    }
    assert_eq!(origin.requests(), 6);
}

#[test]
fn vary_keeps_variants_apart() {
    let origin = Origin::start(|req| {
        let enc = req.header("accept-encoding").unwrap_or("none").to_string();
        Reply::full(
            200,
            &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")],
            format!("encoded as {enc}"),
        )
    });
    let proxy = CachedProxy::with_defaults(origin.addr());
    let ask = |enc: Option<&str>| {
        let headers: Vec<(&str, &str)> = enc.map(|e| ("Accept-Encoding", e)).into_iter().collect();
        let r = proxy.send("GET", "/v", &headers);
        (status_of(&r).to_string(), r.text())
    };
    assert_eq!(ask(Some("gzip")), ("MISS".into(), "encoded as gzip".into()));
    assert_eq!(ask(Some("br")), ("MISS".into(), "encoded as br".into()));
    assert_eq!(ask(None), ("MISS".into(), "encoded as none".into()));
    assert_eq!(ask(Some("gzip")), ("HIT".into(), "encoded as gzip".into()));
    assert_eq!(ask(Some("br")), ("HIT".into(), "encoded as br".into()));
    assert_eq!(ask(None), ("HIT".into(), "encoded as none".into()));
    assert_eq!(origin.requests(), 3);
}

#[test]
fn concurrent_misses_make_one_origin_fetch() {
    let origin = Origin::start(|_| {
        Reply::Delay(
            Duration::from_millis(500),
            Box::new(Reply::full(
                200,
                &[("cache-control", "max-age=60")],
                "slow body",
            )),
        )
    });
    let proxy = CachedProxy::with_defaults(origin.addr());
    let addr = proxy.addr;
    let clients: Vec<_> = (0..50)
        .map(|_| {
            thread::spawn(move || {
                request(addr, "GET", "/slow", &[], b"")
                    .map(|r| (r.status, r.text(), status_of(&r).to_string()))
            })
        })
        .collect();
    let mut misses = 0;
    for c in clients {
        let (status, body, cache) = c
            .join()
            .expect("client thread")
            .expect("client got a response");
        assert_eq!((status, body.as_str()), (200, "slow body"));
        if cache == "MISS" {
            misses += 1;
        } else {
            assert_eq!(cache, "HIT");
        }
    }
    assert_eq!(origin.requests(), 1, "the lock collapses the misses");
    assert_eq!(misses, 1);
}

#[test]
fn a_fill_cut_by_the_origin_is_never_served() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let origin = Origin::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::ResetAfter {
                head_and_partial_body: b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 100\r\n\r\npartial"
                    .to_vec(),
            }
        } else {
            Reply::full(200, &[("cache-control", "max-age=60")], "whole")
        }
    });
    let proxy = CachedProxy::with_defaults(origin.addr());
    // The first client sees the cut (a short body or an error), never a complete one.
    if let Ok(r) = request(proxy.addr, "GET", "/cut", &[], b"") {
        assert_ne!(r.text(), "whole");
        assert!(r.body.len() < 100);
    }
    let second = proxy.get("/cut");
    assert_eq!(
        (status_of(&second), second.text().as_str()),
        ("MISS", "whole")
    );
    assert_eq!(status_of(&proxy.get("/cut")), "HIT");
    assert_eq!(origin.requests(), 2);
}

#[test]
fn purge_from_loopback_removes_the_entry() {
    let origin = Origin::start(cacheable("max-age=60", "purgeable"));
    let proxy = CachedProxy::with_defaults(origin.addr());
    assert_eq!(status_of(&proxy.get("/p")), "MISS");
    assert_eq!(status_of(&proxy.get("/p")), "HIT");
    assert_eq!(proxy.send("PURGE", "/p", &[]).status, 200);
    assert_eq!(proxy.send("PURGE", "/p", &[]).status, 404);
    assert_eq!(status_of(&proxy.get("/p")), "MISS");
    assert_eq!(origin.requests(), 2, "PURGE never reaches the origin");
}

#[test]
fn a_successful_post_invalidates_the_cached_get() {
    let origin = Origin::start(cacheable("max-age=60", "resource"));
    let proxy = CachedProxy::with_defaults(origin.addr());
    assert_eq!(status_of(&proxy.get("/u")), "MISS");
    assert_eq!(status_of(&proxy.get("/u")), "HIT");
    let post = request(proxy.addr, "POST", "/u", &[], b"new").expect("POST answered");
    assert_eq!(status_of(&post), "MISS");
    assert_eq!(status_of(&proxy.get("/u")), "MISS");
    assert_eq!(origin.requests(), 3, "GET, POST, GET");
}

#[test]
fn eviction_keeps_the_cache_within_max_bytes() {
    // 64 KiB of memory: one entry may take at most half of it, 32 KiB.
    let origin = Origin::start(|req| {
        let size = if req.path.starts_with("/big") {
            40 * 1024
        } else {
            1024
        };
        Reply::full(200, &[("cache-control", "max-age=60")], vec![b'x'; size])
    });
    let proxy = CachedProxy::start(origin.addr(), 64 * 1024, 5000);
    // Too large for one entry: streamed to the client, never stored.
    for _ in 0..2 {
        let r = proxy.get("/big");
        assert_eq!((r.body.len(), status_of(&r)), (40 * 1024, "MISS"));
    }
    // Far more than fits: the first ones are evicted, the last one stays.
    for i in 0..200 {
        assert_eq!(status_of(&proxy.get(&format!("/item{i}"))), "MISS");
    }
    assert_eq!(status_of(&proxy.get("/item199")), "HIT");
    let kept = (0..200)
        .filter(|i| status_of(&proxy.get(&format!("/item{i}"))) == "HIT")
        .count();
    // Each 1 KiB entry takes a little more with its head: at most 64 entries fit.
    assert!(kept < 64, "{kept} entries kept in 64 KiB");
}

#[test]
fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    // The refetch is held at the origin until the test opens `gate`.
    let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (counter, origin_gate) = (Arc::clone(&calls), Arc::clone(&gate));
    let origin = Origin::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::full(
                200,
                &[("cache-control", "max-age=1, stale-while-revalidate=60")],
                "old",
            );
        }
        let (open, changed) = &*origin_gate;
        let guard = open.lock().expect("gate");
        let _ = changed
            .wait_timeout_while(guard, Duration::from_secs(10), |open| !*open)
            .expect("gate");
        Reply::full(200, &[("cache-control", "max-age=60")], "new")
    });
    let proxy = CachedProxy::with_defaults(origin.addr());
    assert_eq!(status_of(&proxy.get("/swr")), "MISS");
    thread::sleep(PAST_ONE_SECOND);
    // Answered from the stale entry although the origin has not answered the refetch.
    let first = proxy.get("/swr");
    assert_eq!((status_of(&first), first.text().as_str()), ("STALE", "old"));
    assert!(
        test_support::wait_until(Duration::from_secs(5), || origin.requests() == 2),
        "the background refresh reaches the origin"
    );
    let meanwhile = proxy.get("/swr");
    assert_eq!(
        (status_of(&meanwhile), meanwhile.text().as_str()),
        ("STALE", "old")
    );
    assert_eq!(origin.requests(), 2, "one refresh at a time");
    {
        let (open, changed) = &*gate;
        *open.lock().expect("gate") = true;
        changed.notify_all();
    }
    assert!(
        test_support::wait_until(Duration::from_secs(5), || {
            let r = proxy.get("/swr");
            (status_of(&r), r.text().as_str()) == ("HIT", "new")
        }),
        "the refreshed entry is served"
    );
    assert_eq!(origin.requests(), 2);
}

#[test]
fn cached_answers_keep_the_connection_usable() {
    let origin = Origin::start(cacheable("max-age=60", "keep me"));
    let proxy = CachedProxy::with_defaults(origin.addr());
    let mut client = test_support::RawClient::connect(proxy.addr).expect("connect");
    let mut ask = |method: &str| {
        client
            .send(format!("{method} /k HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .expect("send");
        if method == "HEAD" {
            client.read_response_for_head().expect("HEAD response")
        } else {
            client.read_final_response().expect("GET response")
        }
    };
    let statuses: Vec<(String, String)> = ["GET", "GET", "HEAD", "GET"]
        .into_iter()
        .map(|m| {
            let r = ask(m);
            (status_of(&r).to_string(), r.text())
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("MISS".to_string(), "keep me".to_string()),
            ("HIT".to_string(), "keep me".to_string()),
            ("HIT".to_string(), String::new()),
            ("HIT".to_string(), "keep me".to_string()),
        ]
    );
    assert_eq!(origin.connections(), 1);
    assert_eq!(origin.requests(), 1);
}

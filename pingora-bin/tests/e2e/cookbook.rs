//! docs/cookbook.md: every YAML recipe on the page is read from the page, run through
//! the real binary and checked for what the page says it does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use test_support::{
    chunked_body, free_addr, request, Origin, ProxyProcess, RawClient, Reply, Response,
};

const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

use crate::bin;

/// The YAML blocks of docs/cookbook.md by recipe name (`<!-- recipe: NAME -->`).
fn recipes() -> HashMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cookbook.md");
    let page = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = HashMap::new();
    let mut rest = page.as_str();
    while let Some(at) = rest.find("<!-- recipe: ") {
        let after = &rest[at + "<!-- recipe: ".len()..];
        let (name, after) = after.split_once(" -->").expect("recipe marker closes");
        let block = after
            .split_once("```yaml\n")
            .and_then(|(_, b)| b.split_once("```"))
            .map(|(b, _)| b)
            .expect("a yaml block follows the marker");
        out.insert(name.to_string(), block.to_string());
        rest = after;
    }
    out
}

/// A running recipe: the proxy and where it listens.
struct Recipe {
    listen: SocketAddr,
    _proxy: ProxyProcess,
}

/// Starts recipe `name` with the proxy on a free port and the application servers
/// `apps` (for `127.0.0.1:9001`, `127.0.0.1:9002`, in order).
fn run(name: &str, apps: &[SocketAddr]) -> Recipe {
    let all = recipes();
    let yaml = all
        .get(name)
        .unwrap_or_else(|| panic!("no recipe {name} in docs/cookbook.md"));
    let listen = free_addr();
    let mut yaml = yaml.replace("127.0.0.1:8080", &listen.to_string());
    // Addresses that refuse connections when a recipe names more apps than given.
    for (i, placeholder) in ["127.0.0.1:9001", "127.0.0.1:9002"].iter().enumerate() {
        let addr = apps.get(i).copied().unwrap_or_else(free_addr);
        yaml = yaml.replace(placeholder, &addr.to_string());
    }
    let yaml = format!(
        "version: 1\npid_file: {{dir}}/pingora.pid\nupgrade_sock: {{dir}}/upgrade.sock\n{yaml}"
    );
    let proxy = ProxyProcess::start(bin(), &yaml, &[listen])
        .unwrap_or_else(|e| panic!("recipe {name} starts: {e}"));
    Recipe {
        listen,
        _proxy: proxy,
    }
}

fn get(r: &Recipe, path: &str, headers: &[(&str, &str)]) -> Response {
    request(r.listen, "GET", path, headers, b"").expect("response")
}

#[test]
fn every_recipe_on_the_page_has_a_test() {
    let mut names: Vec<String> = recipes().into_keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "admin-allow-list",
            "blue-green",
            "canary-header",
            "request-ids",
            "retry-503",
            "security-headers",
            "sticky-header",
            "strip-prefix",
            "tls-redirect",
            "upload-limit",
        ]
    );
}

#[test]
fn tls_redirect() {
    let r = run("tls-redirect", &[]);
    let resp = get(&r, "/a?b=1", &[("Host", "www.example.com:80")]);
    assert_eq!(resp.status, 301);
    assert_eq!(
        resp.header("location"),
        Some("https://www.example.com/a?b=1")
    );
}

#[test]
fn strip_prefix() {
    let app = Origin::start(|req| Reply::ok(req.path.clone()));
    let r = run("strip-prefix", &[app.addr()]);
    assert_eq!(get(&r, "/api/users?page=2", &[]).text(), "/users?page=2");
    assert_eq!(app.last_received().unwrap().path, "/users?page=2");
}

#[test]
fn security_headers() {
    let app =
        Origin::start(|_| Reply::full(200, &[("Server", "app/1"), ("X-Powered-By", "php")], "ok"));
    let r = run("security-headers", &[app.addr()]);
    let ok = get(&r, "/", &[]);
    drop(app);
    // The application is gone now: the proxy's own 502 carries the headers too.
    let down = get(&r, "/", &[]);
    assert_eq!((ok.status, down.status), (200, 502));
    for resp in [&ok, &down] {
        assert_eq!(
            resp.header("strict-transport-security"),
            Some("max-age=63072000")
        );
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(resp.header("x-frame-options"), Some("DENY"));
        assert_eq!(resp.header("server"), None);
        assert_eq!(resp.header("x-powered-by"), None);
    }
}

#[test]
fn admin_allow_list() {
    let app = Origin::start(|_| Reply::ok("page"));
    let r = run("admin-allow-list", &[app.addr()]);
    assert_eq!(get(&r, "/admin/users", &[]).status, 403);
    assert_eq!(app.requests(), 0, "the application never sees it");
    assert_eq!(get(&r, "/", &[]).status, 200);
}

#[test]
fn upload_limit() {
    let app = Origin::start(|req| Reply::ok(req.path.clone()));
    let r = run("upload-limit", &[app.addr()]);
    let mut c = RawClient::connect(r.listen).unwrap();
    c.send(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 10485761\r\n\r\n")
        .unwrap();
    assert_eq!(c.read_response().unwrap().status, 413);
    assert_eq!(app.requests(), 0);
    let small = request(r.listen, "POST", "/upload", &[], &[b'u'; 4096]).unwrap();
    assert_eq!(small.status, 200);
    // Chunked and growing past 10 MiB: cut.
    let piece = vec![b'x'; 1 << 20];
    let chunks: Vec<&[u8]> = (0..12).map(|_| piece.as_slice()).collect();
    let mut c = RawClient::connect(r.listen).unwrap();
    let mut bytes =
        b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    bytes.extend_from_slice(&chunked_body(&chunks, &[]));
    let _ = c.send(&bytes);
    if let Ok(resp) = c.read_response() {
        assert_eq!(resp.status, 413);
    }
    assert!(c.is_closed_by_peer(EXCHANGE_TIMEOUT));
    assert!(
        app.received().iter().all(|q| q.body_len <= 10_485_760),
        "the application never gets more than 10 MiB"
    );
}

#[test]
fn canary_header() {
    let stable = Origin::start(|_| Reply::ok("stable"));
    let canary = Origin::start(|_| Reply::ok("canary"));
    let r = run("canary-header", &[stable.addr(), canary.addr()]);
    assert_eq!(get(&r, "/", &[("X-Canary", "1")]).text(), "canary");
    assert_eq!(get(&r, "/", &[("X-Canary", "0")]).text(), "stable");
    assert_eq!(get(&r, "/", &[]).text(), "stable");
}

#[test]
fn sticky_header() {
    let a = Origin::start(|_| Reply::ok("a"));
    let b = Origin::start(|_| Reply::ok("b"));
    let r = run("sticky-header", &[a.addr(), b.addr()]);
    let mut seen = HashMap::new();
    for user in 0..20 {
        let name = format!("user-{user}");
        let first = get(&r, "/", &[("X-User", &name)]).text();
        for _ in 0..3 {
            assert_eq!(get(&r, "/", &[("X-User", &name)]).text(), first, "{name}");
        }
        *seen.entry(first).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "users spread over both backends: {seen:?}");
}

#[test]
fn request_ids() {
    let app = Origin::start(|_| Reply::ok("ok"));
    let r = run("request-ids", &[app.addr()]);
    let resp = get(&r, "/", &[("X-Request-Id", "client-made")]);
    let id = resp.header("x-request-id").expect("echoed").to_string();
    assert_ne!(id, "client-made");
    assert_eq!(&id[14..15], "7", "UUID v7: {id}");
    assert_eq!(
        app.last_received().unwrap().header("x-request-id"),
        Some(id.as_str())
    );
}

#[test]
fn blue_green() {
    let blue = Origin::start(|_| Reply::ok("blue"));
    let green = Origin::start(|_| Reply::ok("green"));
    let r = run("blue-green", &[blue.addr(), green.addr()]);
    let mut blues = 0;
    for _ in 0..40 {
        if get(&r, "/", &[]).text() == "blue" {
            blues += 1;
        }
    }
    assert_eq!((blues, 40 - blues), (30, 10), "three of every four to blue");
}

#[test]
fn retry_503() {
    let busy = Origin::start(|_| Reply::full(503, &[], "busy"));
    let fine = Origin::start(|req| Reply::ok(format!("fine {}", req.method)));
    let r = run("retry-503", &[busy.addr(), fine.addr()]);
    for i in 0..4 {
        let resp = get(&r, &format!("/page{i}"), &[]);
        assert_eq!((resp.status, resp.text()), (200, "fine GET".to_string()));
    }
    assert_eq!(
        fine.requests(),
        4,
        "every GET answered by the healthy backend"
    );
    assert!(busy.requests() >= 1, "round robin tried the busy one too");

    // POST: not retried once it reached a backend; its 503 reaches the client.
    let before = (busy.requests(), fine.requests());
    let statuses: Vec<u16> = (0..4)
        .map(|i| {
            request(r.listen, "POST", &format!("/form{i}"), &[], b"x=1")
                .expect("response")
                .status
        })
        .collect();
    let sent_to_busy = busy.requests() - before.0;
    assert!(sent_to_busy >= 1, "round robin sent a POST to the busy one");
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        sent_to_busy,
        "{statuses:?}"
    );
    assert_eq!(
        fine.requests() - before.1,
        4 - sent_to_busy,
        "no POST sent twice"
    );

    // A backend that cannot be reached: the other one answers, a POST included.
    drop(busy);
    let resp = request(r.listen, "POST", "/after", &[], b"x=1").expect("response");
    assert_eq!((resp.status, resp.text()), (200, "fine POST".to_string()));
    let resp = get(&r, "/after", &[]);
    assert_eq!(resp.status, 200);
}

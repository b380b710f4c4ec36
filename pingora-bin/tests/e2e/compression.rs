//! Response compression through the real binary, decoded by curl (`--compressed`, with
//! its own gzip, Brotli and Zstandard decoders): negotiation by q-values and the
//! configured order, the head (Vary, ETag, no Content-Length), responses left alone, a
//! slow stream reaching the client piece by piece, the cache storing one identity copy,
//! route-level sections replacing the service's, the metrics, and bad values refused.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use test_support::{
    free_addr, request, run_command, wait_until, CommandOutput, Metrics, Origin, ProxyProcess,
    Reply, Response, TestDir,
};

use crate::{assert_config_refused, bin};

/// Time any single exchange or command may take before it counts as hung.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A config with one service `web` on `listen`: `service` lines (indented by 4) and
/// `routes` (items indented by 6) to upstream `origin` at `origin`.
fn config(listen: SocketAddr, service: &str, routes: &str, origin: SocketAddr) -> String {
    format!(
        "version: 1\npid_file: {{dir}}/pingora.pid\nupgrade_sock: {{dir}}/upgrade.sock\nservices:\n  - name: web\n    listeners: [ {{ addr: \"{listen}\" }} ]\n{service}    routes:\n{routes}    upstreams:\n      origin:\n        peers: [\"{origin}\"]\n        read_timeout_ms: 10000\n"
    )
}

fn start(yaml: &str, listen: SocketAddr) -> ProxyProcess {
    ProxyProcess::start(bin(), yaml, &[listen])
        .unwrap_or_else(|e| panic!("proxy did not start: {e}\nconfig:\n{yaml}"))
}

fn get(listen: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(listen, "GET", path, headers, b"").expect("response")
}

/// A JSON document of about `n` bytes that compresses like a real one.
fn json(n: usize) -> Vec<u8> {
    let mut out = b"[".to_vec();
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(
            format!(
                "{{\"id\":{i},\"name\":\"item {}\",\"tags\":[\"a\",\"b{}\"]}},",
                i * 7 % 31,
                i % 5
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.extend_from_slice(b"{}]");
    out
}

/// `curl --compressed` with `accept` as its Accept-Encoding: the decoded body and the
/// response headers (lowercased names).
fn curl(url: &str, accept: &str, dir: &TestDir) -> (Vec<u8>, String) {
    let body = dir.join("body");
    let headers = dir.join("headers");
    let ae = format!("Accept-Encoding: {accept}");
    let args = [
        "-sS",
        "--max-time",
        "15",
        "--compressed",
        "-H",
        &ae,
        "-D",
        headers.to_str().unwrap(),
        "-o",
        body.to_str().unwrap(),
        url,
    ];
    let out: CommandOutput = run_command(Path::new("curl"), &args, TIMEOUT).expect("curl runs");
    assert_eq!(out.code(), Some(0), "curl {url}: {}", out.stderr);
    let head = std::fs::read_to_string(&headers)
        .unwrap()
        .to_ascii_lowercase();
    (std::fs::read(&body).unwrap(), head)
}

#[test]
fn curl_decodes_every_algorithm_and_the_head_says_so() {
    let doc = json(20_000);
    let served = doc.clone();
    let origin = Origin::start(move |_| {
        Reply::full(
            200,
            &[("Content-Type", "application/json"), ("ETag", "\"v1\"")],
            served.clone(),
        )
    });
    let listen = free_addr();
    let service = "    compression: { algorithms: [zstd, br, gzip] }\n";
    let routes = "      - upstream: origin\n";
    let _proxy = start(&config(listen, service, routes, origin.addr()), listen);
    let dir = TestDir::new().unwrap();
    let url = format!("http://{listen}/doc.json");
    for (accept, expect) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, br, zstd", "zstd"),
        ("gzip;q=1.0, br;q=0.5, zstd;q=0.1", "gzip"),
        ("*", "zstd"),
        ("*;q=0.5, br", "br"),
    ] {
        let (body, head) = curl(&url, accept, &dir);
        assert!(
            body == doc,
            "{accept}: curl decoded {} bytes, not the document",
            body.len()
        );
        assert!(
            head.contains(&format!("content-encoding: {expect}\r\n")),
            "{accept}: {head}"
        );
        assert!(
            head.contains("vary: accept-encoding\r\n"),
            "{accept}: {head}"
        );
        assert!(head.contains("etag: w/\"v1\"\r\n"), "{accept}: {head}");
        assert!(!head.contains("content-length"), "{accept}: {head}");
    }
    // Nothing acceptable: as the origin sent it, varying all the same.
    for accept in ["identity", "deflate", "gzip;q=0, br;q=0, zstd;q=0"] {
        let r = get(listen, "/doc.json", &[("Accept-Encoding", accept)]);
        assert_eq!(r.body, doc, "{accept}");
        assert_eq!(r.header("content-encoding"), None, "{accept}");
        assert_eq!(
            r.header("content-length"),
            Some(doc.len().to_string().as_str())
        );
        assert_eq!(r.header("etag"), Some("\"v1\""), "{accept}");
        assert!(r.has_token("vary", "accept-encoding"), "{accept}");
    }
    let r = get(listen, "/doc.json", &[]);
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.body_len < doc.len() as u64 + 1);
}

#[test]
fn over_http2_too() {
    let doc = json(50_000);
    let served = doc.clone();
    let origin =
        Origin::start(move |_| Reply::full(200, &[("Content-Type", "text/css")], served.clone()));
    let listen = free_addr();
    let _proxy = start(
        &config(
            listen,
            "    compression: {}\n",
            "      - upstream: origin\n",
            origin.addr(),
        ),
        listen,
    );
    let dir = TestDir::new().unwrap();
    let headers = dir.join("headers");
    let body = dir.join("body");
    let url = format!("http://{listen}/style.css");
    let args = [
        "-sS",
        "--max-time",
        "15",
        "--http2-prior-knowledge",
        "--compressed",
        "-D",
        headers.to_str().unwrap(),
        "-o",
        body.to_str().unwrap(),
        &url,
    ];
    let out = run_command(Path::new("curl"), &args, TIMEOUT).expect("curl runs");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let head = std::fs::read_to_string(&headers)
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("content-encoding: zstd"), "{head}");
    assert!(std::fs::read(&body).unwrap() == doc, "decoded body differs");
}

#[test]
fn responses_that_are_left_alone() {
    let big = json(5000);
    let pre = b"\x1f\x8b not really gzip".to_vec();
    let served = big.clone();
    let pre_served = pre.clone();
    let origin = Origin::start(move |req| {
        let json = ("Content-Type", "application/json");
        match req.path.as_str() {
            "/204" => Reply::full(204, &[json], Vec::new()),
            "/304" => Reply::full(304, &[json, ("ETag", "\"v1\"")], Vec::new()),
            "/206" => Reply::full(
                206,
                &[json, ("Content-Range", "bytes 0-9/5000")],
                served[..10].to_vec(),
            ),
            "/encoded" => Reply::full(
                200,
                &[json, ("Content-Encoding", "gzip")],
                pre_served.clone(),
            ),
            "/short" => Reply::full(200, &[json], served[..1023].to_vec()),
            "/png" => Reply::full(200, &[("Content-Type", "image/png")], served.clone()),
            "/no-transform" => Reply::full(
                200,
                &[json, ("Cache-Control", "no-transform")],
                served.clone(),
            ),
            _ => Reply::full(200, &[json], served.clone()),
        }
    });
    let listen = free_addr();
    let service = "    compression: { min_bytes: 1024 }\n";
    let _proxy = start(
        &config(listen, service, "      - upstream: origin\n", origin.addr()),
        listen,
    );
    let gzip = [("Accept-Encoding", "gzip, br, zstd")];
    let head = request(listen, "HEAD", "/doc", &gzip, b"").unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-encoding"), None, "HEAD");
    for path in ["/204", "/304", "/206", "/short", "/png", "/no-transform"] {
        let r = get(listen, path, &gzip);
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert_eq!(r.header("vary"), None, "{path}");
    }
    let r = get(listen, "/206", &gzip);
    assert_eq!((r.status, &r.body[..]), (206, &big[..10]));
    let r = get(listen, "/short", &gzip);
    assert_eq!(r.body.len(), 1023);
    let r = get(listen, "/encoded", &gzip);
    assert_eq!(
        r.header("content-encoding"),
        Some("gzip"),
        "never a second encoding"
    );
    assert_eq!(r.body, pre);
    let r = get(listen, "/doc", &gzip);
    assert_eq!(
        r.header("content-encoding"),
        Some("zstd"),
        "the default order"
    );
}

/// An origin answering one request with a chunked `text/event-stream`: the first event at
/// once, each next one when `next` says so.
fn event_origin() -> (SocketAddr, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (next, wait) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
        for i in 1..=3 {
            if i > 1 && wait.recv_timeout(TIMEOUT).is_err() {
                return;
            }
            let event = format!("data: event {i} {}\n\n", "x".repeat(200));
            let _ = s.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
        }
        let _ = s.write_all(b"0\r\n\r\n");
    });
    (addr, next)
}

#[test]
fn a_slow_stream_reaches_the_client_event_by_event() {
    for algorithm in ["gzip", "br", "zstd"] {
        let (origin, next) = event_origin();
        let listen = free_addr();
        let service = format!("    compression: {{ algorithms: [{algorithm}], min_bytes: 0 }}\n");
        let proxy = start(
            &config(listen, &service, "      - upstream: origin\n", origin),
            listen,
        );
        let mut curl = Command::new("curl")
            .args([
                "-sS",
                "-N",
                "--max-time",
                "20",
                "--compressed",
                "-D",
                "/dev/stderr",
            ])
            .arg(format!("http://{listen}/events"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("curl starts");
        let (lines_tx, lines) = mpsc::channel::<String>();
        let stdout = curl.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !line.is_empty() && lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Each event arrives, decoded, before the origin sends the next one.
        for i in 1..=3 {
            let line = lines.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
                panic!("{algorithm}: event {i} did not arrive while the stream was open")
            });
            assert!(
                line.starts_with(&format!("data: event {i} ")),
                "{algorithm}: {line}"
            );
            let _ = next.send(());
        }
        let status = curl.wait().unwrap();
        let mut err = String::new();
        curl.stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "{algorithm}: {err}");
        assert!(
            err.to_ascii_lowercase()
                .contains(&format!("content-encoding: {algorithm}")),
            "{err}"
        );
        drop(proxy);
    }
}

#[test]
fn a_large_body_is_compressed_as_it_streams() {
    // 24 MiB of JSON in 16 KiB chunks: decoded intact by curl, and the proxy's memory
    // does not grow with it.
    const LEN: usize = 24 << 20;
    let chunk = json(16 << 10);
    let chunks: Vec<Vec<u8>> = (0..LEN / chunk.len()).map(|_| chunk.clone()).collect();
    let total = chunks.len() * chunk.len();
    let origin = Origin::start(move |_| Reply::Chunked {
        status: 200,
        headers: test_support::owned(&[("Content-Type", "application/json")]),
        chunks: chunks.clone(),
        trailers: Vec::new(),
    });
    let listen = free_addr();
    let service = "    compression: { algorithms: [gzip] }\n";
    let proxy = start(
        &config(listen, service, "      - upstream: origin\n", origin.addr()),
        listen,
    );
    let dir = TestDir::new().unwrap();
    let (body, head) = curl(&format!("http://{listen}/big"), "gzip", &dir);
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(body.len(), total);
    assert!(
        body.chunks(chunk.len()).all(|c| c == chunk),
        "decoded body differs"
    );
    let peak = proxy.memory().expect("proxy memory").peak_rss_kib;
    assert!(
        peak < 64 << 10,
        "peak RSS {peak} KiB for a {total}-byte body"
    );
}

#[test]
fn the_cache_stores_one_identity_copy_and_each_client_gets_its_encoding() {
    let doc = json(8000);
    let served = doc.clone();
    let origin = Origin::start(move |_| {
        Reply::full(
            200,
            &[
                ("Content-Type", "text/html"),
                ("Cache-Control", "max-age=60"),
                ("ETag", "\"v7\""),
            ],
            served.clone(),
        )
    });
    let listen = free_addr();
    let service =
        "    cache: { max_bytes: 10485760 }\n    compression: { algorithms: [br, gzip] }\n";
    let routes = "      - upstream: origin\n        cache: true\n";
    let _proxy = start(&config(listen, service, routes, origin.addr()), listen);
    let dir = TestDir::new().unwrap();
    let url = format!("http://{listen}/page");
    let (body, head) = curl(&url, "gzip", &dir);
    assert!(
        body == doc && head.contains("content-encoding: gzip"),
        "{head}"
    );
    assert!(head.contains("x-cache-status: miss"), "{head}");
    // The stored copy is the origin's: an identity client gets it as is, from the cache.
    let r = get(listen, "/page", &[]);
    assert_eq!(r.header("x-cache-status"), Some("HIT"));
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("etag"), Some("\"v7\""));
    assert_eq!(r.body, doc);
    let (body, head) = curl(&url, "br", &dir);
    assert!(body == doc, "br from the cache");
    assert!(
        head.contains("content-encoding: br") && head.contains("x-cache-status: hit"),
        "{head}"
    );
    assert!(head.contains("etag: w/\"v7\""), "{head}");
    // The weakened tag revalidates against the stored strong one (weak comparison):
    // a 304 from the cache, which compression leaves alone. A range is cut from the
    // identity copy and not compressed either.
    let r = get(
        listen,
        "/page",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", "W/\"v7\"")],
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("content-encoding"), None);
    let r = get(
        listen,
        "/page",
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")],
    );
    assert_eq!((r.status, &r.body[..]), (206, &doc[..10]));
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(origin.requests(), 1, "one fetch for every encoding");
}

#[test]
fn a_route_level_section_replaces_the_service_one() {
    let doc = json(4000);
    let served = doc.clone();
    let origin =
        Origin::start(move |_| Reply::full(200, &[("Content-Type", "text/plain")], served.clone()));
    let listen = free_addr();
    let service = "    compression: { algorithms: [gzip] }\n";
    let routes = "      - match: { path_prefix: /off/ }\n        upstream: origin\n        compression: { algorithms: [] }\n      - match: { path_prefix: /br/ }\n        upstream: origin\n        compression: { algorithms: [br], types: [text/html] }\n      - upstream: origin\n";
    let _proxy = start(&config(listen, service, routes, origin.addr()), listen);
    let all = [("Accept-Encoding", "gzip, br, zstd")];
    assert_eq!(
        get(listen, "/x", &all).header("content-encoding"),
        Some("gzip")
    );
    assert_eq!(get(listen, "/off/x", &all).header("content-encoding"), None);
    // The route's own types replace the service's defaults too: text/plain is not listed.
    assert_eq!(get(listen, "/br/x", &all).header("content-encoding"), None);
    let r = get(listen, "/off/x", &all);
    assert_eq!(r.body, doc);
}

#[test]
fn metrics_count_bytes_in_and_out_by_algorithm() {
    let doc = json(30_000);
    let served = doc.clone();
    let origin = Origin::start(move |_| {
        Reply::full(200, &[("Content-Type", "application/json")], served.clone())
    });
    let listen = free_addr();
    let admin = free_addr();
    let yaml = config(
        listen,
        "    compression: {}\n",
        "      - upstream: origin\n",
        origin.addr(),
    )
    .replace(
        "services:\n",
        &format!("admin: {{ addr: \"{admin}\" }}\nservices:\n"),
    );
    let _proxy = ProxyProcess::start(bin(), &yaml, &[listen, admin]).expect("proxy starts");
    let r = get(listen, "/a", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let sent = r.body.len() as f64;
    let labels = [("service", "web"), ("algorithm", "gzip")];
    // The request is counted when it is logged, just after its last byte went out.
    let counted = wait_until(TIMEOUT, || {
        Metrics::scrape(admin).find("pingora_compression_bytes_in_total", &labels) != Some(0.0)
    });
    assert!(counted, "compression never counted");
    let m = Metrics::scrape(admin);
    assert_eq!(
        m.find("pingora_compression_bytes_in_total", &labels),
        Some(doc.len() as f64)
    );
    assert_eq!(
        m.find("pingora_compression_bytes_out_total", &labels),
        Some(sent)
    );
    let br = [("service", "web"), ("algorithm", "br")];
    assert_eq!(m.find("pingora_compression_bytes_in_total", &br), Some(0.0));
}

#[test]
fn bad_values_exit_2_with_file_line_and_key() {
    let dir = TestDir::new().unwrap();
    for (i, (service, key, needle)) in [
        (
            "    compression: { algorithms: [gzip, lzma] }\n",
            "services[0].compression.algorithms[1]",
            "unknown variant `lzma`",
        ),
        (
            "    compression: { level: { gzip: 12 } }\n",
            "services[0].compression.level.gzip",
            "1 to 9",
        ),
        (
            "    compression: { level: { deflate: 1 } }\n",
            "services[0].compression.level",
            "unknown key `deflate`",
        ),
        (
            "    compression: { types: [html] }\n",
            "services[0].compression.types[0]",
            "not a media type",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let listen = free_addr();
        let yaml = config(listen, service, "      - upstream: origin\n", free_addr())
            .replace("{dir}", &dir.path().display().to_string());
        let file = dir.write(&format!("bad{i}.yaml"), &yaml).unwrap();
        assert_config_refused(&file, 7, key, needle);
    }
}

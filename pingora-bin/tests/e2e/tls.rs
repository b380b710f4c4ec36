//! TLS through the real binary: HTTPS listeners (large bodies both ways, SNI certificates,
//! ALPN, resumption), TLS to upstreams (test CA, untrusted certificates, `verify: false`,
//! client certificates), and the checks `-t` makes. Certificates are minted per test.
//! Compiled with the `tls` feature only; without it, `cli::a_build_without_tls_refuses_tls_sections`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use test_support::{
    checksum, deterministic_checksum, free_addr, run_command, wait_until, ByteStream,
    CommandOutput, Origin, ProxyProcess, Reply, TestCa, TestDir, TlsClient, TlsClientConfig,
    TlsFront, LARGE_STREAM_SEED,
};

use crate::bin;

/// Longest any curl or pingora command here may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One test's files: the CA, certificates and keys, written to a private directory.
struct Files {
    dir: TestDir,
    ca: TestCa,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: TestDir::new().expect("temp dir"),
            ca: TestCa::new("pingora test CA"),
        }
    }

    /// Issues a server certificate for `names` and writes it as `stem.crt`/`stem.key`.
    fn server_cert(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        self.ca
            .issue(names)
            .write(self.dir.path(), stem)
            .expect("write cert")
    }

    fn ca_file(&self) -> PathBuf {
        self.ca.write(self.dir.path(), "ca").expect("write CA")
    }
}

/// YAML for one service `web` listening with TLS on `listen` (certificate `cert`/`key`,
/// `extra_certs` for SNI) in front of the upstream `origin` at `upstream`.
fn tls_listener_yaml(
    listen: SocketAddr,
    cert: &(PathBuf, PathBuf),
    extra_certs: &[(PathBuf, PathBuf)],
    upstream: SocketAddr,
) -> String {
    let mut certs = String::new();
    if !extra_certs.is_empty() {
        certs.push_str("          certs:\n");
        for (c, k) in extra_certs {
            certs.push_str(&format!(
                "            - {{ cert: {}, key: {} }}\n",
                c.display(),
                k.display()
            ));
        }
    }
    format!(
        "version: 1\npid_file: {{dir}}/pingora.pid\nupgrade_sock: {{dir}}/upgrade.sock\nservices:\n  - name: web\n    listeners:\n      - addr: \"{listen}\"\n        tls:\n          cert: {}\n          key: {}\n{certs}    routes:\n      - match: {{ path_prefix: /hello }}\n        respond: {{ status: 200, body: \"hi\\n\" }}\n      - upstream: origin\n    upstreams:\n      origin:\n        peers: [\"{upstream}\"]\n        read_timeout_ms: 20000\n",
        cert.0.display(),
        cert.1.display(),
    )
}

/// YAML for a plain listener on `listen` in front of a TLS upstream at `upstream`, with
/// `tls_lines` (indented by 10) as its `tls:` section and `top` lines at the top level.
fn tls_upstream_yaml(
    listen: SocketAddr,
    upstream: SocketAddr,
    tls_lines: &str,
    top: &str,
) -> String {
    format!(
        "version: 1\npid_file: {{dir}}/pingora.pid\nupgrade_sock: {{dir}}/upgrade.sock\n{top}services:\n  - name: web\n    listeners: [ {{ addr: \"{listen}\" }} ]\n    routes:\n      - upstream: origin\n    upstreams:\n      origin:\n        peers: [\"{upstream}\"]\n        connect_timeout_ms: 2000\n        tls:\n{tls_lines}"
    )
}

fn start(yaml: &str, listen: SocketAddr) -> ProxyProcess {
    ProxyProcess::start(bin(), yaml, &[listen])
        .unwrap_or_else(|e| panic!("proxy did not start: {e}\nconfig:\n{yaml}"))
}

fn curl(args: &[&str]) -> CommandOutput {
    let mut all = vec!["-sS", "--max-time", "50"];
    all.extend_from_slice(args);
    run_command(Path::new("curl"), &all, COMMAND_TIMEOUT)
        .unwrap_or_else(|e| panic!("curl {args:?}: {e}"))
}

/// `curl --cacert CA --resolve HOST:PORT:127.0.0.1 https://HOST:PORT<path>` with `extra`.
fn curl_https(
    ca: &Path,
    host: &str,
    addr: SocketAddr,
    path: &str,
    extra: &[&str],
) -> CommandOutput {
    let resolve = format!("{host}:{}:127.0.0.1", addr.port());
    let url = format!("https://{host}:{}{path}", addr.port());
    let ca = ca.display().to_string();
    let mut args = vec!["--http1.1", "--cacert", &ca, "--resolve", &resolve];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

/// A plain GET through the proxy with `Connection: close`: status line and body text.
fn get(addr: SocketAddr, path: &str) -> test_support::Response {
    let mut c = test_support::RawClient::connect(addr).expect("connect to proxy");
    c.set_read_timeout(Duration::from_secs(10)).unwrap();
    c.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    c.read_final_response().expect("response")
}

#[test]
fn https_listener_streams_large_bodies_both_ways() {
    const LEN: u64 = 32 * 1024 * 1024;
    let files = Files::new();
    let cert = files.server_cert("site", &["site.test"]);
    let origin = Origin::start(|req| match req.path.as_str() {
        "/big" => Reply::LargeStream {
            len: LEN,
            chunk: 64 * 1024,
        },
        _ => Reply::StreamEcho,
    });
    let listen = free_addr();
    let proxy = start(
        &tls_listener_yaml(listen, &cert, &[], origin.addr()),
        listen,
    );
    let ca = files.ca_file();

    // Download.
    let out_path = files.dir.join("big.out");
    let out = out_path.display().to_string();
    let r = curl_https(&ca, "site.test", listen, "/big", &["-o", &out]);
    assert_eq!(
        r.code(),
        Some(0),
        "curl: {}\nproxy log:\n{}",
        r.stderr,
        proxy.log()
    );
    let body = std::fs::read(&out_path).unwrap();
    assert_eq!(body.len() as u64, LEN);
    assert_eq!(
        checksum(&body),
        deterministic_checksum(LEN, LARGE_STREAM_SEED)
    );

    // Upload streamed back at the same time (the origin echoes as it reads).
    let mut upload = vec![0u8; LEN as usize];
    ByteStream::new(7).fill(&mut upload);
    let up_path = files.dir.write("up.bin", "").unwrap();
    std::fs::write(&up_path, &upload).unwrap();
    let up = up_path.display().to_string();
    let echo_path = files.dir.join("echo.out");
    let echo = echo_path.display().to_string();
    let r = curl_https(&ca, "site.test", listen, "/echo", &["-T", &up, "-o", &echo]);
    assert_eq!(
        r.code(),
        Some(0),
        "curl: {}\nproxy log:\n{}",
        r.stderr,
        proxy.log()
    );
    let echoed = std::fs::read(&echo_path).unwrap();
    assert_eq!(echoed.len(), upload.len());
    assert_eq!(checksum(&echoed), checksum(&upload));
    let seen = origin.last_received().expect("origin got the upload");
    assert_eq!(seen.body_len, LEN);
    assert_eq!(seen.body_checksum, checksum(&upload));

    // Two requests on one TLS connection: keep-alive works over TLS.
    let hello = format!("https://site.test:{}/hello", listen.port());
    let r = curl_https(&ca, "site.test", listen, "/hello", &["-v", &hello]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "hi\nhi\n");
    assert!(
        r.stderr.contains("Re-using existing connection"),
        "{}",
        r.stderr
    );
}

#[test]
fn sni_picks_the_certificate_and_alpn_is_http1() {
    let files = Files::new();
    let default = files.server_cert("default", &["default.test"]);
    let api = files.server_cert("api", &["api.test"]);
    let wild = files.server_cert("wild", &["*.wild.test"]);
    let origin = Origin::start(|_| Reply::ok("origin"));
    let listen = free_addr();
    let _proxy = start(
        &tls_listener_yaml(listen, &default, &[api, wild], origin.addr()),
        listen,
    );
    let client = TlsClient::new(TlsClientConfig {
        ca_pem: Some(files.ca.cert_pem().to_string()),
        alpn: vec!["http/1.1".into()],
        ..TlsClientConfig::default()
    });
    for (sni, expected) in [
        ("api.test", "api.test"),
        ("x.wild.test", "*.wild.test"),
        ("default.test", "default.test"),
    ] {
        let mut c = client
            .connect(listen, sni)
            .unwrap_or_else(|e| panic!("{sni}: {e}"));
        assert_eq!(c.peer_names(), vec![expected.to_string()], "{sni}");
        assert_eq!(c.alpn().as_deref(), Some("http/1.1"));
        let reply = c
            .exchange(
                format!("GET /hello HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
        let text = String::from_utf8_lossy(&reply);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("hi\n"), "{text}");
    }
    // No SNI, or a name no certificate covers: the default certificate.
    let any = TlsClient::new(TlsClientConfig::default());
    assert_eq!(
        any.connect(listen, "127.0.0.1").unwrap().peer_names(),
        ["default.test"]
    );
    assert_eq!(
        any.connect(listen, "other.test").unwrap().peer_names(),
        ["default.test"]
    );
    // A client without ALPN is served too.
    let mut c = TlsClient::new(TlsClientConfig {
        ca_pem: Some(files.ca.cert_pem().to_string()),
        ..TlsClientConfig::default()
    })
    .connect(listen, "api.test")
    .unwrap();
    assert_eq!(c.alpn(), None);
    let reply = c
        .exchange(b"GET /from-origin HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(String::from_utf8_lossy(&reply).ends_with("origin"));
}

#[test]
fn sessions_resume_and_bad_handshakes_are_survived() {
    let files = Files::new();
    let cert = files.server_cert("site", &["site.test"]);
    let origin = Origin::start(|_| Reply::ok("origin"));
    let listen = free_addr();
    let proxy = start(
        &tls_listener_yaml(listen, &cert, &[], origin.addr()),
        listen,
    );
    for tls12_only in [false, true] {
        let client = TlsClient::new(TlsClientConfig {
            ca_pem: Some(files.ca.cert_pem().to_string()),
            tls12_only,
            ..TlsClientConfig::default()
        });
        let mut first = client.connect(listen, "site.test").unwrap();
        first
            .exchange(b"GET /hello HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert!(!first.session_reused());
        let second = client.connect_resuming(listen, "site.test").unwrap();
        assert!(second.session_reused(), "resumed with {}", second.version());
    }
    // Plain HTTP on the TLS port, a client that gives up mid-handshake, a client that
    // does not trust us: each fails alone and the server keeps serving.
    let mut plain = test_support::RawClient::connect(listen).unwrap();
    plain.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(plain.is_closed_by_peer(Duration::from_secs(5)));
    drop(std::net::TcpStream::connect(listen).unwrap());
    let stranger = TlsClient::new(TlsClientConfig {
        ca_pem: Some(TestCa::new("someone else").cert_pem().to_string()),
        ..TlsClientConfig::default()
    });
    assert!(stranger.connect(listen, "site.test").is_err());
    let r = curl_https(&files.ca_file(), "site.test", listen, "/hello", &[]);
    assert_eq!(r.stdout, "hi\n", "{}", r.stderr);
    assert!(proxy.log().matches("panicked").next().is_none());
}

#[test]
fn upstream_tls_with_a_test_ca_and_pooled_connections() {
    let files = Files::new();
    let origin = Origin::start(|req| Reply::ok(format!("origin saw {}", req.path)));
    let front = TlsFront::start(origin.addr(), &files.ca.issue(&["origin.test"]));
    let listen = free_addr();
    let ca = files.ca_file();
    let tls = format!(
        "          sni: origin.test\n          ca_file: {}\n",
        ca.display()
    );
    let proxy = start(&tls_upstream_yaml(listen, front.addr(), &tls, ""), listen);
    for i in 0..3 {
        let r = get(listen, &format!("/r{i}"));
        assert_eq!(r.status, 200, "{}", proxy.log());
        assert_eq!(r.text(), format!("origin saw /r{i}"));
    }
    let seen = front.handshakes();
    // The pooled TLS connection was reused: one handshake for three requests.
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].server_name.as_deref(), Some("origin.test"));
    assert_eq!(seen[0].alpn.as_deref(), Some("http/1.1"));
    assert_eq!(origin.connections(), 1);

    // The server-wide ca_file serves upstreams without their own.
    let listen2 = free_addr();
    let top = format!("ca_file: {}\n", ca.display());
    let _proxy2 = start(
        &tls_upstream_yaml(listen2, front.addr(), "          sni: origin.test\n", &top),
        listen2,
    );
    assert_eq!(get(listen2, "/server-ca").status, 200);
}

#[test]
fn health_checks_of_a_tls_upstream_go_over_tls() {
    let files = Files::new();
    let origin = Origin::start(|req| Reply::ok(format!("origin saw {}", req.path)));
    let front = TlsFront::start(origin.addr(), &files.ca.issue(&["origin.test"]));
    let listen = free_addr();
    let tls_and_check = format!(
        "          sni: origin.test\n          ca_file: {}\n        health_check: {{ type: http, path: /health, interval_ms: 100, timeout_ms: 5000, unhealthy_threshold: 1 }}\n",
        files.ca_file().display()
    );
    let proxy = start(
        &tls_upstream_yaml(listen, front.addr(), &tls_and_check, ""),
        listen,
    );
    let checks = || {
        origin
            .received()
            .iter()
            .filter(|r| r.path == "/health")
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(10), || checks() >= 3),
        "no health checks reached the origin through TLS; front failures {:?}; log:\n{}",
        front.failures(),
        proxy.log()
    );
    assert!(front.failures().is_empty(), "{:?}", front.failures());
    let r = get(listen, "/after-checks");
    assert_eq!(r.status, 200, "{}", proxy.log());
    assert_eq!(r.text(), "origin saw /after-checks");
}

#[test]
fn untrusted_upstream_certificate_is_a_502_naming_the_cause() {
    let files = Files::new();
    let origin = Origin::start(|_| Reply::ok("secret"));
    let stranger = TestCa::new("not trusted");
    let front = TlsFront::start(origin.addr(), &stranger.issue(&["origin.test"]));
    let listen = free_addr();
    let tls = format!(
        "          sni: origin.test\n          ca_file: {}\n",
        files.ca_file().display()
    );
    let proxy = start(&tls_upstream_yaml(listen, front.addr(), &tls, ""), listen);
    let r = get(listen, "/x");
    assert_eq!(r.status, 502);
    assert!(!r.text().contains("secret"));
    assert!(
        proxy.wait_for_log(
            "certificate verify failed: unable to get local issuer certificate",
            Duration::from_secs(5)
        ),
        "error log: {}",
        proxy.log()
    );
    assert_eq!(origin.requests(), 0);

    // verify: false accepts it.
    let listen2 = free_addr();
    let _proxy2 = start(
        &tls_upstream_yaml(listen2, front.addr(), "          verify: false\n", ""),
        listen2,
    );
    let r = get(listen2, "/x");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "secret");
}

#[test]
fn client_certificate_for_an_origin_that_requires_one() {
    let files = Files::new();
    let origin = Origin::start(|_| Reply::ok("members only"));
    let front = TlsFront::builder(&files.ca.issue(&["origin.test"]))
        .require_client_cert(files.ca.cert_pem())
        .start(origin.addr());
    let (cert, key) = files
        .ca
        .issue_client("pingora-proxy")
        .write(files.dir.path(), "client")
        .unwrap();
    let ca = files.ca_file();
    let listen = free_addr();
    let tls = format!(
        "          sni: origin.test\n          ca_file: {}\n          cert: {}\n          key: {}\n",
        ca.display(),
        cert.display(),
        key.display()
    );
    let proxy = start(&tls_upstream_yaml(listen, front.addr(), &tls, ""), listen);
    let r = get(listen, "/");
    assert_eq!(r.status, 200, "{}", proxy.log());
    assert_eq!(r.text(), "members only");
    assert_eq!(
        front.handshakes()[0].client_cert.as_deref(),
        Some("pingora-proxy")
    );

    // Without the certificate the origin refuses the handshake: 502.
    let listen2 = free_addr();
    let tls = format!(
        "          sni: origin.test\n          ca_file: {}\n",
        ca.display()
    );
    let _proxy2 = start(&tls_upstream_yaml(listen2, front.addr(), &tls, ""), listen2);
    assert_eq!(get(listen2, "/").status, 502);
    assert_eq!(origin.requests(), 1);
}

#[test]
fn check_loads_certificates_and_keys() {
    let files = Files::new();
    let (cert, _) = files.server_cert("a", &["a.test"]);
    let (_, other_key) = files.server_cert("b", &["b.test"]);
    let origin = free_addr();
    let listen = free_addr();
    let yaml = tls_listener_yaml(listen, &(cert.clone(), other_key.clone()), &[], origin)
        .replace("{dir}", &files.dir.path().display().to_string());
    let path = files.dir.write("mismatch.yaml", &yaml).unwrap();
    let out = run_command(
        bin(),
        &["-t", "-c", &path.display().to_string()],
        COMMAND_TIMEOUT,
    )
    .unwrap();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("services[0].listeners[0].tls"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("does not belong to the certificate"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&other_key.display().to_string()),
        "{}",
        out.stderr
    );

    let good = files.server_cert("good", &["good.test"]);
    let yaml = tls_listener_yaml(listen, &good, &[], origin)
        .replace("{dir}", &files.dir.path().display().to_string());
    let path = files.dir.write("good.yaml", &yaml).unwrap();
    let out = run_command(
        bin(),
        &["-t", "-c", &path.display().to_string()],
        COMMAND_TIMEOUT,
    )
    .unwrap();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
}

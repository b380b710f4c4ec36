//! HTTP/3 through the real binary (`http3: true` on a TLS listener), with a QUIC client
//! of the same stack (quinn + h3): large bodies both ways intact, many concurrent
//! streams on one connection, the proxy's own routes, `Alt-Svc` on the TCP side, the
//! checks `-t` makes, and upgrades: requests in flight on the old instance's QUIC
//! connections finish, new connections reach the new instance. Compiled with the `http3` feature only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use test_support::{
    deterministic_checksum, free_addr, heavy, read_pid, run_command, send_signal, wait_gone,
    wait_pid_file, wait_until, H2Body, H3Client, Metrics, Origin, ProxyProcess, Reply, Signal,
    Strays, Target, TestCa, TestDir, DRAIN_EXIT_DEADLINE, LARGE_STREAM_SEED, MIB,
    REQUEST_BODY_SEED, SETTLE_TIMEOUT,
};

use crate::bin;

/// Longest any curl or pingora command here may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One test's CA, certificate and directory.
struct Files {
    dir: TestDir,
    ca: TestCa,
    cert: (PathBuf, PathBuf),
}

impl Files {
    fn new() -> Files {
        let dir = TestDir::new().expect("temp dir");
        let ca = TestCa::new("pingora h3 test CA");
        let cert = ca
            .issue(&["h3.test"])
            .write(dir.path(), "server")
            .expect("write cert");
        Files { dir, ca, cert }
    }

    /// A service `web` with a plain listener on `plain` and a TLS listener with
    /// `http3` on `secure`, in front of `upstream`; `/hello` is answered by the proxy.
    fn yaml(&self, plain: SocketAddr, secure: SocketAddr, upstream: SocketAddr) -> String {
        let dir = self.dir.path().display();
        format!(
            "version: 1\npid_file: {dir}/pingora.pid\nupgrade_sock: {dir}/upgrade.sock\nservices:\n  - name: web\n    listeners:\n      - addr: \"{plain}\"\n      - addr: \"{secure}\"\n        tls: {{ cert: {}, key: {} }}\n        http3: true\n    routes:\n      - match: {{ path_prefix: /hello }}\n        respond: {{ status: 200, body: \"hi\\n\" }}\n      - upstream: origin\n    upstreams:\n      origin:\n        peers: [\"{upstream}\"]\n        read_timeout_ms: 20000\n",
            self.cert.0.display(),
            self.cert.1.display(),
        )
    }

    fn client(&self, addr: SocketAddr) -> H3Client {
        H3Client::connect(addr, "h3.test", self.ca.cert_pem())
            .unwrap_or_else(|e| panic!("HTTP/3 connection to {addr}: {e}"))
    }
}

/// A proxy serving HTTP/3 in front of `origin`; its TLS address.
fn start(files: &Files, origin: SocketAddr) -> (ProxyProcess, SocketAddr) {
    let (plain, secure) = (free_addr(), free_addr());
    let yaml = files.yaml(plain, secure, origin);
    let proxy = ProxyProcess::start(bin(), &yaml, &[plain, secure])
        .unwrap_or_else(|e| panic!("proxy did not start: {e}\nconfig:\n{yaml}"));
    (proxy, secure)
}

#[test]
fn get_and_post_of_10_mib_arrive_intact() {
    let len = 10 * MIB;
    let origin = Origin::start(move |_| Reply::LargeStream {
        len,
        chunk: 64 * 1024,
    });
    let files = Files::new();
    let (proxy, addr) = start(&files, origin.addr());
    let client = files.client(addr);

    let got = client
        .request("GET", "/big", H2Body::Empty)
        .unwrap_or_else(|e| panic!("GET over HTTP/3: {e}; log:\n{}", proxy.log()));
    assert_eq!(got.status, 200);
    assert_eq!(
        (got.body_len, got.body_checksum),
        (len, deterministic_checksum(len, LARGE_STREAM_SEED)),
        "download corrupted"
    );
    let seen = origin.last_received().expect("origin got the GET");
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.body_len, 0, "a GET without a body went up with one");
    assert!(seen.header("transfer-encoding").is_none());

    let body = H2Body::Pattern {
        len,
        seed: REQUEST_BODY_SEED,
    };
    let got = client
        .request("POST", "/upload", body)
        .unwrap_or_else(|e| panic!("POST over HTTP/3: {e}; log:\n{}", proxy.log()));
    assert_eq!(got.status, 200);
    assert_eq!(
        (got.body_len, got.body_checksum),
        (len, deterministic_checksum(len, LARGE_STREAM_SEED))
    );
    let seen = origin.last_received().expect("origin got the upload");
    assert_eq!(
        (seen.body_len, seen.body_checksum),
        (len, deterministic_checksum(len, REQUEST_BODY_SEED)),
        "upload corrupted"
    );
    assert_eq!(
        seen.header("content-length"),
        Some(len.to_string().as_str())
    );
    // The proxy's own routes answer over HTTP/3 too, on the same connection.
    let hi = client.request("GET", "/hello", H2Body::Empty).unwrap();
    assert_eq!((hi.status, hi.text().as_str()), (200, "hi\n"));
}

#[test]
fn twenty_concurrent_streams_on_one_connection() {
    let origin = Origin::start(|_| Reply::Echo);
    let files = Files::new();
    let (proxy, addr) = start(&files, origin.addr());
    let client = files.client(addr);
    let body = |i: usize| format!("stream {i} ").repeat(1000 + i * 37);
    let requests = (0..20)
        .map(|i| {
            let b = H2Body::Bytes(body(i).into_bytes());
            ("POST".to_string(), format!("/echo/{i}"), b)
        })
        .collect();
    let results = client.request_all(requests);
    for (i, r) in results.into_iter().enumerate() {
        let r = r.unwrap_or_else(|e| panic!("stream {i}: {e}; log:\n{}", proxy.log()));
        assert_eq!(r.status, 200, "stream {i}");
        assert_eq!(r.text(), body(i), "stream {i} got another stream's body");
    }
    assert_eq!(origin.received().len(), 20);
}

#[test]
fn tcp_responses_advertise_http3_with_alt_svc() {
    let origin = Origin::start(|_| Reply::ok("origin"));
    let files = Files::new();
    let (proxy, addr) = start(&files, origin.addr());
    let ca = files.ca.write(files.dir.path(), "ca").expect("write CA");
    let resolve = format!("h3.test:{}:127.0.0.1", addr.port());
    let url = format!("https://h3.test:{}/x", addr.port());
    let ca = ca.display().to_string();
    let out = run_command(
        Path::new("curl"),
        &[
            "-sS",
            "--max-time",
            "20",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--http1.1",
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
            &url,
        ],
        COMMAND_TIMEOUT,
    )
    .expect("curl");
    let want = format!("alt-svc: h3=\":{}\"; ma=86400", addr.port());
    assert!(
        out.stdout.to_ascii_lowercase().contains(&want),
        "no `{want}` in:\n{}\n{}\nlog:\n{}",
        out.stdout,
        out.stderr,
        proxy.log()
    );
    // Not on the HTTP/3 responses themselves.
    let r = files
        .client(addr)
        .request("GET", "/x", H2Body::Empty)
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("alt-svc").is_none(), "{r:?}");
}

#[test]
fn http3_without_tls_is_refused_by_check() {
    let dir = TestDir::new().unwrap();
    let yaml = format!(
        "version: 1\nservices:\n  - name: web\n    listeners:\n      - addr: \"{}\"\n        http3: true\n    routes:\n      - respond: {{ status: 200 }}\n",
        free_addr()
    );
    let path = dir.write("h3.yaml", &yaml).unwrap();
    let out = run_command(
        bin(),
        &["-t", "-c", &path.display().to_string()],
        COMMAND_TIMEOUT,
    )
    .unwrap();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("services[0].listeners[0].http3"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("h3.yaml:6"), "{}", out.stderr);
    assert!(out.stderr.contains("needs TLS"), "{}", out.stderr);
}

/// The origin of the upgrade tests: `/slow...` answered after `SLOW_ANSWER`, the rest at
/// once, each with its path.
fn slow_and_fast_origin() -> Origin {
    Origin::start(|req| {
        let body = format!("origin:{}", req.path);
        if req.path.starts_with("/slow") {
            Reply::Delay(SLOW_ANSWER, Box::new(Reply::ok(body)))
        } else {
            Reply::ok(body)
        }
    })
}

/// How long the origin takes to answer `/slow...`: long enough to be in flight across a
/// hand-over.
const SLOW_ANSWER: Duration = Duration::from_millis(1500);

/// Starts the instance that takes over from the one running (`-u`) and waits until it
/// serves and holds the pid file.
fn take_over(files: &Files, config: &Path, plain: SocketAddr, name: &str) -> ProxyProcess {
    let pid_file = files.dir.path().join("pingora.pid");
    let mut new = ProxyProcess::spawn(bin(), files.dir.path(), name, config, &["-u"]);
    let new_pid = new.pid();
    assert!(
        wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p == new_pid).is_some(),
        "instance {name} did not take over; its log:\n{}",
        new.log()
    );
    new.wait_serving(&Target::Tcp(plain), &pid_file);
    new
}

#[test]
fn a_quic_connection_s_request_in_flight_survives_an_upgrade() {
    let origin = slow_and_fast_origin();
    let files = Files::new();
    let (plain, secure, admin) = (free_addr(), free_addr(), free_addr());
    let yaml = files.yaml(plain, secure, origin.addr()).replacen(
        "services:",
        &format!("admin: {{ addr: \"{admin}\" }}\nservices:"),
        1,
    );
    let path = files.dir.write("pingora.yaml", &yaml).unwrap();
    let pid_file = files.dir.path().join("pingora.pid");
    let mut old = ProxyProcess::spawn(bin(), files.dir.path(), "old", &path, &[]);
    old.wait_serving(&Target::Tcp(plain), &pid_file);
    let before = files.client(secure);
    let r = before.request("GET", "/one", H2Body::Empty).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "origin:/one"));

    std::thread::scope(|s| {
        // A request in flight on the old instance's connection during the hand-over.
        let slow = s.spawn(|| before.request("GET", "/slow", H2Body::Empty));
        assert!(
            wait_until(Duration::from_secs(5), || origin
                .received()
                .iter()
                .any(|r| r.path == "/slow")),
            "the request did not reach the origin; log:\n{}",
            old.log()
        );
        old.signal(Signal::SIGQUIT);
        assert!(
            old.wait_for_log("SIGQUIT", Duration::from_secs(3)),
            "old instance did not log SIGQUIT; log:\n{}",
            old.log()
        );
        let mut new = take_over(&files, &path, plain, "new");
        // The new instance reads the UDP socket now and passes the old connection's
        // datagrams to the old instance, which finishes the request.
        let r = slow.join().unwrap().unwrap_or_else(|e| {
            panic!(
                "the request in flight across the upgrade: {e}\nold log:\n{}\nnew log:\n{}",
                old.log(),
                new.log()
            )
        });
        assert_eq!((r.status, r.text().as_str()), (200, "origin:/slow"));
        let status = old.wait_exit(DRAIN_EXIT_DEADLINE);
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", old.log());
        // It went through the new instance's socket and was passed on, not read by the
        // old instance itself.
        let forwarded = Metrics::scrape(admin).value("pingora_quic_datagrams_forwarded_total", &[]);
        assert!(
            forwarded >= 1.0,
            "no datagram was passed to the old instance"
        );
        // New QUIC connections reach the new instance.
        let after = files.client(secure);
        let r = after
            .request("GET", "/two", H2Body::Empty)
            .unwrap_or_else(|e| panic!("HTTP/3 after the upgrade: {e}; new log:\n{}", new.log()));
        assert_eq!((r.status, r.text().as_str()), (200, "origin:/two"));
        new.signal(Signal::SIGTERM);
        assert!(
            new.wait_exit(DRAIN_EXIT_DEADLINE).is_some(),
            "{}",
            new.log()
        );
    });
}

#[test]
fn garbage_datagrams_and_a_bad_handshake_leave_the_server_serving() {
    let origin = Origin::start(|_| Reply::ok("origin"));
    let files = Files::new();
    let (plain, addr, admin) = (free_addr(), free_addr(), free_addr());
    let yaml = files.yaml(plain, addr, origin.addr()).replacen(
        "services:",
        &format!("admin: {{ addr: \"{admin}\" }}\nservices:"),
        1,
    );
    let proxy = ProxyProcess::start(bin(), &yaml, &[plain, addr, admin])
        .unwrap_or_else(|e| panic!("proxy did not start: {e}\nconfig:\n{yaml}"));
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Short junk, a long-header packet with a bogus version, a padded fake Initial, and
    // a short-header packet for a connection nobody has.
    let mut initial = vec![
        0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x44, 0xd0,
    ];
    initial.resize(1200, 0xab);
    let datagrams: Vec<Vec<u8>> = vec![
        vec![0],
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xc0, 0xde, 0xad, 0xbe, 0xef, 0, 0],
        initial,
        vec![0x40; 64],
    ];
    for d in &datagrams {
        udp.send_to(d, addr).unwrap();
    }
    // A client that does not trust the certificate fails its handshake...
    let stranger = TestCa::new("another CA");
    assert!(H3Client::connect(addr, "h3.test", stranger.cert_pem()).is_err());
    // ...and the server goes on serving.
    let r = files
        .client(addr)
        .request("GET", "/after", H2Body::Empty)
        .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "origin"));
    assert!(
        proxy.log().lines().all(|l| !l.contains("panicked")),
        "{}",
        proxy.log()
    );
    // Counted: the refused handshake, and the connection that worked.
    let failures = || Metrics::scrape(admin).value("pingora_quic_handshake_failures_total", &[]);
    assert!(
        wait_until(Duration::from_secs(5), || failures() >= 1.0),
        "{}",
        proxy.log()
    );
    let m = Metrics::scrape(admin);
    assert!(m.value("pingora_quic_connections_total", &[]) >= 1.0);
    assert!(m.find("pingora_quic_open_connections", &[]).is_some());
}

#[test]
fn sigterm_lets_an_http3_request_in_flight_finish() {
    let origin =
        Origin::start(|_| Reply::Delay(Duration::from_millis(1500), Box::new(Reply::ok("slow"))));
    let files = Files::new();
    let (mut proxy, addr) = start(&files, origin.addr());
    let client = files.client(addr);
    std::thread::scope(|s| {
        let slow = s.spawn(|| client.request("GET", "/slow", H2Body::Empty));
        assert!(
            wait_until(Duration::from_secs(5), || !origin.received().is_empty()),
            "the request did not reach the origin; log:\n{}",
            proxy.log()
        );
        proxy.signal(Signal::SIGTERM);
        let r = slow
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("in-flight HTTP/3 request: {e}; log:\n{}", proxy.log()));
        assert_eq!((r.status, r.text().as_str()), (200, "slow"));
    });
    let status = proxy.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", proxy.log());
}

/// What one client of the reload test saw.
#[derive(Default)]
struct Tally {
    answered: usize,
    /// Connections opened after the first (the server's GOAWAY ended the one before).
    reconnects: usize,
    /// Requests refused before they were sent (the connection was going away) or
    /// rejected unprocessed: a client sends them again on a new connection; not lost.
    not_sent: usize,
    failed: Vec<String>,
}

/// Requests one after the other on one QUIC connection, opening a new one when the
/// server ends it, until `stop`.
fn reload_client(files: &Files, addr: SocketAddr, id: usize, stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<H3Client> = None;
    let mut opened = false;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let client = match conn.take() {
            Some(c) if c.close_reason().is_none() => c,
            _ => {
                if opened {
                    tally.reconnects += 1;
                }
                opened = true;
                match H3Client::connect(addr, "h3.test", files.ca.cert_pem()) {
                    Ok(c) => c,
                    Err(e) => {
                        tally.failed.push(format!("connect: {e}"));
                        continue;
                    }
                }
            }
        };
        n += 1;
        let path = format!("/c{id}/{n}");
        match client.request("GET", &path, H2Body::Empty) {
            Ok(r) if r.status == 200 && r.text() == format!("origin:{path}") => {
                tally.answered += 1;
                conn = Some(client);
            }
            Ok(r) => tally.failed.push(format!("{path}: status {}", r.status)),
            // Refused before it was sent, or rejected as not processed (a request the
            // client sent after the server's final GOAWAY): a client sends it again.
            Err(e)
                if e.to_string().starts_with("sending the request head")
                    || e.to_string().contains("H3_REQUEST_REJECTED") =>
            {
                tally.not_sent += 1
            }
            Err(e) => tally.failed.push(format!("{path}: {e}")),
        }
    }
    tally
}

/// Twenty QUIC clients keep requests in flight (the origin takes 100 ms) while the
/// proxy reloads (SIGHUP) three times; not one request is lost (one sent after the
/// final GOAWAY, which never reached the origin, is counted apart: RFC 9114 lets the
/// client send it again). The clients move to the
/// new instance when the old one's GOAWAY ends their connection. With
/// `PINGORA_H3_RELOADS=10` it is the measurement of docs/http3.md.
#[test]
fn twenty_quic_clients_lose_no_request_across_reloads() {
    let _heavy = heavy();
    let reloads: usize = std::env::var("PINGORA_H3_RELOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let origin = Origin::start(|req| {
        Reply::Delay(
            Duration::from_millis(100),
            Box::new(Reply::ok(format!("origin:{}", req.path))),
        )
    });
    let files = Files::new();
    let (plain, secure) = (free_addr(), free_addr());
    let path = files
        .dir
        .write("pingora.yaml", &files.yaml(plain, secure, origin.addr()))
        .unwrap();
    let pid_file = files.dir.path().join("pingora.pid");
    let strays = Strays::default();
    let mut first = ProxyProcess::spawn(bin(), files.dir.path(), "first", &path, &[]);
    first.wait_serving(&Target::Tcp(plain), &pid_file);
    let stop = AtomicBool::new(false);
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..20)
            .map(|id| {
                let (files, stop) = (&files, &stop);
                s.spawn(move || reload_client(files, secure, id, stop))
            })
            .collect();
        assert!(
            wait_until(Duration::from_secs(10), || origin.received().len() >= 40),
            "the clients' requests do not reach the origin; log:\n{}",
            first.log()
        );
        for _ in 0..reloads {
            let old_pid = read_pid(&pid_file).expect("pid_file names the serving instance");
            send_signal(old_pid, Signal::SIGHUP).unwrap();
            let new_pid = wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p != old_pid);
            let Some(new_pid) = new_pid else {
                stop.store(true, Ordering::Relaxed);
                panic!("no new instance after SIGHUP; log:\n{}", first.log());
            };
            strays.add(new_pid);
            let gone = if old_pid == first.pid() {
                first.wait_exit(DRAIN_EXIT_DEADLINE).is_some()
            } else {
                wait_gone(old_pid, DRAIN_EXIT_DEADLINE)
            };
            assert!(gone, "instance {old_pid} did not exit after the reload");
        }
        // Requests on the last instance too, then stop.
        let seen = origin.received().len();
        assert!(
            wait_until(Duration::from_secs(10), || origin.received().len()
                >= seen + 40),
            "no requests after the last reload; log:\n{}",
            first.log()
        );
        stop.store(true, Ordering::Relaxed);
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let answered: usize = tallies.iter().map(|t| t.answered).sum();
    let reconnects: usize = tallies.iter().map(|t| t.reconnects).sum();
    let not_sent: usize = tallies.iter().map(|t| t.not_sent).sum();
    let failed: Vec<&String> = tallies.iter().flat_map(|t| &t.failed).collect();
    eprintln!(
        "{reloads} reloads: {answered} requests answered, {} failed, {not_sent} refused before \
         sending (sent again), {reconnects} reconnections",
        failed.len()
    );
    // A request the client sent after the old instance's final GOAWAY, and that the
    // connection's close then ended, never reached the origin: RFC 9114 section 5.2 lets
    // a client send it again (its stream is past the GOAWAY's). Any other failure is a
    // loss.
    let reached: Vec<String> = origin.received().into_iter().map(|r| r.path).collect();
    let (unprocessed, lost): (Vec<&String>, Vec<&String>) = failed.iter().partition(|f| {
        f.contains("ApplicationClose: H3_NO_ERROR")
            && !reached.iter().any(|p| f.starts_with(&format!("{p}:")))
    });
    eprintln!(
        "  of the failed: {} never processed, {} lost",
        unprocessed.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} of {} requests lost across {reloads} reloads: {lost:?}\nlog:\n{}",
        lost.len(),
        answered + failed.len(),
        first.log()
    );
    assert!(
        unprocessed.len() * 20 <= answered,
        "too many requests left unprocessed by the hand-overs: {unprocessed:?}"
    );
    assert!(
        reconnects >= 20,
        "the clients never moved to a new instance ({reconnects} reconnections)"
    );
    if let Some(pid) = read_pid(&pid_file) {
        let _ = send_signal(pid, Signal::SIGTERM);
        wait_gone(pid, DRAIN_EXIT_DEADLINE);
    }
}

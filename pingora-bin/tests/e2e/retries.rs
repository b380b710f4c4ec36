//! Retries of failed upstream connects through the binary (docs/proxy-behaviour.md,
//! "Retries"): a connect failure is retried on another peer only, never at once on the
//! same address, and a request's failure is logged once with its number of attempts.
//! Also: the log line of a request head that dripped in too slowly names the timeout
//! that expired.

use std::net::SocketAddr;
use std::time::Duration;

use test_support::{free_addr, request, Origin, ProxyProcess, RawClient, Reply};

use crate::bin;

/// A proxy on a fresh port for one service routing everything to upstream `pool`,
/// whose settings are `upstream` (YAML lines indented for the upstream's body), with
/// `service` lines added to the service.
fn start(upstream: &str, service: &str) -> (ProxyProcess, SocketAddr) {
    let listen = free_addr();
    let yaml = format!(
        r#"version: 1
pid_file: {{dir}}/pingora.pid
upgrade_sock: {{dir}}/upgrade.sock
services:
  - name: web
    listeners: [ {{ addr: "{listen}" }} ]
{service}
    routes: [ {{ upstream: pool }} ]
    upstreams:
      pool:
{upstream}
"#
    );
    let proxy = ProxyProcess::start(bin(), &yaml, &[listen])
        .unwrap_or_else(|e| panic!("proxy did not start: {e}\nconfig:\n{yaml}"));
    (proxy, listen)
}

/// The status of a `GET path`.
fn get_status(listen: SocketAddr, path: &str) -> u16 {
    request(listen, "GET", path, &[("Host", "x")], b"")
        .expect("a response")
        .status
}

/// The lines of the proxy's log that contain every one of `needles`.
fn log_lines(proxy: &ProxyProcess, needles: &[&str]) -> Vec<String> {
    proxy
        .log()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

#[cfg(feature = "tls")]
mod resetting {
    use std::net::{SocketAddr, TcpListener};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A peer that accepts TCP connections and resets each as soon as the client sent
    /// something (it closes with the bytes unread): a TLS handshake with it fails with a
    /// reset, which the proxy counts as a retryable connect failure. Unlike a refused port,
    /// it counts the connects it gets.
    pub struct ResettingPeer {
        pub addr: SocketAddr,
        accepted: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
    }

    impl ResettingPeer {
        pub fn start() -> ResettingPeer {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.set_nonblocking(true).expect("nonblocking");
            let addr = listener.local_addr().expect("local addr");
            let accepted = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (count, stopped) = (accepted.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stopped.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            count.fetch_add(1, Ordering::SeqCst);
                            let _ = conn.set_nonblocking(false);
                            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                            // Wait for the ClientHello, then close without reading it.
                            let _ = conn.peek(&mut [0u8; 1]);
                            drop(conn);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
            ResettingPeer {
                addr,
                accepted,
                stop,
            }
        }

        pub fn connects(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }
    }

    impl Drop for ResettingPeer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

#[cfg(feature = "tls")]
use resetting::ResettingPeer;

#[cfg(feature = "tls")]
#[test]
fn a_single_failing_peer_is_tried_once_and_the_failure_logged_once() {
    let dead = ResettingPeer::start();
    let (proxy, listen) = start(
        &format!(
            "        peers: [\"{}\"]\n        tls: {{ verify: false }}\n        connect_timeout_ms: 2000",
            dead.addr
        ),
        "",
    );
    assert_eq!(get_status(listen, "/one"), 502, "log:\n{}", proxy.log());
    assert!(
        proxy.wait_for_log("GET /one", Duration::from_secs(3)),
        "no log line; log:\n{}",
        proxy.log()
    );
    assert_eq!(
        dead.connects(),
        1,
        "one connect per request (max_retries is 16); log:\n{}",
        proxy.log()
    );
    let failures = log_lines(&proxy, &["GET /one"]);
    assert_eq!(
        failures.len(),
        1,
        "one line for the failed request; log:\n{}",
        proxy.log()
    );
    assert!(
        failures[0].contains("answered 502 after 1 upstream attempt:")
            && failures[0].contains("tls_handshake"),
        "{}",
        failures[0]
    );
    assert!(
        log_lines(&proxy, &["retry"]).is_empty(),
        "no line per retry; log:\n{}",
        proxy.log()
    );
}

#[test]
fn a_single_refused_peer_is_a_502_logged_once_with_its_attempts() {
    let dead = free_addr(); // nothing listens there
    let (proxy, listen) = start(&format!("        peers: [\"{dead}\"]"), "");
    for path in ["/a", "/b"] {
        assert_eq!(get_status(listen, path), 502);
    }
    assert!(proxy.wait_for_log("GET /b", Duration::from_secs(3)));
    for path in ["GET /a ", "GET /b "] {
        let lines = log_lines(&proxy, &[path]);
        assert_eq!(lines.len(), 1, "log:\n{}", proxy.log());
        assert!(
            lines[0].contains("answered 502 after 1 upstream attempt: connect_refused"),
            "{}",
            lines[0]
        );
    }
    assert!(
        log_lines(&proxy, &["retry"]).is_empty(),
        "log:\n{}",
        proxy.log()
    );
}

#[cfg(feature = "tls")]
#[test]
fn each_failing_peer_is_tried_once_per_request() {
    let (one, two) = (ResettingPeer::start(), ResettingPeer::start());
    let (proxy, listen) = start(
        &format!(
            "        peers: [\"{}\", \"{}\"]\n        tls: {{ verify: false }}",
            one.addr, two.addr
        ),
        "",
    );
    assert_eq!(get_status(listen, "/both"), 502);
    assert!(proxy.wait_for_log("GET /both", Duration::from_secs(3)));
    assert_eq!(
        (one.connects(), two.connects()),
        (1, 1),
        "log:\n{}",
        proxy.log()
    );
    let lines = log_lines(&proxy, &["GET /both"]);
    assert_eq!(lines.len(), 1, "log:\n{}", proxy.log());
    assert!(
        lines[0].contains("answered 502 after 2 upstream attempts:"),
        "{}",
        lines[0]
    );
}

#[test]
fn with_one_of_two_peers_dead_every_request_succeeds_on_the_other() {
    let live = Origin::start(|req| Reply::ok(format!("live {}", req.path)));
    let dead = free_addr();
    // Without the `lb` feature, peers are used in turn and only round_robin is allowed.
    let algorithms: &[&str] = if cfg!(feature = "lb") {
        &[
            "round_robin",
            "random",
            "consistent_hash",
            "least_conn",
            "p2c",
        ]
    } else {
        &["round_robin"]
    };
    for lb in algorithms {
        let (proxy, listen) = start(
            &format!(
                "        peers: [\"{dead}\", \"{}\"]\n        lb: {lb}",
                live.addr()
            ),
            "",
        );
        for i in 0..6 {
            let path = format!("/{lb}/{i}");
            let r = request(listen, "GET", &path, &[("Host", "x")], b"").expect("a response");
            assert_eq!(
                (r.status, String::from_utf8_lossy(&r.body).into_owned()),
                (200, format!("live {path}")),
                "lb {lb}; log:\n{}",
                proxy.log()
            );
        }
        assert!(
            log_lines(&proxy, &["answered"]).is_empty(),
            "no failure logged; log:\n{}",
            proxy.log()
        );
    }
}

#[test]
fn a_head_dripping_in_is_logged_as_the_header_timeout() {
    let origin = Origin::start(|_| Reply::ok("never"));
    let (proxy, listen) = start(
        &format!("        peers: [\"{}\"]", origin.addr()),
        "    client_header_timeout_ms: 1000",
    );
    let mut c = RawClient::connect(listen).expect("connect");
    c.set_read_timeout(Duration::from_secs(10)).unwrap();
    let client = c.local_addr().unwrap().to_string();
    // A byte every 300 ms: each comes in time, the whole head does not.
    let mut w = c.writer_clone().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        for b in b"GET /drip HTTP/1.1\r\nHost: x\r\n\r\n" {
            if w.write_all(std::slice::from_ref(b)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let answer = c
        .read_to_end_raw()
        .expect("the proxy closes the connection");
    assert!(
        answer.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(proxy.wait_for_log(&client, Duration::from_secs(3)));
    let lines = log_lines(&proxy, &[&client]);
    assert_eq!(lines.len(), 1, "log:\n{}", proxy.log());
    assert!(
        lines[0].contains("client_header_timeout_ms (1000ms)")
            && lines[0].contains("whole request head"),
        "the line says which timeout expired: {}",
        lines[0]
    );
    assert_eq!(origin.requests(), 0);
}

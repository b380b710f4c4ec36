//! Logging never becomes the load: a flood of one kind of line (here one warning per
//! client that times out sending its request head) is cut to a few lines a second per
//! call site, with a summary of what was held back and a metric counting it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use test_support::{free_addr, get, wait_until, Metrics, ProxyProcess};

use crate::bin;

/// Clients sending half a request head and then nothing.
const SLOW_CLIENTS: usize = 120;

#[test]
fn a_flood_of_timed_out_clients_logs_a_few_lines_and_a_summary() {
    let listen = free_addr();
    let admin = free_addr();
    let yaml = format!(
        r#"version: 1
pid_file: "{{dir}}/pingora.pid"
upgrade_sock: "{{dir}}/upgrade.sock"
error_log: "{{dir}}/error.log"
services:
  - name: web
    listeners: [ {{ addr: "{listen}" }} ]
    client_header_timeout_ms: 300
    routes:
      - respond: {{ status: 200, body: "ok" }}
admin:
  addr: "{admin}"
"#
    );
    let proxy = ProxyProcess::start(bin(), &yaml, &[listen, admin]).expect("proxy starts");
    let log_path = proxy.dir().join("error.log");

    let mut clients = Vec::with_capacity(SLOW_CLIENTS);
    for _ in 0..SLOW_CLIENTS {
        let mut c = TcpStream::connect(listen).expect("connect");
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .expect("write");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        clients.push(c);
    }
    // Every client gets its 408 once the header timeout passes.
    for mut c in clients {
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }

    // The held-back lines are reported by a summary line within a second or so.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let _ = get(listen, "/");
            std::fs::read_to_string(&log_path)
                .is_ok_and(|log| log.contains("similar log lines from"))
        }),
        "no summary line in the error log:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    let warnings = log.lines().filter(|l| l.contains("answered 408")).count();
    assert!(
        (1..=20).contains(&warnings),
        "{warnings} lines for {SLOW_CLIENTS} timed-out clients:\n{log}"
    );
    let metrics = Metrics::scrape(admin);
    let held_back = metrics
        .find("pingora_log_lines_suppressed_total", &[])
        .unwrap_or(0.0);
    assert_eq!(
        held_back as usize + warnings,
        SLOW_CLIENTS,
        "every 408 was either logged or counted as suppressed\n{metrics:?}"
    );
    drop(proxy);
}

//! An upstream's `retry:` through the binary (spec, "Request policy": `retry`): listed
//! statuses and failures retried on another peer, only connect failures for POST and
//! for a partly sent body, `per_try_timeout_ms`, the caps, and bad values refused.

use std::net::SocketAddr;
use std::time::Duration;

use test_support::{free_addr, request, Origin, ProxyProcess, Reply, TestDir};

use crate::{assert_config_refused, bin};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A proxy in front of upstream `pool` with `peers` and the `retry` flow map, with
/// `server` lines at the top of the file.
fn start(peers: &[SocketAddr], retry: &str, server: &str) -> (ProxyProcess, SocketAddr) {
    let listen = free_addr();
    let yaml = config(listen, peers, retry, server);
    let proxy = ProxyProcess::start(bin(), &yaml, &[listen])
        .unwrap_or_else(|e| panic!("proxy did not start: {e}\nconfig:\n{yaml}"));
    (proxy, listen)
}

fn config(listen: SocketAddr, peers: &[SocketAddr], retry: &str, server: &str) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        r#"version: 1
pid_file: {{dir}}/pingora.pid
upgrade_sock: {{dir}}/upgrade.sock
{server}
services:
  - name: web
    listeners: [ {{ addr: "{listen}" }} ]
    routes: [ {{ upstream: pool }} ]
    upstreams:
      pool:
        peers: [{}]
        retry: {retry}
"#,
        peers.join(", ")
    )
}

fn send(listen: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let resp = request(listen, method, path, &[("Host", "x")], body).expect("a response");
    (resp.status, resp.text())
}

fn busy(name: &'static str) -> Origin {
    Origin::start(move |_| Reply::full(503, &[("retry-after", "1")], name))
}

#[test]
fn a_listed_status_is_retried_on_the_other_peer_for_every_get() {
    let a = busy("a busy");
    let b = Origin::named("b");
    let (proxy, listen) = start(&[a.addr(), b.addr()], "{ on: [503], retries: 1 }", "");
    for i in 0..6 {
        let got = send(listen, "GET", &format!("/get{i}"), b"");
        assert_eq!(got, (200, "b".to_string()), "log:\n{}", proxy.log());
    }
    assert_eq!(b.requests(), 6);
    assert!(a.requests() >= 1, "round robin sent some to a first");
}

#[test]
fn without_another_peer_the_status_is_passed_on_as_it_is() {
    let a = busy("a busy");
    let (_proxy, listen) = start(&[a.addr()], "{ on: [503], retries: 2 }", "");
    for i in 0..3 {
        assert_eq!(
            send(listen, "GET", &format!("/only{i}"), b""),
            (503, "a busy".to_string())
        );
    }
    assert_eq!(
        a.requests(),
        3,
        "one attempt per request: never the same peer twice"
    );
}

#[test]
fn post_and_partly_sent_bodies_are_not_retried_on_a_status() {
    let a = busy("a busy");
    let b = Origin::start(|req| Reply::ok(format!("b {}", req.method)));
    let (_proxy, listen) = start(&[a.addr(), b.addr()], "{ on: [503], retries: 1 }", "");
    let mut from_a = 0;
    for (i, method) in ["POST", "PATCH", "POST", "PUT", "PUT", "POST"]
        .iter()
        .enumerate()
    {
        // PUT is idempotent, but its body was sent: not retried either.
        let (status, text) = send(listen, method, &format!("/w{i}"), b"payload");
        match status {
            503 => {
                assert_eq!(text, "a busy");
                from_a += 1;
            }
            200 => assert_eq!(text, format!("b {method}")),
            other => panic!("{method}: {other} {text}"),
        }
    }
    assert!(from_a >= 1, "round robin sent some to a first");
    assert_eq!(a.requests(), from_a, "each 503 came from its one attempt");
    assert_eq!(b.requests(), 6 - from_a, "nothing was sent twice");
}

#[test]
fn a_connect_failure_is_retried_even_for_a_post_with_a_body() {
    let dead = free_addr();
    let b = Origin::start(|_| Reply::Echo);
    let (_proxy, listen) = start(
        &[dead, b.addr()],
        "{ on: [connect_failure], retries: 1 }",
        "",
    );
    for i in 0..4 {
        let body = format!("body {i}");
        let got = send(listen, "POST", &format!("/p{i}"), body.as_bytes());
        assert_eq!(got, (200, body));
    }
    assert_eq!(b.requests(), 4);
}

#[test]
fn per_try_timeout_moves_a_slow_attempt_to_the_other_peer() {
    let slow = Origin::start(|_| Reply::Delay(Duration::from_secs(3), Box::new(Reply::ok("slow"))));
    let fast = Origin::named("fast");
    let (_proxy, listen) = start(
        &[slow.addr(), fast.addr()],
        "{ on: [timeout], retries: 1, per_try_timeout_ms: 300 }",
        "",
    );
    for i in 0..4 {
        assert_eq!(
            send(listen, "GET", &format!("/t{i}"), b""),
            (200, "fast".to_string())
        );
    }
    assert!(slow.requests() >= 1);
}

#[test]
fn an_unlisted_per_try_timeout_is_a_504() {
    let slow = Origin::start(|_| Reply::Delay(Duration::from_secs(3), Box::new(Reply::ok("slow"))));
    let (proxy, listen) = start(&[slow.addr()], "{ on: [503], per_try_timeout_ms: 300 }", "");
    assert_eq!(send(listen, "GET", "/slow", b"").0, 504);
    assert!(
        proxy.wait_for_log("per-try timeout", TIMEOUT),
        "the log names the timeout; log:\n{}",
        proxy.log()
    );
}

#[test]
fn a_reset_is_retried_when_listed() {
    let resetting = Origin::start(|_| Reply::ResetAfter {
        head_and_partial_body: Vec::new(),
    });
    let fine = Origin::named("fine");
    let (_proxy, listen) = start(&[resetting.addr(), fine.addr()], "{ on: [reset] }", "");
    for i in 0..4 {
        assert_eq!(
            send(listen, "GET", &format!("/r{i}"), b""),
            (200, "fine".to_string())
        );
    }
}

#[test]
fn max_retries_caps_the_upstream_s_retries() {
    let peers = [busy("a"), busy("b"), busy("c")];
    let addrs: Vec<SocketAddr> = peers.iter().map(Origin::addr).collect();
    let (_proxy, listen) = start(&addrs, "{ on: [503], retries: 5 }", "max_retries: 1");
    for i in 0..3 {
        assert_eq!(send(listen, "GET", &format!("/c{i}"), b"").0, 503);
    }
    let total: usize = peers.iter().map(Origin::requests).sum();
    assert_eq!(total, 6, "two attempts per request (max_retries: 1)");
}

#[test]
fn bad_retry_values_exit_2_at_test_and_at_start() {
    let cases = [
        ("{ on: [200] }", "retry.on[0]", "only 400 to 599"),
        (
            "{ on: [conect_failure] }",
            "retry.on[0]",
            "did you mean `connect_failure`",
        ),
        ("{ on: [503], retries: 1000 }", "retry.retries", "100"),
        (
            "{ on: [503], per_try_timeout_ms: 0 }",
            "retry.per_try_timeout_ms",
            "",
        ),
    ];
    let dir = TestDir::new().unwrap();
    for (i, (retry, key, needle)) in cases.iter().enumerate() {
        let yaml = config(free_addr(), &[free_addr()], retry, "")
            .replace("{dir}", &dir.path().display().to_string());
        let file = dir.write(&format!("bad{i}.yaml"), &yaml).unwrap();
        assert_config_refused(
            &file,
            12,
            &format!("services[0].upstreams.pool.{key}"),
            needle,
        );
    }
}

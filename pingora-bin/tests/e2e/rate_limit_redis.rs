//! The Redis backend of `rate_limit` with a real redis-server on a free loopback port:
//! two proxy processes share one limit, and a stopped Redis gives `on_error`'s answer
//! (logged once per outage, counted in metrics) until it is back.
//!
//! Ignored by a plain `cargo test` because they need `redis-server`: `scripts/test` runs
//! them after `scripts/setup --redis` installs it, and says "skipped" with the reason
//! when it cannot.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use test_support::{
    free_addr, request, wait_for_port, wait_until, Metrics, Origin, ProxyProcess, Reply, Response,
};

use super::rate_limit::config;
use crate::bin;

const TIMEOUT: Duration = Duration::from_secs(20);
const NEEDS_REDIS: &str = "needs redis-server (scripts/setup --redis installs it)";

/// A redis-server on 127.0.0.1, without persistence, stopped when dropped.
struct RedisServer {
    addr: SocketAddr,
    child: Child,
}

impl RedisServer {
    fn binary() -> PathBuf {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join("redis-server"))
            .chain([
                PathBuf::from("/usr/bin/redis-server"),
                PathBuf::from("/usr/sbin/redis-server"),
            ])
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{NEEDS_REDIS}: not found"))
    }

    fn start(addr: SocketAddr) -> RedisServer {
        let child = Command::new(Self::binary())
            .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        assert!(
            wait_for_port(addr, TIMEOUT),
            "redis-server did not listen on {addr}"
        );
        RedisServer { addr, child }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(listen: SocketAddr, path: &str) -> Response {
    request(listen, "GET", path, &[], b"").expect("response")
}

#[test]
#[ignore = "needs redis-server (scripts/setup --redis installs it; scripts/test runs this)"]
fn two_proxies_on_one_redis_share_the_limit() {
    let redis = RedisServer::start(free_addr());
    let origin = Origin::start(|_| Reply::ok("ok"));
    // 20 at once, refilled one per hour: nothing comes back during the test.
    let service = format!(
        "    rate_limit: {{ rate: 1/h, burst: 20, backend: redis, redis: {{ addr: \"{}\", timeout_ms: 1000 }} }}\n",
        redis.addr
    );
    let (a, b) = (free_addr(), free_addr());
    let routes = "      - upstream: origin\n";
    let _pa = ProxyProcess::start(
        bin(),
        &config(a, None, &service, routes, origin.addr()),
        &[a],
    )
    .unwrap();
    let _pb = ProxyProcess::start(
        bin(),
        &config(b, None, &service, routes, origin.addr()),
        &[b],
    )
    .unwrap();
    let mut allowed = [0u32; 2];
    let mut last = Vec::new();
    for i in 0..60 {
        let (k, listen) = if i % 2 == 0 { (0, a) } else { (1, b) };
        let r = get(listen, "/");
        match r.status {
            200 => allowed[k] += 1,
            429 => {
                assert!(r.header("retry-after").is_some());
                assert_eq!(r.header("ratelimit-limit"), Some("20"));
            }
            other => panic!("request {i}: status {other}"),
        }
        if i >= 50 {
            last.push(r.status);
        }
    }
    let total = allowed[0] + allowed[1];
    eprintln!("two proxies on one Redis, burst 20: allowed {allowed:?} = {total}");
    // The stated tolerance: one limit of 20 for both; tokens leased to a proxy and not
    // spent may be lost (at most (lease - 1) per proxy, the lease being 2 here).
    assert!(
        (18..=20).contains(&total),
        "allowed {allowed:?} = {total} of a shared 20"
    );
    assert!(
        allowed[0] >= 5 && allowed[1] >= 5,
        "both proxies served: {allowed:?}"
    );
    assert!(last.iter().all(|s| *s == 429), "spent for both: {last:?}");
    assert_eq!(origin.requests() as u32, total);
}

#[test]
#[ignore = "needs redis-server (scripts/setup --redis installs it; scripts/test runs this)"]
fn a_stopped_redis_gives_on_error_then_limits_again() {
    let addr = free_addr();
    let redis = RedisServer::start(addr);
    let origin = Origin::start(|_| Reply::ok("ok"));
    let listen = free_addr();
    let admin = free_addr();
    let limit = |on_error: &str| {
        format!("{{ key: route, rate: 1/h, burst: 3, backend: redis, redis: {{ addr: \"{addr}\", timeout_ms: 200, on_error: {on_error} }} }}")
    };
    let routes = format!(
        "      - match: {{ path_prefix: /allow }}\n        upstream: origin\n        rate_limit: {}\n      - match: {{ path_prefix: /deny }}\n        upstream: origin\n        rate_limit: {}\n",
        limit("allow"),
        limit("deny")
    );
    let proxy = ProxyProcess::start(
        bin(),
        &config(listen, Some(admin), "", &routes, origin.addr()),
        &[listen, admin],
    )
    .unwrap();
    assert_eq!(get(listen, "/allow").status, 200);
    assert_eq!(get(listen, "/deny").status, 200);

    redis.stop();
    for _ in 0..5 {
        let r = get(listen, "/allow");
        assert_eq!(r.status, 200, "on_error: allow");
        assert_eq!(r.header("ratelimit-limit"), None, "nothing was counted");
        assert_eq!(get(listen, "/deny").status, 503, "on_error: deny");
    }
    let log = proxy.log();
    let failures = log
        .lines()
        .filter(|l| l.contains("rate limit: Redis at") && l.contains("failed"))
        .count();
    assert_eq!(failures, 2, "once per outage and limit:\n{log}");
    assert!(
        log.contains("requests are allowed until it answers"),
        "{log}"
    );
    assert!(
        log.contains("requests are refused with 503 until it answers"),
        "{log}"
    );
    let errors = Metrics::scrape(admin).find(
        "pingora_rate_limit_redis_errors_total",
        &[("service", "web")],
    );
    assert!(
        errors.is_some_and(|e| e >= 10.0),
        "errors counted: {errors:?}"
    );

    // Back: the limit holds again (a fresh Redis: full buckets of 3).
    let _redis = RedisServer::start(addr);
    assert!(
        wait_until(TIMEOUT, || get(listen, "/deny").status == 200),
        "Redis back, but /deny is still refused"
    );
    assert!(
        proxy.wait_for_log("answers again", TIMEOUT),
        "{}",
        proxy.log()
    );
    let statuses: Vec<u16> = (0..4).map(|_| get(listen, "/deny").status).collect();
    assert_eq!(statuses.last(), Some(&429), "limited again: {statuses:?}");
}

//! The shipped Grafana dashboard and Prometheus alert rules (deploy/) use only metrics
//! the binary exposes: tools/check-deploy-metrics.py run against the live `/metrics`
//! of a server with an upstream, health checks and a cache (python3, which
//! scripts/setup installs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use test_support::{free_addr, request, run_command, Origin, ProxyProcess, Reply, TestDir};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    let found = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    found.unwrap_or_else(|| PathBuf::from("python3"))
}

fn start(listen: SocketAddr, admin: SocketAddr, origin: SocketAddr) -> ProxyProcess {
    let yaml = format!(
        "pid_file: {{dir}}/pingora.pid
upgrade_sock: {{dir}}/upgrade.sock
services:
  - name: web
    listeners: [{{addr: \"{listen}\"}}]
    routes: [{{upstream: api, cache: true}}]
    upstreams:
      api:
        peers: [\"{origin}\"]
        health_check: {{type: tcp, interval_ms: 200}}
    cache: {{max_bytes: 1000000}}
admin:
  addr: \"{admin}\"
"
    );
    ProxyProcess::start(
        &PathBuf::from(env!("CARGO_BIN_EXE_pingora")),
        &yaml,
        &[listen, admin],
    )
    .expect("pingora starts")
}

#[test]
#[cfg_attr(
    not(all(feature = "lb", feature = "cache")),
    ignore = "needs the `lb` and `cache` features (every series of the dashboard)"
)]
fn dashboard_and_alert_rules_use_only_exposed_metrics() {
    let origin = Origin::start(|_| Reply::ok("o"));
    let (listen, admin) = (free_addr(), free_addr());
    let _proxy = start(listen, admin, origin.addr());
    assert_eq!(request(listen, "GET", "/", &[], b"").unwrap().status, 200);
    let script = repo().join("tools/check-deploy-metrics.py");
    let url = format!("http://{admin}/metrics");
    let out = run_command(&python(), &[script.to_str().unwrap(), &url], SCRIPT_TIMEOUT)
        .expect("python3 runs (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "missing metrics:\n{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("metric names found in 2 files"),
        "{}",
        out.stdout
    );

    // The check can fail: a rule naming a metric that does not exist.
    let dir = TestDir::new().unwrap();
    let bad = dir
        .write(
            "bad.yaml",
            "expr: rate(pingora_no_such_metric_total[5m]) > 0\n",
        )
        .unwrap();
    let out = run_command(
        &python(),
        &[script.to_str().unwrap(), &url, bad.to_str().unwrap()],
        SCRIPT_TIMEOUT,
    )
    .expect("python3 runs");
    assert_eq!(out.status.code(), Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("pingora_no_such_metric_total"),
        "{}",
        out.stdout
    );
}

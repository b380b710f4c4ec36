//! Configurations that must be accepted, and the values they produce.

use super::{ok, service};
use crate::*;

/// The "minimal production config" of Pingora's deployment page, verbatim.
const PINGORA_PRODUCTION: &str = "---
version: 1
threads: 8
pid_file: /run/pingora.pid
error_log: /var/log/pingora/error.log
upgrade_sock: /run/pingora-upgrade.sock
user: pingora
group: pingora
work_stealing: true
upstream_keepalive_pool_size: 1024
daemon_wait_for_ready: true
daemon_ready_timeout_seconds: 60
";

#[test]
fn pingora_production_config_parses_unchanged() {
    let conf = ok(PINGORA_PRODUCTION);
    assert_eq!(conf.version, 1);
    assert_eq!(conf.threads, 8);
    assert_eq!(conf.pid_file, std::path::PathBuf::from("/run/pingora.pid"));
    assert_eq!(
        conf.error_log.as_deref(),
        Some(std::path::Path::new("/var/log/pingora/error.log"))
    );
    assert_eq!(
        conf.upgrade_sock,
        std::path::PathBuf::from("/run/pingora-upgrade.sock")
    );
    assert_eq!(conf.user.as_deref(), Some("pingora"));
    assert_eq!(conf.group.as_deref(), Some("pingora"));
    assert!(conf.work_stealing);
    assert_eq!(conf.upstream_keepalive_pool_size, 1024);
    assert!(conf.daemon_wait_for_ready);
    assert_eq!(conf.daemon_ready_timeout_seconds, 60);
    // Untouched keys keep their defaults.
    assert_eq!(conf.max_retries, 16);
    assert!(conf.services.is_empty());
}

#[test]
fn every_pingora_key_is_accepted() {
    let conf = ok("version: 1
daemon: true
threads: 4
work_stealing: false
listener_tasks_per_fd: 2
pid_file: /tmp/p.pid
error_log: /tmp/e.log
upgrade_sock: /tmp/u.sock
upgrade_sock_connect_accept_max_retries: 7
user: nobody
group: nogroup
working_directory: /
grace_period_seconds: 0
graceful_shutdown_timeout_seconds: 10
upstream_keepalive_pool_size: 0
upstream_connect_offload_threadpools: 2
upstream_connect_offload_thread_per_pool: 3
client_bind_to_ipv4: [127.0.0.1, 10.0.0.2]
client_bind_to_ipv6: [\"::1\"]
upstream_debug_ssl_keylog: true
max_retries: 0
max_blocking_threads: 32
blocking_threads_ttl_seconds: 5
daemon_wait_for_ready: true
daemon_ready_timeout_seconds: 30
daemon_notify_timeout_seconds: 5
");
    assert!(conf.daemon);
    assert!(!conf.work_stealing);
    assert_eq!(conf.listener_tasks_per_fd, 2);
    assert_eq!(conf.upgrade_sock_connect_accept_max_retries, 7);
    assert_eq!(conf.grace_period_seconds, Some(0));
    assert_eq!(conf.graceful_shutdown_timeout_seconds, Some(10));
    assert_eq!(conf.upstream_connect_offload_threadpools, Some(2));
    assert_eq!(conf.upstream_connect_offload_thread_per_pool, Some(3));
    assert_eq!(conf.client_bind_to_ipv4, ["127.0.0.1", "10.0.0.2"]);
    assert_eq!(conf.client_bind_to_ipv6, ["::1"]);
    assert!(conf.upstream_debug_ssl_keylog);
    assert_eq!(conf.max_retries, 0);
    assert_eq!(conf.max_blocking_threads, Some(32));
    assert_eq!(conf.blocking_threads_ttl_seconds, Some(5));
    assert_eq!(conf.daemon_notify_timeout_seconds, 5);
}

#[test]
fn empty_file_gives_defaults() {
    assert_eq!(ok(""), ServerConf::default());
    assert_eq!(ok("---\n"), ServerConf::default());
    assert_eq!(ok("# only a comment\n"), ServerConf::default());
}

#[test]
fn defaults_match_the_documentation() {
    let d = ServerConf::default();
    assert_eq!(d.version, 1);
    assert_eq!(d.threads, 1);
    assert!(d.work_stealing);
    assert_eq!(d.listener_tasks_per_fd, 1);
    assert_eq!(d.pid_file, std::path::PathBuf::from("/tmp/pingora.pid"));
    assert_eq!(
        d.upgrade_sock,
        std::path::PathBuf::from("/tmp/pingora_upgrade.sock")
    );
    assert_eq!(d.upgrade_sock_connect_accept_max_retries, 5);
    assert_eq!(d.upstream_keepalive_pool_size, 128);
    assert_eq!(d.max_retries, 16);
    assert_eq!(d.daemon_ready_timeout_seconds, 600);
    assert_eq!(d.daemon_notify_timeout_seconds, 60);
    assert!(d.validate(&ValidateOptions::default()).is_ok());

    let s = ServiceConf::default();
    assert_eq!(s.client_header_timeout_ms, 60_000);
    assert_eq!(s.client_body_timeout_ms, 60_000);
    assert_eq!(s.keepalive_timeout_ms, 75_000);
    assert_eq!(s.max_request_head_bytes, 32_768);
    assert_eq!(s.max_request_headers, 128);

    let u = UpstreamConf::default();
    assert_eq!(u.lb, LbAlgorithm::RoundRobin);
    assert_eq!(u.hash_key, HashKey::Uri);
    assert!(!u.http2);
    assert_eq!(u.connect_timeout_ms, 5_000);
    assert_eq!(u.read_timeout_ms, 60_000);
    assert_eq!(u.write_timeout_ms, 60_000);
    assert_eq!(u.idle_timeout_ms, 60_000);

    assert_eq!(ListenerConf::default().backlog, 1024);
    assert_eq!(RespondConf::default().status, 200);
    assert_eq!(
        RespondConf::default().content_type,
        "text/plain; charset=utf-8"
    );
    assert!(UpstreamTlsConf::default().verify);
    assert_eq!(HealthCheckConf::default().interval_ms, 1_000);
    assert_eq!(HealthCheckConf::default().path, "/");
    assert_eq!(CacheConf::default().max_bytes, 268_435_456);
    assert_eq!(CacheConf::default().lock_timeout_ms, 2_000);
    assert_eq!(CacheConf::default().max_object_bytes, 33_554_432);
    assert_eq!(CacheConf::default().disk, None);
    assert!(!CacheConf::default().store_set_cookie);
}

#[test]
fn cache_with_a_disk_tier() {
    // A directory this process may create, whoever runs the tests.
    let dir = std::env::temp_dir().join("pingora-config-valid-cache");
    let conf = ok(&service(&format!(
        "    cache:\n      max_bytes: 4194304\n      max_object_bytes: 1048576\n      disk: {{ path: {}, max_bytes: 10737418240 }}\n      store_set_cookie: true\n",
        dir.display()
    )));
    let cache = conf.services[0].cache.as_ref().unwrap();
    assert_eq!(cache.max_bytes, 4_194_304);
    assert_eq!(cache.max_object_bytes, 1_048_576);
    assert!(cache.store_set_cookie);
    let disk = cache.disk.as_ref().unwrap();
    assert_eq!(disk.path, dir);
    assert_eq!(disk.max_bytes, 10_737_418_240);
}

/// The example of the reference page, minus the TLS listener (its files do not exist here).
#[test]
fn full_service_example() {
    let conf = ok(r#"
services:
  - name: web
    threads: 4
    listeners:
      - addr: 0.0.0.0:8080
      - addr: "[::]:8443"
        backlog: 512
      - addr: unix:/run/pingora/web.sock
    health_path: /healthz
    routes:
      - match: { host: api.example.com, path_prefix: /v1 }
        upstream: api
        cache: true
      - upstream: default
    upstreams:
      api:
        peers: ["10.0.0.1:8080", { addr: "10.0.0.2:8080", weight: 3 }]
        lb: consistent_hash
        hash_key: header:X-User
        health_check: { type: http, path: /health, interval_ms: 1000 }
        tls: { sni: api.example.com, verify: false }
        http2: true
        connect_timeout_ms: 1000
        read_timeout_ms: 30000
      default:
        peers: ["127.0.0.1:9000"]
    cache:
      max_bytes: 268435456
      lock_timeout_ms: 2000
admin:
  addr: 127.0.0.1:9901
"#);
    let s = &conf.services[0];
    assert_eq!(conf.effective_threads(s), 4);
    assert_eq!(s.listeners.len(), 3);
    assert_eq!(s.listeners[1].backlog, 512);
    assert_eq!(
        s.listeners[2].addr,
        ListenAddr::Unix("/run/pingora/web.sock".into())
    );
    assert_eq!(s.health_path.as_deref(), Some("/healthz"));
    let route = &s.routes[0];
    let matcher = route.matcher.as_ref().unwrap();
    assert_eq!(matcher.host.as_deref(), Some("api.example.com"));
    assert_eq!(matcher.path_prefix.as_deref(), Some("/v1"));
    assert!(route.cache);
    assert_eq!(s.upstreams.names().collect::<Vec<_>>(), ["api", "default"]);
    let api = s.upstream("api").unwrap();
    assert_eq!(
        api.peers,
        [
            PeerConf::new("10.0.0.1:8080"),
            PeerConf {
                addr: "10.0.0.2:8080".into(),
                weight: 3
            }
        ]
    );
    assert_eq!(api.lb, LbAlgorithm::ConsistentHash);
    assert_eq!(api.hash_key, HashKey::Header("X-User".into()));
    let check = api.health_check.as_ref().unwrap();
    assert_eq!(check.kind, HealthCheckType::Http);
    assert_eq!(check.path, "/health");
    let tls = api.tls.as_ref().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("api.example.com"));
    assert!(!tls.verify);
    assert!(api.http2);
    assert_eq!(api.connect_timeout_ms, 1000);
    assert_eq!(api.read_timeout_ms, 30000);
    assert_eq!(api.write_timeout_ms, 60000);
    assert_eq!(s.cache, Some(CacheConf::default()));
    assert_eq!(
        conf.admin.unwrap().addr,
        ListenAddr::Tcp("127.0.0.1:9901".parse().unwrap())
    );
}

#[test]
fn every_lb_algorithm_parses() {
    let expected = [
        LbAlgorithm::RoundRobin,
        LbAlgorithm::Weighted,
        LbAlgorithm::Random,
        LbAlgorithm::ConsistentHash,
        LbAlgorithm::LeastConn,
        LbAlgorithm::P2c,
    ];
    for (name, algorithm) in LbAlgorithm::NAMES.iter().zip(expected) {
        let conf = ok(&format!(
            "services:\n  - name: s\n    listeners: [{{addr: \"127.0.0.1:0\"}}]\n    routes: [{{upstream: u}}]\n    upstreams:\n      u: {{ peers: [\"a:1\"], lb: {name} }}\n"
        ));
        assert_eq!(conf.services[0].upstreams.get("u").unwrap().lb, algorithm);
    }
}

#[test]
fn tokio_alias_sets_max_blocking_threads() {
    let conf = ok("tokio:\n  blocking_threads: 12\n");
    assert_eq!(conf.max_blocking_threads, Some(12));
}

#[test]
fn respond_defaults_and_thread_fallback() {
    let conf = ok(&super::service(""));
    let s = &conf.services[0];
    assert_eq!(conf.effective_threads(s), 1);
    let respond = s.routes[0].respond.as_ref().unwrap();
    assert_eq!(respond.status, 200);
    assert_eq!(respond.body, "hi");
    assert_eq!(respond.content_type, "text/plain; charset=utf-8");
}

#[test]
fn port_zero_listeners_never_conflict() {
    ok("services:
  - name: a
    listeners: [{addr: \"127.0.0.1:0\"}, {addr: \"127.0.0.1:0\"}]
    routes: [{respond: {}}]
  - name: b
    listeners: [{addr: \"127.0.0.1:0\"}]
    routes: [{respond: {}}]
");
}

#[test]
fn validate_without_source_reports_paths() {
    let mut conf = ServerConf::default();
    conf.services.push(ServiceConf {
        name: "x".into(),
        ..ServiceConf::default()
    });
    let e = conf.validate(&ValidateOptions::default()).unwrap_err();
    assert_eq!(e.key_path, "services[0].listeners");
    assert_eq!(e.line, None);
    assert_eq!(e.file, "<config>");
    assert!(
        e.to_string()
            .starts_with("<config>: services[0].listeners: "),
        "{e}"
    );
}

//! Rules checked after decoding: each names the line and key path of the offending value.

use super::{assert_err, err, ok, service};
use crate::ConfigErrorKind::Invalid;

/// A service with one upstream `api`; `upstream_extra` lines (indented by 8) are added to it.
fn with_upstream(upstream_extra: &str) -> String {
    format!(
        "services:\n  - name: web\n    listeners:\n      - addr: 127.0.0.1:8080\n    routes:\n      - upstream: api\n    upstreams:\n      api:\n        peers: [\"127.0.0.1:9000\"]\n{upstream_extra}"
    )
}

#[test]
fn version_must_be_1() {
    assert_err(
        "---\nversion: 2\n",
        Invalid,
        2,
        "version",
        "only version is 1",
    );
}

#[test]
fn zero_and_absurd_top_level_values() {
    assert_err("threads: 0\n", Invalid, 1, "threads", "greater than 0");
    assert_err("threads: 100000\n", Invalid, 1, "threads", "at most 1024");
    assert_err(
        "listener_tasks_per_fd: 0\n",
        Invalid,
        1,
        "listener_tasks_per_fd",
        "greater than 0",
    );
    assert_err(
        "daemon_ready_timeout_seconds: 0\n",
        Invalid,
        1,
        "daemon_ready_timeout_seconds",
        "greater than 0",
    );
    assert_err(
        "daemon_notify_timeout_seconds: 86401\n",
        Invalid,
        1,
        "daemon_notify_timeout_seconds",
        "one day",
    );
    assert_err(
        "graceful_shutdown_timeout_seconds: 100000\n",
        Invalid,
        1,
        "graceful_shutdown_timeout_seconds",
        "one day",
    );
    assert_err(
        "grace_period_seconds: 99999999\n",
        Invalid,
        1,
        "grace_period_seconds",
        "one day",
    );
    assert_err(
        "blocking_threads_ttl_seconds: 86401\n",
        Invalid,
        1,
        "blocking_threads_ttl_seconds",
        "one day",
    );
    assert_err(
        "max_blocking_threads: 0\n",
        Invalid,
        1,
        "max_blocking_threads",
        "greater than 0",
    );
    assert_err(
        "tokio:\n  blocking_threads: 0\n",
        Invalid,
        2,
        "tokio.blocking_threads",
        "greater than 0",
    );
    assert_err(
        "upstream_connect_offload_threadpools: 0\n",
        Invalid,
        1,
        "upstream_connect_offload_threadpools",
        "greater than 0",
    );
    assert_err(
        "upstream_connect_offload_thread_per_pool: 0\n",
        Invalid,
        1,
        "upstream_connect_offload_thread_per_pool",
        "greater than 0",
    );
}

#[test]
fn empty_paths_and_names() {
    assert_err(
        "pid_file: \"\"\n",
        Invalid,
        1,
        "pid_file",
        "must not be empty",
    );
    assert_err(
        "upgrade_sock: \"\"\n",
        Invalid,
        1,
        "upgrade_sock",
        "must not be empty",
    );
    assert_err(
        "error_log: \"\"\n",
        Invalid,
        1,
        "error_log",
        "must not be empty",
    );
    assert_err("user: \"\"\n", Invalid, 1, "user", "must not be empty");
    let long = format!("upgrade_sock: /{}\n", "s".repeat(120));
    assert_err(&long, Invalid, 1, "upgrade_sock", "limited to 107 bytes");
}

#[test]
fn tokio_alias_and_direct_key_conflict() {
    assert_err(
        "max_blocking_threads: 4\ntokio:\n  blocking_threads: 8\n",
        Invalid,
        3,
        "tokio.blocking_threads",
        "set only one of them",
    );
}

#[test]
fn client_bind_addresses_must_match_their_family() {
    assert_err(
        "client_bind_to_ipv4:\n  - 10.0.0.1\n  - \"::1\"\n",
        Invalid,
        3,
        "client_bind_to_ipv4[1]",
        "not an IPv4 address",
    );
    assert_err(
        "client_bind_to_ipv6: [\"::1\", 10.0.0.1]\n",
        Invalid,
        1,
        "client_bind_to_ipv6[1]",
        "not an IPv6 address",
    );
}

#[test]
fn duplicate_service_names_point_at_the_second() {
    let yaml = "services:
  - name: web
    listeners: [{addr: \"127.0.0.1:1\"}]
    routes: [{respond: {}}]
  - name: web
    listeners: [{addr: \"127.0.0.1:2\"}]
    routes: [{respond: {}}]
";
    let e = assert_err(
        yaml,
        Invalid,
        5,
        "services[1].name",
        "duplicate service name `web`",
    );
    assert!(
        e.message.contains("services[0] has it already (line 2)"),
        "{e}"
    );
}

#[test]
fn service_needs_a_name_and_listeners() {
    assert_err(
        "services:\n  - listeners: [{addr: \"127.0.0.1:1\"}]\n",
        Invalid,
        2,
        "services[0].name",
        "missing required key `name`",
    );
    assert_err(
        "services:\n  - name: a\n",
        Invalid,
        2,
        "services[0].listeners",
        "has no listeners",
    );
    assert_err(
        "services:\n  - name: a\n    listeners: []\n",
        Invalid,
        3,
        "services[0].listeners",
        "has no listeners",
    );
}

#[test]
fn service_limits() {
    assert_err(
        &service("    threads: 0\n"),
        Invalid,
        7,
        "services[0].threads",
        "greater than 0",
    );
    assert_err(
        &service("    client_header_timeout_ms: 0\n"),
        Invalid,
        7,
        "services[0].client_header_timeout_ms",
        "greater than 0",
    );
    assert_err(
        &service("    client_body_timeout_ms: 86400001\n"),
        Invalid,
        7,
        "services[0].client_body_timeout_ms",
        "one day",
    );
    assert_err(
        &service("    keepalive_timeout_ms: 0\n"),
        Invalid,
        7,
        "services[0].keepalive_timeout_ms",
        "greater than 0",
    );
    assert_err(
        &service("    max_request_head_bytes: 10\n"),
        Invalid,
        7,
        "services[0].max_request_head_bytes",
        "at least 256",
    );
    assert_err(
        &service("    max_request_headers: 0\n"),
        Invalid,
        7,
        "services[0].max_request_headers",
        "greater than 0",
    );
    assert_err(
        "services:\n  - name: a\n    listeners:\n      - addr: 127.0.0.1:1\n        backlog: 0\n",
        Invalid,
        5,
        "services[0].listeners[0].backlog",
        "greater than 0",
    );
}

#[test]
fn health_path_starts_with_a_slash() {
    assert_err(
        &service("    health_path: healthz\n"),
        Invalid,
        7,
        "services[0].health_path",
        "must start with `/`",
    );
}

#[test]
fn duplicate_listener_addresses_across_services() {
    let yaml = "services:
  - name: a
    listeners: [{addr: \"127.0.0.1:8080\"}]
    routes: [{respond: {}}]
  - name: b
    listeners:
      - addr: 127.0.0.1:8081
      - addr: 127.0.0.1:8080
    routes: [{respond: {}}]
";
    let e = assert_err(
        yaml,
        Invalid,
        8,
        "services[1].listeners[1].addr",
        "is already used by",
    );
    assert!(
        e.message.contains("services[0].listeners[0].addr (line 3)"),
        "{e}"
    );
    let wildcard = yaml.replace("127.0.0.1:8080\"", "0.0.0.0:8080\"");
    assert_err(
        &wildcard,
        Invalid,
        8,
        "services[1].listeners[1].addr",
        "overlaps",
    );
    let unix = "services:
  - name: a
    listeners: [{addr: \"unix:/tmp/a.sock\"}, {addr: \"unix:/tmp/a.sock\"}]
    routes: [{respond: {}}]
";
    assert_err(
        unix,
        Invalid,
        3,
        "services[0].listeners[1].addr",
        "already used",
    );
    let admin = format!("{}admin:\n  addr: 127.0.0.1:8080\n", service(""));
    assert_err(&admin, Invalid, 8, "admin.addr", "already used");
}

#[test]
fn routes_need_exactly_one_action() {
    assert_err(
        "services:\n  - name: a\n    listeners: [{addr: \"127.0.0.1:1\"}]\n    routes:\n      - match: {path_prefix: /x}\n",
        Invalid,
        5,
        "services[0].routes[0]",
        "has none",
    );
    assert_err(
        &with_upstream("").replace(
            "      - upstream: api\n",
            "      - upstream: api\n        respond: {}\n",
        ),
        Invalid,
        6,
        "services[0].routes[0]",
        "has more",
    );
}

#[test]
fn route_to_undefined_upstream_suggests() {
    let yaml = with_upstream("").replace("upstream: api", "upstream: apii");
    let e = assert_err(
        &yaml,
        Invalid,
        6,
        "services[0].routes[0].upstream",
        "unknown upstream `apii`; defined upstreams: api",
    );
    assert_eq!(e.suggestion.as_deref(), Some("api"));
    assert_eq!(e.column, Some(19));
    let far = with_upstream("").replace("upstream: api", "upstream: zzzzzz");
    let e = assert_err(
        &far,
        Invalid,
        6,
        "services[0].routes[0].upstream",
        "unknown upstream `zzzzzz`",
    );
    assert_eq!(e.suggestion, None);
    let none = "services:\n  - name: a\n    listeners: [{addr: \"127.0.0.1:1\"}]\n    routes: [{upstream: x}]\n";
    assert_err(
        none,
        Invalid,
        4,
        "services[0].routes[0].upstream",
        "defines no upstreams",
    );
}

#[test]
fn route_cache_needs_a_cache_section() {
    let yaml = with_upstream("").replace(
        "      - upstream: api\n",
        "      - upstream: api\n        cache: true\n",
    );
    assert_err(
        &yaml,
        Invalid,
        7,
        "services[0].routes[0].cache",
        "needs a `cache:` section",
    );
    let fixed = format!("{yaml}    cache: {{max_bytes: 1000}}\n");
    super::ok(&fixed);
}

#[test]
fn catch_all_route_must_be_last() {
    let yaml = "services:\n  - name: a\n    listeners: [{addr: \"127.0.0.1:1\"}]\n    routes:\n      - respond: {}\n      - match: {host: x.com}\n        respond: {}\n";
    let e = assert_err(yaml, Invalid, 6, "services[0].routes[1]", "can never match");
    assert!(e.message.contains("services[0].routes[0] (line 5)"), "{e}");
}

#[test]
fn route_match_values() {
    let base = "services:\n  - name: a\n    listeners: [{addr: \"127.0.0.1:1\"}]\n    routes:\n      - match: MATCH\n        respond: {}\n";
    assert_err(
        &base.replace("MATCH", "{path_prefix: api}"),
        Invalid,
        5,
        "services[0].routes[0].match.path_prefix",
        "must start with `/`",
    );
    assert_err(
        &base.replace("MATCH", "{host: \"\"}"),
        Invalid,
        5,
        "services[0].routes[0].match.host",
        "not a host name",
    );
}

#[test]
fn respond_status_range() {
    let base = "services:\n  - name: a\n    listeners: [{addr: \"127.0.0.1:1\"}]\n    routes:\n      - respond:\n          status: STATUS\n";
    for bad in ["199", "600", "0", "100"] {
        assert_err(
            &base.replace("STATUS", bad),
            Invalid,
            6,
            "services[0].routes[0].respond.status",
            "from 200 to 599",
        );
    }
    for good in ["200", "404", "599"] {
        super::ok(&base.replace("STATUS", good));
    }
}

#[test]
fn upstream_peers() {
    assert_err(
        &with_upstream("").replace("[\"127.0.0.1:9000\"]", "[]"),
        Invalid,
        9,
        "services[0].upstreams.api.peers",
        "at least one peer",
    );
    let no_peers = "services:\n  - name: a\n    listeners: [{addr: \"127.0.0.1:1\"}]\n    routes: [{upstream: u}]\n    upstreams:\n      u: {lb: random}\n";
    assert_err(
        no_peers,
        Invalid,
        6,
        "services[0].upstreams.u.peers",
        "at least one peer",
    );
    let bad_string = with_upstream("").replace("[\"127.0.0.1:9000\"]", "[\"a:1\", \"nohost\"]");
    let e = assert_err(
        &bad_string,
        Invalid,
        9,
        "services[0].upstreams.api.peers[1]",
        "invalid peer address `nohost`: missing `:PORT`",
    );
    assert_eq!(e.column, Some(24));
    let bad_map = with_upstream("").replace(
        "peers: [\"127.0.0.1:9000\"]",
        "peers:\n          - addr: \"a:1\"\n          - addr: \"b:0\"",
    );
    assert_err(
        &bad_map,
        Invalid,
        11,
        "services[0].upstreams.api.peers[1].addr",
        "port 0",
    );
    let zero_weight =
        with_upstream("").replace("[\"127.0.0.1:9000\"]", "[{addr: \"a:1\", weight: 0}]");
    assert_err(
        &zero_weight,
        Invalid,
        9,
        "services[0].upstreams.api.peers[0].weight",
        "greater than 0",
    );
    let twice = with_upstream("").replace("[\"127.0.0.1:9000\"]", "[\"a:1\", \"a:1\"]");
    assert_err(
        &twice,
        Invalid,
        9,
        "services[0].upstreams.api.peers[1]",
        "listed twice",
    );
}

#[test]
fn upstream_timeouts_and_checks() {
    for key in [
        "connect_timeout_ms",
        "read_timeout_ms",
        "write_timeout_ms",
        "idle_timeout_ms",
    ] {
        assert_err(
            &with_upstream(&format!("        {key}: 0\n")),
            Invalid,
            10,
            &format!("services[0].upstreams.api.{key}"),
            "greater than 0",
        );
        assert_err(
            &with_upstream(&format!("        {key}: 90000000\n")),
            Invalid,
            10,
            &format!("services[0].upstreams.api.{key}"),
            "one day",
        );
    }
    assert_err(
        &with_upstream("        health_check:\n          type: tcp\n          interval_ms: 5\n"),
        Invalid,
        12,
        "services[0].upstreams.api.health_check.interval_ms",
        "at least 10",
    );
    assert_err(
        &with_upstream("        health_check: {type: http, path: health}\n"),
        Invalid,
        10,
        "services[0].upstreams.api.health_check.path",
        "must start with `/`",
    );
    assert_err(
        &with_upstream("        tls: {sni: \"\"}\n"),
        Invalid,
        10,
        "services[0].upstreams.api.tls.sni",
        "not a host name",
    );
}

#[test]
fn cache_section_limits() {
    let base = with_upstream("");
    assert_err(
        &format!("{base}    cache: {{max_bytes: 0}}\n"),
        Invalid,
        10,
        "services[0].cache.max_bytes",
        "greater than 0",
    );
    assert_err(
        &format!("{base}    cache:\n      lock_timeout_ms: 0\n"),
        Invalid,
        11,
        "services[0].cache.lock_timeout_ms",
        "greater than 0",
    );
    assert_err(
        &format!("{base}    cache:\n      max_object_bytes: 0\n"),
        Invalid,
        11,
        "services[0].cache.max_object_bytes",
        "greater than 0",
    );
}

#[test]
fn cache_disk_section() {
    let base = with_upstream("");
    assert_err(
        &format!("{base}    cache:\n      disk: {{max_bytes: 1073741824}}\n"),
        Invalid,
        11,
        "services[0].cache.disk",
        "`path` is required",
    );
    let file = std::env::temp_dir().join(format!("pingora-config-disk-{}", std::process::id()));
    std::fs::write(&file, b"not a directory").unwrap();
    let e = err(&format!(
        "{base}    cache:\n      disk:\n        path: {}\n",
        file.display()
    ));
    let _ = std::fs::remove_file(&file);
    assert_eq!(e.key_path, "services[0].cache.disk.path");
    assert_eq!(e.line, Some(12));
    assert!(e.message.contains("not a directory"), "{e}");
    assert_err(
        &format!(
            "{base}    cache:\n      disk:\n        path: /var/cache/pingora\n        max_bytes: 1000\n"
        ),
        Invalid,
        13,
        "services[0].cache.disk.max_bytes",
        "at least 1048576",
    );
    assert_err(
        &format!("{base}    cache:\n      disk: {{path: /x, max_byte: 5}}\n"),
        crate::ConfigErrorKind::UnknownKey,
        11,
        "services[0].cache.disk",
        "max_byte",
    );
}

#[test]
fn cache_directories_must_be_usable_and_not_shared() {
    let base = with_upstream("");
    let file = std::env::temp_dir().join(format!("pingora-config-under-{}", std::process::id()));
    std::fs::write(&file, b"a file").unwrap();
    let e = err(&format!(
        "{base}    cache:\n      disk:\n        path: {}/cache\n",
        file.display()
    ));
    let _ = std::fs::remove_file(&file);
    assert_eq!(e.key_path, "services[0].cache.disk.path");
    assert!(e.message.contains("is not a directory"), "{e}");

    let dir = std::env::temp_dir().join(format!("pingora-config-shared-{}", std::process::id()));
    let service = |name: &str, port: u16, path: String| {
        format!(
            "  - name: {name}\n    listeners: [{{addr: \"127.0.0.1:{port}\"}}]\n    routes: [{{upstream: api}}]\n    upstreams: {{api: {{peers: [\"127.0.0.1:9000\"]}}}}\n    cache: {{disk: {{path: {path}}}}}\n"
        )
    };
    let yaml = format!(
        "services:\n{}{}",
        service("a", 8081, dir.display().to_string()),
        service("b", 8082, format!("{}/./", dir.display()))
    );
    let e = err(&yaml);
    assert_eq!(e.key_path, "services[1].cache.disk.path");
    assert!(e.message.contains("already used by services[0]"), "{e}");
    let yaml = format!(
        "services:\n{}{}",
        service("a", 8081, dir.display().to_string()),
        service("b", 8082, format!("{}-b", dir.display()))
    );
    ok(&yaml);
}

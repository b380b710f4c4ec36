//! Errors found while decoding: syntax, unknown keys, types, enum values.

use super::{assert_err, err, service};
use crate::ConfigErrorKind::Invalid;
use crate::ConfigErrorKind::{Syntax, Type, UnknownKey};

#[test]
fn yaml_syntax_error_has_a_line() {
    let e = assert_err(
        "threads: 2\nservices:\n  - name: 'web\n",
        Syntax,
        3,
        "",
        "invalid YAML",
    );
    assert!(e.to_string().starts_with("t.yaml:3:"), "{e}");
    assert_err("a: [1, 2\nb: 3\n", Syntax, 2, "", "invalid YAML");
    let e = err("services:\n  - name: a\n - name: b\n");
    assert_eq!(e.kind, Syntax);
    assert!(e.line.is_some_and(|l| l >= 2), "{e}");
}

#[test]
fn unknown_top_level_key_suggests() {
    let e = assert_err(
        "version: 1\nthreads: 2\nthread: 4\n",
        UnknownKey,
        3,
        "",
        "unknown key `thread`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("threads"));
    assert_eq!(
        e.to_string(),
        "t.yaml:3:1: unknown key `thread` (did you mean `threads`?)"
    );
}

#[test]
fn unknown_key_without_close_match_lists_valid_keys() {
    let e = assert_err(
        "zzzz: 1\n",
        UnknownKey,
        1,
        "",
        "valid keys here: version, daemon",
    );
    assert_eq!(e.suggestion, None);
}

#[test]
fn unknown_keys_at_every_level() {
    let cases: &[(&str, usize, &str, &str, &str)] = &[
        ("    listenrs: []\n", 7, "services[0]", "listenrs", "listeners"),
        (
            "    upstreams:\n      u:\n        peers: [\"a:1\"]\n        lbb: random\n",
            10,
            "services[0].upstreams.u",
            "lbb",
            "lb",
        ),
        (
            "    upstreams:\n      u:\n        peers: [{addr: \"a:1\", wieght: 2}]\n",
            9,
            "services[0].upstreams.u.peers[0]",
            "wieght",
            "weight",
        ),
        (
            "    upstreams:\n      u:\n        peers: [\"a:1\"]\n        health_check: {type: tcp, intervl_ms: 5}\n",
            10,
            "services[0].upstreams.u.health_check",
            "intervl_ms",
            "interval_ms",
        ),
        (
            "    upstreams:\n      u:\n        peers: [\"a:1\"]\n        tls: {snii: x}\n",
            10,
            "services[0].upstreams.u.tls",
            "snii",
            "sni",
        ),
        ("    cache: {max_byte: 5}\n", 7, "services[0].cache", "max_byte", "max_bytes"),
    ];
    for (extra, line, path, key, suggestion) in cases {
        let e = assert_err(
            &service(extra),
            UnknownKey,
            *line,
            path,
            &format!("unknown key `{key}`"),
        );
        assert_eq!(e.suggestion.as_deref(), Some(*suggestion), "{e}");
    }
    let e = assert_err(
        "services:\n  - name: a\n    listeners:\n      - addr: 127.0.0.1:1\n        backlg: 5\n",
        UnknownKey,
        5,
        "services[0].listeners[0]",
        "`backlg`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("backlog"));
    let e = assert_err(
        "services:\n  - name: a\n    routes:\n      - matc: {host: a}\n",
        UnknownKey,
        4,
        "services[0].routes[0]",
        "`matc`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("match"));
    let e = assert_err(
        "services:\n  - name: a\n    routes:\n      - match: {hots: a}\n",
        UnknownKey,
        4,
        "services[0].routes[0].match",
        "`hots`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("host"));
    let e = assert_err(
        "services:\n  - name: a\n    routes:\n      - respond: {stauts: 201}\n",
        UnknownKey,
        4,
        "services[0].routes[0].respond",
        "`stauts`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("status"));
    let e = assert_err(
        "admin:\n  adr: 127.0.0.1:1\n",
        UnknownKey,
        2,
        "admin",
        "`adr`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("addr"));
    let e = assert_err(
        "tokio:\n  blocking_thread: 2\n",
        UnknownKey,
        2,
        "tokio",
        "`blocking_thread`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("blocking_threads"));
}

#[test]
fn unknown_key_in_listener_tls() {
    let e = assert_err(
        "services:\n  - name: a\n    listeners:\n      - addr: 127.0.0.1:1\n        tls: {cert: a, key: b, chain: c}\n",
        UnknownKey,
        5,
        "services[0].listeners[0].tls",
        "`chain`",
    );
    assert!(e.message.contains("valid keys here: cert, key"), "{e}");
}

#[test]
fn type_errors_name_the_key() {
    let e = assert_err(
        "threads: four\n",
        Type,
        1,
        "threads",
        "expected an integer, found `four`",
    );
    assert_eq!(e.column, Some(10));
    assert_err("threads: -2\n", Type, 1, "threads", "non-negative");
    assert_err("daemon: maybe\n", Type, 1, "daemon", "`true` or `false`");
    assert_err(
        &service("    max_request_headers: x\n"),
        Type,
        7,
        "services[0].max_request_headers",
        "expected an integer",
    );
    assert_err(
        "services:\n  - name: a\n    listeners:\n      - addr: 127.0.0.1:1\n        backlog: 99999999999\n",
        Type,
        5,
        "services[0].listeners[0].backlog",
        "too large",
    );
    assert_err(
        "services:\n  - name: a\n    routes:\n      - respond: {status: 70000}\n",
        Type,
        4,
        "services[0].routes[0].respond.status",
        "at most 65535",
    );
    assert_err(
        "services:\n  name: a\n",
        Type,
        2,
        "services",
        "expected a list",
    );
    assert_err(
        "client_bind_to_ipv4: 1.2.3.4\n",
        Type,
        1,
        "client_bind_to_ipv4",
        "expected a list, found `1.2.3.4`",
    );
    assert_err(
        "services:\n",
        Type,
        1,
        "services",
        "expected a list, found an empty value",
    );
    assert_err("admin: 5\n", Type, 1, "admin", "expected a map");
    assert_err("- a\n- b\n", Type, 1, "", "expected a map of keys");
    assert_err("hello\n", Type, 1, "", "found `hello`");
}

#[test]
fn bad_enum_values_suggest() {
    let e = assert_err(
        &service("    upstreams:\n      api:\n        peers: [\"a:1\"]\n        lb: round_robbin\n"),
        Type,
        10,
        "services[0].upstreams.api.lb",
        "unknown variant `round_robbin`, expected one of round_robin, weighted, random, consistent_hash, least_conn, p2c",
    );
    assert_eq!(e.suggestion.as_deref(), Some("round_robin"));
    assert_eq!(
        e.to_string(),
        "t.yaml:10:13: services[0].upstreams.api.lb: unknown variant `round_robbin`, expected one of round_robin, weighted, random, consistent_hash, least_conn, p2c (did you mean `round_robin`?)"
    );
    let e = assert_err(
        &service("    upstreams:\n      api:\n        peers: [\"a:1\"]\n        health_check: {type: htp}\n"),
        Type,
        10,
        "services[0].upstreams.api.health_check.type",
        "unknown variant `htp`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("http"));
    let e = assert_err(
        &service(
            "    upstreams:\n      api:\n        peers: [\"a:1\"]\n        hash_key: clientip\n",
        ),
        Type,
        10,
        "services[0].upstreams.api.hash_key",
        "invalid hash_key `clientip`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("client_ip"));
    assert!(!e.message.contains("did you mean"), "{e}");
}

#[test]
fn required_keys() {
    assert_err(
        "services:\n  - name: a\n    listeners:\n      - backlog: 5\n",
        Type,
        4,
        "services[0].listeners[0]",
        "missing required key `addr`",
    );
    assert_err(
        &service("    upstreams:\n      u:\n        peers: [\"a:1\"]\n        health_check: {interval_ms: 50}\n"),
        Type,
        10,
        "services[0].upstreams.u.health_check",
        "missing required key `type`",
    );
    assert_err(
        &service("    upstreams:\n      u:\n        peers: [{weight: 2}]\n"),
        Type,
        9,
        "services[0].upstreams.u.peers[0]",
        "missing required key `addr`",
    );
}

#[test]
fn listen_addresses_are_parsed() {
    let yaml = |addr: &str| {
        format!("services:\n  - name: a\n    listeners:\n      - addr: {addr}\n    routes: [{{respond: {{}}}}]\n")
    };
    for bad in [
        "localhost:8080",
        "1.2.3.4",
        "1.2.3.4:99999",
        "\"unix:\"",
        "\"::1:80\"",
    ] {
        let e = err(&yaml(bad));
        assert_eq!(e.line, Some(4), "{e}");
        assert_eq!(e.key_path, "services[0].listeners[0].addr", "{e}");
        assert!(e.message.contains("invalid address"), "{e}");
    }
    let e = err(&yaml("\"unix:\""));
    assert!(e.message.contains("unix socket path is empty"), "{e}");
    let e = err("admin:\n  addr: nowhere\n");
    assert_eq!((e.line, e.key_path.as_str()), (Some(2), "admin.addr"));
    let e = err(&yaml("8080"));
    assert_eq!(e.key_path, "services[0].listeners[0].addr", "{e}");
}

#[test]
fn peers_must_be_strings_or_maps() {
    let e = err(&service(
        "    upstreams:\n      u:\n        peers: [8080]\n",
    ));
    assert_eq!(e.kind, Type);
    assert_eq!(e.line, Some(9));
    assert_eq!(e.key_path, "services[0].upstreams.u.peers[0]");
    let e = err(&service(
        "    upstreams:\n      u:\n        peers: [{addr: \"a:1\", weight: -1}]\n",
    ));
    assert_eq!(e.key_path, "services[0].upstreams.u.peers[0].weight", "{e}");
}

#[test]
fn duplicate_keys_and_documents() {
    assert_err(
        "threads: 1\nthreads: 2\n",
        Invalid,
        2,
        "",
        "duplicate key `threads`",
    );
    assert_err(
        &service("    upstreams:\n      u: {peers: [\"a:1\"]}\n      u: {peers: [\"b:1\"]}\n"),
        Invalid,
        9,
        "services[0].upstreams",
        "duplicate key `u`",
    );
    assert_err(
        "threads: 1\n---\nthreads: 2\n",
        Syntax,
        3,
        "",
        "more than one YAML document",
    );
}

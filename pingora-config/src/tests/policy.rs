//! The request policy keys: the spec's example parses, and each bad value fails with
//! its line and key path.

use super::{assert_err, ok};
use crate::template::{Piece, Var};
use crate::ConfigErrorKind::{Invalid, Type, UnknownKey};

/// A service with upstream `api` and one route, `route` (lines indented by 8 after
/// `      - `), preceded by `service_extra` lines (indented by 4).
fn with_route(service_extra: &str, route: &str) -> String {
    format!(
        "services:\n  - name: web\n    listeners:\n      - addr: 127.0.0.1:8080\n{service_extra}    routes:\n      - upstream: api\n{route}    upstreams:\n      api:\n        peers: [\"127.0.0.1:9000\"]\n"
    )
}

/// As [`with_route`], the first route limited to `/a` and `route` a second route
/// (starting with `      - `, on line 8).
fn with_second_route(route: &str) -> String {
    with_route(
        "",
        &format!("        match: {{ path_prefix: /a }}\n{route}"),
    )
}

#[test]
fn the_spec_example_parses() {
    let yaml = r#"services:
  - name: web
    listeners:
      - addr: 127.0.0.1:8080
    trusted_proxies: ["10.0.0.0/8"]
    request_id: { header: X-Request-Id }
    max_request_body_bytes: 10485760
    access: { allow: ["10.0.0.0/8", "::1"], deny: ["10.9.0.0/16"] }
    max_connections_per_client: 256
    routes:
      - match:
          host: "*.example.com"
          path: /exact
          path_prefix: /api/
          path_regex: "^/users/([0-9]+)$"
          methods: [GET, HEAD]
          headers: { x-env: canary, x-debug: "~^(1|true)$", x-present: "*" }
          query: { version: "2" }
        upstream: api
        rewrite: { strip_prefix: /api }
        request_headers:  { set: { X-Env: prod }, add: { X-Via: "$host" }, remove: [X-Internal] }
        response_headers: { set: { Strict-Transport-Security: "max-age=63072000" }, remove: [Server] }
        max_request_body_bytes: 1048576
        access: { allow: ["127.0.0.1"] }
        timeouts: { connect_ms: 500, read_ms: 5000, write_ms: 5000 }
      - match: { path_prefix: /old/ }
        redirect: { status: 301, location: "https://$host$request_uri" }
      - match: { path_regex: "^/u/([a-z]+)/(\\d+)$" }
        upstream: api
        rewrite: { regex: "^/u/(.*)$", replace: "/users/$1" }
        request_headers: { set: { X-User: "$1-$2", X-Agent: "$http_user_agent" } }
      - match: { path_prefix: /p/ }
        upstream: api
        rewrite: { replace_prefix: { from: /p/, to: /q/ } }
    upstreams:
      api:
        peers: ["10.0.0.1:8080"]
"#;
    let conf = ok(yaml);
    let s = &conf.services[0];
    assert_eq!(s.trusted_proxies, ["10.0.0.0/8"]);
    assert_eq!(s.request_id.as_ref().unwrap().header, "X-Request-Id");
    assert_eq!(s.max_request_body_bytes, Some(10_485_760));
    assert_eq!(s.access.as_ref().unwrap().deny, ["10.9.0.0/16"]);
    assert_eq!(s.max_connections_per_client, Some(256));
    let r = &s.routes[0];
    let m = r.matcher.as_ref().unwrap();
    assert_eq!(m.host.as_deref(), Some("*.example.com"));
    assert_eq!(
        m.methods.as_deref(),
        Some(&["GET".to_string(), "HEAD".to_string()][..])
    );
    assert_eq!(m.headers.get("x-debug"), Some("~^(1|true)$"));
    assert_eq!(m.query.get("version"), Some("2"));
    assert_eq!(
        r.rewrite.as_ref().unwrap().strip_prefix.as_deref(),
        Some("/api")
    );
    let req = r.request_headers.as_ref().unwrap();
    assert_eq!(req.set.get("X-Env"), Some("prod"));
    assert_eq!(req.remove, ["X-Internal"]);
    assert_eq!(r.timeouts.unwrap().read_ms, Some(5000));
    assert_eq!(s.routes[1].redirect.as_ref().unwrap().status, 301);
}

#[test]
fn redirect_defaults_to_302() {
    let conf = ok(&with_second_route(
        "      - redirect: { location: \"https://$host$request_uri\" }\n",
    ));
    assert_eq!(
        conf.services[0].routes[1].redirect.as_ref().unwrap().status,
        302
    );
}

#[test]
fn templates_parse_into_pieces() {
    let t = crate::Template::parse("$scheme://$host:$server_port$path?$query").unwrap();
    assert_eq!(t.pieces()[0], Piece::Var(Var::Scheme));
    assert_eq!(t.vars().count(), 5);
}

#[test]
fn unknown_variable_is_refused_with_a_suggestion() {
    let yaml = with_route(
        "",
        "        request_headers: { set: { X-Via: \"$hots\" } }\n",
    );
    let e = assert_err(
        &yaml,
        Invalid,
        7,
        "services[0].routes[0].request_headers.set.X-Via",
        "unknown variable `$hots`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("$host"));
    assert_err(
        &with_second_route("      - redirect: { location: \"https://$hostname/\" }\n"),
        Invalid,
        8,
        "services[0].routes[1].redirect.location",
        "unknown variable `$hostname`",
    );
}

#[test]
fn captures_need_a_regex_with_that_many_groups() {
    assert_err(
        &with_route("", "        request_headers: { set: { X-Id: \"$1\" } }\n"),
        Invalid,
        7,
        "services[0].routes[0].request_headers.set.X-Id",
        "`$1` is not defined",
    );
    let two = "        request_headers: { set: { X-Id: \"$2\" } }\n";
    let yaml = with_route("", two).replace(
        "      - upstream: api\n",
        "      - upstream: api\n        match: { path_regex: \"^/u/([0-9]+)$\" }\n",
    );
    assert_err(
        &yaml,
        Invalid,
        8,
        "services[0].routes[0].request_headers.set.X-Id",
        "1 capture group",
    );
    // `rewrite.replace` counts the groups of `rewrite.regex`, not of `path_regex`.
    let rewrite = "        rewrite: { regex: \"^/a$\", replace: \"/b/$1\" }\n";
    let yaml = with_route("", rewrite).replace(
        "      - upstream: api\n",
        "      - upstream: api\n        match: { path_regex: \"^/(a)$\" }\n",
    );
    assert_err(
        &yaml,
        Invalid,
        8,
        "services[0].routes[0].rewrite.replace",
        "not defined",
    );
}

#[test]
fn regexes_that_do_not_compile() {
    assert_err(
        &with_route("", "        match: { path_regex: \"^/(unclosed$\" }\n"),
        Invalid,
        7,
        "services[0].routes[0].match.path_regex",
        "does not compile",
    );
    assert_err(
        &with_route("", "        match: { headers: { x-debug: \"~[z-a]\" } }\n"),
        Invalid,
        7,
        "services[0].routes[0].match.headers.x-debug",
        "does not compile",
    );
    assert_err(
        &with_route("", "        rewrite: { regex: \"(\", replace: /x }\n"),
        Invalid,
        7,
        "services[0].routes[0].rewrite.regex",
        "does not compile",
    );
}

#[test]
fn bad_networks() {
    assert_err(
        &with_route("    access: { allow: [\"10.0.0.0/33\"] }\n", ""),
        Invalid,
        5,
        "services[0].access.allow[0]",
        "prefix length must be 0 to 32",
    );
    assert_err(
        &with_route(
            "    trusted_proxies: [\"10.0.0.0/8\", \"proxy.local\"]\n",
            "",
        ),
        Invalid,
        5,
        "services[0].trusted_proxies[1]",
        "not an IP address",
    );
    assert_err(
        &with_route("", "        access: { deny: [\"::1/200\"] }\n"),
        Invalid,
        7,
        "services[0].routes[0].access.deny[0]",
        "0 to 128",
    );
}

#[test]
fn out_of_range_values() {
    assert_err(
        &with_second_route("      - redirect: { status: 200, location: /x }\n"),
        Invalid,
        8,
        "services[0].routes[1].redirect.status",
        "301, 302, 303, 307 or 308",
    );
    assert_err(
        &with_route("    max_request_body_bytes: 0\n", ""),
        Invalid,
        5,
        "services[0].max_request_body_bytes",
        "greater than 0",
    );
    assert_err(
        &with_route("", "        max_request_body_bytes: -1\n"),
        Type,
        7,
        "services[0].routes[0].max_request_body_bytes",
        "non-negative",
    );
    assert_err(
        &with_route("", "        timeouts: { read_ms: 0 }\n"),
        Invalid,
        7,
        "services[0].routes[0].timeouts.read_ms",
        "greater than 0",
    );
    assert_err(
        &with_route("    max_connections_per_client: 0\n", ""),
        Invalid,
        5,
        "services[0].max_connections_per_client",
        "greater than 0",
    );
}

#[test]
fn bad_shapes_and_names() {
    assert_err(
        &with_route(
            "",
            "        rewrite: { strip_prefix: /a, regex: x, replace: y }\n",
        ),
        Invalid,
        7,
        "services[0].routes[0].rewrite",
        "exactly one of",
    );
    assert_err(
        &with_route("", "        rewrite: { regex: \"^/a\" }\n"),
        Invalid,
        7,
        "services[0].routes[0].rewrite",
        "needs `replace`",
    );
    assert_err(
        &with_route("", "        rewrite: { strip_prefix: api }\n"),
        Invalid,
        7,
        "services[0].routes[0].rewrite.strip_prefix",
        "must start with `/`",
    );
    assert_err(
        &with_route("", "        request_headers: { remove: [\"bad name\"] }\n"),
        Invalid,
        7,
        "services[0].routes[0].request_headers.remove[0]",
        "not a valid header name",
    );
    assert_err(
        &with_route(
            "",
            "        response_headers: { set: { Content-Length: \"1\" } }\n",
        ),
        Invalid,
        7,
        "services[0].routes[0].response_headers.set.Content-Length",
        "frames the message",
    );
    assert_err(
        &with_route("", "        match: { host: \"a.*.example.com\" }\n"),
        Invalid,
        7,
        "services[0].routes[0].match.host",
        "not a host name",
    );
    assert_err(
        &with_route("", "        match: { methods: [\"GE T\"] }\n"),
        Invalid,
        7,
        "services[0].routes[0].match.methods[0]",
        "not an HTTP method",
    );
    assert_err(
        &with_second_route("      - upstream: api\n        redirect: { location: /x }\n"),
        Invalid,
        8,
        "services[0].routes[1]",
        "exactly one of",
    );
    let e = assert_err(
        &with_route("", "        rewrite: { strip_prefx: /a }\n"),
        UnknownKey,
        7,
        "services[0].routes[0].rewrite",
        "unknown key `strip_prefx`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("strip_prefix"));
    assert_err(
        &with_route("    request_id: { header: \"\" }\n", ""),
        Invalid,
        5,
        "services[0].request_id.header",
        "not a valid header name",
    );
}

#[test]
fn a_route_with_only_new_match_keys_is_not_a_catch_all() {
    // A `methods`-only route does not take every request: the route after it is fine.
    ok(&with_route(
        "",
        "        match: { methods: [POST] }\n      - upstream: api\n",
    ));
}

#[test]
fn scheme_and_server_port_are_per_connection() {
    // Listeners on several ports: each request takes its own connection's port.
    ok(&with_route(
        "",
        "        request_headers: { set: { X-Url: \"$scheme://$host:$server_port\" } }\n",
    )
    .replace(
        "      - addr: 127.0.0.1:8080\n",
        "      - addr: 127.0.0.1:8080\n      - addr: 127.0.0.1:8081\n        proxy_protocol: optional\n",
    ));
}

#[test]
fn proxy_protocol_values() {
    let listener = |mode: &str| {
        with_route("", "").replace(
            "      - addr: 127.0.0.1:8080\n",
            &format!("      - addr: 127.0.0.1:8080\n        proxy_protocol: {mode}\n"),
        )
    };
    for mode in ["off", "on", "optional"] {
        ok(&listener(mode));
    }
    let upstream = |v: &str| {
        with_route("", "").replace(
            "peers:",
            &format!("send_proxy_protocol: {v}\n        peers:"),
        )
    };
    for v in ["none", "v1", "v2"] {
        ok(&upstream(v));
    }
    assert_err(
        &listener("yes"),
        Type,
        5,
        "services[0].listeners[0].proxy_protocol",
        "unknown variant `yes`, expected one of off, on, optional",
    );
    assert_err(
        &upstream("v3"),
        Type,
        9,
        "services[0].upstreams.api.send_proxy_protocol",
        "unknown variant `v3`, expected one of none, v1, v2",
    );
}

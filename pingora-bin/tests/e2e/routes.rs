//! Routing: by host and path prefix to two origins, fixed responses, the health path,
//! and 404 when nothing matches.

use test_support::{free_addr, request, Origin, ProxyProcess, Reply};

use crate::bin;

#[test]
fn routes_pick_the_first_matching_rule() {
    let api = Origin::start(|req| Reply::ok(format!("api {}", req.path)));
    let assets = Origin::start(|req| Reply::ok(format!("assets {}", req.path)));
    let listen = free_addr();
    let yaml = format!(
        r#"version: 1
pid_file: {{dir}}/pingora.pid
upgrade_sock: {{dir}}/upgrade.sock
services:
  - name: web
    listeners: [ {{ addr: "{listen}" }} ]
    health_path: /healthz
    routes:
      - match: {{ host: api.example.com, path_prefix: /v1 }}
        upstream: api
      - match: {{ path_prefix: /static }}
        upstream: assets
      - match: {{ path_prefix: /hello }}
        respond: {{ status: 201, body: "hi\n" }}
    upstreams:
      api:
        peers: ["{api}"]
      assets:
        peers: ["{assets}"]
"#,
        api = api.addr(),
        assets = assets.addr()
    );
    let proxy = ProxyProcess::start(bin(), &yaml, &[listen]).expect("proxy starts");
    let ask = |host: &str, path: &str| {
        let r = request(listen, "GET", path, &[("Host", host)], b"").expect("response");
        (r.status, r.text())
    };

    assert_eq!(
        ask("api.example.com", "/v1/users"),
        (200, "api /v1/users".to_string())
    );
    assert_eq!(
        ask("API.Example.com:8080", "/v1"),
        (200, "api /v1".to_string())
    );
    assert_eq!(
        ask("other.example.com", "/v1/users").0,
        404,
        "host must match too"
    );
    assert_eq!(
        ask("api.example.com", "/static/app.js"),
        (200, "assets /static/app.js".to_string())
    );
    assert_eq!(
        ask("anything", "/static"),
        (200, "assets /static".to_string())
    );
    assert_eq!(ask("anything", "/hello/there"), (201, "hi\n".to_string()));
    let (status, body) = ask("anything", "/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    assert_eq!(ask("api.example.com", "/nothing").0, 404);

    assert_eq!(api.requests(), 2);
    assert_eq!(assets.requests(), 2);
    drop(proxy);
}

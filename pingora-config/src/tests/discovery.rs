//! Peer discovery (`discovery:`) and the health-check keys: what parses, and where each
//! mistake is reported.

use std::path::PathBuf;

use super::{assert_err, ok};
use crate::ConfigErrorKind::{File, Invalid, Type, UnknownKey};
use crate::{
    DiscoveryType, DnsRecordType, HealthCheckConf, ServerConf, StatusRange, ValidateOptions,
};

/// A service whose upstream `api` has the lines `upstream` (indented by 8); the upstream
/// starts at line 8, so its first key is on line 9.
fn upstream(upstream: &str) -> String {
    format!(
        "services:\n  - name: web\n    listeners:\n      - addr: 127.0.0.1:8080\n    routes:\n      - upstream: api\n    upstreams:\n      api:\n{upstream}"
    )
}

/// A peer list file that exists for as long as the value lives.
struct PeerFile(PathBuf);

impl PeerFile {
    fn new(tag: &str) -> PeerFile {
        let path = std::env::temp_dir().join(format!(
            "pingora-config-peers-{tag}-{}.txt",
            std::process::id()
        ));
        std::fs::write(&path, "127.0.0.1:9000\n").unwrap();
        PeerFile(path)
    }
}

impl Drop for PeerFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn dns_discovery_parses_with_defaults() {
    let conf = ok(&upstream(
        "        discovery: { type: dns, name: api.internal, port: 8080 }\n",
    ));
    let api = conf.services[0].upstream("api").unwrap();
    assert!(api.peers.is_empty());
    let d = api.discovery.as_ref().unwrap();
    assert_eq!(d.kind, DiscoveryType::Dns);
    assert_eq!(d.name.as_deref(), Some("api.internal"));
    assert_eq!(d.port, Some(8080));
    assert_eq!(d.record(), DnsRecordType::AAndAaaa);
    assert_eq!(d.resolver_addr(), Ok(None));
    assert_eq!((d.refresh_min_ms(), d.refresh_max_ms()), (1000, 60000));
}

#[test]
fn dns_discovery_parses_every_key() {
    let conf = ok(&upstream(
        "        discovery:\n          type: dns\n          name: _http._tcp.api.internal.\n          record: srv\n          resolver: \"127.0.0.1:5353\"\n          refresh_min_ms: 500\n          refresh_max_ms: 5000\n",
    ));
    let d = conf.services[0]
        .upstream("api")
        .unwrap()
        .discovery
        .clone()
        .unwrap();
    assert_eq!(d.record(), DnsRecordType::Srv);
    assert_eq!(
        d.resolver_addr(),
        Ok(Some("127.0.0.1:5353".parse().unwrap()))
    );
    assert_eq!((d.refresh_min_ms(), d.refresh_max_ms()), (500, 5000));
    for (written, record) in [
        ("a", DnsRecordType::A),
        ("aaaa", DnsRecordType::Aaaa),
        ("a_aaaa", DnsRecordType::AAndAaaa),
    ] {
        let conf = ok(&upstream(&format!(
            "        discovery: {{ type: dns, name: a.b, port: 1, record: {written}, resolver: \"::1\" }}\n"
        )));
        let d = conf.services[0]
            .upstream("api")
            .unwrap()
            .discovery
            .clone()
            .unwrap();
        assert_eq!(d.record(), record);
        assert_eq!(d.resolver_addr(), Ok(Some("[::1]:53".parse().unwrap())));
    }
    assert_eq!(DnsRecordType::NAMES, ["a", "aaaa", "a_aaaa", "srv"]);
}

#[test]
fn file_discovery_parses_and_needs_an_existing_file() {
    let file = PeerFile::new("ok");
    let conf = ok(&upstream(&format!(
        "        discovery: {{ type: file, path: {}, interval_ms: 250 }}\n",
        file.0.display()
    )));
    let d = conf.services[0]
        .upstream("api")
        .unwrap()
        .discovery
        .clone()
        .unwrap();
    assert_eq!(d.kind, DiscoveryType::File);
    assert_eq!(d.path.as_ref(), Some(&file.0));
    assert_eq!(d.interval_ms(), 250);
    assert_err(
        &upstream("        discovery: { type: file, path: /nonexistent/peers.txt }\n"),
        File,
        9,
        "services[0].upstreams.api.discovery.path",
        "cannot read peer list `/nonexistent/peers.txt`",
    );
}

#[test]
fn discovery_mistakes_name_the_key_and_line() {
    let dns = |rest: &str| upstream(&format!("        discovery:\n          type: dns\n{rest}"));
    let at = |key: &str| format!("services[0].upstreams.api.discovery{key}");
    assert_err(
        &upstream("        peers: [\"127.0.0.1:1\"]\n        discovery: { type: dns, name: a.b, port: 1 }\n"),
        Invalid,
        10,
        &at(""),
        "not both (`peers` is at services[0].upstreams.api.peers (line 9))",
    );
    assert_err(
        &upstream("        lb: random\n"),
        Invalid,
        8,
        "services[0].upstreams.api.peers",
        "or a `discovery` section",
    );
    assert_err(
        &dns("          port: 80\n"),
        Invalid,
        9,
        &at(""),
        "needs `name`",
    );
    assert_err(
        &dns("          name: api.internal\n"),
        Invalid,
        9,
        &at(""),
        "needs `port`",
    );
    assert_err(
        &dns("          name: api.internal\n          port: 0\n"),
        Invalid,
        12,
        &at(".port"),
        "port 0",
    );
    assert_err(
        &dns("          name: _s._tcp.a\n          record: srv\n          port: 80\n"),
        Invalid,
        13,
        &at(".port"),
        "remove `port`",
    );
    assert_err(
        &dns("          name: bad name\n          port: 80\n"),
        Invalid,
        11,
        &at(".name"),
        "not a valid host name",
    );
    assert_err(
        &dns("          name: a.b\n          port: 80\n          resolver: dns.google\n"),
        Invalid,
        13,
        &at(".resolver"),
        "not an IP address",
    );
    assert_err(
        &dns("          name: a.b\n          port: 80\n          refresh_min_ms: 5\n"),
        Invalid,
        13,
        &at(".refresh_min_ms"),
        "at least 10",
    );
    assert_err(
        &dns("          name: a.b\n          port: 80\n          refresh_max_ms: 100\n"),
        Invalid,
        13,
        &at(".refresh_max_ms"),
        "below refresh_min_ms (1000)",
    );
    assert_err(
        &dns("          name: a.b\n          port: 80\n          path: /x\n"),
        Invalid,
        13,
        &at(".path"),
        "`path` is for `type: file` discovery",
    );
    assert_err(
        &upstream("        discovery: { type: file }\n"),
        Invalid,
        9,
        &at(""),
        "needs `path`",
    );
    assert_err(
        &upstream("        discovery: { type: file, path: /x, port: 80 }\n"),
        Invalid,
        9,
        &at(".port"),
        "`port` is for `type: dns` discovery",
    );
    let e = assert_err(
        &dns("          name: a.b\n          prot: 80\n"),
        UnknownKey,
        12,
        &at(""),
        "unknown key `prot`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("port"));
    let e = assert_err(
        &dns("          name: a.b\n          port: 80\n          record: srvv\n"),
        Type,
        13,
        &at(".record"),
        "unknown variant `srvv`",
    );
    assert!(e.to_string().ends_with("(did you mean `srv`?)"), "{e}");
    assert_err(
        &upstream("        discovery: { type: consul }\n"),
        Type,
        9,
        &at(".type"),
        "expected one of file, dns",
    );
}

#[test]
fn discovery_needs_the_lb_feature() {
    let yaml = upstream("        discovery: { type: dns, name: a.b, port: 1 }\n");
    let opts = ValidateOptions {
        lb_supported: false,
        ..ValidateOptions::default()
    };
    let e = ServerConf::from_yaml_str_with(&yaml, "t.yaml", &opts).unwrap_err();
    assert_eq!(e.key_path, "services[0].upstreams.api.discovery");
    assert!(e.message.contains("feature `lb`"), "{e}");
}

fn with_check(check: &str) -> String {
    upstream(&format!(
        "        peers: [\"127.0.0.1:9000\"]\n        health_check:\n{check}"
    ))
}

#[test]
fn health_check_keys_parse_with_defaults() {
    let conf = ok(&with_check("          type: tcp\n"));
    let check = conf.services[0]
        .upstream("api")
        .unwrap()
        .health_check
        .clone()
        .unwrap();
    assert_eq!(check, HealthCheckConf::default());
    assert_eq!((check.healthy_threshold, check.unhealthy_threshold), (2, 3));
    assert_eq!(check.timeout_ms(), 1000, "the interval");
    assert_eq!(check.expected_status(), StatusRange { min: 200, max: 399 });

    let conf = ok(&with_check(
        "          type: http\n          path: /ready\n          interval_ms: 5000\n          timeout_ms: 300\n          healthy_threshold: 5\n          unhealthy_threshold: 1\n          expected_status: \"200-204\"\n          host: app.internal:8080\n",
    ));
    let check = conf.services[0]
        .upstream("api")
        .unwrap()
        .health_check
        .clone()
        .unwrap();
    assert_eq!(check.timeout_ms(), 300);
    assert_eq!((check.healthy_threshold, check.unhealthy_threshold), (5, 1));
    assert_eq!(check.expected_status(), StatusRange { min: 200, max: 204 });
    assert_eq!(check.host.as_deref(), Some("app.internal:8080"));
    let slow = ok(&with_check(
        "          type: tcp\n          interval_ms: 10000\n",
    ));
    let slow = slow.services[0]
        .upstream("api")
        .unwrap()
        .health_check
        .clone()
        .unwrap();
    assert_eq!(slow.timeout_ms(), 2000, "the interval, at most 2 s");
    let one = ok(&with_check(
        "          type: http\n          expected_status: 204\n",
    ));
    let one = one.services[0]
        .upstream("api")
        .unwrap()
        .health_check
        .clone()
        .unwrap();
    assert_eq!(one.expected_status(), StatusRange { min: 204, max: 204 });
    assert_eq!(one.expected_status().to_string(), "204");
}

#[test]
fn health_check_mistakes_name_the_key_and_line() {
    let at = |key: &str| format!("services[0].upstreams.api.health_check.{key}");
    let http = |extra: &str| with_check(&format!("          type: http\n{extra}"));
    for key in ["healthy_threshold", "unhealthy_threshold"] {
        assert_err(
            &http(&format!("          {key}: 0\n")),
            Invalid,
            12,
            &at(key),
            "greater than 0",
        );
        assert_err(
            &http(&format!("          {key}: 5000\n")),
            Invalid,
            12,
            &at(key),
            "at most 1000",
        );
    }
    assert_err(
        &http("          timeout_ms: 0\n"),
        Invalid,
        12,
        &at("timeout_ms"),
        "greater than 0",
    );
    assert_err(
        &http("          expected_status: \"299-200\"\n"),
        Invalid,
        12,
        &at("expected_status"),
        "low end is above its high end",
    );
    assert_err(
        &http("          expected_status: 700\n"),
        Invalid,
        12,
        &at("expected_status"),
        "from 100 to 599",
    );
    assert_err(
        &http("          expected_status: 2xx\n"),
        Type,
        12,
        &at("expected_status"),
        "like `200-299`",
    );
    assert_err(
        &http("          host: \"a b\"\n"),
        Invalid,
        12,
        &at("host"),
        "not a host name",
    );
    for (key, value) in [("path", "/x"), ("host", "a"), ("expected_status", "200")] {
        assert_err(
            &with_check(&format!("          type: tcp\n          {key}: {value}\n")),
            Invalid,
            12,
            &at(key),
            "is for `type: http` checks",
        );
    }
    let e = assert_err(
        &http("          healthy_treshold: 2\n"),
        UnknownKey,
        12,
        "services[0].upstreams.api.health_check",
        "unknown key `healthy_treshold`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("healthy_threshold"));
    assert_err(
        &http("          healthy_threshold: many\n"),
        Type,
        12,
        &at("healthy_threshold"),
        "",
    );
}

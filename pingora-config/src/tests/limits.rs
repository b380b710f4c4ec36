//! `compression` and `rate_limit`: the spec's example parses, defaults, and each bad
//! value fails with its line and key path.

use std::time::Duration;

use super::{assert_err, ok};
use crate::ConfigErrorKind::{Invalid, Type, UnknownKey};
use crate::{CompressionAlgorithm, RateLimitBackend, RateLimitKeyPart, RedisOnError};

/// A service whose lines 5.. are `service_extra` (indented by 4), then one route.
fn service(service_extra: &str) -> String {
    format!(
        "services:\n  - name: web\n    listeners:\n      - addr: 127.0.0.1:8080\n{service_extra}    routes:\n      - upstream: api\n    upstreams:\n      api:\n        peers: [\"127.0.0.1:9000\"]\n"
    )
}

#[test]
fn the_spec_example_parses() {
    let conf = ok(&service(
        r#"    compression:
      algorithms: [zstd, br, gzip]
      min_bytes: 1024
      types: ["text/*", application/json, application/javascript, image/svg+xml]
      level: { gzip: 6, br: 4, zstd: 3 }
    rate_limit:
      key: client_ip
      rate: 100/s
      burst: 50
      backend: redis
      redis: { addr: "127.0.0.1:6379", timeout_ms: 50, on_error: allow }
"#,
    ));
    let s = &conf.services[0];
    let c = s.compression.as_ref().unwrap();
    assert_eq!(c.algorithms, CompressionAlgorithm::ALL);
    assert_eq!(c.min_bytes, 1024);
    assert_eq!(c.types.len(), 4);
    assert_eq!((c.level.gzip, c.level.br, c.level.zstd), (6, 4, 3));
    let l = s.rate_limit.as_ref().unwrap();
    assert_eq!(l.key.parts, [RateLimitKeyPart::ClientIp]);
    assert_eq!(l.rate.count, 100);
    assert_eq!(l.rate.per, Duration::from_secs(1));
    assert_eq!(l.burst(), 50);
    assert_eq!(l.backend, RateLimitBackend::Redis);
    let redis = l.redis.as_ref().unwrap();
    assert_eq!(
        (redis.addr.as_str(), redis.timeout_ms, redis.on_error),
        ("127.0.0.1:6379", 50, RedisOnError::Allow)
    );
}

#[test]
fn route_level_sections_and_defaults() {
    let yaml = "services:\n  - name: web\n    listeners:\n      - addr: 127.0.0.1:8080\n    routes:\n      - upstream: api\n        compression: {}\n        rate_limit: { rate: 20/m, key: [client_ip, route, \"header:X-Api-Key\"] }\n    upstreams:\n      api:\n        peers: [\"127.0.0.1:9000\"]\n";
    let conf = ok(yaml);
    let route = &conf.services[0].routes[0];
    let c = route.compression.as_ref().unwrap();
    assert_eq!(c.algorithms, CompressionAlgorithm::ALL);
    assert_eq!(c.min_bytes, 1024);
    let l = route.rate_limit.as_ref().unwrap();
    assert_eq!(l.burst(), 20, "burst defaults to the rate's count");
    assert_eq!(l.backend, RateLimitBackend::Local);
    assert_eq!(l.key.to_string(), "client_ip+route+header:x-api-key");
}

#[test]
fn unknown_algorithms_are_refused() {
    let e = assert_err(
        &service("    compression:\n      algorithms: [zstd, deflate]\n"),
        Type,
        6,
        "services[0].compression.algorithms[1]",
        "unknown variant `deflate`",
    );
    assert!(e.message.contains("zstd, br, gzip"), "{e}");
    assert_err(
        &service("    compression:\n      algorithms: [gzip, gzip]\n"),
        Invalid,
        6,
        "services[0].compression.algorithms[1]",
        "listed twice",
    );
    let e = assert_err(
        &service("    compression:\n      level: { gzip: 6, brotli: 4 }\n"),
        UnknownKey,
        6,
        "services[0].compression.level",
        "unknown key `brotli`",
    );
    assert!(e.to_string().contains("br"), "{e}");
}

#[test]
fn bad_compression_values() {
    assert_err(
        &service("    compression:\n      level: { gzip: 10 }\n"),
        Invalid,
        6,
        "services[0].compression.level.gzip",
        "a gzip level is 1 to 9, found 10",
    );
    assert_err(
        &service("    compression:\n      level: { zstd: 0 }\n"),
        Invalid,
        6,
        "services[0].compression.level.zstd",
        "1 to 19",
    );
    assert_err(
        &service("    compression:\n      types: [text/html, json]\n"),
        Invalid,
        6,
        "services[0].compression.types[1]",
        "not a media type",
    );
    assert_err(
        &service("    compression:\n      min_bytes: -1\n"),
        Type,
        6,
        "services[0].compression.min_bytes",
        "",
    );
}

#[test]
fn absurd_rates_are_refused() {
    for (rate, needle) in [
        ("0/s", "greater than 0"),
        ("100/d", "unknown period `d`"),
        ("lots", "no `/`"),
        ("1.5/s", "whole number"),
        ("99999999999/s", "at most 1000000000"),
        ("100", "needs a period"),
    ] {
        assert_err(
            &service(&format!("    rate_limit:\n      rate: {rate}\n")),
            Type,
            6,
            "services[0].rate_limit.rate",
            needle,
        );
    }
    assert_err(
        &service("    rate_limit:\n      burst: 5\n"),
        Type,
        6,
        "services[0].rate_limit",
        "missing required key `rate`",
    );
}

#[test]
fn bad_rate_limit_values() {
    assert_err(
        &service("    rate_limit:\n      rate: 10/s\n      burst: 0\n"),
        Invalid,
        7,
        "services[0].rate_limit.burst",
        "greater than 0",
    );
    let e = assert_err(
        &service("    rate_limit:\n      rate: 10/s\n      key: client_id\n"),
        Type,
        7,
        "services[0].rate_limit.key",
        "invalid rate_limit key `client_id`",
    );
    assert!(e.to_string().contains("client_ip"), "{e}");
    assert_err(
        &service("    rate_limit:\n      rate: 10/s\n      key: [route, route]\n"),
        Type,
        7,
        "services[0].rate_limit.key",
        "listed twice",
    );
    assert_err(
        &service("    rate_limit:\n      rate: 10/s\n      backend: memcached\n"),
        Type,
        7,
        "services[0].rate_limit.backend",
        "unknown variant `memcached`",
    );
    assert_err(
        &service("    rate_limit:\n      rate: 10/s\n      backend: redis\n"),
        Invalid,
        5,
        "services[0].rate_limit",
        "needs a `redis:",
    );
    assert_err(
        &service("    rate_limit:\n      rate: 10/s\n      backend: redis\n      redis: { addr: localhost }\n"),
        Invalid,
        8,
        "services[0].rate_limit.redis.addr",
        "not HOST:PORT",
    );
    assert_err(
        &service("    rate_limit:\n      rate: 10/s\n      backend: redis\n      redis: { on_error: maybe }\n"),
        Type,
        8,
        "services[0].rate_limit.redis.on_error",
        "unknown variant `maybe`",
    );
    assert_err(
        &service("    rate_limit:\n      rate: 10/s\n      redis: {}\n"),
        Invalid,
        7,
        "services[0].rate_limit.redis",
        "only used with `backend: redis`",
    );
}

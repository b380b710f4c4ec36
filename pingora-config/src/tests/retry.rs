//! `upstreams.NAME.retry`: the spec's form parses, defaults, and each bad value fails
//! with its line and key path.

use super::{assert_err, ok};
use crate::upstream::{RetryConf, RetryOnConf};
use crate::ConfigErrorKind::{Invalid, Type, UnknownKey};

/// A service with upstream `api` whose `retry` is `retry` (on line 9).
fn with_retry(retry: &str) -> String {
    format!(
        "services:\n  - name: web\n    listeners:\n      - addr: 127.0.0.1:8080\n    routes: [ {{ upstream: api }} ]\n    upstreams:\n      api:\n        peers: [\"127.0.0.1:9000\"]\n        retry: {retry}\n"
    )
}

fn retry_of(yaml: &str) -> RetryConf {
    let conf = ok(yaml);
    conf.services[0]
        .upstreams
        .get("api")
        .unwrap()
        .retry
        .clone()
        .expect("a retry section")
}

#[test]
fn the_spec_form_parses() {
    let retry = retry_of(&with_retry(
        "{ on: [connect_failure, timeout, reset, 502, 503, 504], retries: 2, per_try_timeout_ms: 2000 }",
    ));
    assert_eq!(
        retry.on,
        [
            RetryOnConf::ConnectFailure,
            RetryOnConf::Timeout,
            RetryOnConf::Reset,
            RetryOnConf::Status(502),
            RetryOnConf::Status(503),
            RetryOnConf::Status(504),
        ]
    );
    assert_eq!(retry.retries, 2);
    assert_eq!(retry.per_try_timeout_ms, Some(2000));

    // The block form, with `on` as a key (not YAML 1.1's boolean).
    let block = "\n          on:\n            - 503\n            - reset\n          retries: 1";
    let retry = retry_of(&with_retry(block));
    assert_eq!(retry.on, [RetryOnConf::Status(503), RetryOnConf::Reset]);
}

#[test]
fn defaults_and_absence() {
    let retry = retry_of(&with_retry("{}"));
    assert_eq!(retry, RetryConf::default());
    assert_eq!(retry.on, [RetryOnConf::ConnectFailure]);
    assert_eq!((retry.retries, retry.per_try_timeout_ms), (1, None));
    let conf = ok(&with_retry("{ on: [503] }").replace("        retry: { on: [503] }\n", ""));
    assert_eq!(conf.services[0].upstreams.get("api").unwrap().retry, None);
    // A quoted status is a status too.
    assert_eq!(
        retry_of(&with_retry("{ on: [\"503\"] }")).on,
        [RetryOnConf::Status(503)]
    );
}

#[test]
fn bad_values_name_their_key() {
    let e = assert_err(
        &with_retry("{ on: [conect_failure] }"),
        Type,
        9,
        "services[0].upstreams.api.retry.on[0]",
        "unknown retry condition `conect_failure`",
    );
    assert!(e.to_string().contains("connect_failure"), "{e}");
    assert_err(
        &with_retry("{ on: [200] }"),
        Invalid,
        9,
        "services[0].upstreams.api.retry.on[0]",
        "only 400 to 599",
    );
    assert_err(
        &with_retry("{ on: [503, 99999] }"),
        Type,
        9,
        "services[0].upstreams.api.retry.on[1]",
        "not an HTTP status",
    );
    assert_err(
        &with_retry("{ on: [503], retries: 101 }"),
        Invalid,
        9,
        "services[0].upstreams.api.retry.retries",
        "100",
    );
    assert_err(
        &with_retry("{ on: [503], per_try_timeout_ms: 0 }"),
        Invalid,
        9,
        "services[0].upstreams.api.retry.per_try_timeout_ms",
        "",
    );
    let e = assert_err(
        &with_retry("{ on: [503], retires: 2 }"),
        UnknownKey,
        9,
        "services[0].upstreams.api.retry",
        "unknown key `retires`",
    );
    assert_eq!(e.suggestion.as_deref(), Some("retries"));
}

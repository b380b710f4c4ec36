//! Tests of the whole pipeline: YAML text in, `ServerConf` or a located `ConfigError` out.

use crate::{ConfigError, ConfigErrorKind, ServerConf};

mod decoding;
mod discovery;
mod files;
mod limits;
mod policy;
mod retry;
mod semantic;
mod valid;

/// Parses `yaml` as `t.yaml`, expecting success.
fn ok(yaml: &str) -> ServerConf {
    match ServerConf::from_yaml_str(yaml, "t.yaml") {
        Ok(conf) => conf,
        Err(err) => panic!("expected a valid config, got: {err}\n---\n{yaml}"),
    }
}

/// Parses `yaml` as `t.yaml`, expecting an error.
fn err(yaml: &str) -> ConfigError {
    match ServerConf::from_yaml_str(yaml, "t.yaml") {
        Ok(conf) => panic!("expected an error, got {conf:?}\n---\n{yaml}"),
        Err(err) => err,
    }
}

/// Asserts that `yaml` fails at `line` with `key_path`, of `kind`, and that the message
/// contains `needle`.
#[track_caller]
fn assert_err(
    yaml: &str,
    kind: ConfigErrorKind,
    line: usize,
    key_path: &str,
    needle: &str,
) -> ConfigError {
    let e = err(yaml);
    assert_eq!(e.kind, kind, "kind of: {e}");
    assert_eq!(e.line, Some(line), "line of: {e}");
    assert_eq!(e.key_path, key_path, "key path of: {e}");
    assert!(
        e.message.contains(needle),
        "message of `{e}` should contain `{needle}`"
    );
    assert_eq!(e.file, "t.yaml");
    e
}

/// A minimal valid service, indented as an item of `services:`; `extra` lines (already
/// indented by 4) are appended to it.
fn service(extra: &str) -> String {
    format!(
        "services:\n  - name: web\n    listeners:\n      - addr: 127.0.0.1:8080\n    routes:\n      - respond: {{ body: \"hi\" }}\n{extra}"
    )
}

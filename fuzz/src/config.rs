//! The YAML configuration loader: never a panic, and every rejection located (a line
//! and column in the file), so `pingora -t` always points at the problem.

use pingora_config::{ConfigErrorKind, ServerConf};

/// Input: the configuration text (not UTF-8 is skipped: the loader reads a `String`).
pub fn config_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Err(err) = ServerConf::from_yaml_str(text, "fuzz.yaml") else {
        return;
    };
    let message = err.to_string();
    assert!(!message.is_empty());
    if !matches!(err.kind, ConfigErrorKind::Read | ConfigErrorKind::File) {
        assert!(
            err.line.is_some() && err.column.is_some(),
            "a rejection without a position: {message}\n--- input ---\n{text}"
        );
    }
}

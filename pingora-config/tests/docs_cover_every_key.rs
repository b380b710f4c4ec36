//! docs/configuration.md documents every key the schema accepts.

use pingora_config::config_sections;

#[test]
fn every_config_key_has_a_row_in_the_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let docs = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mut missing = Vec::new();
    for section in config_sections() {
        for key in section.keys {
            // Each key is a row of a reference table: "| `key` | type | default | ...".
            if !docs.contains(&format!("| `{key}` |")) {
                missing.push(format!("{} -> {key}", section.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md has no table row for: {missing:?}"
    );
}

#[test]
fn every_lb_algorithm_is_documented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let docs = std::fs::read_to_string(path).unwrap();
    for name in pingora_config::LbAlgorithm::NAMES {
        assert!(
            docs.contains(&format!("| `{name}` |")),
            "lb `{name}` is not documented"
        );
    }
}

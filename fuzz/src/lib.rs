//! The bodies of the fuzz targets: one function per target, each taking the raw input.
//!
//! A function panics only when the code under test breaks a property it promises
//! (a panic inside the code under test is a finding too). The libFuzzer binaries in
//! `fuzz_targets/` call these; `tests/replay.rs` runs every checked-in seed and every
//! regression input through them on stable, so a fixed crash stays fixed in CI.

mod cache;
mod config;
mod h2_h1;
mod http1;
mod proxy_protocol;
mod template;
mod upgrade;

pub use cache::cache_headers;
pub use config::config_yaml;
pub use h2_h1::h2_h1_headers;
pub use http1::{chunked_decoder, http1_request_head, http1_response_head};
pub use proxy_protocol::proxy_protocol;
pub use template::template;
pub use upgrade::upgrade_handshake;

/// The body of a fuzz target: takes the raw input, panics on a broken property.
pub type Target = fn(&[u8]);

/// Every target by the name its fuzz binary, corpus and regression folders use.
pub const TARGETS: &[(&str, Target)] = &[
    ("http1_request_head", http1_request_head),
    ("http1_response_head", http1_response_head),
    ("chunked_decoder", chunked_decoder),
    ("h2_h1_headers", h2_h1_headers),
    ("cache_headers", cache_headers),
    ("config_yaml", config_yaml),
    ("upgrade_handshake", upgrade_handshake),
    ("template", template),
    ("proxy_protocol", proxy_protocol),
];

/// A split point inside `len` bytes taken from a selector byte (0..=len).
fn split_at(selector: u8, len: usize) -> usize {
    usize::from(selector) % (len + 1)
}

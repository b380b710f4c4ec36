//! Black-box tests of the `pingora` binary, one module per area, linked into one test
//! binary (`cargo test -p pingora-bin --test e2e`; a test is named `area::what_it_checks`).
//! Everything they share (config, process control, clients, origins, load, metrics)
//! is in the `test-support` crate; a module holds only its own tests. Areas that need a
//! feature of the binary are compiled only with it.

use std::path::{Path, PathBuf};

mod admin_browser;
mod admin_control;
mod bad_input;
#[cfg(feature = "cache")]
mod cache;
#[cfg(feature = "cache")]
mod cache_answers;
#[cfg(feature = "cache")]
mod cache_rules;
#[cfg(feature = "cache")]
mod cache_storage;
mod cli;
#[cfg(feature = "compression")]
mod compression;
#[cfg(feature = "lb")]
mod cookbook;
mod daemon;
mod deploy_metrics;
mod framing;
mod http2;
mod http2_upstream;
#[cfg(feature = "http3")]
mod http3;
mod keepalive;
#[cfg(feature = "lb")]
mod lb;
#[cfg(feature = "lb")]
mod lb_discovery;
mod log_flood;
mod observability;
mod policy;
mod proxy_protocol;
mod proxy_protocol_haproxy;
mod rate_limit;
#[cfg(feature = "redis")]
mod rate_limit_redis;
mod retries;
mod retry_rule;
mod routes;
mod signals;
mod smuggling;
mod streaming;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
mod tls_extras;
mod truncation;
mod upgrade;
mod upstream_errors;
mod upstream_idle;
mod websocket;
mod websocket_h2;

/// The `pingora` binary built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pingora"))
}

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

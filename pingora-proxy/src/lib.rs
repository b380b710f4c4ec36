#![doc = include_str!("../README.md")]
//!
//! pingora-proxy: the [`ProxyHttp`] trait — the request phases a proxy overrides — and
//! [`HttpProxy`], the service that runs it on every client connection.
//! [`http_proxy_service`] makes that service in one call, and [`prelude`] brings in
//! everything a proxy application uses.
//!
//! A request goes through these phases, in order (each has a default but
//! `upstream_peer`): [`ProxyHttp::new_ctx`], [`ProxyHttp::early_request_filter`],
//! [`ProxyHttp::request_filter`] (may answer by itself, or raise an error that is
//! answered with a status), [`ProxyHttp::upstream_peer`], [`ProxyHttp::retry_rule`],
//! [`ProxyHttp::upstream_request_filter`], [`ProxyHttp::connected_to_upstream`],
//! [`ProxyHttp::request_body_filter`] (per body piece),
//! [`ProxyHttp::upstream_response_filter`], [`ProxyHttp::response_filter`],
//! [`ProxyHttp::upstream_response_body_filter`] and [`ProxyHttp::response_body_filter`]
//! (per body piece), [`ProxyHttp::response_trailer_filter`], and
//! [`ProxyHttp::logging`] (exactly once per request). Failures go through
//! [`ProxyHttp::fail_to_connect`] or [`ProxyHttp::error_while_proxy`] (retry on
//! another peer or not, within a [`RetryRule`]) and [`ProxyHttp::fail_to_proxy`] (the
//! error response). The rule that makes a phase async or sync, and the body filters'
//! contract, are in the documentation of [`ProxyHttp`]; the phase chart is in
//! `docs/library.md`.
//!
//! [`modules`] holds request policy building blocks (route matching, header rules,
//! rewrites, redirects, access lists, body limits, request ids, connection limits).
//!
//! With the `cache` feature, a request for which [`ProxyHttp::request_cache_filter`]
//! returns a cache is answered from it when it can be, and its cacheable responses are
//! stored (see `docs/caching.md`); the other cache phases are
//! [`ProxyHttp::cache_key`], [`ProxyHttp::response_cache_filter`] and
//! [`ProxyHttp::purge_allowed`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "cache")]
mod cache;
mod exchange;
mod front;
pub mod headers;
pub mod modules;
mod phase_args;
mod phases;
pub mod prelude;
mod proxy;
mod retry_rule;
mod session;
pub mod status;
mod tunnel;

pub use front::{http_proxy_service, http_proxy_service_with};
pub use phase_args::{FailureAnswer, UpstreamConnection};
pub use phases::ProxyHttp;
pub use proxy::{HttpProxy, ProxyOptions};
pub use retry_rule::{is_idempotent, RetryOn, RetryRule};
pub use session::{Session, Summary, UpstreamFailure};

pub use pingora_core::connector::{HttpPeer, PeerAddress, PeerOptions};
pub use pingora_core::protocols::http::{RequestHeader, ResponseHeader};
pub use pingora_core::{Error, ErrorKind, Result, Side};

/// pingora-core, re-exported so that one dependency line is enough for a proxy
/// application (servers, listeners, TLS, the process life).
pub use pingora_core;

/// The cache crate, re-exported for implementations of the cache phases.
#[cfg(feature = "cache")]
pub use pingora_cache;

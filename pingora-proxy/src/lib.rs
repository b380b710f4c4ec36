#![doc = include_str!("../README.md")]
//!
//! pingora-proxy: the [`ProxyHttp`] trait — the request phases a proxy overrides — and
//! [`HttpProxy`], the service that runs it on every client connection.
//! [`http_proxy_service`] makes that service in one call, and [`prelude`] brings in
//! everything a proxy application uses.
//!
//! A request goes through these phases, in order (each has a default):
//! [`ProxyHttp::new_ctx`], [`ProxyHttp::request_filter`] (may answer by itself),
//! [`ProxyHttp::upstream_peer`], [`ProxyHttp::upstream_request_filter`],
//! [`ProxyHttp::request_body_filter`] (per body chunk),
//! [`ProxyHttp::upstream_response_filter`], [`ProxyHttp::response_filter`],
//! [`ProxyHttp::response_body_filter`] (per body chunk), and [`ProxyHttp::logging`].
//! Failures go through [`ProxyHttp::fail_to_connect`] (retry or not) and
//! [`ProxyHttp::fail_to_proxy`] (the error response).
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
mod phases;
pub mod prelude;
mod proxy;
mod session;
pub mod status;
mod tunnel;

pub use front::{http_proxy_service, http_proxy_service_with};
pub use phases::ProxyHttp;
pub use proxy::{HttpProxy, ProxyOptions};
pub use session::Session;

pub use pingora_core::connector::{HttpPeer, PeerAddress, PeerOptions};
pub use pingora_core::protocols::http::{RequestHeader, ResponseHeader};
pub use pingora_core::{Error, ErrorKind, Result, Side};

/// pingora-core, re-exported so that one dependency line is enough for a proxy
/// application (servers, listeners, TLS, the process life).
pub use pingora_core;

/// The cache crate, re-exported for implementations of the cache phases.
#[cfg(feature = "cache")]
pub use pingora_cache;

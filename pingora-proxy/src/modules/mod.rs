//! Request policy as building blocks a [`crate::ProxyHttp`] implementation calls from its
//! phases: each has one job, holds no per-request state of its own (what a request
//! needs fits in its `Ctx`), and allocates nothing per request when it has nothing to
//! render.
//!
//! | module | what | phase |
//! |---|---|---|
//! | [`route_match`] | [`RouteTable`], [`RouteMatcher`]: first route whose host, path, path prefix, path regex, methods, headers and query match | `request_filter` |
//! | [`client_ip`] | [`TrustedProxies`]: the client address behind trusted proxies' `X-Forwarded-For` | `request_filter` |
//! | [`access`] | [`AccessList`]: allow / deny networks (answer `403`) | `request_filter` |
//! | [`body_limit`] | [`BodyLimit`]: `413` for a declared length, cut a growing body | `request_filter`, `request_body_filter` |
//! | [`redirect`] | [`Redirect`]: a 3xx with a templated `Location` | `request_filter` |
//! | [`rewrite`] | [`PathRewrite`]: strip or replace a prefix, or a regex replacement | `upstream_request_filter` |
//! | [`header_rules`] | [`HeaderRules`]: remove / set / add headers with templated values | `upstream_request_filter`, `response_filter`, `fail_to_proxy` |
//! | [`request_id`] | [`RequestIds`]: accept a trusted id or make a UUID v7 | `request_filter`, then upstream and response |
//! | [`conn_limit`] | [`PerClientConnections`]: most connections per client address | wraps the whole app |
//! | [`vars`] | [`Expander`], [`RequestVars`]: templates (`$host`, `$request_uri`, `$1`...) rendered for a request | everywhere |
//!
//! `docs/library.md` shows them put together in one proxy.

pub mod access;
pub mod body_limit;
pub mod client_ip;
pub mod conn_limit;
pub mod header_rules;
pub mod redirect;
pub mod request_id;
pub mod rewrite;
pub mod route_match;
pub mod vars;

pub use access::AccessList;
pub use body_limit::{BodyCount, BodyLimit};
pub use client_ip::TrustedProxies;
pub use conn_limit::PerClientConnections;
pub use header_rules::HeaderRules;
pub use redirect::Redirect;
pub use request_id::RequestIds;
pub use rewrite::PathRewrite;
pub use route_match::{HeaderMatch, HostMatch, RouteMatcher, RouteTable};
pub use vars::{Captures, Expander, RequestVars};

/// The template syntax (parsed by the config crate, so `-t` can check it).
pub use pingora_config::template::Template;
/// An IP network (`10.0.0.0/8`, `::1`).
pub use pingora_config::IpNet;
/// The regular expressions of [`RouteMatcher::path_regex`] and [`PathRewrite::Regex`].
pub use regex::Regex;

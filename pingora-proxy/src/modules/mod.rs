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
//! | `compression` (feature `compression`) | `ResponseCompression`: gzip, Brotli, Zstandard by `Accept-Encoding`, streamed | `response_filter`, `response_body_filter` |
//! | [`rate_limit`] | [`RateLimiter`]: token buckets per client, route or header, `429` with `Retry-After` (locally, or shared on Redis with feature `redis`) | `request_filter` |
//! | [`conn_limit`] | [`PerClientConnections`]: most connections per client address | wraps the whole app |
//! | [`vars`] | [`Expander`], [`RequestVars`]: templates (`$host`, `$request_uri`, `$1`...) rendered for a request | everywhere |
//!
//! `docs/library.md` shows them put together in one proxy.
//!
//! # Example
//!
//! A proxy with routes, an access list, a body limit, request ids, a rewrite and
//! response headers (`docs/library.md` walks through it):
//!
//! ```no_run
//! use pingora_proxy::modules::{
//!     AccessList, BodyCount, BodyLimit, Expander, HeaderRules, PathRewrite, RequestIds,
//!     RequestVars, RouteMatcher, RouteTable, TrustedProxies,
//! };
//! use pingora_proxy::prelude::*;
//! use http::header::HeaderName;
//!
//! /// One route: where it goes and its upstream-side edits.
//! struct Api {
//!     peer: HttpPeer,
//!     rewrite: Option<PathRewrite>,
//! }
//!
//! struct Policy {
//!     routes: RouteTable<Api>,
//!     access: AccessList,
//!     body_limit: BodyLimit,
//!     ids: RequestIds,
//!     response_headers: HeaderRules,
//! }
//!
//! #[derive(Default)]
//! struct Ctx {
//!     route: Option<usize>,
//!     id: Option<http::HeaderValue>,
//!     body_seen: BodyCount,
//! }
//!
//! impl ProxyHttp for Policy {
//!     type Ctx = Ctx;
//!
//!     fn new_ctx(&self) -> Ctx {
//!         Ctx::default()
//!     }
//!
//!     async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
//!         let peer = session.client_addr().ip();
//!         ctx.id = Some(self.ids.resolve(peer, &session.req_header().headers));
//!         if !self.access.allows(peer) {
//!             session.respond(http::StatusCode::FORBIDDEN, "text/plain", "no\n".into()).await?;
//!             return Ok(true);
//!         }
//!         // A declared body over the limit: the error becomes a 413 in fail_to_proxy.
//!         self.body_limit.check_head(session.req_header())?;
//!         ctx.route = self.routes.find(session.req_header()).map(|(i, _)| i);
//!         Ok(false)
//!     }
//!
//!     async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<HttpPeer> {
//!         match ctx.route.and_then(|i| self.routes.get(i)) {
//!             Some((_, api)) => Ok(api.peer.clone()),
//!             None => Err(Error::new(ErrorKind::NoUpstream, Side::Internal, "no route")),
//!         }
//!     }
//!
//!     async fn upstream_request_filter(
//!         &self,
//!         session: &mut Session,
//!         up: &mut RequestHeader,
//!         ctx: &mut Ctx,
//!     ) -> Result<()> {
//!         if let Some(id) = &ctx.id {
//!             up.headers.insert(self.ids.header().clone(), id.clone());
//!         }
//!         let rewrite = ctx.route.and_then(|i| self.routes.get(i)).and_then(|(_, a)| a.rewrite.as_ref());
//!         if let Some(rewrite) = rewrite {
//!             rewrite.apply(up, &RequestVars::new(session.req_header()))?;
//!         }
//!         Ok(())
//!     }
//!
//!     async fn request_body_filter(
//!         &self,
//!         _session: &mut Session,
//!         body: &mut Option<bytes::Bytes>,
//!         _end: bool,
//!         ctx: &mut Ctx,
//!     ) -> Result<()> {
//!         // A body growing past the limit is cut: nothing over it goes upstream.
//!         self.body_limit.count(&mut ctx.body_seen, body)
//!     }
//!
//!     async fn response_filter(
//!         &self,
//!         session: &mut Session,
//!         resp: &mut ResponseHeader,
//!         ctx: &mut Ctx,
//!     ) -> Result<()> {
//!         if let Some(id) = &ctx.id {
//!             resp.headers.insert(self.ids.header().clone(), id.clone());
//!         }
//!         self.response_headers.apply(&mut resp.headers, &RequestVars::new(session.req_header()));
//!         Ok(())
//!     }
//! }
//!
//! fn policy() -> Result<Policy> {
//!     let api = HttpPeer::parse("127.0.0.1:9000")?;
//!     let routes = RouteTable::new(vec![
//!         (
//!             RouteMatcher::any().host("*.example.com").path_prefix("/api/"),
//!             Api { peer: api.clone(), rewrite: Some(PathRewrite::StripPrefix("/api".into())) },
//!         ),
//!         (RouteMatcher::any(), Api { peer: api, rewrite: None }),
//!     ]);
//!     let nets = |list: &[&str]| list.iter().filter_map(|s| s.parse().ok()).collect::<Vec<_>>();
//!     Ok(Policy {
//!         routes,
//!         access: AccessList::new(vec![], nets(&["192.0.2.0/24"])),
//!         body_limit: BodyLimit::new(10 << 20),
//!         ids: RequestIds::new(
//!             HeaderName::from_static("x-request-id"),
//!             TrustedProxies::new(nets(&["10.0.0.0/8"])),
//!         ),
//!         response_headers: HeaderRules::new()
//!             .set(
//!                 HeaderName::from_static("strict-transport-security"),
//!                 Expander::parse("max-age=63072000")?,
//!             )
//!             .remove(HeaderName::from_static("server")),
//!     })
//! }
//!
//! fn main() {
//!     let _ = policy();
//! }
//! ```

pub mod access;
pub mod body_limit;
pub mod client_ip;
#[cfg(feature = "compression")]
pub mod compression;
pub mod conn_limit;
pub mod header_rules;
pub mod rate_limit;
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
pub use rate_limit::RateLimiter;
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

//! Services: listeners, routes, the upstreams they name, and the optional cache.

use std::path::PathBuf;

use crate::limits::{CompressionConf, RateLimitConf};
use crate::listen_addr::ListenAddr;
use crate::policy::{
    AccessConf, HeaderRulesConf, RedirectConf, RequestIdConf, RewriteConf, StringMap, TimeoutsConf,
};
use crate::upstream::{UpstreamConf, UpstreamMap};

/// One proxy service (`services[]`): its own runtime, listeners, routes and upstreams.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConf {
    /// Unique name of the service, used in logs and metrics. Required.
    pub name: String,
    /// Worker threads of this service's runtime; `None` uses the top-level `threads`.
    pub threads: Option<usize>,
    /// Where the service accepts connections; at least one.
    pub listeners: Vec<ListenerConf>,
    /// When set, `GET` of this path is answered `200 ok` by the proxy itself.
    pub health_path: Option<String>,
    /// Request routing; the first matching route wins.
    pub routes: Vec<RouteConf>,
    /// Upstream groups by name, in file order.
    pub upstreams: UpstreamMap,
    /// The in-memory HTTP cache used by routes with `cache: true`.
    pub cache: Option<CacheConf>,
    /// Most time to receive a whole request head (request line and headers), in milliseconds.
    pub client_header_timeout_ms: u64,
    /// Most time between two reads of a request body from the client, in milliseconds.
    pub client_body_timeout_ms: u64,
    /// How long an idle client keep-alive connection is kept open, in milliseconds.
    pub keepalive_timeout_ms: u64,
    /// Largest request head (request line and headers) accepted; larger ones get 431.
    pub max_request_head_bytes: usize,
    /// Most header fields in one request; more get 431.
    pub max_request_headers: usize,
    /// Networks whose `X-Forwarded-For`, request id and PROXY header are believed
    /// (empty: nobody's `X-Forwarded-For` and request id, while the listeners'
    /// `proxy_protocol` alone decides about PROXY headers).
    pub trusted_proxies: Vec<String>,
    /// Request ids: accepted from trusted peers, else generated.
    pub request_id: Option<RequestIdConf>,
    /// Largest request body accepted (413 beyond); routes may override it.
    pub max_request_body_bytes: Option<u64>,
    /// Who may send requests (403 otherwise); routes may replace it.
    pub access: Option<AccessConf>,
    /// Most concurrent connections from one client address.
    pub max_connections_per_client: Option<u32>,
    /// Response compression; routes may replace it.
    pub compression: Option<CompressionConf>,
    /// Rate limiting; routes may replace it.
    pub rate_limit: Option<RateLimitConf>,
}

impl ServiceConf {
    /// The YAML keys of a service.
    pub const FIELDS: &'static [&'static str] = &[
        "name",
        "threads",
        "listeners",
        "health_path",
        "routes",
        "upstreams",
        "cache",
        "client_header_timeout_ms",
        "client_body_timeout_ms",
        "keepalive_timeout_ms",
        "max_request_head_bytes",
        "max_request_headers",
        "trusted_proxies",
        "request_id",
        "max_request_body_bytes",
        "access",
        "max_connections_per_client",
        "compression",
        "rate_limit",
    ];

    /// The upstream called `name` in this service.
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConf> {
        self.upstreams.get(name)
    }
}

impl Default for ServiceConf {
    fn default() -> Self {
        ServiceConf {
            name: String::new(),
            threads: None,
            listeners: Vec::new(),
            health_path: None,
            routes: Vec::new(),
            upstreams: UpstreamMap::new(),
            cache: None,
            client_header_timeout_ms: 60_000,
            client_body_timeout_ms: 60_000,
            keepalive_timeout_ms: 75_000,
            max_request_head_bytes: 32_768,
            max_request_headers: 128,
            trusted_proxies: Vec::new(),
            request_id: None,
            max_request_body_bytes: None,
            access: None,
            max_connections_per_client: None,
            compression: None,
            rate_limit: None,
        }
    }
}

/// One listening socket of a service (`services[].listeners[]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConf {
    /// `IP:PORT` or `unix:/path`. Required.
    pub addr: ListenAddr,
    /// Terminate TLS on this listener with this certificate and key.
    #[serde(default)]
    pub tls: Option<ListenerTlsConf>,
    /// Length of the kernel's queue of not-yet-accepted connections.
    #[serde(default = "default_backlog")]
    pub backlog: u32,
    /// Whether connections start with a PROXY protocol header (v1 or v2).
    #[serde(default)]
    pub proxy_protocol: ProxyProtocolMode,
    /// Also serve HTTP/3 over QUIC on the same port (UDP), with the same certificates;
    /// TCP responses then carry `Alt-Svc`. Only with `tls`.
    #[serde(default)]
    pub http3: bool,
}

/// A listener's `proxy_protocol`: whether a PROXY header (v1 or v2) comes first on its
/// connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyProtocolMode {
    /// No header is read: the bytes are HTTP (or TLS) from the start.
    #[default]
    Off,
    /// Every connection must start with a valid header; others are closed.
    On,
    /// Connections with and without a header are accepted.
    Optional,
}

impl ProxyProtocolMode {
    /// The YAML spellings.
    pub const NAMES: &'static [&'static str] = &["off", "on", "optional"];
}

fn default_backlog() -> u32 {
    1024
}

impl ListenerConf {
    /// The YAML keys of a listener.
    pub const FIELDS: &'static [&'static str] =
        &["addr", "tls", "backlog", "proxy_protocol", "http3"];

    /// A plain listener on `addr` with the default backlog.
    pub fn new(addr: ListenAddr) -> Self {
        ListenerConf {
            addr,
            tls: None,
            backlog: default_backlog(),
            proxy_protocol: ProxyProtocolMode::Off,
            http3: false,
        }
    }
}

impl Default for ListenerConf {
    /// A plain listener on `127.0.0.1:8080` (only useful for building configs in code).
    fn default() -> Self {
        ListenerConf::new(ListenAddr::Tcp(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            8080,
        ))))
    }
}

/// Certificates and keys of a TLS listener; every file must exist and be readable.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConf {
    /// PEM certificate chain, leaf first: the default certificate, served when the
    /// client's SNI names no certificate of `certs` (or no SNI is sent).
    pub cert: PathBuf,
    /// PEM private key of the leaf certificate.
    pub key: PathBuf,
    /// DER OCSP response stapled with the default certificate when a client asks for
    /// the certificate status; checked against the certificate at start and reload.
    #[serde(default)]
    pub ocsp_file: Option<PathBuf>,
    /// Ask clients for certificates (mutual TLS), for every certificate of the listener
    /// that has no `client_auth` of its own.
    #[serde(default)]
    pub client_auth: Option<ClientAuthConf>,
    /// Session-ticket keys shared with other processes (80 bytes per key, the first
    /// seals, all open), so resumption survives upgrades and works across a fleet.
    #[serde(default)]
    pub ticket_key_file: Option<PathBuf>,
    /// More certificates, each served to clients whose SNI matches one of its names
    /// (DNS subject alternative names, wildcards included, else the common name).
    #[serde(default)]
    pub certs: Vec<TlsCertConf>,
}

impl ListenerTlsConf {
    /// The YAML keys of a listener's `tls` section.
    pub const FIELDS: &'static [&'static str] = &[
        "cert",
        "key",
        "ocsp_file",
        "client_auth",
        "ticket_key_file",
        "certs",
    ];

    /// Every certificate with its key and OCSP file, the default first. The default
    /// one carries no `client_auth`: the listener's applies to it (and to every other
    /// certificate without one).
    pub fn all_certs(&self) -> Vec<TlsCertConf> {
        let mut all = vec![TlsCertConf {
            cert: self.cert.clone(),
            key: self.key.clone(),
            ocsp_file: self.ocsp_file.clone(),
            client_auth: None,
        }];
        all.extend(self.certs.iter().cloned());
        all
    }
}

/// One certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertConf {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf certificate.
    pub key: PathBuf,
    /// DER OCSP response stapled with this certificate.
    #[serde(default)]
    pub ocsp_file: Option<PathBuf>,
    /// Client certificates for the clients this certificate serves (replaces the
    /// listener's `client_auth` for its names).
    #[serde(default)]
    pub client_auth: Option<ClientAuthConf>,
}

impl TlsCertConf {
    /// The YAML keys of a certificate entry.
    pub const FIELDS: &'static [&'static str] = &["cert", "key", "ocsp_file", "client_auth"];
}

/// Client certificates on a TLS listener (`tls.client_auth`): `{ mode, ca_file }`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthConf {
    /// `require`: no handshake without a certificate that verifies; `optional`: the
    /// result is told to the routes (`$ssl_client_verify`, `access.client_cert`).
    pub mode: ClientAuthMode,
    /// PEM file of the CA certificates client certificates are verified against.
    pub ca_file: PathBuf,
}

impl ClientAuthConf {
    /// The YAML keys of a `client_auth` section.
    pub const FIELDS: &'static [&'static str] = &["mode", "ca_file"];
}

/// Whether client certificates are required or optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMode {
    /// A client without a certificate signed by `ca_file` fails the handshake.
    Require,
    /// Every client is accepted; the verification result is available to the routes.
    Optional,
}

impl ClientAuthMode {
    /// The YAML spellings of the modes.
    pub const NAMES: &'static [&'static str] = &["require", "optional"];
}

/// One routing rule (`services[].routes[]`): a match, exactly one of `upstream` /
/// `respond` / `redirect`, and the route's policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConf {
    /// Which requests this route takes; `None` takes every request. Written `match`.
    #[serde(rename = "match")]
    pub matcher: Option<RouteMatch>,
    /// Name of the service's upstream that serves the matched requests.
    pub upstream: Option<String>,
    /// Answer the matched requests directly with this fixed response.
    pub respond: Option<RespondConf>,
    /// Serve the matched requests through the service's cache (needs a `cache:` section).
    pub cache: bool,
    /// Answer the matched requests with a redirect.
    pub redirect: Option<RedirectConf>,
    /// Rewrite the path sent upstream.
    pub rewrite: Option<RewriteConf>,
    /// Edits of the request headers sent upstream.
    pub request_headers: Option<HeaderRulesConf>,
    /// Edits of the response headers sent to the client (every response of the route).
    pub response_headers: Option<HeaderRulesConf>,
    /// Replaces the service's `max_request_body_bytes` for this route.
    pub max_request_body_bytes: Option<u64>,
    /// Replaces the service's `access` for this route.
    pub access: Option<AccessConf>,
    /// Overrides of the upstream's timeouts.
    pub timeouts: Option<TimeoutsConf>,
    /// Replaces the service's `compression` for this route.
    pub compression: Option<CompressionConf>,
    /// Replaces the service's `rate_limit` for this route.
    pub rate_limit: Option<RateLimitConf>,
}

impl RouteConf {
    /// The YAML keys of a route.
    pub const FIELDS: &'static [&'static str] = &[
        "match",
        "upstream",
        "respond",
        "cache",
        "redirect",
        "rewrite",
        "request_headers",
        "response_headers",
        "max_request_body_bytes",
        "access",
        "timeouts",
        "compression",
        "rate_limit",
    ];
}

/// Conditions of a route; all that are set must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteMatch {
    /// The request's host name, compared case-insensitively and without any `:port`;
    /// `*.example.com` matches exactly one more leading label.
    pub host: Option<String>,
    /// The exact request path (no query).
    pub path: Option<String>,
    /// A prefix of the request path, starting with `/`.
    pub path_prefix: Option<String>,
    /// A regular expression the path must match; its captures are `$1`..`$9`.
    pub path_regex: Option<String>,
    /// Methods accepted (any when absent).
    pub methods: Option<Vec<String>>,
    /// Request headers: an exact value, `~REGEX`, or `*` (present with any value).
    pub headers: StringMap,
    /// Query parameters with their exact value.
    pub query: StringMap,
}

impl RouteMatch {
    /// The YAML keys of a route's `match` section.
    pub const FIELDS: &'static [&'static str] = &[
        "host",
        "path",
        "path_prefix",
        "path_regex",
        "methods",
        "headers",
        "query",
    ];

    /// Whether no condition is set (the route takes every request).
    pub fn is_empty(&self) -> bool {
        self.host.is_none()
            && self.path.is_none()
            && self.path_prefix.is_none()
            && self.path_regex.is_none()
            && self.methods.is_none()
            && self.headers.is_empty()
            && self.query.is_empty()
    }
}

/// A fixed response produced by the proxy itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RespondConf {
    /// Status code, 200 to 599.
    pub status: u16,
    /// Response body, sent as is.
    pub body: String,
    /// Value of the `Content-Type` header.
    pub content_type: String,
}

impl RespondConf {
    /// The YAML keys of a route's `respond` section.
    pub const FIELDS: &'static [&'static str] = &["status", "body", "content_type"];
}

impl Default for RespondConf {
    fn default() -> Self {
        RespondConf {
            status: 200,
            body: String::new(),
            content_type: "text/plain; charset=utf-8".to_string(),
        }
    }
}

/// The HTTP cache of a service: in memory, optionally in front of a disk tier.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConf {
    /// The memory budget of cached responses; nothing is evicted before it is reached.
    pub max_bytes: u64,
    /// The largest response stored; larger ones are passed through, not stored.
    pub max_object_bytes: u64,
    /// How long concurrent misses for one key wait for the first fetch, in milliseconds.
    pub lock_timeout_ms: u64,
    /// Addresses (`10.0.0.5`) or networks (`10.0.0.0/8`) allowed to `PURGE`, besides loopback.
    pub purge_allow: Vec<String>,
    /// A disk tier behind memory, surviving restarts and upgrades.
    pub disk: Option<CacheDiskConf>,
    /// Store responses that carry `Set-Cookie` (without the cookie); off by default.
    pub store_set_cookie: bool,
}

/// The disk tier of a cache: one file per entry under `path`, within `max_bytes`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheDiskConf {
    /// The cache directory (created if missing).
    pub path: std::path::PathBuf,
    /// Most bytes of files kept; the least recently used are removed beyond it.
    pub max_bytes: u64,
}

impl CacheDiskConf {
    /// The YAML keys of a cache's `disk` section.
    pub const FIELDS: &'static [&'static str] = &["path", "max_bytes"];
}

impl Default for CacheDiskConf {
    fn default() -> Self {
        CacheDiskConf {
            path: std::path::PathBuf::new(),
            max_bytes: 1_073_741_824,
        }
    }
}

impl CacheConf {
    /// The YAML keys of a service's `cache` section.
    pub const FIELDS: &'static [&'static str] = &[
        "max_bytes",
        "max_object_bytes",
        "lock_timeout_ms",
        "purge_allow",
        "disk",
        "store_set_cookie",
    ];

    /// The parsed `purge_allow` networks (entries that do not parse are skipped; validation
    /// rejects them).
    pub fn purge_networks(&self) -> Vec<IpNet> {
        self.purge_allow
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }
}

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`); a bare
/// address is a network of one. Built on the `ipnet` crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet(ipnet::IpNet);

impl IpNet {
    /// The network of `addr` with `prefix` leading bits (host bits are cleared);
    /// None when `prefix` is too long for the address family.
    pub fn new(addr: std::net::IpAddr, prefix: u8) -> Option<IpNet> {
        ipnet::IpNet::new(addr, prefix)
            .ok()
            .map(|n| IpNet(n.trunc()))
    }

    /// The network address.
    pub fn addr(&self) -> std::net::IpAddr {
        self.0.network()
    }

    /// Leading bits that must match.
    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses match IPv4 networks).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

impl From<ipnet::IpNet> for IpNet {
    fn from(net: ipnet::IpNet) -> Self {
        IpNet(net.trunc())
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for IpNet {
    type Err = crate::ConfigError;

    /// Parses `ADDR` or `ADDR/PREFIX`; the error names the text (no file or position).
    fn from_str(s: &str) -> Result<Self, crate::ConfigError> {
        let invalid = |message: String| {
            crate::ConfigError::new("network", crate::ConfigErrorKind::Invalid, "", message)
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| {
            invalid(format!(
                "`{}` is not an IP address or network",
                s.escape_debug()
            ))
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                invalid(format!(
                    "`{}`: prefix length must be 0 to {max}",
                    s.escape_debug()
                ))
            })?,
        };
        IpNet::new(addr, prefix)
            .ok_or_else(|| invalid(format!("`{}` is not a network", s.escape_debug())))
    }
}

impl Default for CacheConf {
    fn default() -> Self {
        CacheConf {
            max_bytes: 268_435_456,
            max_object_bytes: 33_554_432,
            lock_timeout_ms: 2_000,
            purge_allow: Vec::new(),
            disk: None,
            store_set_cookie: false,
        }
    }
}

//! Services: listeners, routes, the upstreams they name, and the optional cache.

use std::path::PathBuf;

use crate::listen_addr::ListenAddr;
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
}

fn default_backlog() -> u32 {
    1024
}

impl ListenerConf {
    /// The YAML keys of a listener.
    pub const FIELDS: &'static [&'static str] = &["addr", "tls", "backlog"];

    /// A plain listener on `addr` with the default backlog.
    pub fn new(addr: ListenAddr) -> Self {
        ListenerConf {
            addr,
            tls: None,
            backlog: default_backlog(),
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
    /// More certificates, each served to clients whose SNI matches one of its names
    /// (DNS subject alternative names, wildcards included, else the common name).
    #[serde(default)]
    pub certs: Vec<TlsCertConf>,
}

impl ListenerTlsConf {
    /// The YAML keys of a listener's `tls` section.
    pub const FIELDS: &'static [&'static str] = &["cert", "key", "certs"];

    /// Every certificate and key, the default first.
    pub fn all_certs(&self) -> Vec<TlsCertConf> {
        let mut all = vec![TlsCertConf {
            cert: self.cert.clone(),
            key: self.key.clone(),
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
}

impl TlsCertConf {
    /// The YAML keys of a certificate entry.
    pub const FIELDS: &'static [&'static str] = &["cert", "key"];
}

/// One routing rule (`services[].routes[]`): a match and exactly one of `upstream` / `respond`.
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
}

impl RouteConf {
    /// The YAML keys of a route.
    pub const FIELDS: &'static [&'static str] = &["match", "upstream", "respond", "cache"];
}

/// Conditions of a route; all that are set must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteMatch {
    /// The request's host name, compared case-insensitively and without any `:port`.
    pub host: Option<String>,
    /// A prefix of the request path, starting with `/`.
    pub path_prefix: Option<String>,
}

impl RouteMatch {
    /// The YAML keys of a route's `match` section.
    pub const FIELDS: &'static [&'static str] = &["host", "path_prefix"];
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
/// address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// The network address.
    pub addr: std::net::IpAddr,
    /// Leading bits that must match.
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses match IPv4 networks).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0 to {max}"))?,
        };
        Ok(IpNet { addr, prefix })
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

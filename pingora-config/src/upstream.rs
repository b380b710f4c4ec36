//! Upstream groups: peers (listed or discovered), load balancing, health checks, TLS
//! and timeouts.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use crate::discovery::DiscoveryConf;
use crate::suggest;

/// One named group of upstream servers (`services[].upstreams.NAME`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConf {
    /// The servers of this group; at least one, unless `discovery` finds them.
    pub peers: Vec<PeerConf>,
    /// Where the servers come from when they are not listed in `peers`: a watched
    /// file or DNS. Exclusive with `peers`.
    pub discovery: Option<DiscoveryConf>,
    /// How a peer is picked for each request.
    pub lb: LbAlgorithm,
    /// What `consistent_hash` hashes; ignored by the other algorithms.
    pub hash_key: HashKey,
    /// Active health checking of the peers, if any.
    pub health_check: Option<HealthCheckConf>,
    /// Speak TLS to the peers, if set.
    pub tls: Option<UpstreamTlsConf>,
    /// Speak HTTP/2 to the peers (with TLS: via ALPN; without: prior knowledge).
    pub http2: bool,
    /// Most time to establish a connection (TCP, and TLS when enabled), in milliseconds.
    pub connect_timeout_ms: u64,
    /// Most time waiting for the peer to send, in milliseconds.
    pub read_timeout_ms: u64,
    /// Most time waiting for the peer to accept data, in milliseconds.
    pub write_timeout_ms: u64,
    /// How long an idle pooled connection to a peer is kept, in milliseconds.
    pub idle_timeout_ms: u64,
    /// Write a PROXY protocol header naming the client first on each connection to the
    /// peers (such connections are never reused for another client).
    pub send_proxy_protocol: SendProxyProtocol,
    /// Which failed attempts are retried on another peer; none: connect failures only.
    pub retry: Option<RetryConf>,
}

/// An upstream's `send_proxy_protocol`: which PROXY header, if any, starts each
/// connection to its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendProxyProtocol {
    /// No header.
    #[default]
    None,
    /// The text version.
    V1,
    /// The binary version.
    V2,
}

impl SendProxyProtocol {
    /// The YAML spellings.
    pub const NAMES: &'static [&'static str] = &["none", "v1", "v2"];
}

impl UpstreamConf {
    /// The YAML keys of an upstream, as written in the file.
    pub const FIELDS: &'static [&'static str] = &[
        "peers",
        "discovery",
        "lb",
        "hash_key",
        "health_check",
        "tls",
        "http2",
        "connect_timeout_ms",
        "read_timeout_ms",
        "write_timeout_ms",
        "idle_timeout_ms",
        "send_proxy_protocol",
        "retry",
    ];
}

impl Default for UpstreamConf {
    fn default() -> Self {
        UpstreamConf {
            peers: Vec::new(),
            discovery: None,
            lb: LbAlgorithm::default(),
            hash_key: HashKey::default(),
            health_check: None,
            tls: None,
            http2: false,
            connect_timeout_ms: 5_000,
            read_timeout_ms: 60_000,
            write_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            send_proxy_protocol: SendProxyProtocol::None,
            retry: None,
        }
    }
}

/// `retry:` of an upstream: which failed attempts are retried on another peer, how
/// many times, and the time bound of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConf {
    /// The failures and statuses retried.
    pub on: Vec<RetryOnConf>,
    /// Most retries of one request (the server's `max_retries` caps it too).
    pub retries: u32,
    /// Most time one attempt may take until the response head, in milliseconds.
    pub per_try_timeout_ms: Option<u64>,
}

impl RetryConf {
    /// The YAML keys of `retry`.
    pub const FIELDS: &'static [&'static str] = &["on", "retries", "per_try_timeout_ms"];
    /// The most `retries` accepted.
    pub const MAX_RETRIES: u32 = 100;
}

impl Default for RetryConf {
    fn default() -> Self {
        RetryConf {
            on: vec![RetryOnConf::ConnectFailure],
            retries: 1,
            per_try_timeout_ms: None,
        }
    }
}

/// One entry of `retry.on`: a kind of failure, or a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryOnConf {
    /// `connect_failure`: the connection could not be made.
    ConnectFailure,
    /// `timeout`: connect, read or write timeout, or `per_try_timeout_ms`.
    Timeout,
    /// `reset`: the connection was reset or closed before the response head.
    Reset,
    /// A status the upstream answered with (validated: 400 to 599).
    Status(u16),
}

impl RetryOnConf {
    /// The names of the failures, as written in the file.
    pub const NAMES: &'static [&'static str] = &["connect_failure", "timeout", "reset"];
}

impl fmt::Display for RetryOnConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryOnConf::ConnectFailure => f.write_str("connect_failure"),
            RetryOnConf::Timeout => f.write_str("timeout"),
            RetryOnConf::Reset => f.write_str("reset"),
            RetryOnConf::Status(status) => write!(f, "{status}"),
        }
    }
}

impl<'de> Deserialize<'de> for RetryOnConf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RetryOnVisitor;

        impl Visitor<'_> for RetryOnVisitor {
            type Value = RetryOnConf;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`connect_failure`, `timeout`, `reset` or a status like 503")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<RetryOnConf, E> {
                u16::try_from(n)
                    .map(RetryOnConf::Status)
                    .map_err(|_| E::custom(format!("`{n}` is not an HTTP status")))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RetryOnConf, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom(format!("`{n}` is not an HTTP status")))
                    .and_then(|n| self.visit_u64(n))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<RetryOnConf, E> {
                match text {
                    "connect_failure" => Ok(RetryOnConf::ConnectFailure),
                    "timeout" => Ok(RetryOnConf::Timeout),
                    "reset" => Ok(RetryOnConf::Reset),
                    _ => {
                        if let Ok(status) = text.trim().parse::<u16>() {
                            return Ok(RetryOnConf::Status(status));
                        }
                        let mut message = format!(
                            "unknown retry condition `{}`, expected `connect_failure`, `timeout`, `reset` or a status like 503",
                            text.escape_debug()
                        );
                        if let Some(close) =
                            suggest::closest(text, RetryOnConf::NAMES.iter().copied())
                        {
                            message.push_str(&format!(" (did you mean `{close}`?)"));
                        }
                        Err(E::custom(message))
                    }
                }
            }
        }

        deserializer.deserialize_any(RetryOnVisitor)
    }
}

/// One upstream server: `"host:port"` or `{ addr: "host:port", weight: N }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConf {
    /// `IP:PORT`, `[IPv6]:PORT` or `HOSTNAME:PORT` (the port is required).
    pub addr: String,
    /// Relative share of traffic for `weighted` (and the other algorithms that honour weights); at least 1.
    pub weight: u32,
}

impl PeerConf {
    /// The YAML keys of a peer written as a map.
    pub const FIELDS: &'static [&'static str] = &["addr", "weight"];

    /// A peer at `addr` with weight 1.
    pub fn new(addr: impl Into<String>) -> Self {
        PeerConf {
            addr: addr.into(),
            weight: 1,
        }
    }
}

impl Default for PeerConf {
    fn default() -> Self {
        PeerConf::new("")
    }
}

/// The map form of a peer, decoded by serde so that unknown keys and types are checked.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerMapForm {
    addr: String,
    #[serde(default = "default_weight")]
    weight: u32,
}

fn default_weight() -> u32 {
    1
}

impl<'de> Deserialize<'de> for PeerConf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PeerVisitor;

        impl<'de> Visitor<'de> for PeerVisitor {
            type Value = PeerConf;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a peer: \"host:port\" or { addr: \"host:port\", weight: N }")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<PeerConf, E> {
                Ok(PeerConf::new(text))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PeerConf, A::Error> {
                let form = PeerMapForm::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(PeerConf {
                    addr: form.addr,
                    weight: form.weight,
                })
            }
        }

        deserializer.deserialize_any(PeerVisitor)
    }
}

/// How a peer is chosen for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbAlgorithm {
    /// Each peer in turn.
    #[default]
    RoundRobin,
    /// In turn, in proportion to the peers' weights.
    Weighted,
    /// A uniformly random peer.
    Random,
    /// A peer picked by hashing `hash_key`, so one key keeps going to one peer.
    ConsistentHash,
    /// The peer with the fewest requests in flight.
    LeastConn,
    /// The less loaded of two random peers ("power of two choices").
    P2c,
}

impl LbAlgorithm {
    /// The YAML spellings of the algorithms.
    pub const NAMES: &'static [&'static str] = &[
        "round_robin",
        "weighted",
        "random",
        "consistent_hash",
        "least_conn",
        "p2c",
    ];
}

/// What `consistent_hash` hashes to pick a peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum HashKey {
    /// The request URI (path and query). Written `uri`.
    #[default]
    Uri,
    /// The client's IP address. Written `client_ip`.
    ClientIp,
    /// The value of one request header. Written `header:NAME`.
    Header(String),
}

impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashKey::Uri => f.write_str("uri"),
            HashKey::ClientIp => f.write_str("client_ip"),
            HashKey::Header(name) => write!(f, "header:{name}"),
        }
    }
}

/// Whether `name` is a valid HTTP header field name (an RFC 9110 token).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl std::str::FromStr for HashKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "uri" => Ok(HashKey::Uri),
            "client_ip" => Ok(HashKey::ClientIp),
            _ => {
                if let Some(name) = text.strip_prefix("header:") {
                    if is_header_name(name) {
                        return Ok(HashKey::Header(name.to_string()));
                    }
                    return Err(format!(
                        "invalid hash_key `{}`: `{}` is not a valid header name",
                        text.escape_debug(),
                        name.escape_debug()
                    ));
                }
                let mut message = format!(
                    "invalid hash_key `{}`: expected `uri`, `client_ip` or `header:NAME`",
                    text.escape_debug()
                );
                if let Some(close) = suggest::closest(text, ["uri", "client_ip"]) {
                    message.push_str(&format!(" (did you mean `{close}`?)"));
                }
                Err(message)
            }
        }
    }
}

impl<'de> Deserialize<'de> for HashKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HashKeyVisitor;

        impl Visitor<'_> for HashKeyVisitor {
            type Value = HashKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`uri`, `client_ip` or `header:NAME`")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<HashKey, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(HashKeyVisitor)
    }
}

/// Active health checking of an upstream's peers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConf {
    /// `tcp` (a connect succeeds) or `http` (a GET of `path` answers an expected
    /// status). Written `type`.
    #[serde(rename = "type")]
    pub kind: HealthCheckType,
    /// The path requested by `http` checks; starts with `/`.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Time between two checks of one peer, in milliseconds (at least 10).
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Most time one check may take, in milliseconds; default: `interval_ms`, at most
    /// 2000 (see [`HealthCheckConf::timeout_ms`]).
    #[serde(default, rename = "timeout_ms")]
    pub timeout: Option<u64>,
    /// Consecutive passing checks that bring an unhealthy peer back.
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
    /// Consecutive failing checks that take a healthy peer out.
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
    /// The statuses an `http` check accepts; default 200 to 399.
    #[serde(default)]
    pub expected_status: Option<StatusRange>,
    /// The Host header of `http` checks; default: the peer's address.
    #[serde(default)]
    pub host: Option<String>,
}

fn default_health_path() -> String {
    "/".to_string()
}

fn default_interval_ms() -> u64 {
    1_000
}

fn default_healthy_threshold() -> u32 {
    2
}

fn default_unhealthy_threshold() -> u32 {
    3
}

impl HealthCheckConf {
    /// The YAML keys of a health check.
    pub const FIELDS: &'static [&'static str] = &[
        "type",
        "path",
        "interval_ms",
        "timeout_ms",
        "healthy_threshold",
        "unhealthy_threshold",
        "expected_status",
        "host",
    ];

    /// The keys that only `type: http` checks take.
    pub const HTTP_ONLY: &'static [&'static str] = &["path", "expected_status", "host"];

    /// The statuses an `http` check accepts when `expected_status` is not given.
    pub const DEFAULT_STATUS: StatusRange = StatusRange { min: 200, max: 399 };

    /// Most time one check may take: `timeout_ms`, or `interval_ms` capped at 2000.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout.unwrap_or(self.interval_ms.min(2_000))
    }

    /// The statuses an `http` check accepts.
    pub fn expected_status(&self) -> StatusRange {
        self.expected_status.unwrap_or(Self::DEFAULT_STATUS)
    }
}

impl Default for HealthCheckConf {
    fn default() -> Self {
        HealthCheckConf {
            kind: HealthCheckType::Tcp,
            path: default_health_path(),
            interval_ms: default_interval_ms(),
            timeout: None,
            healthy_threshold: default_healthy_threshold(),
            unhealthy_threshold: default_unhealthy_threshold(),
            expected_status: None,
            host: None,
        }
    }
}

/// The kind of health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckType {
    /// A TCP connect to the peer succeeds.
    #[default]
    Tcp,
    /// `GET path` answers with an expected status.
    Http,
}

/// HTTP statuses from `min` to `max` inclusive. Written as one status (`200`) or a
/// range (`"200-299"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusRange {
    /// The lowest accepted status.
    pub min: u16,
    /// The highest accepted status.
    pub max: u16,
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

impl std::str::FromStr for StatusRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "invalid expected_status `{}`: expected a status like `200` or a range like `200-299`",
                text.escape_debug()
            )
        };
        let status = |t: &str| t.trim().parse::<u16>().map_err(|_| bad());
        match text.split_once('-') {
            Some((min, max)) => Ok(StatusRange {
                min: status(min)?,
                max: status(max)?,
            }),
            None => {
                let one = status(text)?;
                Ok(StatusRange { min: one, max: one })
            }
        }
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RangeVisitor;

        impl Visitor<'_> for RangeVisitor {
            type Value = StatusRange;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status like 200 or a range like \"200-299\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusRange, E> {
                let one = u16::try_from(v)
                    .map_err(|_| E::custom(format!("invalid expected_status {v}")))?;
                Ok(StatusRange { min: one, max: one })
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusRange, E> {
                let v = u64::try_from(v)
                    .map_err(|_| E::custom(format!("invalid expected_status {v}")))?;
                self.visit_u64(v)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<StatusRange, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(RangeVisitor)
    }
}

/// TLS towards an upstream's peers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamTlsConf {
    /// Server name sent in SNI and checked against the certificate; default: the peer's host.
    pub sni: Option<String>,
    /// Verify the peer's certificate chain and name (against `ca_file` or the system roots).
    pub verify: bool,
    /// CA bundle (PEM) trusted for this upstream, instead of the server's `ca_file` (or
    /// the system roots).
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate chain (PEM) presented to peers that ask for one (mutual TLS);
    /// needs `key`.
    pub cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of `cert`.
    pub key: Option<std::path::PathBuf>,
}

impl UpstreamTlsConf {
    /// The YAML keys of an upstream's `tls` section.
    pub const FIELDS: &'static [&'static str] = &["sni", "verify", "ca_file", "cert", "key"];
}

impl Default for UpstreamTlsConf {
    fn default() -> Self {
        UpstreamTlsConf {
            sni: None,
            verify: true,
            ca_file: None,
            cert: None,
            key: None,
        }
    }
}

/// The upstreams of a service, by name, in the order the file lists them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamMap {
    entries: Vec<(String, UpstreamConf)>,
}

impl UpstreamMap {
    /// An empty map.
    pub fn new() -> Self {
        UpstreamMap::default()
    }

    /// The upstream called `name`.
    pub fn get(&self, name: &str) -> Option<&UpstreamConf> {
        self.entries
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, conf)| conf)
    }

    /// Adds or replaces the upstream called `name`; a new name goes last.
    pub fn insert(&mut self, name: impl Into<String>, conf: UpstreamConf) {
        let name = name.into();
        match self.entries.iter_mut().find(|(key, _)| *key == name) {
            Some(entry) => entry.1 = conf,
            None => self.entries.push((name, conf)),
        }
    }

    /// The upstreams in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &UpstreamConf)> {
        self.entries
            .iter()
            .map(|(name, conf)| (name.as_str(), conf))
    }

    /// The names in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }

    /// How many upstreams there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<N: Into<String>> FromIterator<(N, UpstreamConf)> for UpstreamMap {
    fn from_iter<T: IntoIterator<Item = (N, UpstreamConf)>>(iter: T) -> Self {
        let mut map = UpstreamMap::new();
        for (name, conf) in iter {
            map.insert(name, conf);
        }
        map
    }
}

impl<'de> Deserialize<'de> for UpstreamMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;

        impl<'de> Visitor<'de> for MapVisitor {
            type Value = UpstreamMap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of upstream name to upstream")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UpstreamMap, A::Error> {
                let mut out = UpstreamMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    let conf = map.next_value::<UpstreamConf>()?;
                    if out.get(&name).is_some() {
                        return Err(de::Error::custom(format!("duplicate upstream `{name}`")));
                    }
                    out.entries.push((name, conf));
                }
                Ok(out)
            }
        }

        deserializer.deserialize_map(MapVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_key_parsing() {
        assert_eq!("uri".parse::<HashKey>(), Ok(HashKey::Uri));
        assert_eq!("client_ip".parse::<HashKey>(), Ok(HashKey::ClientIp));
        assert_eq!(
            "header:X-User".parse::<HashKey>(),
            Ok(HashKey::Header("X-User".into()))
        );
        assert!("header:".parse::<HashKey>().is_err());
        assert!("header:a b".parse::<HashKey>().is_err());
        let err = "urii".parse::<HashKey>().unwrap_err();
        assert!(err.ends_with("(did you mean `uri`?)"), "{err}");
        assert_eq!(HashKey::Header("X".into()).to_string(), "header:X");
    }

    #[test]
    fn map_keeps_insertion_order() {
        let map: UpstreamMap = [
            ("b", UpstreamConf::default()),
            ("a", UpstreamConf::default()),
        ]
        .into_iter()
        .collect();
        assert_eq!(map.names().collect::<Vec<_>>(), ["b", "a"]);
        assert!(map.get("a").is_some());
        assert!(map.get("c").is_none());
        assert_eq!(map.len(), 2);
    }
}

//! Discovery of an upstream's peers: a watched file or DNS records
//! (`services[].upstreams.NAME.discovery`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Where an upstream's peers come from instead of a `peers` list
/// (`services[].upstreams.NAME.discovery`). Which keys apply depends on `type`; the
/// validation refuses a key of the other type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConf {
    /// `file` or `dns`. Written `type`.
    #[serde(rename = "type")]
    pub kind: DiscoveryType,
    /// `file`: the list of peers, one `ADDR [WEIGHT]` per line; must exist.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `file`: how often the file is looked at, in milliseconds (default 1000).
    #[serde(default)]
    pub interval_ms: Option<u64>,
    /// `dns`: the name to resolve (a final `.` skips the resolver's search list).
    #[serde(default)]
    pub name: Option<String>,
    /// `dns`: the peers' port; required for address records, not taken with `srv`
    /// (SRV records carry their ports).
    #[serde(default)]
    pub port: Option<u16>,
    /// `dns`: which records to look up (default: `a_aaaa`).
    #[serde(default)]
    pub record: Option<DnsRecordType>,
    /// `dns`: the DNS server to ask, `IP` or `IP:PORT` (port 53 by default); default:
    /// the system's `/etc/resolv.conf` (and `/etc/hosts`).
    #[serde(default)]
    pub resolver: Option<String>,
    /// `dns`: shortest time between two resolutions in milliseconds, whatever the
    /// TTL (default 1000); also the first retry delay after a failure.
    #[serde(default)]
    pub refresh_min_ms: Option<u64>,
    /// `dns`: longest time between two resolutions in milliseconds, whatever the TTL
    /// (default 60000); also the longest retry delay.
    #[serde(default)]
    pub refresh_max_ms: Option<u64>,
}

impl DiscoveryConf {
    /// The YAML keys of a `discovery` section.
    pub const FIELDS: &'static [&'static str] = &[
        "type",
        "path",
        "interval_ms",
        "name",
        "port",
        "record",
        "resolver",
        "refresh_min_ms",
        "refresh_max_ms",
    ];

    /// The keys only `type: file` takes.
    pub const FILE_ONLY: &'static [&'static str] = &["path", "interval_ms"];

    /// The keys only `type: dns` takes.
    pub const DNS_ONLY: &'static [&'static str] = &[
        "name",
        "port",
        "record",
        "resolver",
        "refresh_min_ms",
        "refresh_max_ms",
    ];

    /// The keys of this section that are set, by name (for the type checks).
    pub fn set_keys(&self) -> Vec<&'static str> {
        let set = [
            ("path", self.path.is_some()),
            ("interval_ms", self.interval_ms.is_some()),
            ("name", self.name.is_some()),
            ("port", self.port.is_some()),
            ("record", self.record.is_some()),
            ("resolver", self.resolver.is_some()),
            ("refresh_min_ms", self.refresh_min_ms.is_some()),
            ("refresh_max_ms", self.refresh_max_ms.is_some()),
        ];
        set.into_iter()
            .filter_map(|(key, is_set)| is_set.then_some(key))
            .collect()
    }

    /// `file`: the polling interval in milliseconds.
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms.unwrap_or(1_000)
    }

    /// `dns`: the records looked up.
    pub fn record(&self) -> DnsRecordType {
        self.record.unwrap_or_default()
    }

    /// `dns`: the shortest time between resolutions, in milliseconds.
    pub fn refresh_min_ms(&self) -> u64 {
        self.refresh_min_ms.unwrap_or(1_000)
    }

    /// `dns`: the longest time between resolutions, in milliseconds.
    pub fn refresh_max_ms(&self) -> u64 {
        self.refresh_max_ms.unwrap_or(60_000)
    }

    /// `dns`: the server named by `resolver`, if any (an error says why it is not
    /// `IP` or `IP:PORT`).
    pub fn resolver_addr(&self) -> Result<Option<SocketAddr>, String> {
        self.resolver.as_deref().map(parse_resolver).transpose()
    }
}

/// Parses `IP`, `IP:PORT` or `[IPv6]:PORT` (port 53 when not given).
fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err("port 0 is not a valid DNS server port".to_string());
        }
        return Ok(addr);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, 53)),
        Err(_) => Err(format!(
            "`{}` is not an IP address or IP:PORT (a DNS server is named by address)",
            text.escape_debug()
        )),
    }
}

/// How peers are discovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryType {
    /// A text file of peers, read again when it changes.
    File,
    /// DNS records, resolved again when their TTL runs out.
    Dns,
}

/// The DNS records that name the peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsRecordType {
    /// A records: IPv4 addresses.
    A,
    /// AAAA records: IPv6 addresses.
    Aaaa,
    /// Both A and AAAA records. Written `a_aaaa`.
    #[default]
    #[serde(rename = "a_aaaa")]
    AAndAaaa,
    /// SRV records: targets, ports and weights.
    Srv,
}

impl DnsRecordType {
    /// The YAML spellings.
    pub const NAMES: &'static [&'static str] = &["a", "aaaa", "a_aaaa", "srv"];
}

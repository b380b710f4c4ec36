//! Request policy keys of services and routes: header edits, rewrites, redirects,
//! timeouts, body limits, access lists and request ids.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// A map of strings in file order (header names to values, query parameters...).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StringMap {
    entries: Vec<(String, String)>,
}

impl StringMap {
    /// An empty map.
    pub fn new() -> Self {
        StringMap::default()
    }

    /// The entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for StringMap {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        StringMap {
            entries: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;

        impl<'de> Visitor<'de> for MapVisitor {
            type Value = StringMap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of names to string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StringMap, A::Error> {
                let mut out = StringMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<String>()?;
                    if out.get(&key).is_some() {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    out.entries.push((key, value));
                }
                Ok(out)
            }
        }

        deserializer.deserialize_map(MapVisitor)
    }
}

/// Header edits (`request_headers`, `response_headers`): applied in the order
/// `remove`, `set`, `add`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderRulesConf {
    /// Headers replaced (or added) with these values; values are templates.
    pub set: StringMap,
    /// Headers added beside any of the same name; values are templates.
    pub add: StringMap,
    /// Headers removed.
    pub remove: Vec<String>,
}

impl HeaderRulesConf {
    /// The YAML keys of a `request_headers` / `response_headers` section.
    pub const FIELDS: &'static [&'static str] = &["set", "add", "remove"];

    /// Whether the section edits nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// How a route rewrites the path sent upstream (`rewrite`): exactly one form.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewriteConf {
    /// Removes this prefix from the path.
    pub strip_prefix: Option<String>,
    /// Replaces the prefix `from` with `to`.
    pub replace_prefix: Option<ReplacePrefixConf>,
    /// A regular expression on the path; with `replace`, the path becomes `replace`
    /// (a template where `$1`..`$9` are this expression's captures).
    pub regex: Option<String>,
    /// The new path when `regex` matches.
    pub replace: Option<String>,
}

impl RewriteConf {
    /// The YAML keys of a route's `rewrite` section.
    pub const FIELDS: &'static [&'static str] =
        &["strip_prefix", "replace_prefix", "regex", "replace"];
}

/// `rewrite.replace_prefix`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplacePrefixConf {
    /// The prefix replaced.
    pub from: String,
    /// What replaces it.
    pub to: String,
}

impl ReplacePrefixConf {
    /// The YAML keys of `rewrite.replace_prefix`.
    pub const FIELDS: &'static [&'static str] = &["from", "to"];
}

/// A redirect answered by the proxy (`redirect`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConf {
    /// 301, 302, 303, 307 or 308.
    #[serde(default = "default_redirect_status")]
    pub status: u16,
    /// The `Location` header: a template.
    pub location: String,
}

fn default_redirect_status() -> u16 {
    302
}

impl RedirectConf {
    /// The YAML keys of a route's `redirect` section.
    pub const FIELDS: &'static [&'static str] = &["status", "location"];

    /// The statuses a redirect may have.
    pub const STATUSES: &'static [u16] = &[301, 302, 303, 307, 308];
}

/// Upstream timeouts of a route (`timeouts`), each overriding the upstream's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsConf {
    /// Overrides the upstream's `connect_timeout_ms`.
    pub connect_ms: Option<u64>,
    /// Overrides the upstream's `read_timeout_ms`.
    pub read_ms: Option<u64>,
    /// Overrides the upstream's `write_timeout_ms`.
    pub write_ms: Option<u64>,
}

impl TimeoutsConf {
    /// The YAML keys of a route's `timeouts` section.
    pub const FIELDS: &'static [&'static str] = &["connect_ms", "read_ms", "write_ms"];
}

/// Who may send requests (`access`): `deny` wins over `allow`; without `allow`, every
/// address not denied may; with `client_cert: required`, only clients whose TLS client
/// certificate verified may.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConf {
    /// Addresses or networks allowed; empty: all.
    pub allow: Vec<String>,
    /// Addresses or networks refused.
    pub deny: Vec<String>,
    /// A TLS client certificate that verified (`$ssl_client_verify` is `SUCCESS`) is
    /// needed besides the address rules.
    pub client_cert: Option<ClientCertRule>,
}

impl AccessConf {
    /// The YAML keys of an `access` section.
    pub const FIELDS: &'static [&'static str] = &["allow", "deny", "client_cert"];
}

/// What `access.client_cert` asks of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertRule {
    /// A certificate that verified against the listener's `client_auth.ca_file`.
    Required,
}

/// Request ids (`request_id`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestIdConf {
    /// The header carrying the id in requests (upstream) and responses.
    pub header: String,
}

impl RequestIdConf {
    /// The YAML keys of the `request_id` section.
    pub const FIELDS: &'static [&'static str] = &["header"];
}

impl Default for RequestIdConf {
    fn default() -> Self {
        RequestIdConf {
            header: "X-Request-Id".to_string(),
        }
    }
}

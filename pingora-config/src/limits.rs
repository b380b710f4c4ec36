//! Response compression (`compression`) and rate limiting (`rate_limit`) of services and
//! routes; a route-level section replaces the service-level one.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use crate::suggest;
use crate::upstream::is_header_name;

/// A content coding the proxy can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionAlgorithm {
    /// Zstandard (`zstd`, RFC 8878).
    Zstd,
    /// Brotli (`br`, RFC 7932).
    Br,
    /// gzip (`gzip`, RFC 1952).
    Gzip,
}

impl CompressionAlgorithm {
    /// Every algorithm, in the default order of preference.
    pub const ALL: [CompressionAlgorithm; 3] = [
        CompressionAlgorithm::Zstd,
        CompressionAlgorithm::Br,
        CompressionAlgorithm::Gzip,
    ];

    /// The name written in the file and in `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionAlgorithm::Zstd => "zstd",
            CompressionAlgorithm::Br => "br",
            CompressionAlgorithm::Gzip => "gzip",
        }
    }
}

impl fmt::Display for CompressionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Response compression (`compression`): off when absent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConf {
    /// The proxy's preference among the encodings the client accepts (equal q-values
    /// are broken by this order). An empty list turns compression off.
    pub algorithms: Vec<CompressionAlgorithm>,
    /// Bodies shorter than this (when their length is known) are sent as they are.
    pub min_bytes: u64,
    /// Media types compressed: `type/subtype` or `type/*`, compared without parameters
    /// and case-insensitively.
    pub types: Vec<String>,
    /// The compression level of each algorithm.
    pub level: CompressionLevelConf,
}

impl CompressionConf {
    /// The YAML keys of a `compression` section.
    pub const FIELDS: &'static [&'static str] = &["algorithms", "min_bytes", "types", "level"];
}

impl Default for CompressionConf {
    fn default() -> Self {
        CompressionConf {
            algorithms: CompressionAlgorithm::ALL.to_vec(),
            min_bytes: 1024,
            types: [
                "text/*",
                "application/json",
                "application/javascript",
                "image/svg+xml",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            level: CompressionLevelConf::default(),
        }
    }
}

/// `compression.level`: one level per algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionLevelConf {
    /// gzip: 1 (fastest) to 9 (smallest).
    pub gzip: u32,
    /// Brotli quality: 0 to 11.
    pub br: u32,
    /// Zstandard: 1 to 19.
    pub zstd: u32,
}

impl CompressionLevelConf {
    /// The YAML keys of `compression.level`.
    pub const FIELDS: &'static [&'static str] = &["gzip", "br", "zstd"];

    /// The accepted range of each algorithm's level.
    pub fn range(algorithm: CompressionAlgorithm) -> (u32, u32) {
        match algorithm {
            CompressionAlgorithm::Gzip => (1, 9),
            CompressionAlgorithm::Br => (0, 11),
            CompressionAlgorithm::Zstd => (1, 19),
        }
    }

    /// The level configured for `algorithm`.
    pub fn of(&self, algorithm: CompressionAlgorithm) -> u32 {
        match algorithm {
            CompressionAlgorithm::Gzip => self.gzip,
            CompressionAlgorithm::Br => self.br,
            CompressionAlgorithm::Zstd => self.zstd,
        }
    }
}

impl Default for CompressionLevelConf {
    fn default() -> Self {
        CompressionLevelConf {
            gzip: 6,
            br: 4,
            zstd: 3,
        }
    }
}

/// Rate limiting (`rate_limit`): a token bucket of `burst` requests refilled at `rate`,
/// one bucket per value of `key`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConf {
    /// What a bucket is kept for: one or several parts, combined.
    #[serde(default)]
    pub key: RateLimitKey,
    /// How fast a bucket refills: `N/s`, `N/m` or `N/h`. Required.
    pub rate: Rate,
    /// The bucket size: requests allowed at once. Defaults to the `N` of `rate`.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Where buckets are kept.
    #[serde(default)]
    pub backend: RateLimitBackend,
    /// The Redis server of `backend: redis`.
    #[serde(default)]
    pub redis: Option<RedisConf>,
}

impl RateLimitConf {
    /// The YAML keys of a `rate_limit` section.
    pub const FIELDS: &'static [&'static str] = &["key", "rate", "burst", "backend", "redis"];

    /// The bucket size in effect (`burst`, or the `N` of `rate`).
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.rate.count)
    }
}

/// Where rate-limit buckets are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackend {
    /// In this process's memory: each proxy instance limits on its own.
    #[default]
    Local,
    /// On a Redis server: every proxy using it shares the limit.
    Redis,
}

/// `rate_limit.redis`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConf {
    /// `HOST:PORT` of the Redis server.
    pub addr: String,
    /// Most time one Redis call may take, in milliseconds.
    pub timeout_ms: u64,
    /// What a request gets when Redis fails or times out.
    pub on_error: RedisOnError,
}

impl RedisConf {
    /// The YAML keys of `rate_limit.redis`.
    pub const FIELDS: &'static [&'static str] = &["addr", "timeout_ms", "on_error"];
}

impl Default for RedisConf {
    fn default() -> Self {
        RedisConf {
            addr: "127.0.0.1:6379".to_string(),
            timeout_ms: 50,
            on_error: RedisOnError::Allow,
        }
    }
}

/// `rate_limit.redis.on_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisOnError {
    /// Let the request through.
    #[default]
    Allow,
    /// Answer `503`.
    Deny,
}

/// One part of a rate-limit key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateLimitKeyPart {
    /// The client address (after PROXY protocol / trusted `X-Forwarded-For`).
    /// Written `client_ip`.
    ClientIp,
    /// The route that matched. Written `route`.
    Route,
    /// The value of one request header. Written `header:NAME`.
    Header(String),
}

impl fmt::Display for RateLimitKeyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitKeyPart::ClientIp => f.write_str("client_ip"),
            RateLimitKeyPart::Route => f.write_str("route"),
            RateLimitKeyPart::Header(name) => write!(f, "header:{name}"),
        }
    }
}

impl std::str::FromStr for RateLimitKeyPart {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "client_ip" => Ok(RateLimitKeyPart::ClientIp),
            "route" => Ok(RateLimitKeyPart::Route),
            _ => {
                if let Some(name) = text.strip_prefix("header:") {
                    if is_header_name(name) {
                        return Ok(RateLimitKeyPart::Header(name.to_ascii_lowercase()));
                    }
                    return Err(format!(
                        "invalid rate_limit key `{}`: `{}` is not a valid header name",
                        text.escape_debug(),
                        name.escape_debug()
                    ));
                }
                let mut message = format!(
                    "invalid rate_limit key `{}`: expected `client_ip`, `route`, `header:NAME` or a list of these",
                    text.escape_debug()
                );
                if let Some(close) = suggest::closest(text, ["client_ip", "route"]) {
                    message.push_str(&format!(" (did you mean `{close}`?)"));
                }
                Err(message)
            }
        }
    }
}

/// A rate-limit key: one part or several combined (a bucket per combination).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimitKey {
    /// The parts, in file order, each once.
    pub parts: Vec<RateLimitKeyPart>,
}

impl Default for RateLimitKey {
    /// `client_ip`.
    fn default() -> Self {
        RateLimitKey {
            parts: vec![RateLimitKeyPart::ClientIp],
        }
    }
}

impl fmt::Display for RateLimitKey {
    /// The parts joined with `+`, as metrics label them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{part}")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for RateLimitKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = RateLimitKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`client_ip`, `route`, `header:NAME` or a list of these")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<RateLimitKey, E> {
                Ok(RateLimitKey {
                    parts: vec![text.parse().map_err(E::custom)?],
                })
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RateLimitKey, A::Error> {
                let mut parts: Vec<RateLimitKeyPart> = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    let part: RateLimitKeyPart = text.parse().map_err(de::Error::custom)?;
                    if parts.contains(&part) {
                        return Err(de::Error::custom(format!(
                            "rate_limit key `{part}` is listed twice"
                        )));
                    }
                    parts.push(part);
                }
                if parts.is_empty() {
                    return Err(de::Error::custom(
                        "an empty rate_limit key list: name at least one of `client_ip`, `route`, `header:NAME`",
                    ));
                }
                Ok(RateLimitKey { parts })
            }
        }

        deserializer.deserialize_any(KeyVisitor)
    }
}

/// A refill rate: `count` requests per `per` (written `N/s`, `N/m` or `N/h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Requests per period; at least 1.
    pub count: u32,
    /// The period: one second, minute or hour.
    pub per: Duration,
}

impl Rate {
    /// The largest `N` accepted (whatever the period).
    pub const MAX_COUNT: u32 = 1_000_000_000;

    /// The time one request's token takes to refill.
    pub fn interval(&self) -> Duration {
        self.per / self.count.max(1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!(
                "invalid rate `{}`: {why} (expected N/s, N/m or N/h, like `100/s`)",
                text.escape_debug()
            )
        };
        let Some((count, unit)) = text.trim().split_once('/') else {
            return Err(bad("no `/`"));
        };
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => {
                return Err(bad(&format!(
                    "unknown period `{}`, expected `s`, `m` or `h`",
                    other.escape_debug()
                )))
            }
        };
        let count = count.trim();
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the count must be a whole number"));
        }
        let count: u32 = match count.parse::<u64>() {
            Ok(n) if n > u64::from(Rate::MAX_COUNT) => {
                return Err(bad(&format!(
                    "the count must be at most {}",
                    Rate::MAX_COUNT
                )))
            }
            Ok(n) => n as u32,
            Err(_) => {
                return Err(bad(&format!(
                    "the count must be at most {}",
                    Rate::MAX_COUNT
                )))
            }
        };
        if count == 0 {
            return Err(bad("the count must be greater than 0"));
        }
        Ok(Rate { count, per })
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RateVisitor;

        impl Visitor<'_> for RateVisitor {
            type Value = Rate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate like `100/s`, `20/m` or `1000/h`")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Rate, E> {
                text.parse().map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                Err(E::custom(format!(
                    "invalid rate `{v}`: a rate needs a period (expected N/s, N/m or N/h, like `{v}/s`)"
                )))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                Err(E::custom(format!(
                    "invalid rate `{v}`: expected N/s, N/m or N/h, like `100/s`"
                )))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rate, E> {
                Err(E::custom(format!(
                    "invalid rate `{v}`: expected N/s, N/m or N/h, like `100/s`"
                )))
            }
        }

        deserializer.deserialize_any(RateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        let r: Rate = "100/s".parse().unwrap();
        assert_eq!((r.count, r.per), (100, Duration::from_secs(1)));
        assert_eq!(r.interval(), Duration::from_millis(10));
        let r: Rate = "20/m".parse().unwrap();
        assert_eq!(r.interval(), Duration::from_secs(3));
        let r: Rate = " 7 / h ".parse().unwrap();
        assert_eq!((r.count, r.per), (7, Duration::from_secs(3600)));
        assert_eq!(r.to_string(), "7/h");
    }

    #[test]
    fn absurd_rates_are_refused() {
        for bad in [
            "",
            "100",
            "/s",
            "0/s",
            "-1/s",
            "1.5/s",
            "1e3/s",
            "100/d",
            "100/sec",
            "x/s",
            "99999999999999999999999/s",
            "1000000001/s",
            "100/s/s",
        ] {
            let err = bad.parse::<Rate>().unwrap_err();
            assert!(err.contains("invalid rate"), "{bad}: {err}");
        }
    }

    #[test]
    fn key_parts_parse() {
        assert_eq!(
            "header:X-Api-Key".parse::<RateLimitKeyPart>().unwrap(),
            RateLimitKeyPart::Header("x-api-key".into())
        );
        let err = "client_id".parse::<RateLimitKeyPart>().unwrap_err();
        assert!(err.contains("did you mean `client_ip`"), "{err}");
        assert!("header:".parse::<RateLimitKeyPart>().is_err());
        assert!("header:a b".parse::<RateLimitKeyPart>().is_err());
    }
}

#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod decode;
mod discovery;
mod error;
mod keys;
mod limits;
mod listen_addr;
mod locate;
mod observability;
mod policy;
mod server;
mod service;
mod suggest;
pub mod template;
mod upstream;
mod validate;
mod validate_limits;
mod validate_policy;
mod validate_tls;
mod validate_upstream;

pub use discovery::{DiscoveryConf, DiscoveryType, DnsRecordType};
pub use error::{ConfigError, ConfigErrorDetails, ConfigErrorKind};
pub use keys::{all_config_keys, config_sections, ConfigSection};
pub use limits::{
    CompressionAlgorithm, CompressionConf, CompressionLevelConf, Rate, RateLimitBackend,
    RateLimitConf, RateLimitKey, RateLimitKeyPart, RedisConf, RedisOnError,
};
pub use listen_addr::{ListenAddr, ListenAddrParseError, MAX_UNIX_PATH_BYTES};
pub use observability::{AccessLogConf, AccessLogFormat, LogLevel};
pub use policy::{
    AccessConf, ClientCertRule, HeaderRulesConf, RedirectConf, ReplacePrefixConf, RequestIdConf,
    RewriteConf, StringMap, TimeoutsConf,
};
pub use server::{read_token_file, AdminConf, ServerConf, TokioConf, ValidateOptions};
pub use service::{
    CacheConf, CacheDiskConf, ClientAuthConf, ClientAuthMode, IpNet, ListenerConf, ListenerTlsConf,
    ProxyProtocolMode, RespondConf, RouteConf, RouteMatch, ServiceConf, TlsCertConf,
};
pub use suggest::{closest as suggest_closest, edit_distance};
pub use template::Template;
pub use upstream::{
    HashKey, HealthCheckConf, HealthCheckType, LbAlgorithm, PeerConf, RetryConf, RetryOnConf,
    SendProxyProtocol, StatusRange, UpstreamConf, UpstreamMap, UpstreamTlsConf,
};
pub use validate::{MAX_MILLISECONDS, MAX_SECONDS, MAX_THREADS};
pub use validate_upstream::check_peer_addr;

#[cfg(test)]
mod tests;

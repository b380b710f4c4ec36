//! The list of every YAML key the schema accepts, section by section.
//!
//! Kept next to the structs as `FIELDS` constants; a test checks each constant against the
//! key list serde itself reports, so the list cannot drift from the types.

use crate::discovery::DiscoveryConf;
use crate::limits::{CompressionConf, CompressionLevelConf, RateLimitConf, RedisConf};
use crate::observability::AccessLogConf;
use crate::policy::{
    AccessConf, HeaderRulesConf, RedirectConf, ReplacePrefixConf, RequestIdConf, RewriteConf,
    TimeoutsConf,
};
use crate::server::{AdminConf, ServerConf, TokioConf};
use crate::service::{
    CacheConf, CacheDiskConf, ClientAuthConf, ListenerConf, ListenerTlsConf, RespondConf,
    RouteConf, RouteMatch, ServiceConf, TlsCertConf,
};
use crate::upstream::{HealthCheckConf, PeerConf, RetryConf, UpstreamConf, UpstreamTlsConf};

/// One section of the file and the keys it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigSection {
    /// Where the section is, like `services[].upstreams.NAME.health_check`.
    pub name: &'static str,
    /// The keys accepted in it.
    pub keys: &'static [&'static str],
}

/// Every section of the schema with its keys.
pub fn config_sections() -> Vec<ConfigSection> {
    vec![
        ConfigSection {
            name: "(top level)",
            keys: ServerConf::FIELDS,
        },
        ConfigSection {
            name: "tokio",
            keys: TokioConf::FIELDS,
        },
        ConfigSection {
            name: "admin",
            keys: AdminConf::FIELDS,
        },
        ConfigSection {
            name: "access_log",
            keys: AccessLogConf::FIELDS,
        },
        ConfigSection {
            name: "services[]",
            keys: ServiceConf::FIELDS,
        },
        ConfigSection {
            name: "services[].listeners[]",
            keys: ListenerConf::FIELDS,
        },
        ConfigSection {
            name: "services[].listeners[].tls",
            keys: ListenerTlsConf::FIELDS,
        },
        ConfigSection {
            name: "services[].listeners[].tls.certs[]",
            keys: TlsCertConf::FIELDS,
        },
        ConfigSection {
            name: "services[].listeners[].tls.client_auth, tls.certs[].client_auth",
            keys: ClientAuthConf::FIELDS,
        },
        ConfigSection {
            name: "services[].routes[]",
            keys: RouteConf::FIELDS,
        },
        ConfigSection {
            name: "services[].routes[].match",
            keys: RouteMatch::FIELDS,
        },
        ConfigSection {
            name: "services[].routes[].respond",
            keys: RespondConf::FIELDS,
        },
        ConfigSection {
            name: "services[].routes[].redirect",
            keys: RedirectConf::FIELDS,
        },
        ConfigSection {
            name: "services[].routes[].rewrite",
            keys: RewriteConf::FIELDS,
        },
        ConfigSection {
            name: "services[].routes[].rewrite.replace_prefix",
            keys: ReplacePrefixConf::FIELDS,
        },
        ConfigSection {
            name: "services[].routes[].request_headers, response_headers",
            keys: HeaderRulesConf::FIELDS,
        },
        ConfigSection {
            name: "services[].routes[].timeouts",
            keys: TimeoutsConf::FIELDS,
        },
        ConfigSection {
            name: "services[].access, services[].routes[].access",
            keys: AccessConf::FIELDS,
        },
        ConfigSection {
            name: "services[].request_id",
            keys: RequestIdConf::FIELDS,
        },
        ConfigSection {
            name: "services[].compression, services[].routes[].compression",
            keys: CompressionConf::FIELDS,
        },
        ConfigSection {
            name: "services[].compression.level, services[].routes[].compression.level",
            keys: CompressionLevelConf::FIELDS,
        },
        ConfigSection {
            name: "services[].rate_limit, services[].routes[].rate_limit",
            keys: RateLimitConf::FIELDS,
        },
        ConfigSection {
            name: "services[].rate_limit.redis, services[].routes[].rate_limit.redis",
            keys: RedisConf::FIELDS,
        },
        ConfigSection {
            name: "services[].upstreams.NAME",
            keys: UpstreamConf::FIELDS,
        },
        ConfigSection {
            name: "services[].upstreams.NAME.peers[]",
            keys: PeerConf::FIELDS,
        },
        ConfigSection {
            name: "services[].upstreams.NAME.discovery",
            keys: DiscoveryConf::FIELDS,
        },
        ConfigSection {
            name: "services[].upstreams.NAME.health_check",
            keys: HealthCheckConf::FIELDS,
        },
        ConfigSection {
            name: "services[].upstreams.NAME.tls",
            keys: UpstreamTlsConf::FIELDS,
        },
        ConfigSection {
            name: "services[].upstreams.NAME.retry",
            keys: RetryConf::FIELDS,
        },
        ConfigSection {
            name: "services[].cache",
            keys: CacheConf::FIELDS,
        },
        ConfigSection {
            name: "services[].cache.disk",
            keys: CacheDiskConf::FIELDS,
        },
    ]
}

/// Every key name the schema accepts, sorted, each once.
pub fn all_config_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = config_sections()
        .iter()
        .flat_map(|s| s.keys.iter().copied())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    /// The keys serde accepts for `T`, read from its "unknown field" error.
    fn serde_keys<T: DeserializeOwned + std::fmt::Debug>() -> Vec<&'static str> {
        let result = serde_saphyr::from_str::<T>("__no_such_key__: 1\n");
        match result.as_ref().map_err(|e| e.without_snippet()) {
            Err(serde_saphyr::Error::SerdeUnknownField { expected, .. }) => {
                let mut keys = expected.clone();
                keys.sort_unstable();
                keys
            }
            other => panic!("expected an unknown-field error, got {other:?}"),
        }
    }

    fn sorted(keys: &[&'static str]) -> Vec<&'static str> {
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn fields_constants_match_serde() {
        assert_eq!(serde_keys::<ServerConf>(), sorted(ServerConf::FIELDS));
        assert_eq!(serde_keys::<TokioConf>(), sorted(TokioConf::FIELDS));
        assert_eq!(serde_keys::<AdminConf>(), sorted(AdminConf::FIELDS));
        assert_eq!(serde_keys::<AccessLogConf>(), sorted(AccessLogConf::FIELDS));
        assert_eq!(serde_keys::<ServiceConf>(), sorted(ServiceConf::FIELDS));
        assert_eq!(serde_keys::<ListenerConf>(), sorted(ListenerConf::FIELDS));
        assert_eq!(
            serde_keys::<ListenerTlsConf>(),
            sorted(ListenerTlsConf::FIELDS)
        );
        assert_eq!(serde_keys::<TlsCertConf>(), sorted(TlsCertConf::FIELDS));
        assert_eq!(
            serde_keys::<ClientAuthConf>(),
            sorted(ClientAuthConf::FIELDS)
        );
        assert_eq!(serde_keys::<RouteConf>(), sorted(RouteConf::FIELDS));
        assert_eq!(serde_keys::<RouteMatch>(), sorted(RouteMatch::FIELDS));
        assert_eq!(serde_keys::<RespondConf>(), sorted(RespondConf::FIELDS));
        assert_eq!(serde_keys::<UpstreamConf>(), sorted(UpstreamConf::FIELDS));
        assert_eq!(serde_keys::<PeerConf>(), sorted(PeerConf::FIELDS));
        assert_eq!(serde_keys::<DiscoveryConf>(), sorted(DiscoveryConf::FIELDS));
        assert_eq!(
            serde_keys::<HealthCheckConf>(),
            sorted(HealthCheckConf::FIELDS)
        );
        assert_eq!(
            serde_keys::<UpstreamTlsConf>(),
            sorted(UpstreamTlsConf::FIELDS)
        );
        assert_eq!(serde_keys::<RetryConf>(), sorted(RetryConf::FIELDS));
        assert_eq!(serde_keys::<CacheConf>(), sorted(CacheConf::FIELDS));
        assert_eq!(serde_keys::<CacheDiskConf>(), sorted(CacheDiskConf::FIELDS));

        assert_eq!(serde_keys::<RedirectConf>(), sorted(RedirectConf::FIELDS));
        assert_eq!(serde_keys::<RewriteConf>(), sorted(RewriteConf::FIELDS));
        assert_eq!(
            serde_keys::<ReplacePrefixConf>(),
            sorted(ReplacePrefixConf::FIELDS)
        );
        assert_eq!(
            serde_keys::<HeaderRulesConf>(),
            sorted(HeaderRulesConf::FIELDS)
        );
        assert_eq!(serde_keys::<TimeoutsConf>(), sorted(TimeoutsConf::FIELDS));
        assert_eq!(serde_keys::<AccessConf>(), sorted(AccessConf::FIELDS));
        assert_eq!(serde_keys::<RequestIdConf>(), sorted(RequestIdConf::FIELDS));
        assert_eq!(
            serde_keys::<CompressionConf>(),
            sorted(CompressionConf::FIELDS)
        );
        assert_eq!(
            serde_keys::<CompressionLevelConf>(),
            sorted(CompressionLevelConf::FIELDS)
        );
        assert_eq!(serde_keys::<RedisConf>(), sorted(RedisConf::FIELDS));
        assert_eq!(serde_keys::<RateLimitConf>(), sorted(RateLimitConf::FIELDS));
    }

    #[test]
    fn every_section_is_listed() {
        assert_eq!(config_sections().len(), 31);
        let keys = all_config_keys();
        assert!(keys.contains(&"match"));
        assert!(keys.contains(&"ticket_key_file"));
        assert!(keys.contains(&"blocking_threads"));
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }
}

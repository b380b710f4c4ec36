//! The `compression` and `rate_limit` sections of a service and its routes, built with
//! the pingora-proxy modules. A route-level section replaces the service's; routes
//! without one share the service's (one set of buckets for the whole service).

use std::sync::Arc;

#[cfg(feature = "compression")]
use pingora_config::CompressionConf;
use pingora_config::{RateLimitBackend, RateLimitConf, RouteConf, ServiceConf};
#[cfg(feature = "compression")]
use pingora_proxy::modules::compression::ResponseCompression;
use pingora_proxy::modules::RateLimiter;

use crate::error::BinError;

/// Compression and rate limit of one route (or of the service, for routes that do not
/// replace them).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Response compression, when on.
    #[cfg(feature = "compression")]
    pub compression: Option<Arc<ResponseCompression>>,
    /// The rate limit, when set.
    pub rate_limit: Option<Arc<RateLimiter>>,
}

impl Limits {
    /// The service-level sections of `service` (at `at`, like `services[0]`).
    pub fn of_service(service: &ServiceConf, at: &str) -> Result<Limits, BinError> {
        Ok(Limits {
            #[cfg(feature = "compression")]
            compression: service.compression.as_ref().and_then(compression),
            rate_limit: match &service.rate_limit {
                Some(conf) => Some(limiter(conf, &service.name, &format!("{at}.rate_limit"))?),
                None => None,
            },
        })
    }

    /// What applies to `route` (the `k`th of `service`): its own sections, else the
    /// service's (`service_limits`).
    pub fn of_route(
        service: &ServiceConf,
        service_limits: &Limits,
        route: &RouteConf,
        k: usize,
        at: &str,
    ) -> Result<Limits, BinError> {
        Ok(Limits {
            #[cfg(feature = "compression")]
            compression: match &route.compression {
                Some(conf) => compression(conf),
                None => service_limits.compression.clone(),
            },
            rate_limit: match &route.rate_limit {
                Some(conf) => Some(limiter(
                    conf,
                    &format!("{}/routes[{k}]", service.name),
                    &format!("{at}.rate_limit"),
                )?),
                None => service_limits.rate_limit.clone(),
            },
        })
    }
}

/// Compression per `conf`; `None` when its `algorithms` list is empty (off).
#[cfg(feature = "compression")]
fn compression(conf: &CompressionConf) -> Option<Arc<ResponseCompression>> {
    (!conf.algorithms.is_empty()).then(|| Arc::new(ResponseCompression::from_conf(conf)))
}

/// The limiter of `conf`; `scope` names it in Redis keys (the same on every proxy of a
/// fleet with the same configuration).
fn limiter(conf: &RateLimitConf, scope: &str, at: &str) -> Result<Arc<RateLimiter>, BinError> {
    #[cfg(not(feature = "redis"))]
    let _ = scope;
    let limiter = match conf.backend {
        RateLimitBackend::Local => RateLimiter::local(conf.rate, conf.burst(), conf.key.clone()),
        #[cfg(feature = "redis")]
        RateLimitBackend::Redis => {
            use pingora_proxy::modules::rate_limit::{OnError, RedisBuckets};
            let redis = conf.redis.clone().unwrap_or_default();
            let on_error = match redis.on_error {
                pingora_config::RedisOnError::Allow => OnError::Allow,
                pingora_config::RedisOnError::Deny => OnError::Deny,
            };
            let buckets = RedisBuckets::new(
                &redis.addr,
                std::time::Duration::from_millis(redis.timeout_ms),
                on_error,
            )
            .map_err(|e| BinError::Policy {
                key: format!("{at}.redis.addr"),
                message: e.to_string(),
            })?;
            RateLimiter::redis(conf.rate, conf.burst(), conf.key.clone(), buckets, scope)
        }
        #[cfg(not(feature = "redis"))]
        RateLimitBackend::Redis => {
            return Err(BinError::Policy {
                key: format!("{at}.backend"),
                message: "this binary was built without the Redis backend (feature `redis`)"
                    .to_string(),
            })
        }
    };
    Ok(Arc::new(limiter))
}

/// Every distinct rate limiter of `routes` (a service-level one once).
pub fn rate_limiters(routes: &crate::router::ServiceRoutes) -> Vec<Arc<RateLimiter>> {
    let mut out: Vec<Arc<RateLimiter>> = Vec::new();
    for i in 0..routes.table.len() {
        let limiter = routes
            .table
            .get(i)
            .and_then(|(_, r)| r.policy.limits.rate_limit.as_ref());
        if let Some(l) = limiter {
            if !out.iter().any(|o| Arc::ptr_eq(o, l)) {
                out.push(Arc::clone(l));
            }
        }
    }
    out
}

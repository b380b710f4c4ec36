//! Semantic rules of `compression` and `rate_limit`, at service and route level.

use crate::error::ConfigError;
use crate::limits::{
    CompressionAlgorithm, CompressionConf, CompressionLevelConf, RateLimitBackend, RateLimitConf,
};
use crate::locate::{join_index, join_key};
use crate::server::ValidateOptions;
use crate::service::ServiceConf;
use crate::validate::Reporter;

/// The largest `burst` accepted.
const MAX_BURST: u64 = 1_000_000_000;

/// The `compression` and `rate_limit` sections of `service` and of its routes.
pub(crate) fn validate_service_limits(
    service: &ServiceConf,
    path: &str,
    opts: &ValidateOptions,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let mut sections = vec![(
        path.to_string(),
        service.compression.as_ref(),
        service.rate_limit.as_ref(),
    )];
    for (k, route) in service.routes.iter().enumerate() {
        sections.push((
            join_index(&join_key(path, "routes"), k),
            route.compression.as_ref(),
            route.rate_limit.as_ref(),
        ));
    }
    for (at, compression, rate_limit) in sections {
        if let Some(c) = compression {
            validate_compression(c, &join_key(&at, "compression"), opts, r)?;
        }
        if let Some(l) = rate_limit {
            validate_rate_limit(l, &join_key(&at, "rate_limit"), opts, r)?;
        }
    }
    Ok(())
}

fn validate_compression(
    c: &CompressionConf,
    path: &str,
    opts: &ValidateOptions,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    if !opts.compression_supported {
        return Err(r.invalid(
            path,
            "this binary was built without response compression (feature `compression`)",
        ));
    }
    for (i, a) in c.algorithms.iter().enumerate() {
        if c.algorithms[..i].contains(a) {
            return Err(r.invalid(
                &join_index(&at("algorithms"), i),
                format!("`{a}` is listed twice"),
            ));
        }
    }
    if c.types.is_empty() && !c.algorithms.is_empty() {
        return Err(r.invalid(
            &at("types"),
            "an empty list compresses nothing: name media types like `text/*` or `application/json`",
        ));
    }
    for (i, t) in c.types.iter().enumerate() {
        if !is_media_range(t) {
            return Err(r.invalid(
                &join_index(&at("types"), i),
                format!(
                    "`{}` is not a media type like `text/html` or `text/*`",
                    t.escape_debug()
                ),
            ));
        }
    }
    for a in CompressionAlgorithm::ALL {
        let (min, max) = CompressionLevelConf::range(a);
        let key = at(&format!("level.{a}"));
        let value = u64::from(c.level.of(a));
        if value < u64::from(min) || value > u64::from(max) {
            return Err(r.invalid(
                &key,
                format!("a {a} level is {min} to {max}, found {value}"),
            ));
        }
    }
    Ok(())
}

/// `type/subtype` or `type/*` (or `*/*`), each part an RFC 9110 token.
fn is_media_range(t: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    match t.split_once('/') {
        Some(("*", sub)) => sub == "*",
        Some((ty, sub)) => token(ty) && token(sub) && (sub == "*" || !sub.contains('*')),
        None => false,
    }
}

fn validate_rate_limit(
    l: &RateLimitConf,
    path: &str,
    opts: &ValidateOptions,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    if let Some(burst) = l.burst {
        r.range(&at("burst"), u64::from(burst), 1, MAX_BURST, "")?;
    }
    match l.backend {
        RateLimitBackend::Local => {
            if l.redis.is_some() {
                return Err(r.invalid(
                    &at("redis"),
                    "`redis` is only used with `backend: redis` (this limit is `local`)",
                ));
            }
        }
        RateLimitBackend::Redis => {
            if !opts.redis_supported {
                return Err(r.invalid(
                    &at("backend"),
                    "this binary was built without the Redis backend (feature `redis`)",
                ));
            }
            let Some(redis) = &l.redis else {
                return Err(r.invalid(
                    path,
                    "`backend: redis` needs a `redis: { addr: HOST:PORT }` section",
                ));
            };
            let addr_ok = redis.addr.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !addr_ok {
                return Err(r.invalid(
                    &at("redis.addr"),
                    format!(
                        "`{}` is not HOST:PORT (like `127.0.0.1:6379`)",
                        redis.addr.escape_debug()
                    ),
                ));
            }
            r.range(
                &at("redis.timeout_ms"),
                redis.timeout_ms,
                1,
                60_000,
                " (one minute)",
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_media_range;

    #[test]
    fn media_ranges() {
        for ok in ["text/*", "application/json", "image/svg+xml", "*/*"] {
            assert!(is_media_range(ok), "{ok}");
        }
        for bad in [
            "text",
            "text/",
            "/json",
            "*/json",
            "text/ht*ml",
            "te xt/html",
            "",
        ] {
            assert!(!is_media_range(bad), "{bad}");
        }
    }
}

//! Semantic rules of upstreams and their peers.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::discovery::{DiscoveryConf, DiscoveryType, DnsRecordType};
use crate::error::ConfigError;
use crate::locate::{join_index, join_key};
use crate::server::ValidateOptions;
use crate::upstream::{
    HealthCheckConf, HealthCheckType, LbAlgorithm, RetryConf, RetryOnConf, UpstreamConf,
};
use crate::validate::{Reporter, MAX_MILLISECONDS};

/// Most consecutive results a health-check threshold may ask for.
const MAX_THRESHOLD: u64 = 1_000;

/// Validates the upstream written at `path` (`services[i].upstreams.NAME`).
pub(crate) fn validate_upstream(
    upstream: &UpstreamConf,
    path: &str,
    opts: &ValidateOptions,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    if let Some(discovery) = &upstream.discovery {
        if !opts.lb_supported {
            return Err(r.lb_unsupported(&at("discovery")));
        }
        if !upstream.peers.is_empty() {
            return Err(r.invalid(
                &at("discovery"),
                format!(
                    "an upstream takes its peers from `peers` or from `discovery`, not both (`peers` is at {}{})",
                    at("peers"),
                    r.line_note(&at("peers"))
                ),
            ));
        }
        validate_discovery(discovery, &at("discovery"), r)?;
    } else if upstream.peers.is_empty() {
        return Err(r.invalid(
            &at("peers"),
            "an upstream needs at least one peer, like `peers: [\"127.0.0.1:9000\"]`, or a `discovery` section",
        ));
    }
    let mut first_by_addr: HashMap<&str, usize> = HashMap::new();
    for (j, peer) in upstream.peers.iter().enumerate() {
        let peer_path = join_index(&at("peers"), j);
        let addr_path = join_key(&peer_path, "addr");
        // A peer written as a plain string has no `addr` node; point at the string then.
        let addr_path = if r.is_written(&addr_path) {
            addr_path
        } else {
            peer_path.clone()
        };
        if let Err(why) = check_peer_addr(&peer.addr) {
            return Err(r.invalid(
                &addr_path,
                format!("invalid peer address `{}`: {why}", peer.addr.escape_debug()),
            ));
        }
        if peer.weight == 0 {
            return Err(r.invalid(
                &join_key(&peer_path, "weight"),
                "must be greater than 0, found 0",
            ));
        }
        if let Some(&first) = first_by_addr.get(peer.addr.as_str()) {
            let first_path = join_index(&at("peers"), first);
            return Err(r.invalid(
                &addr_path,
                format!(
                    "peer `{}` is listed twice (first at {first_path}{}); use `weight` to give it more traffic",
                    peer.addr,
                    r.line_note(&first_path)
                ),
            ));
        }
        first_by_addr.insert(&peer.addr, j);
    }
    if !opts.lb_supported {
        if upstream.lb != LbAlgorithm::RoundRobin {
            return Err(r.lb_unsupported(&at("lb")));
        }
        if upstream.health_check.is_some() {
            return Err(r.lb_unsupported(&at("health_check")));
        }
    }
    if let Some(check) = &upstream.health_check {
        validate_health_check(check, &at("health_check"), r)?;
    }
    if let Some(tls) = &upstream.tls {
        crate::validate_tls::validate_upstream_tls(tls, &at("tls"), opts, r)?;
    }
    if let Some(retry) = &upstream.retry {
        validate_retry(retry, &at("retry"), r)?;
    }
    for (key, value) in [
        ("connect_timeout_ms", upstream.connect_timeout_ms),
        ("read_timeout_ms", upstream.read_timeout_ms),
        ("write_timeout_ms", upstream.write_timeout_ms),
        ("idle_timeout_ms", upstream.idle_timeout_ms),
    ] {
        r.timeout_ms(&at(key), value)?;
    }
    Ok(())
}

/// Validates a `retry` section written at `path`.
fn validate_retry(retry: &RetryConf, path: &str, r: &Reporter<'_>) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    for (i, on) in retry.on.iter().enumerate() {
        if let RetryOnConf::Status(status) = on {
            if !(400..=599).contains(status) {
                return Err(r.invalid(
                    &join_index(&at("on"), i),
                    format!("status `{status}`: only 400 to 599 can be retried"),
                ));
            }
        }
    }
    r.range(
        &at("retries"),
        u64::from(retry.retries),
        0,
        u64::from(RetryConf::MAX_RETRIES),
        "",
    )?;
    if let Some(ms) = retry.per_try_timeout_ms {
        r.timeout_ms(&at("per_try_timeout_ms"), ms)?;
    }
    Ok(())
}

/// Validates a `health_check` section written at `path`.
fn validate_health_check(
    check: &HealthCheckConf,
    path: &str,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    r.range(
        &at("interval_ms"),
        check.interval_ms,
        10,
        MAX_MILLISECONDS,
        " (one day)",
    )?;
    if let Some(timeout) = check.timeout {
        r.timeout_ms(&at("timeout_ms"), timeout)?;
    }
    r.range(
        &at("healthy_threshold"),
        u64::from(check.healthy_threshold),
        1,
        MAX_THRESHOLD,
        "",
    )?;
    r.range(
        &at("unhealthy_threshold"),
        u64::from(check.unhealthy_threshold),
        1,
        MAX_THRESHOLD,
        "",
    )?;
    if check.kind == HealthCheckType::Tcp {
        let set = [
            ("path", r.is_written(&at("path"))),
            ("expected_status", check.expected_status.is_some()),
            ("host", check.host.is_some()),
        ];
        if let Some((key, _)) = set.iter().find(|(_, is_set)| *is_set) {
            return Err(r.invalid(
                &at(key),
                format!("`{key}` is for `type: http` checks; this one is `type: tcp`"),
            ));
        }
        return Ok(());
    }
    if !check.path.starts_with('/') {
        return Err(r.invalid(
            &at("path"),
            format!("must start with `/`, found `{}`", check.path.escape_debug()),
        ));
    }
    if let Some(range) = check.expected_status {
        if !(100..=599).contains(&range.min) || !(100..=599).contains(&range.max) {
            return Err(r.invalid(
                &at("expected_status"),
                format!("`{range}`: statuses go from 100 to 599"),
            ));
        }
        if range.min > range.max {
            return Err(r.invalid(
                &at("expected_status"),
                format!("`{range}`: the range's low end is above its high end"),
            ));
        }
    }
    if let Some(host) = &check.host {
        let valid = !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
        if !valid {
            return Err(r.invalid(
                &at("host"),
                format!(
                    "`{}` is not a host name (with an optional `:PORT`)",
                    host.escape_debug()
                ),
            ));
        }
    }
    Ok(())
}

/// Validates a `discovery` section written at `path`.
fn validate_discovery(d: &DiscoveryConf, path: &str, r: &Reporter<'_>) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    let (kind, other_keys) = match d.kind {
        DiscoveryType::File => ("file", DiscoveryConf::DNS_ONLY),
        DiscoveryType::Dns => ("dns", DiscoveryConf::FILE_ONLY),
    };
    if let Some(key) = d.set_keys().into_iter().find(|k| other_keys.contains(k)) {
        let owner = if kind == "file" { "dns" } else { "file" };
        return Err(r.invalid(
            &at(key),
            format!("`{key}` is for `type: {owner}` discovery; this one is `type: {kind}`"),
        ));
    }
    match d.kind {
        DiscoveryType::File => {
            let Some(file) = &d.path else {
                return Err(r.invalid(
                    path,
                    "`type: file` needs `path`, the file that lists the peers",
                ));
            };
            r.readable_file(&at("path"), "peer list", file)?;
            r.range(
                &at("interval_ms"),
                d.interval_ms(),
                10,
                MAX_MILLISECONDS,
                " (one day)",
            )?;
        }
        DiscoveryType::Dns => {
            let Some(name) = &d.name else {
                return Err(r.invalid(path, "`type: dns` needs `name`, the name to resolve"));
            };
            if let Err(why) = check_hostname(name) {
                return Err(r.invalid(&at("name"), why));
            }
            match (d.record(), d.port) {
                (DnsRecordType::Srv, Some(_)) => {
                    return Err(r.invalid(
                        &at("port"),
                        "`record: srv` takes each peer's port from its SRV record; remove `port`",
                    ))
                }
                (DnsRecordType::Srv, None) => {}
                (_, None) => {
                    return Err(r.invalid(
                        path,
                        "`type: dns` with address records needs `port`, the peers' port",
                    ))
                }
                (_, Some(0)) => {
                    return Err(r.invalid(&at("port"), "port 0 is not a valid destination port"))
                }
                (_, Some(_)) => {}
            }
            if let Err(why) = d.resolver_addr() {
                return Err(r.invalid(&at("resolver"), why));
            }
            r.range(
                &at("refresh_min_ms"),
                d.refresh_min_ms(),
                10,
                MAX_MILLISECONDS,
                " (one day)",
            )?;
            r.range(
                &at("refresh_max_ms"),
                d.refresh_max_ms(),
                10,
                MAX_MILLISECONDS,
                " (one day)",
            )?;
            if d.refresh_max_ms() < d.refresh_min_ms() {
                let key = if d.refresh_max_ms.is_some() {
                    "refresh_max_ms"
                } else {
                    "refresh_min_ms"
                };
                return Err(r.invalid(
                    &at(key),
                    format!(
                        "refresh_max_ms ({}) is below refresh_min_ms ({})",
                        d.refresh_max_ms(),
                        d.refresh_min_ms()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks a peer address: `IP:PORT`, `[IPv6]:PORT` or `HOSTNAME:PORT`, port 1 to 65535.
pub fn check_peer_addr(addr: &str) -> Result<(), String> {
    if let Ok(socket) = addr.parse::<SocketAddr>() {
        if socket.port() == 0 {
            return Err("port 0 is not a valid destination port".to_string());
        }
        return Ok(());
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err("missing `:PORT` (write `host:port`)".to_string());
    };
    match port.parse::<u16>() {
        Ok(0) => return Err("port 0 is not a valid destination port".to_string()),
        Ok(_) => {}
        Err(_) => {
            return Err(format!(
                "`{}` is not a port (1 to 65535)",
                port.escape_debug()
            ))
        }
    }
    if host.starts_with('[') || host.contains(':') {
        return Err("IPv6 addresses are written in brackets, like `[::1]:8080`".to_string());
    }
    check_hostname(host)
}

/// Checks a DNS host name: dot-separated labels of letters, digits, `-` and `_`.
fn check_hostname(host: &str) -> Result<(), String> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return Err("the host is empty".to_string());
    }
    if name.len() > 253 {
        return Err("the host name is longer than 253 characters".to_string());
    }
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(format!(
                "`{}` is not a valid host name",
                host.escape_debug()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses() {
        for ok in [
            "127.0.0.1:80",
            "[::1]:443",
            "api.example.com:8080",
            "localhost:1",
            "svc_a.internal.:9000",
        ] {
            assert_eq!(check_peer_addr(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("127.0.0.1", "missing `:PORT`"),
            ("example.com", "missing `:PORT`"),
            ("example.com:0", "port 0"),
            ("example.com:70000", "is not a port"),
            ("example.com:http", "is not a port"),
            ("::1:80", "brackets"),
            (":80", "host is empty"),
            ("bad host:80", "not a valid host name"),
            ("-a.com:80", "not a valid host name"),
            ("a..b:80", "not a valid host name"),
            ("1.2.3.4:0", "port 0"),
        ] {
            let err = check_peer_addr(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}

//! The request policy of a service and its routes, built from the YAML with the
//! pingora-proxy modules: what the router applies at each phase.

use std::time::Duration;

use http::header::HeaderName;
use http::Method;
use pingora_config::{HeaderRulesConf, IpNet, RouteConf, RouteMatch, ServiceConf};
use pingora_proxy::modules::{
    AccessList, BodyLimit, Expander, HeaderMatch, HeaderRules, PathRewrite, Redirect, Regex,
    RequestIds, RouteMatcher, TrustedProxies,
};

use crate::error::BinError;

/// What a service applies to every request, whatever its route.
#[derive(Debug, Default)]
pub struct ServicePolicy {
    /// Whose `X-Forwarded-For` and request ids are believed.
    pub trusted: TrustedProxies,
    /// Request ids, when configured.
    pub request_ids: Option<RequestIds>,
}

/// The upstream timeouts a route overrides.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutOverrides {
    /// Replaces the upstream's connect timeout.
    pub connect: Option<Duration>,
    /// Replaces the upstream's read timeout.
    pub read: Option<Duration>,
    /// Replaces the upstream's write timeout.
    pub write: Option<Duration>,
}

/// One route's policy, with the service's access list and body limit already folded in
/// (a route-level one replaces the service's).
#[derive(Debug, Default)]
pub struct RoutePolicy {
    /// Who may use the route (403 otherwise).
    pub access: Option<AccessList>,
    /// The largest request body (413 beyond).
    pub body_limit: Option<BodyLimit>,
    /// The path rewrite towards the upstream.
    pub rewrite: Option<PathRewrite>,
    /// Edits of the request headers sent upstream.
    pub request_headers: Option<HeaderRules>,
    /// Edits of every response of the route.
    pub response_headers: Option<HeaderRules>,
    /// Timeouts overriding the upstream's.
    pub timeouts: Option<TimeoutOverrides>,
    /// Whether something renders `$1`..`$9` of `match.path_regex`.
    pub needs_captures: bool,
    /// Compression and rate limit (the route's, else the service's).
    pub limits: crate::limits::Limits,
}

/// The service-wide policy of `service`.
pub fn service_policy(service: &ServiceConf, at: &str) -> Result<ServicePolicy, BinError> {
    let trusted = TrustedProxies::new(networks(
        &service.trusted_proxies,
        &format!("{at}.trusted_proxies"),
    )?);
    let request_ids = match &service.request_id {
        Some(conf) => Some(RequestIds::new(
            header_name(&conf.header, &format!("{at}.request_id.header"))?,
            trusted.clone(),
        )),
        None => None,
    };
    Ok(ServicePolicy {
        trusted,
        request_ids,
    })
}

/// The matcher of a route's `match` (every request without one).
pub fn route_matcher(m: Option<&RouteMatch>, at: &str) -> Result<RouteMatcher, BinError> {
    let mut out = RouteMatcher::any();
    let Some(m) = m else {
        return Ok(out);
    };
    if let Some(host) = &m.host {
        out = out.host(host);
    }
    if let Some(path) = &m.path {
        out = out.path(path);
    }
    if let Some(prefix) = &m.path_prefix {
        out = out.path_prefix(prefix);
    }
    if let Some(re) = &m.path_regex {
        out = out.path_regex(regex(re, &format!("{at}.path_regex"))?);
    }
    if let Some(methods) = &m.methods {
        let mut parsed = Vec::with_capacity(methods.len());
        for name in methods {
            parsed.push(
                Method::from_bytes(name.as_bytes())
                    .map_err(|e| policy_error(&format!("{at}.methods"), e))?,
            );
        }
        out = out.methods(parsed);
    }
    for (name, value) in m.headers.iter() {
        let key = format!("{at}.headers.{name}");
        let matcher = HeaderMatch::parse(value).map_err(|e| policy_error(&key, e))?;
        out = out.header(header_name(name, &key)?, matcher);
    }
    for (name, value) in m.query.iter() {
        out = out.query(name, value);
    }
    Ok(out)
}

/// The redirect of a route, if it has one.
pub fn route_redirect(route: &RouteConf, at: &str) -> Result<Option<Redirect>, BinError> {
    let Some(conf) = &route.redirect else {
        return Ok(None);
    };
    let key = format!("{at}.redirect");
    let status = http::StatusCode::from_u16(conf.status).map_err(|e| policy_error(&key, e))?;
    let location = expander(&conf.location, &format!("{key}.location"))?;
    Redirect::new(status, location)
        .map(Some)
        .map_err(|e| policy_error(&key, e))
}

/// The policy of `route` in `service`.
pub fn route_policy(
    service: &ServiceConf,
    route: &RouteConf,
    limits: crate::limits::Limits,
    at: &str,
) -> Result<RoutePolicy, BinError> {
    let access = match route.access.as_ref().or(service.access.as_ref()) {
        Some(conf) => Some(
            AccessList::new(
                networks(&conf.allow, &format!("{at}.access.allow"))?,
                networks(&conf.deny, &format!("{at}.access.deny"))?,
            )
            .require_client_cert(conf.client_cert.is_some()),
        ),
        None => None,
    };
    let body_limit = route
        .max_request_body_bytes
        .or(service.max_request_body_bytes)
        .map(BodyLimit::new);
    let rewrite = match &route.rewrite {
        None => None,
        Some(conf) => {
            let key = format!("{at}.rewrite");
            if let Some(prefix) = &conf.strip_prefix {
                Some(PathRewrite::StripPrefix(prefix.as_str().into()))
            } else if let Some(r) = &conf.replace_prefix {
                Some(PathRewrite::ReplacePrefix {
                    from: r.from.as_str().into(),
                    to: r.to.as_str().into(),
                })
            } else {
                match (&conf.regex, &conf.replace) {
                    (Some(re), Some(replace)) => Some(PathRewrite::Regex {
                        regex: regex(re, &format!("{key}.regex"))?,
                        replace: expander(replace, &format!("{key}.replace"))?,
                    }),
                    _ => None,
                }
            }
        }
    };
    let request_headers = header_rules(
        route.request_headers.as_ref(),
        &format!("{at}.request_headers"),
    )?;
    let response_headers = header_rules(
        route.response_headers.as_ref(),
        &format!("{at}.response_headers"),
    )?;
    let timeouts = route.timeouts.map(|t| TimeoutOverrides {
        connect: t.connect_ms.map(Duration::from_millis),
        read: t.read_ms.map(Duration::from_millis),
        write: t.write_ms.map(Duration::from_millis),
    });
    let redirect_captures = route_redirect(route, at)?.is_some_and(|r| r.uses_captures());
    let needs_captures = redirect_captures
        || request_headers.as_ref().is_some_and(|r| r.uses_captures())
        || response_headers.as_ref().is_some_and(|r| r.uses_captures());
    Ok(RoutePolicy {
        access,
        body_limit,
        rewrite,
        request_headers,
        response_headers,
        timeouts,
        needs_captures,
        limits,
    })
}

fn header_rules(conf: Option<&HeaderRulesConf>, at: &str) -> Result<Option<HeaderRules>, BinError> {
    let Some(conf) = conf.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let mut rules = HeaderRules::new();
    for name in &conf.remove {
        rules = rules.remove(header_name(name, &format!("{at}.remove"))?);
    }
    for (name, value) in conf.set.iter() {
        let key = format!("{at}.set.{name}");
        rules = rules.set(header_name(name, &key)?, expander(value, &key)?);
    }
    for (name, value) in conf.add.iter() {
        let key = format!("{at}.add.{name}");
        rules = rules.add(header_name(name, &key)?, expander(value, &key)?);
    }
    Ok(Some(rules))
}

/// The networks of `list` (`at`: its key path, for errors).
pub fn networks(list: &[String], at: &str) -> Result<Vec<IpNet>, BinError> {
    list.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .map_err(|e| policy_error(at, e.message.clone()))
        })
        .collect()
}

fn header_name(name: &str, at: &str) -> Result<HeaderName, BinError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|e| policy_error(at, e))
}

fn regex(re: &str, at: &str) -> Result<Regex, BinError> {
    Regex::new(re).map_err(|e| policy_error(at, e))
}

fn expander(text: &str, at: &str) -> Result<Expander, BinError> {
    Expander::parse(text).map_err(|e| policy_error(at, e))
}

fn policy_error(at: &str, e: impl std::fmt::Display) -> BinError {
    BinError::Policy {
        key: at.to_string(),
        message: e.to_string(),
    }
}

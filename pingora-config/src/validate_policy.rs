//! Semantic rules of the request policy keys: matches, rewrites, redirects, header
//! edits, timeouts, body limits, access lists, trusted proxies and request ids.

use crate::error::ConfigError;
use crate::locate::{join_index, join_key};
use crate::policy::{AccessConf, HeaderRulesConf, RewriteConf, StringMap};
use crate::service::{IpNet, RouteConf, RouteMatch, ServiceConf};
use crate::template::{Template, Var};
use crate::validate::{Reporter, MAX_MILLISECONDS};

/// Headers that frame a message: the proxy sets them, a header rule may not.
const FRAMING_HEADERS: &[&str] = &["content-length", "transfer-encoding", "connection"];

/// The service-level policy keys.
pub(crate) fn validate_service_policy(
    service: &ServiceConf,
    path: &str,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    networks(&service.trusted_proxies, &at("trusted_proxies"), r)?;
    if let Some(request_id) = &service.request_id {
        let key = at("request_id.header");
        header_name(&request_id.header, &key, r)?;
        if FRAMING_HEADERS.contains(&request_id.header.to_ascii_lowercase().as_str()) {
            return Err(r.invalid(&key, "must not be a framing header"));
        }
    }
    if let Some(max) = service.max_request_body_bytes {
        body_limit(max, &at("max_request_body_bytes"), r)?;
    }
    if let Some(access) = &service.access {
        validate_access(access, &at("access"), r)?;
    }
    client_cert_rules(service, path, r)?;
    if let Some(max) = service.max_connections_per_client {
        r.range(
            &at("max_connections_per_client"),
            u64::from(max),
            1,
            1_000_000,
            "",
        )?;
    }
    Ok(())
}

/// `access.client_cert: required` needs a listener that asks for client certificates:
/// without one, every request would be refused.
fn client_cert_rules(
    service: &ServiceConf,
    path: &str,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let asks = service.listeners.iter().any(|l| {
        l.tls.as_ref().is_some_and(|t| {
            t.client_auth.is_some() || t.certs.iter().any(|c| c.client_auth.is_some())
        })
    });
    if asks {
        return Ok(());
    }
    let mut rules = vec![(join_key(path, "access"), service.access.as_ref())];
    for (k, route) in service.routes.iter().enumerate() {
        let at = join_key(&join_index(&join_key(path, "routes"), k), "access");
        rules.push((at, route.access.as_ref()));
    }
    for (at, access) in rules {
        if access.is_some_and(|a| a.client_cert.is_some()) {
            return Err(r.invalid(
                &join_key(&at, "client_cert"),
                "no listener of this service asks for client certificates (`tls.client_auth`): \
                 every request would be refused",
            ));
        }
    }
    Ok(())
}

/// The policy keys of one route (the action's exclusivity is checked by the caller).
pub(crate) fn validate_route_policy(
    route: &RouteConf,
    path: &str,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    // Groups of `match.path_regex`, for `$1`..`$9` outside `rewrite.replace`.
    let mut path_groups = 0;
    if let Some(matcher) = &route.matcher {
        path_groups = validate_match(matcher, &at("match"), r)?;
    }
    if let Some(redirect) = &route.redirect {
        if !crate::policy::RedirectConf::STATUSES.contains(&redirect.status) {
            return Err(r.invalid(
                &at("redirect.status"),
                format!(
                    "a redirect status is 301, 302, 303, 307 or 308, found {}",
                    redirect.status
                ),
            ));
        }
        let key = at("redirect.location");
        if redirect.location.is_empty() {
            return Err(r.invalid(&key, "must not be empty"));
        }
        template(&redirect.location, &key, path_groups, r)?;
    }
    if let Some(rewrite) = &route.rewrite {
        validate_rewrite(rewrite, &at("rewrite"), r)?;
    }
    for (key, rules) in [
        ("request_headers", &route.request_headers),
        ("response_headers", &route.response_headers),
    ] {
        if let Some(rules) = rules {
            validate_header_rules(rules, &at(key), path_groups, r)?;
        }
    }
    if let Some(max) = route.max_request_body_bytes {
        body_limit(max, &at("max_request_body_bytes"), r)?;
    }
    if let Some(access) = &route.access {
        validate_access(access, &at("access"), r)?;
    }
    if let Some(timeouts) = &route.timeouts {
        for (key, value) in [
            ("connect_ms", timeouts.connect_ms),
            ("read_ms", timeouts.read_ms),
            ("write_ms", timeouts.write_ms),
        ] {
            if let Some(value) = value {
                r.range(
                    &at(&format!("timeouts.{key}")),
                    value,
                    1,
                    MAX_MILLISECONDS,
                    " (one day)",
                )?;
            }
        }
    }
    Ok(())
}

/// Checks a route's `match`; returns the number of capture groups of `path_regex`.
fn validate_match(m: &RouteMatch, path: &str, r: &Reporter<'_>) -> Result<usize, ConfigError> {
    let at = |key: &str| join_key(path, key);
    if let Some(host) = &m.host {
        let name = host.strip_prefix("*.").unwrap_or(host);
        let bad = name.is_empty()
            || name.starts_with('.')
            || name.contains('*')
            || name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b == b'/' || b.is_ascii_control());
        if bad {
            return Err(r.invalid(
                &at("host"),
                format!(
                    "`{}` is not a host name or `*.` followed by one (a wildcard is one leading label)",
                    host.escape_debug()
                ),
            ));
        }
    }
    for key in ["path", "path_prefix"] {
        let value = if key == "path" {
            &m.path
        } else {
            &m.path_prefix
        };
        if let Some(p) = value {
            if !p.starts_with('/') {
                return Err(r.invalid(
                    &at(key),
                    format!("must start with `/`, found `{}`", p.escape_debug()),
                ));
            }
        }
    }
    let mut groups = 0;
    if let Some(re) = &m.path_regex {
        groups = regex(re, &at("path_regex"), r)?;
    }
    if let Some(methods) = &m.methods {
        if methods.is_empty() {
            return Err(r.invalid(&at("methods"), "must list at least one method"));
        }
        for (i, method) in methods.iter().enumerate() {
            if method.is_empty() || !method.bytes().all(is_token_byte) {
                return Err(r.invalid(
                    &join_index(&at("methods"), i),
                    format!("`{}` is not an HTTP method", method.escape_debug()),
                ));
            }
        }
    }
    for (name, value) in m.headers.iter() {
        let key = join_key(&at("headers"), name);
        header_name(name, &key, r)?;
        if let Some(re) = value.strip_prefix('~') {
            regex(re, &key, r)?;
        } else if value.contains(['\r', '\n']) {
            return Err(r.invalid(&key, "must not contain line breaks"));
        }
    }
    for (name, _) in m.query.iter() {
        if name.is_empty() {
            return Err(r.invalid(&at("query"), "a query parameter name must not be empty"));
        }
    }
    Ok(groups)
}

/// Checks a `rewrite`: its `replace` uses the captures of its own `regex`.
fn validate_rewrite(
    rewrite: &RewriteConf,
    path: &str,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    let forms = usize::from(rewrite.strip_prefix.is_some())
        + usize::from(rewrite.replace_prefix.is_some())
        + usize::from(rewrite.regex.is_some() || rewrite.replace.is_some());
    if forms != 1 {
        return Err(r.invalid(
            path,
            "a rewrite is exactly one of `strip_prefix`, `replace_prefix: { from, to }` or `regex` with `replace`",
        ));
    }
    if let Some(prefix) = &rewrite.strip_prefix {
        slash_path(prefix, &at("strip_prefix"), r)?;
    }
    if let Some(replace) = &rewrite.replace_prefix {
        slash_path(&replace.from, &at("replace_prefix.from"), r)?;
        slash_path(&replace.to, &at("replace_prefix.to"), r)?;
    }
    match (&rewrite.regex, &rewrite.replace) {
        (Some(re), Some(replace)) => {
            let groups = regex(re, &at("regex"), r)?;
            template(replace, &at("replace"), groups, r)?;
        }
        (Some(_), None) => return Err(r.invalid(path, "`regex` needs `replace`")),
        (None, Some(_)) => return Err(r.invalid(path, "`replace` needs `regex`")),
        (None, None) => {}
    }
    Ok(())
}

fn validate_header_rules(
    rules: &HeaderRulesConf,
    path: &str,
    groups: usize,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let check = |map: &StringMap, section: &str| -> Result<(), ConfigError> {
        for (name, value) in map.iter() {
            let key = join_key(&join_key(path, section), name);
            editable_header(name, &key, r)?;
            let t = template(value, &key, groups, r)?;
            if let Some(text) = t.as_literal() {
                if !text.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f)) {
                    return Err(r.invalid(&key, "is not a valid header value (control characters)"));
                }
            }
        }
        Ok(())
    };
    check(&rules.set, "set")?;
    check(&rules.add, "add")?;
    for (i, name) in rules.remove.iter().enumerate() {
        editable_header(name, &join_index(&join_key(path, "remove"), i), r)?;
    }
    Ok(())
}

fn validate_access(access: &AccessConf, path: &str, r: &Reporter<'_>) -> Result<(), ConfigError> {
    networks(&access.allow, &join_key(path, "allow"), r)?;
    networks(&access.deny, &join_key(path, "deny"), r)
}

fn networks(list: &[String], path: &str, r: &Reporter<'_>) -> Result<(), ConfigError> {
    for (i, text) in list.iter().enumerate() {
        if let Err(e) = text.parse::<IpNet>() {
            return Err(r.invalid(&join_index(path, i), e.message.clone()));
        }
    }
    Ok(())
}

fn body_limit(max: u64, path: &str, r: &Reporter<'_>) -> Result<(), ConfigError> {
    if max == 0 {
        return Err(r.invalid(
            path,
            "must be greater than 0 (leave the key out for no limit)",
        ));
    }
    Ok(())
}

fn slash_path(p: &str, path: &str, r: &Reporter<'_>) -> Result<(), ConfigError> {
    if !p.starts_with('/') {
        return Err(r.invalid(
            path,
            format!("must start with `/`, found `{}`", p.escape_debug()),
        ));
    }
    Ok(())
}

/// Compiles `re`; returns its number of capture groups.
fn regex(re: &str, path: &str, r: &Reporter<'_>) -> Result<usize, ConfigError> {
    match regex::Regex::new(re) {
        Ok(compiled) => Ok(compiled.captures_len() - 1),
        Err(e) => {
            // The syntax error is several lines (pattern, pointer, error): keep the error.
            let text = e.to_string();
            let why = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or(&text)
                .trim()
                .trim_start_matches("error: ")
                .to_string();
            Err(r.invalid(
                path,
                format!(
                    "the regular expression `{}` does not compile: {why}",
                    re.escape_debug()
                ),
            ))
        }
    }
}

/// Parses a template whose `$1`..`$9` refer to a regex with `groups` capture groups.
fn template(
    text: &str,
    path: &str,
    groups: usize,
    r: &Reporter<'_>,
) -> Result<Template, ConfigError> {
    let t = Template::parse(text).map_err(|e| {
        r.invalid(path, e.message.clone())
            .suggest(e.suggestion.clone())
    })?;
    let max = usize::from(t.max_capture());
    if max > groups {
        let why = if groups == 0 {
            "there is no regular expression with captures here (`match.path_regex`, or `rewrite.regex` for `rewrite.replace`)".to_string()
        } else {
            format!("the regular expression has {groups} capture group(s)")
        };
        return Err(r.invalid(path, format!("`${max}` is not defined: {why}")));
    }
    if t.vars()
        .any(|v| matches!(v, Var::Header(h) if h.is_empty()))
    {
        return Err(r.invalid(path, "`$http_` needs a header name"));
    }
    Ok(t)
}

fn editable_header(name: &str, path: &str, r: &Reporter<'_>) -> Result<(), ConfigError> {
    header_name(name, path, r)?;
    if FRAMING_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(r.invalid(
            path,
            format!("`{name}` frames the message: the proxy sets it, a header rule may not"),
        ));
    }
    Ok(())
}

fn header_name(name: &str, path: &str, r: &Reporter<'_>) -> Result<(), ConfigError> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(r.invalid(
            path,
            format!("`{}` is not a valid header name", name.escape_debug()),
        ));
    }
    Ok(())
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

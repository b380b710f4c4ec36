//! Semantic rules of the schema: everything the types alone do not enforce.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::error::{describe_io_error, ConfigError, ConfigErrorKind};
use crate::listen_addr::{ListenAddr, MAX_UNIX_PATH_BYTES};
use crate::locate::{join_index, join_key, PositionIndex};
use crate::server::{ServerConf, ValidateOptions};
use crate::service::{ListenerConf, RouteConf, ServiceConf};
use crate::suggest;
use crate::validate_upstream::validate_upstream;

/// One day in seconds: the largest accepted value of any `*_seconds` duration.
pub const MAX_SECONDS: u64 = 86_400;
/// One day in milliseconds: the largest accepted value of any `*_ms` duration.
pub const MAX_MILLISECONDS: u64 = 86_400_000;
/// Largest accepted thread count (`threads`, `services[].threads`, pools).
pub const MAX_THREADS: u64 = 1024;

/// Builds located errors for one configuration source.
pub(crate) struct Reporter<'a> {
    file: &'a str,
    index: Option<&'a PositionIndex>,
}

impl<'a> Reporter<'a> {
    /// A reporter for `file`, positioned with `index` when there is source text.
    pub(crate) fn new(file: &'a str, index: Option<&'a PositionIndex>) -> Self {
        Reporter { file, index }
    }

    /// An error at `path`, positioned at the node (or its closest written ancestor).
    pub(crate) fn error(
        &self,
        kind: ConfigErrorKind,
        path: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::new(self.file, kind, path, message).at(self.index.and_then(|i| i.locate(path)))
    }

    /// An [`ConfigErrorKind::Invalid`] error at `path`.
    pub(crate) fn invalid(&self, path: &str, message: impl Into<String>) -> ConfigError {
        self.error(ConfigErrorKind::Invalid, path, message)
    }

    /// Whether `path` is written in the source (always false without source).
    pub(crate) fn is_written(&self, path: &str) -> bool {
        self.index.is_some_and(|i| i.contains(path))
    }

    /// " (line N)" for the node at `path`, when known.
    pub(crate) fn line_note(&self, path: &str) -> String {
        self.index
            .and_then(|i| i.locate(path))
            .map(|(line, _)| format!(" (line {line})"))
            .unwrap_or_default()
    }

    /// Checks `min <= value <= max` for the key at `path`.
    pub(crate) fn range(
        &self,
        path: &str,
        value: u64,
        min: u64,
        max: u64,
        max_note: &str,
    ) -> Result<(), ConfigError> {
        if value < min {
            let message = if min == 1 {
                format!("must be greater than 0, found {value}")
            } else {
                format!("must be at least {min}, found {value}")
            };
            return Err(self.invalid(path, message));
        }
        if value > max {
            return Err(self.invalid(
                path,
                format!("must be at most {max}{max_note}, found {value}"),
            ));
        }
        Ok(())
    }

    /// A timeout in milliseconds: 1 ms to one day.
    pub(crate) fn timeout_ms(&self, path: &str, value: u64) -> Result<(), ConfigError> {
        self.range(path, value, 1, MAX_MILLISECONDS, " (one day)")
    }

    /// A file the configuration names: it must exist, be a file and be readable.
    pub(crate) fn readable_file(
        &self,
        path: &str,
        what: &str,
        file: &Path,
    ) -> Result<(), ConfigError> {
        if file.as_os_str().is_empty() {
            return Err(self.invalid(path, format!("the {what} path is empty")));
        }
        let opened = std::fs::File::open(file).and_then(|f| f.metadata());
        let failure = match opened {
            Ok(meta) if meta.is_dir() => {
                Some(std::io::Error::from(std::io::ErrorKind::IsADirectory))
            }
            Ok(_) => None,
            Err(err) => Some(err),
        };
        match failure {
            None => Ok(()),
            Some(err) => Err(self
                .error(
                    ConfigErrorKind::File,
                    path,
                    format!(
                        "cannot read {what} `{}`: {}",
                        file.display(),
                        describe_io_error(&err)
                    ),
                )
                .caused_by(err)),
        }
    }

    /// The error for a `tls:` section in a binary without TLS.
    pub(crate) fn lb_unsupported(&self, path: &str) -> ConfigError {
        self.invalid(
            path,
            "this binary was built without load balancing (feature `lb`)",
        )
    }

    pub(crate) fn tls_unsupported(&self, path: &str) -> ConfigError {
        self.invalid(
            path,
            "this binary was built without TLS support (feature `tls`)",
        )
    }
}

/// Validates the whole configuration.
pub(crate) fn validate_server(
    conf: &ServerConf,
    opts: &ValidateOptions,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    if conf.version != 1 {
        return Err(r.invalid(
            "version",
            format!(
                "unsupported version {}, the only version is 1",
                conf.version
            ),
        ));
    }
    r.range("threads", conf.threads as u64, 1, MAX_THREADS, "")?;
    r.range(
        "listener_tasks_per_fd",
        conf.listener_tasks_per_fd as u64,
        1,
        MAX_THREADS,
        "",
    )?;
    non_empty_path(r, "pid_file", &conf.pid_file)?;
    if let Some(error_log) = &conf.error_log {
        non_empty_path(r, "error_log", error_log)?;
    }
    if let Some(access_log) = &conf.access_log.path {
        non_empty_path(r, "access_log.path", access_log)?;
    }
    non_empty_path(r, "upgrade_sock", &conf.upgrade_sock)?;
    let sock_len = conf.upgrade_sock.as_os_str().len();
    if sock_len > MAX_UNIX_PATH_BYTES {
        return Err(r.invalid(
            "upgrade_sock",
            format!("unix socket paths are limited to {MAX_UNIX_PATH_BYTES} bytes, this one has {sock_len}"),
        ));
    }
    for (key, value) in [("user", &conf.user), ("group", &conf.group)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(r.invalid(key, "must not be empty"));
        }
    }
    if let Some(dir) = &conf.working_directory {
        non_empty_path(r, "working_directory", dir)?;
    }
    if let Some(ca_file) = &conf.ca_file {
        r.readable_file("ca_file", "CA file", ca_file)?;
    }
    for (key, value) in [
        ("grace_period_seconds", conf.grace_period_seconds),
        (
            "graceful_shutdown_timeout_seconds",
            conf.graceful_shutdown_timeout_seconds,
        ),
        (
            "blocking_threads_ttl_seconds",
            conf.blocking_threads_ttl_seconds,
        ),
    ] {
        if let Some(value) = value {
            r.range(key, value, 0, MAX_SECONDS, " (one day)")?;
        }
    }
    for (key, value) in [
        (
            "upstream_connect_offload_threadpools",
            conf.upstream_connect_offload_threadpools,
        ),
        (
            "upstream_connect_offload_thread_per_pool",
            conf.upstream_connect_offload_thread_per_pool,
        ),
    ] {
        if let Some(value) = value {
            r.range(key, value as u64, 1, MAX_THREADS, "")?;
        }
    }
    if let Some(value) = conf.max_blocking_threads {
        let path = if r.is_written("tokio.blocking_threads") {
            "tokio.blocking_threads"
        } else {
            "max_blocking_threads"
        };
        r.range(path, value as u64, 1, 65_536, "")?;
    }
    r.range(
        "daemon_ready_timeout_seconds",
        conf.daemon_ready_timeout_seconds,
        1,
        MAX_SECONDS,
        " (one day)",
    )?;
    r.range(
        "daemon_notify_timeout_seconds",
        conf.daemon_notify_timeout_seconds,
        1,
        MAX_SECONDS,
        " (one day)",
    )?;
    for (i, text) in conf.client_bind_to_ipv4.iter().enumerate() {
        if text.parse::<Ipv4Addr>().is_err() {
            return Err(r.invalid(
                &join_index("client_bind_to_ipv4", i),
                format!("`{}` is not an IPv4 address", text.escape_debug()),
            ));
        }
    }
    for (i, text) in conf.client_bind_to_ipv6.iter().enumerate() {
        if text.parse::<Ipv6Addr>().is_err() {
            return Err(r.invalid(
                &join_index("client_bind_to_ipv6", i),
                format!("`{}` is not an IPv6 address", text.escape_debug()),
            ));
        }
    }

    let mut first_by_name: HashMap<&str, usize> = HashMap::new();
    for (i, service) in conf.services.iter().enumerate() {
        let path = join_index("services", i);
        validate_service(service, &path, opts, r)?;
        if let Some(&first) = first_by_name.get(service.name.as_str()) {
            let first_path = join_index("services", first);
            return Err(r.invalid(
                &join_key(&path, "name"),
                format!(
                    "duplicate service name `{}`: {first_path} has it already{}",
                    service.name,
                    r.line_note(&join_key(&first_path, "name"))
                ),
            ));
        }
        first_by_name.insert(&service.name, i);
    }
    check_cache_dir_conflicts(conf, r)?;
    if let Some(token_file) = conf.admin.as_ref().and_then(|a| a.token_file.as_deref()) {
        validate_token_file(r, token_file)?;
    }
    check_listener_conflicts(conf, r)
}

/// `admin.token_file`: readable, and holding one token (surrounding whitespace and a
/// final newline are ignored) of printable ASCII without spaces.
fn validate_token_file(r: &Reporter<'_>, file: &Path) -> Result<(), ConfigError> {
    const KEY: &str = "admin.token_file";
    r.readable_file(KEY, "admin token file", file)?;
    let token = match crate::server::read_token_file(file) {
        Ok(token) => token,
        Err(err) => {
            return Err(r
                .error(
                    ConfigErrorKind::File,
                    KEY,
                    format!(
                        "cannot read admin token file `{}`: {}",
                        file.display(),
                        describe_io_error(&err)
                    ),
                )
                .caused_by(err))
        }
    };
    if token.is_empty() {
        return Err(r.invalid(KEY, format!("`{}` holds no token", file.display())));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(r.invalid(
            KEY,
            format!(
                "the token in `{}` must be one word of printable ASCII (no spaces or control characters)",
                file.display()
            ),
        ));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(r.invalid(
            KEY,
            format!(
                "the token in `{}` has {} bytes, at most {MAX_TOKEN_BYTES} are accepted",
                file.display(),
                token.len()
            ),
        ));
    }
    Ok(())
}

/// Largest accepted admin token.
const MAX_TOKEN_BYTES: usize = 4096;

fn non_empty_path(r: &Reporter<'_>, key: &str, path: &Path) -> Result<(), ConfigError> {
    if path.as_os_str().is_empty() {
        return Err(r.invalid(key, "must not be empty"));
    }
    Ok(())
}

/// No two listeners (of any service, or the admin endpoint) may claim the same socket.
fn check_listener_conflicts(conf: &ServerConf, r: &Reporter<'_>) -> Result<(), ConfigError> {
    let mut seen: Vec<(String, &ListenAddr)> = Vec::new();
    let service_listeners = conf.services.iter().enumerate().flat_map(|(i, s)| {
        s.listeners.iter().enumerate().map(move |(j, l)| {
            (
                join_key(
                    &join_index(&join_key(&join_index("services", i), "listeners"), j),
                    "addr",
                ),
                &l.addr,
            )
        })
    });
    let admin = conf
        .admin
        .iter()
        .map(|a| ("admin.addr".to_string(), &a.addr));
    for (path, addr) in service_listeners.chain(admin) {
        if let Some((first_path, first)) = seen.iter().find(|(_, a)| a.conflicts_with(addr)) {
            let how = if *first == addr {
                "is already used by"
            } else {
                "overlaps"
            };
            return Err(r.invalid(
                &path,
                format!(
                    "listen address `{addr}` {how} `{first}` at {first_path}{}",
                    r.line_note(first_path)
                ),
            ));
        }
        seen.push((path, addr));
    }
    Ok(())
}

fn validate_service(
    service: &ServiceConf,
    path: &str,
    opts: &ValidateOptions,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    if service.name.trim().is_empty() {
        return Err(r.error(
            ConfigErrorKind::Invalid,
            &at("name"),
            "missing required key `name` (a unique name for the service)",
        ));
    }
    if let Some(threads) = service.threads {
        r.range(&at("threads"), threads as u64, 1, MAX_THREADS, "")?;
    }
    if service.listeners.is_empty() {
        return Err(r.invalid(
            &at("listeners"),
            format!(
                "service `{}` has no listeners; add at least one `- addr: IP:PORT`",
                service.name
            ),
        ));
    }
    for (j, listener) in service.listeners.iter().enumerate() {
        validate_listener(listener, &join_index(&at("listeners"), j), opts, r)?;
    }
    if let Some(health_path) = &service.health_path {
        if !health_path.starts_with('/') {
            return Err(r.invalid(
                &at("health_path"),
                format!(
                    "must start with `/`, found `{}`",
                    health_path.escape_debug()
                ),
            ));
        }
    }
    for (name, upstream) in service.upstreams.iter() {
        let upstream_path = join_key(&at("upstreams"), name);
        if name.trim().is_empty() {
            return Err(r.invalid(&upstream_path, "upstream names must not be empty"));
        }
        validate_upstream(upstream, &upstream_path, opts, r)?;
    }
    let mut catch_all: Option<usize> = None;
    for (k, route) in service.routes.iter().enumerate() {
        let route_path = join_index(&at("routes"), k);
        if let Some(first) = catch_all {
            let first_path = join_index(&at("routes"), first);
            return Err(r.invalid(
                &route_path,
                format!(
                    "this route can never match: {first_path}{} has no `match` and takes every request (put catch-all routes last)",
                    r.line_note(&first_path)
                ),
            ));
        }
        validate_route(route, service, &route_path, r)?;
        let matches_all = route.matcher.as_ref().is_none_or(|m| m.is_empty());
        if matches_all {
            catch_all = Some(k);
        }
    }
    if let Some(cache) = &service.cache {
        if cache.max_bytes == 0 {
            return Err(r.invalid(&at("cache.max_bytes"), "must be greater than 0, found 0"));
        }
        if cache.max_object_bytes == 0 {
            return Err(r.invalid(
                &at("cache.max_object_bytes"),
                "must be greater than 0, found 0",
            ));
        }
        if let Some(disk) = &cache.disk {
            validate_cache_disk(disk, &at("cache.disk"), r)?;
        }
        r.timeout_ms(&at("cache.lock_timeout_ms"), cache.lock_timeout_ms)?;
        for (k, net) in cache.purge_allow.iter().enumerate() {
            if let Err(why) = net.parse::<crate::service::IpNet>() {
                return Err(r.invalid(&at(&format!("cache.purge_allow[{k}]")), why.message.clone()));
            }
        }
    }
    crate::validate_policy::validate_service_policy(service, path, r)?;
    crate::validate_limits::validate_service_limits(service, path, opts, r)?;
    for (key, value) in [
        ("client_header_timeout_ms", service.client_header_timeout_ms),
        ("client_body_timeout_ms", service.client_body_timeout_ms),
        ("keepalive_timeout_ms", service.keepalive_timeout_ms),
    ] {
        r.timeout_ms(&at(key), value)?;
    }
    r.range(
        &at("max_request_head_bytes"),
        service.max_request_head_bytes as u64,
        256,
        1_048_576,
        " (1 MiB)",
    )?;
    r.range(
        &at("max_request_headers"),
        service.max_request_headers as u64,
        1,
        4096,
        "",
    )?;
    Ok(())
}

fn validate_listener(
    listener: &ListenerConf,
    path: &str,
    opts: &ValidateOptions,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    r.range(
        &join_key(path, "backlog"),
        u64::from(listener.backlog),
        1,
        65_535,
        "",
    )?;
    if let Some(tls) = &listener.tls {
        crate::validate_tls::validate_listener_tls(tls, &join_key(path, "tls"), opts, r)?;
    }
    if listener.http3 {
        validate_http3(listener, &join_key(path, "http3"), opts, r)?;
    }
    Ok(())
}

/// `http3: true` needs this build's HTTP/3, a TCP listener with `tls`, and no client
/// certificates (QUIC does not ask for them yet, and must not serve around them).
fn validate_http3(
    listener: &ListenerConf,
    at: &str,
    opts: &ValidateOptions,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    if !opts.http3_supported {
        return Err(r.invalid(
            at,
            "this binary was built without HTTP/3 support (feature `http3`)",
        ));
    }
    if matches!(listener.addr, crate::ListenAddr::Unix(_)) {
        return Err(r.invalid(
            at,
            "HTTP/3 runs over UDP: a unix socket listener cannot serve it",
        ));
    }
    let Some(tls) = &listener.tls else {
        return Err(r.invalid(
            at,
            "HTTP/3 needs TLS (QUIC is always encrypted): add a `tls` section to this listener",
        ));
    };
    let client_auth =
        tls.client_auth.is_some() || tls.certs.iter().any(|c| c.client_auth.is_some());
    if client_auth {
        return Err(r.invalid(
            at,
            "HTTP/3 does not ask for client certificates yet: a listener with `client_auth` cannot serve it",
        ));
    }
    Ok(())
}

fn validate_route(
    route: &RouteConf,
    service: &ServiceConf,
    path: &str,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    crate::validate_policy::validate_route_policy(route, path, r)?;
    let actions = usize::from(route.upstream.is_some())
        + usize::from(route.respond.is_some())
        + usize::from(route.redirect.is_some());
    if actions > 1 {
        return Err(r.invalid(
            path,
            "a route takes exactly one of `upstream`, `respond` and `redirect`, this one has more",
        ));
    }
    if route.redirect.is_some() {
        return Ok(());
    }
    match (&route.upstream, &route.respond) {
        // Both: refused above.
        (Some(_), Some(_)) => {}
        (None, None) => {
            return Err(r.invalid(
                path,
                "a route needs `upstream: NAME`, `respond: {...}` or `redirect: {...}`, this one has none",
            ));
        }
        (Some(name), None) => {
            if service.upstream(name).is_none() {
                let defined: Vec<&str> = service.upstreams.names().collect();
                let listing = if defined.is_empty() {
                    format!("service `{}` defines no upstreams", service.name)
                } else {
                    format!("defined upstreams: {}", defined.join(", "))
                };
                return Err(r
                    .invalid(
                        &at("upstream"),
                        format!("unknown upstream `{}`; {listing}", name.escape_debug()),
                    )
                    .suggest(suggest::closest(name, defined)));
            }
        }
        (None, Some(respond)) => {
            if !(200..=599).contains(&respond.status) {
                return Err(r.invalid(
                    &at("respond.status"),
                    format!("status must be from 200 to 599, found {}", respond.status),
                ));
            }
            if respond.content_type.contains(['\r', '\n']) {
                return Err(r.invalid(&at("respond.content_type"), "must not contain line breaks"));
            }
        }
    }
    if route.cache && service.cache.is_none() {
        return Err(r.invalid(
            &at("cache"),
            format!(
                "`cache: true` needs a `cache:` section in service `{}`",
                service.name
            ),
        ));
    }
    Ok(())
}

/// Validates a cache's `disk` section written at `path`: a non-empty path that is a
/// directory if it exists (it is created otherwise), and a budget of at least 1 MiB.
fn validate_cache_disk(
    disk: &crate::service::CacheDiskConf,
    path: &str,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    if disk.path.as_os_str().is_empty() {
        let key = if r.is_written(&at("path")) {
            at("path")
        } else {
            path.to_string()
        };
        return Err(r.invalid(&key, "the cache directory `path` is required"));
    }
    if disk.path.exists() && !disk.path.is_dir() {
        return Err(r.invalid(
            &at("path"),
            format!("{} exists and is not a directory", disk.path.display()),
        ));
    }
    r.range(&at("max_bytes"), disk.max_bytes, 1 << 20, u64::MAX, "")?;
    if let Err(why) = cache_dir_usable(&disk.path) {
        return Err(r.invalid(&at("path"), why));
    }
    Ok(())
}

/// Whether the cache directory `dir` can be used by this process: it exists and may be
/// read, written and searched, or its nearest existing ancestor is a directory where
/// it may be created.
fn cache_dir_usable(dir: &Path) -> Result<(), String> {
    use nix::unistd::{access, AccessFlags};
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
            _ => return Ok(()),
        }
    }
    if !existing.is_dir() {
        return Err(format!(
            "cannot create the cache directory {}: {} is not a directory",
            dir.display(),
            existing.display()
        ));
    }
    let flags = if existing == dir {
        AccessFlags::R_OK | AccessFlags::W_OK | AccessFlags::X_OK
    } else {
        AccessFlags::W_OK | AccessFlags::X_OK
    };
    access(existing, flags).map_err(|errno| {
        let what = if existing == dir {
            "cannot use the cache directory".to_string()
        } else {
            format!("cannot create the cache directory {} in", dir.display())
        };
        format!(
            "{what} {}: {}",
            existing.display(),
            describe_io_error(&std::io::Error::from(errno))
        )
    })
}

/// No two services may share a cache directory: each would evict and index the other's
/// files as its own.
fn check_cache_dir_conflicts(conf: &ServerConf, r: &Reporter<'_>) -> Result<(), ConfigError> {
    let mut seen: Vec<(String, std::path::PathBuf)> = Vec::new();
    for (i, service) in conf.services.iter().enumerate() {
        let Some(disk) = service.cache.as_ref().and_then(|c| c.disk.as_ref()) else {
            continue;
        };
        let key = join_key(&join_index("services", i), "cache.disk.path");
        // The same directory however it is written: `a/./b/` is `a/b`; an existing
        // one also through symbolic links.
        let same_dir =
            std::fs::canonicalize(&disk.path).unwrap_or_else(|_| disk.path.components().collect());
        if let Some((first, _)) = seen.iter().find(|(_, d)| *d == same_dir) {
            return Err(r.invalid(
                &key,
                format!(
                    "cache directory {} is already used by {first}{}: each service needs its own",
                    disk.path.display(),
                    r.line_note(first)
                ),
            ));
        }
        seen.push((key, same_dir));
    }
    Ok(())
}

//! Turns the YAML configuration into a server: services, listeners, routes, upstreams.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use pingora_config::{
    ProxyProtocolMode, SendProxyProtocol, ServerConf, ServiceConf, ValidateOptions,
};
use pingora_core::connector::{BindAddrs, Connector, PeerOptions};
use pingora_core::listener::ListenOptions;
use pingora_core::protocols::http::v1::server::ServerSessionOptions;
use pingora_core::protocols::http::v1::HeadLimits;
use pingora_core::protocols::http::v2::H2ServerOptions;
use pingora_core::protocols::proxy_protocol::{
    ProxyProtocolOptions, ProxyProtocolRejects, ProxyVersion,
};
use pingora_core::server::Server;
use pingora_core::service::ListeningService;
use pingora_proxy::modules::{PerClientConnections, RouteTable};
use pingora_proxy::{HttpProxy, ProxyOptions};

use crate::access_log::ServiceAccessLog;
use crate::admin::{AdminService, AdminSources, ServiceSource};
use crate::error::BinError;
use crate::lifecycle::BinHooks;
use crate::metrics::Metrics;
use crate::router::{Action, Route, RouterProxy, ServiceRoutes};

/// The app of a YAML service: the router's proxy behind the per-client connection limit.
pub type ServiceApp = PerClientConnections<HttpProxy<RouterProxy>>;
use crate::upstreams::{HealthChecker, Upstream};

/// The HTTP/3 limits of a service's listeners: its client timeouts and head limit, the
/// library's defaults for the rest.
#[cfg(feature = "http3")]
fn h3_options(service: &ServiceConf) -> pingora_core::protocols::http::v3::H3ServerOptions {
    use pingora_core::protocols::http::v3::H3ServerOptions;
    H3ServerOptions {
        idle_timeout: Duration::from_millis(service.keepalive_timeout_ms.max(1000)),
        header_timeout: Duration::from_millis(service.client_header_timeout_ms),
        body_timeout: Duration::from_millis(service.client_body_timeout_ms),
        max_header_list_size: service.max_request_head_bytes as u64,
        ..H3ServerOptions::default()
    }
}

/// What this build can do, for config validation.
pub fn validate_options() -> ValidateOptions {
    // Without the `tls` feature, configs asking for TLS fail validation saying so.
    ValidateOptions {
        tls_supported: cfg!(feature = "tls"),
        lb_supported: cfg!(feature = "lb"),
        compression_supported: cfg!(feature = "compression"),
        redis_supported: cfg!(feature = "redis"),
        http3_supported: cfg!(feature = "http3"),
    }
}

/// Adds one proxy service per configured service, the admin endpoint, and the
/// background work of the upstreams (health checks, discovery) to `server`; the
/// services' caches are handed to `hooks`, which open them once the process is set up.
pub fn add_services(
    server: &mut Server,
    conf: &ServerConf,
    hooks: &mut BinHooks,
) -> Result<(), BinError> {
    #[cfg(not(feature = "cache"))]
    let _ = hooks;
    let mut checkers = Vec::new();
    // Metrics are only kept when the admin listener can show them.
    let metrics = conf.admin.as_ref().map(|_| Metrics::new()).transpose()?;
    let mut sources = Vec::new();
    for (i, service) in conf.services.iter().enumerate() {
        let (svc, source) = build_service(
            conf,
            service,
            &format!("services[{i}]"),
            metrics.as_ref(),
            &mut checkers,
        )?;
        #[cfg(feature = "cache")]
        hooks
            .caches
            .extend(svc.app().inner().inner().cache().cloned());
        server.add_service(svc);
        sources.extend(source);
    }
    if let (Some(admin), Some(metrics)) = (&conf.admin, metrics) {
        let sources = AdminSources {
            metrics,
            services: sources,
            config_file: server.args().conf.clone(),
        };
        server.add_service(AdminService::new(admin, sources)?);
    }
    if !checkers.is_empty() {
        server.add_background("health-checks", crate::upstreams::background(checkers));
    }
    Ok(())
}

fn build_service(
    conf: &ServerConf,
    service: &ServiceConf,
    at: &str,
    metrics: Option<&Metrics>,
    checkers: &mut Vec<HealthChecker>,
) -> Result<(ListeningService<ServiceApp>, Option<ServiceSource>), BinError> {
    let routes = build_routes(conf, service, at)?;
    #[cfg(not(feature = "cache"))]
    if service.cache.is_some() {
        ::log::warn!(
            "service {}: this build has no cache (feature `cache`); requests are proxied uncached",
            service.name
        );
    }
    checkers.extend(routes.upstreams.iter().filter_map(|u| u.health_checker()));
    let limiters = crate::limits::rate_limiters(&routes);
    let limit_keys: Vec<String> = limiters.iter().map(|l| l.key_label().to_string()).collect();
    let service_metrics =
        metrics.map(|m| m.service(&service.name, routes.table.len(), &limit_keys));
    if let Some(metrics) = metrics {
        if limiters.iter().any(|l| l.backend_errors().is_some()) {
            metrics.poll_redis_errors(&service.name, move || {
                limiters.iter().filter_map(|l| l.backend_errors()).sum()
            });
        }
    }
    let access_log = crate::access_log::get().map(|log| ServiceAccessLog::new(log, &service.name));
    let opts = ProxyOptions {
        downstream: ServerSessionOptions {
            limits: HeadLimits {
                max_head_bytes: service.max_request_head_bytes,
                max_headers: service.max_request_headers,
            },
            header_timeout: Duration::from_millis(service.client_header_timeout_ms),
            body_timeout: Duration::from_millis(service.client_body_timeout_ms),
            keepalive_timeout: Duration::from_millis(service.keepalive_timeout_ms),
            // The proxy's defaults: h2c with prior knowledge on.
            ..ProxyOptions::default().downstream
        },
        max_retries: conf.max_retries,
        upstream_keepalive_pool_size: conf.upstream_keepalive_pool_size,
        ..ProxyOptions::default()
    };
    // `max_request_headers` holds over HTTP/2 too.
    let opts = ProxyOptions {
        downstream_h2: H2ServerOptions {
            max_headers: service.max_request_headers,
            ..opts.downstream_h2
        },
        ..opts
    };
    if let Some(metrics) = metrics {
        for u in &routes.upstreams {
            let u = Arc::clone(u);
            metrics.poll_backends(&service.name, &u.name.clone(), move || u.statuses());
        }
    }
    let upstreams = routes.upstreams.clone();
    let connector = Connector::new(bind_addrs(conf)?);
    let h3_ports = service
        .listeners
        .iter()
        .filter(|l| l.http3 && cfg!(feature = "http3"))
        .filter_map(|l| match &l.addr {
            pingora_config::ListenAddr::Tcp(a) => Some(a.port()),
            pingora_config::ListenAddr::Unix(_) => None,
        });
    let router = RouterProxy::new(routes)
        .observed(service_metrics.clone(), access_log)
        .with_http3_ports(h3_ports);
    #[cfg(feature = "cache")]
    let cache = (service.cache.as_ref()).map(|c| crate::cache::ServiceCache::new(&service.name, c));
    #[cfg(feature = "cache")]
    if let (Some(metrics), Some(cache)) = (metrics, &cache) {
        metrics.poll_cache(cache.clone());
    }
    #[cfg(feature = "cache")]
    let router = router.cached(
        cache.clone(),
        service.routes.iter().map(|r| r.cache).collect(),
        service
            .cache
            .as_ref()
            .map(|c| c.purge_networks())
            .unwrap_or_default(),
    );
    let proxy = HttpProxy::new(router, opts, connector);
    let app = PerClientConnections::new(proxy, service.max_connections_per_client);
    let mut svc = ListeningService::new(service.name.clone(), app);
    if let Some(metrics) = metrics {
        let app = svc.app().clone();
        metrics.poll_upstream_idle(&service.name, move || {
            app.inner().idle_upstream_connections()
        });
    }
    svc.set_threads(service.threads);
    let proxy_rejects = Arc::new(ProxyProtocolRejects::default());
    if let Some(metrics) = metrics {
        metrics.poll_proxy_protocol_rejects(&service.name, Arc::clone(&proxy_rejects));
    }
    let trusted = trusted_senders(service, at)?;
    for l in &service.listeners {
        let tls = match &l.tls {
            Some(tls) => Some(crate::tls::listener_acceptor(service, tls)?),
            None => None,
        };
        let proxy_protocol = match l.proxy_protocol {
            ProxyProtocolMode::Off => None,
            mode => Some(ProxyProtocolOptions {
                required: mode == ProxyProtocolMode::On,
                trusted: trusted.clone(),
                timeout: Duration::from_millis(service.client_header_timeout_ms),
                rejects: Arc::clone(&proxy_rejects),
            }),
        };
        svc.add_listener(
            l.addr.clone(),
            ListenOptions {
                backlog: l.backlog,
                tls,
                proxy_protocol,
                #[cfg(feature = "http3")]
                http3: l.http3.then(|| h3_options(service)),
            },
        );
    }
    let source = service_metrics.map(|metrics| ServiceSource {
        name: service.name.clone(),
        listeners: service
            .listeners
            .iter()
            .map(|l| l.addr.to_string())
            .collect(),
        metrics,
        upstreams,
        #[cfg(feature = "cache")]
        cache,
    });
    Ok((svc, source))
}

/// Who may send a PROXY header to the listeners of `service`: its `trusted_proxies`,
/// or anyone when it has none (the listener's `proxy_protocol` alone decides then).
fn trusted_senders(
    service: &ServiceConf,
    at: &str,
) -> Result<Option<Arc<[pingora_config::IpNet]>>, BinError> {
    if service.trusted_proxies.is_empty() {
        return Ok(None);
    }
    let at = format!("{at}.trusted_proxies");
    Ok(Some(
        crate::policy::networks(&service.trusted_proxies, &at)?.into(),
    ))
}

fn bind_addrs(conf: &ServerConf) -> Result<BindAddrs, BinError> {
    let parse = |list: &[String]| -> Result<Vec<std::net::IpAddr>, BinError> {
        list.iter()
            .map(|s| {
                s.parse().map_err(|source| BinError::ClientBindAddress {
                    addr: s.clone(),
                    source,
                })
            })
            .collect()
    };
    Ok(BindAddrs {
        v4: parse(&conf.client_bind_to_ipv4)?,
        v6: parse(&conf.client_bind_to_ipv6)?,
    })
}

fn build_routes(
    conf: &ServerConf,
    service: &ServiceConf,
    at: &str,
) -> Result<ServiceRoutes, BinError> {
    let mut upstreams = Vec::new();
    for (name, up) in service.upstreams.iter() {
        let options = PeerOptions {
            connect_timeout: Duration::from_millis(up.connect_timeout_ms),
            read_timeout: Duration::from_millis(up.read_timeout_ms),
            write_timeout: Duration::from_millis(up.write_timeout_ms),
            idle_timeout: Duration::from_millis(up.idle_timeout_ms),
            tls: crate::tls::upstream_tls(conf, up).map_err(|e| e.in_upstream(name))?,
            http2: up.http2,
            proxy_protocol: match up.send_proxy_protocol {
                SendProxyProtocol::None => None,
                SendProxyProtocol::V1 => Some(ProxyVersion::V1),
                SendProxyProtocol::V2 => Some(ProxyVersion::V2),
            },
        };
        upstreams.push(Arc::new(Upstream::new(name.to_string(), up, options)?));
    }
    let service_limits = crate::limits::Limits::of_service(service, at)?;
    let mut routes = Vec::new();
    for (k, r) in service.routes.iter().enumerate() {
        let at = format!("{at}.routes[{k}]");
        let action = if let Some(resp) = &r.respond {
            Action::Respond {
                status: StatusCode::from_u16(resp.status)
                    .map_err(|_| BinError::RespondStatus(resp.status))?,
                content_type: resp.content_type.clone(),
                body: Bytes::from(resp.body.clone()),
            }
        } else if let Some(redirect) = crate::policy::route_redirect(r, &at)? {
            Action::Redirect(redirect)
        } else {
            let name = r.upstream.as_deref().unwrap_or_default();
            let i = upstreams
                .iter()
                .position(|u| u.name == name)
                .ok_or_else(|| BinError::UndefinedUpstream(name.to_string()))?;
            Action::Upstream(i)
        };
        let matcher = crate::policy::route_matcher(r.matcher.as_ref(), &format!("{at}.match"))?;
        let limits = crate::limits::Limits::of_route(service, &service_limits, r, k, &at)?;
        let policy = crate::policy::route_policy(service, r, limits, &at)?;
        routes.push((matcher, Route { action, policy }));
    }
    Ok(ServiceRoutes {
        health_path: service.health_path.clone(),
        table: RouteTable::new(routes),
        upstreams,
        policy: crate::policy::service_policy(service, at)?,
    })
}

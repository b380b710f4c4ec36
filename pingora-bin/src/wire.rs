//! Turns the YAML configuration into a server: services, listeners, routes, upstreams.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use pingora_config::{ServerConf, ServiceConf, ValidateOptions};
use pingora_core::connector::{BindAddrs, Connector, HttpPeer, PeerAddress, PeerOptions};
use pingora_core::listener::{ListenAddr, ListenOptions};
use pingora_core::protocols::http::v1::server::ServerSessionOptions;
use pingora_core::protocols::http::v1::HeadLimits;
use pingora_core::runtime::RuntimeOptions;
use pingora_core::server::{Server, ServerOptions};
use pingora_core::service::ListeningService;
use pingora_proxy::{HttpProxy, ProxyOptions};

use crate::access_log::ServiceAccessLog;
use crate::admin::AdminService;
use crate::metrics::Metrics;
use crate::router::{Action, Route, RouterProxy, ServiceRoutes};
use crate::upstreams::{HealthChecker, Upstream};

/// What this build can do, for config validation.
pub fn validate_options() -> ValidateOptions {
    // Without the `tls` feature, configs asking for TLS fail validation saying so.
    ValidateOptions {
        tls_supported: cfg!(feature = "tls"),
        lb_supported: cfg!(feature = "lb"),
    }
}

/// Builds the server with one proxy service per configured service, and the health
/// checkers of their upstreams (to start once the process is in its final form).
pub fn build_server(conf: &ServerConf) -> Result<(Server, Vec<HealthChecker>), String> {
    let mut server = Server::new(server_options(conf));
    let mut checkers = Vec::new();
    // Metrics are only kept when the admin listener can show them.
    let metrics = conf.admin.as_ref().map(|_| Metrics::new()).transpose()?;
    for service in &conf.services {
        server.add_service(build_service(
            conf,
            service,
            metrics.as_ref(),
            &mut checkers,
        )?);
    }
    if let (Some(admin), Some(metrics)) = (&conf.admin, metrics) {
        server.add_service(AdminService::new(listen_addr(&admin.addr), metrics));
    }
    Ok((server, checkers))
}

fn server_options(conf: &ServerConf) -> ServerOptions {
    let defaults = ServerOptions::default();
    ServerOptions {
        runtime: RuntimeOptions {
            threads: conf.threads,
            work_stealing: conf.work_stealing,
            max_blocking_threads: conf.max_blocking_threads,
            blocking_threads_ttl: conf.blocking_threads_ttl_seconds.map(Duration::from_secs),
        },
        listener_tasks_per_fd: conf.listener_tasks_per_fd,
        grace_period: conf
            .grace_period_seconds
            .map_or(defaults.grace_period, Duration::from_secs),
        graceful_shutdown_timeout: conf
            .graceful_shutdown_timeout_seconds
            .map_or(defaults.graceful_shutdown_timeout, Duration::from_secs),
    }
}

fn listen_addr(addr: &pingora_config::ListenAddr) -> ListenAddr {
    match addr {
        pingora_config::ListenAddr::Tcp(a) => ListenAddr::Tcp(*a),
        pingora_config::ListenAddr::Unix(p) => ListenAddr::Unix(p.clone()),
    }
}

fn build_service(
    conf: &ServerConf,
    service: &ServiceConf,
    metrics: Option<&Metrics>,
    checkers: &mut Vec<HealthChecker>,
) -> Result<ListeningService<HttpProxy<RouterProxy>>, String> {
    let routes = build_routes(conf, service)?;
    #[cfg(not(feature = "cache"))]
    if service.cache.is_some() {
        ::log::warn!(
            "service {}: this build has no cache (feature `cache`); requests are proxied uncached",
            service.name
        );
    }
    checkers.extend(routes.upstreams.iter().filter_map(|u| u.health_checker()));
    let service_metrics = metrics.map(|m| m.service(&service.name, routes.routes.len()));
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
            ..ServerSessionOptions::default()
        },
        max_retries: conf.max_retries,
        upstream_keepalive_pool_size: conf.upstream_keepalive_pool_size,
        ..ProxyOptions::default()
    };
    if let Some(metrics) = metrics {
        for u in &routes.upstreams {
            if let Some(probe) = u.backend_health() {
                metrics.poll_backend_health(&service.name, &u.name, probe);
            }
        }
    }
    let connector = Connector::new(bind_addrs(conf)?);
    let router = RouterProxy::new(routes).observed(service_metrics, access_log);
    #[cfg(feature = "cache")]
    let router = router.cached(
        service.cache.as_ref().map(crate::router::service_cache),
        service.routes.iter().map(|r| r.cache).collect(),
        service
            .cache
            .as_ref()
            .map(|c| c.purge_networks())
            .unwrap_or_default(),
    );
    let proxy = HttpProxy::new(router, opts, connector);
    let mut svc = ListeningService::new(service.name.clone(), proxy);
    if let Some(metrics) = metrics {
        let app = svc.app().clone();
        metrics.poll_upstream_idle(&service.name, move || app.idle_upstream_connections());
    }
    svc.set_threads(service.threads);
    for l in &service.listeners {
        let tls = match &l.tls {
            Some(tls) => Some(crate::tls::listener_acceptor(service, tls)?),
            None => None,
        };
        svc.add_listener(
            listen_addr(&l.addr),
            ListenOptions {
                backlog: l.backlog,
                tls,
            },
        );
    }
    Ok(svc)
}

fn bind_addrs(conf: &ServerConf) -> Result<BindAddrs, String> {
    let parse = |list: &[String]| -> Result<Vec<std::net::IpAddr>, String> {
        list.iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| format!("bad client bind address {s}: {e}"))
            })
            .collect()
    };
    Ok(BindAddrs {
        v4: parse(&conf.client_bind_to_ipv4)?,
        v6: parse(&conf.client_bind_to_ipv6)?,
    })
}

fn build_routes(conf: &ServerConf, service: &ServiceConf) -> Result<ServiceRoutes, String> {
    let mut upstreams = Vec::new();
    for (name, up) in service.upstreams.iter() {
        let options = PeerOptions {
            connect_timeout: Duration::from_millis(up.connect_timeout_ms),
            read_timeout: Duration::from_millis(up.read_timeout_ms),
            write_timeout: Duration::from_millis(up.write_timeout_ms),
            idle_timeout: Duration::from_millis(up.idle_timeout_ms),
            tls: crate::tls::upstream_tls(conf, up).map_err(|e| format!("upstream {name}: {e}"))?,
            http2: up.http2,
        };
        let mut peers = Vec::new();
        for p in &up.peers {
            let addr = PeerAddress::parse(&p.addr)
                .ok_or_else(|| format!("upstream {name}: bad peer address {}", p.addr))?;
            peers.push(HttpPeer::new(addr, options.clone()));
        }
        upstreams.push(Upstream::new(name.to_string(), up, peers, options));
    }
    let mut routes = Vec::new();
    for r in &service.routes {
        let action = if let Some(resp) = &r.respond {
            Action::Respond {
                status: StatusCode::from_u16(resp.status)
                    .map_err(|_| format!("bad respond status {}", resp.status))?,
                content_type: resp.content_type.clone(),
                body: Bytes::from(resp.body.clone()),
            }
        } else {
            let name = r.upstream.as_deref().unwrap_or_default();
            let i = upstreams
                .iter()
                .position(|u| u.name == name)
                .ok_or_else(|| format!("route to undefined upstream {name}"))?;
            Action::Upstream(i)
        };
        let (host, path_prefix) = match &r.matcher {
            Some(m) => (m.host.clone(), m.path_prefix.clone()),
            None => (None, None),
        };
        routes.push(Route {
            host,
            path_prefix,
            action,
        });
    }
    Ok(ServiceRoutes {
        health_path: service.health_path.clone(),
        routes,
        upstreams,
    })
}

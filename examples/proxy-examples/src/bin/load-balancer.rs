//! A load balancer with health checks: requests go round robin to the backends in
//! `$BACKENDS` (comma-separated `host:port`), each checked with `GET /health` every
//! `$CHECK_MS` milliseconds. A backend failing its checks gets no request until it
//! passes again; one whose connect fails is skipped for a while and the request is
//! retried on another. Listens on `$LISTEN`; `-c -d -u -t` as every server.
use std::time::Duration;

use pingora_lb::{Algorithm, Backend, HealthCheck, HealthCheckKind, InFlight, Upstream};
use pingora_proxy::prelude::*;

struct Balanced(Upstream);

impl ProxyHttp for Balanced {
    /// Counts the request on its backend until dropped (least-conn reads it).
    type Ctx = Option<InFlight>;

    fn new_ctx(&self) -> Self::Ctx {
        None
    }

    async fn upstream_peer(&self, _: &mut Session, ctx: &mut Self::Ctx) -> Result<HttpPeer> {
        let pick = self.0.select_or_error(b"")?; // 503 when no backend is usable
        *ctx = Some(pick.in_flight);
        Ok(pick.peer)
    }

    fn fail_to_connect(
        &self,
        _: &mut Session,
        _: &HttpPeer,
        e: Error,
        ctx: &mut Self::Ctx,
    ) -> Error {
        if let Some(in_flight) = ctx {
            self.0.connect_failed(in_flight); // passive health: skipped for a while
        }
        e
    }
}

fn main() -> Result<std::process::ExitCode> {
    let env = |name, default: &str| std::env::var(name).unwrap_or(default.into());
    let mut server = Server::from_args();
    let backends = env("BACKENDS", "127.0.0.1:9001,127.0.0.1:9002");
    let backends = backends.split(',').map(Backend::new).collect();
    let every = Duration::from_millis(env("CHECK_MS", "1000").parse().unwrap_or(1000));
    let check = HealthCheck::every(HealthCheckKind::http("/health"), every);
    let upstream = Upstream::new("backends", backends, Algorithm::RoundRobin).health_check(check);
    server.add_background("health-checks", upstream.background());
    let mut proxy = http_proxy_service("load-balancer", Balanced(upstream));
    proxy.add_tcp(&env("LISTEN", "0.0.0.0:8080"))?;
    server.add_service(proxy);
    Ok(server.run_forever())
}

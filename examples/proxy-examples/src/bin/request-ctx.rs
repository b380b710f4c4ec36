//! A per-request context: `Ctx` holds what the phases of one request share. Here: the
//! request's number, the body bytes seen each way and how the upstream connection went.
//! The response carries `x-request-number`, and `logging` prints one line per request
//! (with the session's summary). Proxies to `$ORIGIN`, listens on `$LISTEN`.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use pingora_proxy::prelude::*;

struct Counted {
    origin: HttpPeer,
    requests: AtomicU64,
}

/// One request's state, made by `new_ctx` and dropped after `logging`.
struct Ctx {
    number: u64,
    bytes_up: usize,
    bytes_down: usize,
    connect: Option<(bool, Duration)>,
}

impl ProxyHttp for Counted {
    type Ctx = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            number: self.requests.fetch_add(1, Ordering::Relaxed) + 1,
            bytes_up: 0,
            bytes_down: 0,
            connect: None,
        }
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut Ctx) -> Result<HttpPeer> {
        Ok(self.origin.clone())
    }

    async fn connected_to_upstream(
        &self,
        _: &mut Session,
        c: &UpstreamConnection<'_>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.connect = Some((c.reused, c.connect_time));
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _: &mut Session,
        body: &mut Option<Bytes>,
        _: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.bytes_up += body.as_ref().map_or(0, Bytes::len);
        Ok(())
    }

    async fn response_filter(
        &self,
        _: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        resp.headers
            .insert("x-request-number", HeaderValue::from(ctx.number));
        Ok(())
    }

    async fn response_body_filter(
        &self,
        _: &mut Session,
        body: &mut Option<Bytes>,
        _: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.bytes_down += body.as_ref().map_or(0, Bytes::len);
        Ok(())
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut Ctx) {
        let reused = ctx.connect.map(|(reused, _)| reused);
        println!(
            "request {}: {} body_up={} body_down={} reused={reused:?}{}",
            ctx.number,
            session.summary(),
            ctx.bytes_up,
            ctx.bytes_down,
            error.map(|e| format!(" error: {e}")).unwrap_or_default(),
        );
    }
}

fn main() -> Result<std::process::ExitCode> {
    let env = |name, default: &str| std::env::var(name).unwrap_or(default.into());
    let mut server = Server::from_args();
    let origin = HttpPeer::parse(&env("ORIGIN", "127.0.0.1:9000"))?;
    let app = Counted {
        origin,
        requests: AtomicU64::new(0),
    };
    let mut proxy = http_proxy_service("request-ctx", app);
    proxy.add_tcp(&env("LISTEN", "0.0.0.0:8080"))?;
    server.add_service(proxy);
    Ok(server.run_forever())
}

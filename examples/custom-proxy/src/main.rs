//! A proxy of your own on `pingora-proxy`: every request is sent to one origin, with a
//! header added on the way up and one on the way down; `/blocked` is refused.
//!
//! ```sh
//! cargo run -p custom-proxy -- 127.0.0.1:8080 127.0.0.1:9000
//! ```

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use pingora_core::connector::Connector;
use pingora_core::listener::{ListenAddr, ListenOptions};
use pingora_core::server::{Server, ServerOptions};
use pingora_core::service::ListeningService;
use pingora_proxy::{
    HttpPeer, HttpProxy, PeerAddress, PeerOptions, ProxyHttp, ProxyOptions, RequestHeader,
    ResponseHeader, Result, Session,
};

/// The proxy's own logic: where to send requests and what to change.
struct MyProxy {
    origin: HttpPeer,
}

/// Per-request state: here, just when the request started.
struct Ctx {
    started: std::time::Instant,
}

impl ProxyHttp for MyProxy {
    type Ctx = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: std::time::Instant::now(),
        }
    }

    async fn request_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<bool> {
        if session.req_header().uri.path() == "/blocked" {
            session
                .respond(
                    StatusCode::FORBIDDEN,
                    "text/plain",
                    Bytes::from_static(b"no\n"),
                )
                .await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<HttpPeer> {
        Ok(self.origin.clone())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        req.headers.insert(
            "x-proxied-by",
            http::HeaderValue::from_static("custom-proxy"),
        );
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        resp.headers
            .insert("x-custom", http::HeaderValue::from_static("1"));
        Ok(())
    }

    async fn logging(
        &self,
        session: &mut Session,
        error: Option<&pingora_proxy::Error>,
        ctx: &mut Ctx,
    ) {
        println!(
            "{} {} -> {:?} in {:?}{}",
            session.req_header().method,
            session.req_header().uri,
            session.response_status(),
            ctx.started.elapsed(),
            error.map(|e| format!(" ({e})")).unwrap_or_default()
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let origin = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let (Ok(listen), Some(origin)) = (listen.parse(), PeerAddress::parse(&origin)) else {
        eprintln!("usage: custom-proxy LISTEN_ADDR ORIGIN_ADDR");
        std::process::exit(2);
    };
    let options = PeerOptions {
        connect_timeout: Duration::from_secs(2),
        ..PeerOptions::default()
    };
    let proxy = HttpProxy::new(
        MyProxy {
            origin: HttpPeer::new(origin, options),
        },
        ProxyOptions::default(),
        Connector::default(),
    );
    let mut service = ListeningService::new("custom", proxy);
    service.add_listener(ListenAddr::Tcp(listen), ListenOptions::default());
    let mut server = Server::new(ServerOptions::default());
    server.add_service(service);
    let result = server
        .start()
        .and_then(|running| running.run_until_signal());
    if let Err(e) = result {
        eprintln!("custom-proxy: {e}");
        std::process::exit(1);
    }
}

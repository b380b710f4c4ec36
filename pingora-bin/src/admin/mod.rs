//! The admin listener (`admin:`): `GET /health`, `GET /metrics`, the status page
//! `GET /` and `GET /status.json`, and runtime control (`POST` drain, enable, cache
//! purge) over HTTP/1.1.
//!
//! It is a [`Service`] of the server, so its socket is bound, inherited and handed over
//! like the others and it runs on a small runtime of its own, but unlike the proxy
//! services it keeps accepting while the server drains (so that `/health` can answer
//! 503 to the load balancer in front) and its connections do not hold the drain up. It
//! stops when the process exits, or, after a hand-over, as soon as the new instance
//! serves the same socket.

mod auth;
mod control;
mod history;
mod page;
mod status;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use pingora_config::AdminConf;
use pingora_core::listener::{AsyncListener, BoundListener, ListenAddr, ListenOptions};
use pingora_core::protocols::http::v1::server::{
    H1ServerSession, NextRequest, ServerSessionOptions,
};
use pingora_core::protocols::http::v1::HeadLimits;
use pingora_core::protocols::http::ResponseHeader;
use pingora_core::protocols::{ClientAddr, Stream};
use pingora_core::service::Service;
use pingora_core::shutdown::{Phase, ShutdownController};
use pingora_core::ErrorKind;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::error::BinError;
use crate::metrics::{Metrics, ServerSnapshot, ServiceMetrics};
use crate::upstreams::Upstream;
use auth::Access;
use control::Events;
use history::History;

/// Content type of the Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of the other answers.
const TEXT: &str = "text/plain; charset=utf-8";

/// JSON answers.
const JSON: &str = "application/json";
/// The status page.
const HTML: &str = "text/html; charset=utf-8";

/// What the admin endpoint shows of one service.
pub struct ServiceSource {
    /// The service's name.
    pub name: String,
    /// Its listening addresses, as written.
    pub listeners: Vec<String>,
    /// Its metric handles.
    pub metrics: ServiceMetrics,
    /// Its upstreams (shared with its router).
    pub upstreams: Vec<Arc<Upstream>>,
    /// Its cache, if it has one.
    #[cfg(feature = "cache")]
    pub cache: Option<crate::cache::ServiceCache>,
}

/// Everything the admin endpoint reports on and controls.
pub struct AdminSources {
    /// The process's metrics.
    pub metrics: Metrics,
    /// The services, in configuration order.
    pub services: Vec<ServiceSource>,
    /// The configuration file given with `-c`.
    pub config_file: Option<PathBuf>,
}

/// What the admin connections share.
pub struct AdminState {
    sources: AdminSources,
    access: Access,
    started: Instant,
    started_at: SystemTime,
    config_file: Option<String>,
    history: Mutex<History>,
    events: Events,
    /// Set once the listeners were handed to a new instance.
    handed_over: watch::Sender<bool>,
}

static ADMIN: OnceLock<Arc<AdminState>> = OnceLock::new();

/// Tells the admin listener that a new instance took the listening sockets over: from
/// now on `/health` answers 503 and this instance stops accepting admin connections.
pub fn handed_over() {
    if let Some(state) = ADMIN.get() {
        state.handed_over.send_replace(true);
    }
}

/// The admin endpoint as a server [`Service`].
pub struct AdminService {
    addrs: Vec<(ListenAddr, ListenOptions)>,
    state: Arc<AdminState>,
}

impl AdminService {
    /// The admin endpoint of `conf` over `sources`; reads `token_file`.
    pub fn new(conf: &AdminConf, sources: AdminSources) -> Result<Self, BinError> {
        let token = match &conf.token_file {
            Some(path) => Some(pingora_config::read_token_file(path).map_err(|source| {
                BinError::AdminToken {
                    path: path.clone(),
                    source,
                }
            })?),
            None => None,
        };
        let (handed_over, _) = watch::channel(false);
        let config_file = (sources.config_file.as_ref()).map(|p| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        });
        let state = Arc::new(AdminState {
            sources,
            access: Access::new(token),
            started: Instant::now(),
            started_at: SystemTime::now(),
            config_file,
            history: Mutex::new(History::default()),
            events: Events::default(),
            handed_over,
        });
        // The binary builds one; a second one would simply not hear of a hand-over.
        let _ = ADMIN.set(state.clone());
        Ok(AdminService {
            addrs: vec![(
                conf.addr.clone(),
                ListenOptions {
                    backlog: 128,
                    ..ListenOptions::default()
                },
            )],
            state,
        })
    }
}

impl Service for AdminService {
    fn name(&self) -> &str {
        "admin"
    }

    fn listen_addrs(&self) -> &[(ListenAddr, ListenOptions)] {
        &self.addrs
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }

    fn start(
        &self,
        handles: &[Handle],
        listeners: Vec<BoundListener>,
        _tasks_per_fd: usize,
        shutdown: &ShutdownController,
    ) -> pingora_core::Result<()> {
        let Some(handle) = handles.first() else {
            return Ok(());
        };
        for bound in listeners {
            let listener = {
                let _enter = handle.enter();
                bound.into_async()?
            };
            handle.spawn(accept_loop(listener, self.state.clone(), shutdown.clone()));
        }
        handle.spawn(sample_loop(self.state.clone()));
        Ok(())
    }
}

/// Accepts until the process exits or the listeners are handed over. Connections are
/// not counted as live: the drain does not wait for them.
async fn accept_loop(
    listener: AsyncListener,
    state: Arc<AdminState>,
    shutdown: ShutdownController,
) {
    let mut handed_over = state.handed_over.subscribe();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = handed_over.wait_for(|h| *h) => {
                log::info!("admin {}: the new instance answers from now on", listener.addr());
                return;
            }
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(serve_connection(
                    stream,
                    peer,
                    state.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                log::error!("admin accept on {} failed: {e}", listener.addr());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Samples every service's counters for the charts, for the life of the process.
async fn sample_loop(state: Arc<AdminState>) {
    let mut ticker = tokio::time::interval(history::SAMPLE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let at = SystemTime::now();
        let totals: Vec<_> = (state.sources.services.iter())
            .map(|s| s.metrics.totals())
            .collect();
        let mut history = state.history.lock().unwrap_or_else(|p| p.into_inner());
        for (i, t) in totals.into_iter().enumerate() {
            history.record(i, at, t);
        }
    }
}

fn session_options() -> ServerSessionOptions {
    ServerSessionOptions {
        limits: HeadLimits {
            max_head_bytes: 16 * 1024,
            max_headers: 64,
        },
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(60),
        write_timeout: Duration::from_secs(10),
        h2c_prior_knowledge: false,
    }
}

async fn serve_connection(
    stream: Stream,
    peer: ClientAddr,
    state: Arc<AdminState>,
    shutdown: ShutdownController,
) {
    let mut session = H1ServerSession::new(stream, peer, session_options(), shutdown.watch());
    loop {
        match session.read_request().await {
            Ok(NextRequest::Request) => {}
            // Not offered here (h2c_prior_knowledge is off).
            Ok(NextRequest::Closed | NextRequest::Http2) => return,
            Err(e) => {
                if !matches!(
                    e.kind,
                    ErrorKind::ConnectionClosed | ErrorKind::ConnectionReset
                ) {
                    log::debug!("admin client {}: {e}", session.peer());
                    let _ = session
                        .respond_error(pingora_proxy::status::for_error(&e))
                        .await;
                }
                session.shutdown().await;
                return;
            }
        }
        let reply = answer(&mut session, &state, &shutdown).await;
        if session.has_pending_body() {
            // A body nobody read: answer, then close instead of reading it.
            session.set_keepalive(false);
        }
        if let Err(e) = reply.send(&mut session).await {
            log::debug!("admin client {}: {e}", session.peer());
            return;
        }
        if !session.can_reuse() {
            session.shutdown().await;
            return;
        }
    }
}

/// One answer of the admin endpoint.
pub struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Reply {
    /// A complete answer.
    fn new(status: StatusCode, content_type: &'static str, body: Bytes) -> Self {
        Reply {
            status,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    /// A plain-text answer.
    fn text(status: StatusCode, body: &'static str) -> Self {
        Reply::new(status, TEXT, Bytes::from_static(body.as_bytes()))
    }

    /// The same answer with one more header.
    fn with(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    async fn send(self, session: &mut H1ServerSession) -> pingora_core::Result<()> {
        if self.headers.is_empty() {
            return session
                .respond(self.status, self.content_type, self.body)
                .await;
        }
        let mut head =
            ResponseHeader::for_local_body(self.status, self.content_type, self.body.len());
        for (name, value) in self.headers {
            head.headers.insert(name, value);
        }
        session.write_response_header(&mut head).await?;
        if session.req_header().method != Method::HEAD {
            session.write_body(&self.body).await?;
        }
        session.finish_response(None).await
    }
}

/// Reads a request body of at most [`control::MAX_BODY_BYTES`]; `None` when it is
/// larger or cannot be read.
async fn read_body(session: &mut H1ServerSession) -> Option<Bytes> {
    let mut body = BytesMut::new();
    loop {
        match session.read_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > control::MAX_BODY_BYTES {
                    return None;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Some(body.freeze()),
            Err(e) => {
                log::debug!("admin client {}: {e}", session.peer());
                return None;
            }
        }
    }
}

/// The response to the current request.
async fn answer(
    session: &mut H1ServerSession,
    state: &AdminState,
    shutdown: &ShutdownController,
) -> Reply {
    let req = session.req_header();
    let method = req.method.clone();
    let path = req.uri.path().to_string();
    let readable = method == Method::GET || method == Method::HEAD;
    let draining = shutdown.phase() >= Phase::Draining || *state.handed_over.borrow();
    // Every request passes the access rule, `/health` too: off loopback with a token
    // configured, a load balancer's probe sends it like any other client.
    if let Err(refused) = state.access.check(req, session.peer()) {
        session.set_keepalive(false);
        let reply = Reply::text(refused.status(), refused.message());
        return if refused == auth::Refusal::Token {
            reply.with(
                http::header::WWW_AUTHENTICATE,
                "Bearer realm=\"pingora admin\"",
            )
        } else {
            reply
        };
    }
    let client = session.peer().to_string();
    match (path.as_str(), readable) {
        ("/health", true) if draining => Reply::text(StatusCode::SERVICE_UNAVAILABLE, "draining"),
        ("/health", true) => Reply::text(StatusCode::OK, "ok"),
        ("/metrics", true) => {
            let snapshot = ServerSnapshot {
                live_connections: shutdown.live(),
                draining,
                access_log_dropped: crate::access_log::dropped(),
                log_lines_suppressed: crate::log::suppressed_lines(),
            };
            Reply::new(
                StatusCode::OK,
                METRICS_CONTENT_TYPE,
                Bytes::from(state.sources.metrics.render(&snapshot)),
            )
        }
        ("/status.json", true) => {
            let status = status::status(state, facts(shutdown, draining));
            let body = serde_json::to_vec_pretty(&status).unwrap_or_default();
            Reply::new(StatusCode::OK, JSON, Bytes::from(body))
                .with(http::header::CACHE_CONTROL, "no-store")
        }
        ("/", true) => {
            let status = status::status(state, facts(shutdown, draining));
            Reply::new(StatusCode::OK, HTML, Bytes::from(page::render(&status)))
                .with(http::header::CACHE_CONTROL, "no-store")
                .with(http::header::CONTENT_SECURITY_POLICY, page::CSP)
                .with(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        }
        ("/health" | "/metrics" | "/status.json" | "/", false) => {
            session.set_keepalive(false);
            Reply::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 Method Not Allowed: use GET\n",
            )
            .with(http::header::ALLOW, "GET, HEAD")
        }
        ("/cache/purge", _) if method == Method::POST => match read_body(session).await {
            Some(body) => control::purge(state, &client, &body).await,
            None => {
                session.set_keepalive(false);
                control::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the body must be a JSON object of at most 64 KiB",
                )
            }
        },
        (p, _) if p.starts_with("/upstreams/") => {
            match (control::parse_backend_path(p), method == Method::POST) {
                (Some(target), true) => {
                    let reply = control::set_draining(state, &client, target);
                    // A form of the status page (no script): back to the page.
                    if reply.status == StatusCode::OK && page::wants_page(session.req_header()) {
                        Reply::text(StatusCode::SEE_OTHER, "").with(http::header::LOCATION, "/")
                    } else {
                        reply
                    }
                }
                (Some(_), false) => control::error(StatusCode::METHOD_NOT_ALLOWED, "use POST")
                    .with(http::header::ALLOW, "POST"),
                (None, _) => control::error(
                    StatusCode::NOT_FOUND,
                    "expected /upstreams/{service}/{upstream}/{backend}/drain or /enable",
                ),
            }
        }
        ("/cache/purge", _) => control::error(StatusCode::METHOD_NOT_ALLOWED, "use POST")
            .with(http::header::ALLOW, "POST"),
        _ => Reply::text(
            StatusCode::NOT_FOUND,
            "404 Not Found: try /, /status.json, /health or /metrics\n",
        ),
    }
}

fn facts(shutdown: &ShutdownController, draining: bool) -> status::ServerFacts {
    status::ServerFacts {
        draining,
        connections_active: shutdown.live(),
    }
}

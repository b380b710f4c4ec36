//! The admin listener (`admin:`): `GET /health` and `GET /metrics` over HTTP/1.1.
//!
//! It is a [`Service`] of the server, so its socket is bound, inherited and handed over
//! like the others and it runs on a small runtime of its own, but unlike the proxy
//! services it keeps accepting while the server drains (so that `/health` can answer
//! 503 to the load balancer in front) and its connections do not hold the drain up. It
//! stops when the process exits, or, after a hand-over, as soon as the new instance
//! serves the same socket.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use pingora_core::listener::{AsyncListener, BoundListener, ListenAddr, ListenOptions};
use pingora_core::protocols::http::v1::server::{
    H1ServerSession, NextRequest, ServerSessionOptions,
};
use pingora_core::protocols::http::v1::HeadLimits;
use pingora_core::protocols::{ClientAddr, Stream};
use pingora_core::service::Service;
use pingora_core::shutdown::{Phase, ShutdownController};
use pingora_core::ErrorKind;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::metrics::{Metrics, ServerSnapshot};

/// Content type of the Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of the other answers.
const TEXT: &str = "text/plain; charset=utf-8";

/// What the admin connections share.
struct AdminState {
    metrics: Metrics,
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
    /// An admin endpoint on `addr` serving `metrics`.
    pub fn new(addr: ListenAddr, metrics: Metrics) -> Self {
        let (handed_over, _) = watch::channel(false);
        let state = Arc::new(AdminState {
            metrics,
            handed_over,
        });
        // The binary builds one; a second one would simply not hear of a hand-over.
        let _ = ADMIN.set(state.clone());
        AdminService {
            addrs: vec![(
                addr,
                ListenOptions {
                    backlog: 128,
                    ..ListenOptions::default()
                },
            )],
            state,
        }
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
        if session.has_pending_body() {
            // Nothing here takes a body: answer, then close instead of reading it.
            session.set_keepalive(false);
        }
        let (status, content_type, body) = answer(&session, &state, &shutdown);
        if let Err(e) = session.respond(status, content_type, body).await {
            log::debug!("admin client {}: {e}", session.peer());
            return;
        }
        if !session.can_reuse() {
            session.shutdown().await;
            return;
        }
    }
}

/// The response to the current request.
fn answer(
    session: &H1ServerSession,
    state: &AdminState,
    shutdown: &ShutdownController,
) -> (StatusCode, &'static str, Bytes) {
    let req = session.req_header();
    let readable = req.method == Method::GET || req.method == Method::HEAD;
    let draining = shutdown.phase() >= Phase::Draining || *state.handed_over.borrow();
    match req.uri.path() {
        "/health" | "/metrics" if !readable => (
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            Bytes::from_static(b"405 Method Not Allowed: use GET\n"),
        ),
        "/health" if draining => (
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            Bytes::from_static(b"draining"),
        ),
        "/health" => (StatusCode::OK, TEXT, Bytes::from_static(b"ok")),
        "/metrics" => {
            let snapshot = ServerSnapshot {
                live_connections: shutdown.live(),
                draining,
                access_log_dropped: crate::access_log::dropped(),
                log_lines_suppressed: crate::log::suppressed_lines(),
            };
            (
                StatusCode::OK,
                METRICS_CONTENT_TYPE,
                Bytes::from(state.metrics.render(&snapshot)),
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            TEXT,
            Bytes::from_static(b"404 Not Found: try /health or /metrics\n"),
        ),
    }
}

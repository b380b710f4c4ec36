//! Serving HTTP/3 on a listener's UDP socket (feature `http3`): the QUIC endpoint's
//! accept loop, one task per connection, one task per request.
//!
//! Upgrades: once the listeners were handed to a new instance (accepting paused), this
//! instance stops reading the shared UDP socket and accepting; its open connections go
//! on, the new instance passing their datagrams here (`protocols::http::v3::routing`,
//! `docs/http3.md`).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use tokio::runtime::Handle;

use super::ServerApp;
use crate::protocols::http::v3::endpoint::{quic_stats, server_endpoint};
use crate::protocols::http::v3::server::H3ServerConnection;
use crate::protocols::http::v3::{tls::server_config, H3ServerOptions};
use crate::protocols::tls::TlsAcceptor;
use crate::protocols::{ClientAddr, ConnectionInfo};
use crate::shutdown::{Phase, ShutdownController, ShutdownWatch};

/// Why the endpoint stopped serving.
enum Stop {
    /// The server drains: no new connection; the open ones get GOAWAY and finish.
    Drain,
    /// The sockets were handed to a new instance: stop reading the socket now.
    HandedOver,
}

/// Starts serving HTTP/3 on `socket` with the certificates of `tls`. Fails (before
/// anything runs) when the QUIC configuration cannot be made.
pub(super) fn start<A: ServerApp>(
    socket: UdpSocket,
    tls: &TlsAcceptor,
    opts: H3ServerOptions,
    app: Arc<A>,
    handles: &[Handle],
    shutdown: &ShutdownController,
) -> crate::Result<()> {
    let config = server_config(tls, &opts)?;
    let Some(first) = handles.first() else {
        return Ok(());
    };
    first.spawn(accept_loop(
        socket,
        config,
        opts,
        app,
        handles.to_vec(),
        shutdown.clone(),
    ));
    Ok(())
}

async fn accept_loop<A: ServerApp>(
    socket: UdpSocket,
    config: quinn::ServerConfig,
    opts: H3ServerOptions,
    app: Arc<A>,
    handles: Vec<Handle>,
    shutdown: ShutdownController,
) {
    let mut watch = shutdown.watch();
    let mut gate = shutdown.accept_gate();
    let local = socket.local_addr().ok();
    let mut next_handle = 0usize;
    let server = match server_endpoint(&socket, config.clone()) {
        Ok(e) => e,
        Err(e) => {
            log::error!("HTTP/3 on {local:?} not served: {e}");
            return;
        }
    };
    let endpoint = server.endpoint();
    loop {
        let stop = loop {
            tokio::select! {
                biased;
                _ = watch.reached(Phase::Draining) => break Stop::Drain,
                // Paused for a hand-over, or (when this task ran late) already
                // resumed after one for a grace period: either way the new instance
                // reads the socket now.
                accepting = gate.changed() => {
                    if !accepting || shutdown.handed_over() {
                        break Stop::HandedOver;
                    }
                    continue;
                }
                incoming = endpoint.accept() => match incoming {
                    Some(incoming) => {
                        if opts.require_retry && !incoming.remote_address_validated() {
                            // Stateless: the client comes back with a token, proving it
                            // receives at its address.
                            let _ = incoming.retry();
                            continue;
                        }
                        let handle = &handles[next_handle % handles.len()];
                        next_handle = next_handle.wrapping_add(1);
                        let guard = shutdown.track();
                        let conn = serve_connection(incoming, local, opts, app.clone(), shutdown.watch());
                        handle.spawn(async move {
                            conn.await;
                            drop(guard);
                        });
                    }
                    None => return,
                },
            }
        };
        match stop {
            Stop::Drain => {
                // New connections are refused; the driver keeps serving the open ones,
                // which see the drain and send GOAWAY themselves. After a hand-over this
                // task saw only now, the new instance is the socket's reader.
                if shutdown.handed_over() {
                    server.hand_over();
                } else {
                    endpoint.set_server_config(None);
                }
                return;
            }
            Stop::HandedOver => {
                let open = endpoint.open_connections();
                if server.hand_over() {
                    log::info!(
                        "HTTP/3 on {local:?}: the new instance reads the socket now; {open} \
                         QUIC connection(s) of this instance go on, their datagrams passed \
                         here by it"
                    );
                } else {
                    log::info!(
                        "HTTP/3 on {local:?}: the new instance reads the socket now; closed \
                         {open} QUIC connection(s) of this instance"
                    );
                }
                // The open connections drain with the rest of this instance. If the new
                // instance did not start (accepting resumes), read and accept again; a
                // resume for the grace period after a hand-over that succeeded is not
                // for this socket: the new instance is its only reader.
                tokio::select! {
                    _ = watch.reached(Phase::Draining) => return,
                    _ = gate.resumed() => {
                        if shutdown.handed_over() {
                            return;
                        }
                        server.take_back(config.clone());
                        continue;
                    }
                }
            }
        }
    }
}

/// One QUIC connection: the handshake, then its requests, each on a task of its own.
async fn serve_connection<A: ServerApp>(
    incoming: quinn::Incoming,
    local: Option<SocketAddr>,
    opts: H3ServerOptions,
    app: Arc<A>,
    watch: ShutdownWatch,
) {
    let peer = incoming.remote_address();
    let stats = quic_stats();
    let handshake = async {
        let connecting = incoming.accept().map_err(|e| e.to_string())?;
        tokio::time::timeout(opts.handshake_timeout, connecting)
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())
    };
    let conn = match handshake.await {
        Ok(c) => c,
        Err(e) => {
            stats.handshake_failed();
            log::debug!("QUIC handshake with {peer} failed: {e}");
            return;
        }
    };
    let _open = stats.opened();
    let info = ConnectionInfo::quic(ClientAddr::Tcp(peer), local);
    let mut h3 = match H3ServerConnection::new(conn, info, opts, watch.clone()).await {
        Ok(h3) => h3,
        Err(e) => {
            log::debug!("HTTP/3 with {peer}: {e}");
            return;
        }
    };
    let mut requests = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            next = h3.accept() => match next {
                Some(Ok(pending)) => {
                    let app = app.clone();
                    // Boxed, as for HTTP/2 streams: spawning moves a pointer, not
                    // the request's whole state machine.
                    requests.spawn(Box::pin(async move {
                        match pending.resolve().await {
                            Ok(stream) => app.process_h3_stream(stream).await,
                            Err(e) => log::debug!("HTTP/3 request from {peer}: {e}"),
                        }
                    }));
                }
                Some(Err(e)) => {
                    log::debug!("HTTP/3 connection with {peer} failed: {e}");
                    break;
                }
                None => break,
            },
            Some(_) = requests.join_next(), if !requests.is_empty() => {}
        }
    }
    // The connection stays open (h3 closes it when dropped) until its requests end;
    // at the end of a drain they are cut.
    let mut closing = watch.clone();
    let linger = h3.linger();
    tokio::select! {
        _ = async {
            while requests.join_next().await.is_some() {}
            linger.await;
        } => {}
        _ = h3.refuse_late_requests() => {}
        _ = closing.reached(Phase::Closing) => requests.abort_all(),
    }
    drop(h3);
}

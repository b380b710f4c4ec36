//! [`Upstreams`]: sessions to upstream peers, HTTP/1.x from a keep-alive pool or
//! HTTP/2 streams on shared connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingora_core::connector::{Connector, HttpConnector, HttpPeer};
use pingora_core::protocols::http::v1::client::H1ClientSession;
use pingora_core::protocols::http::v2::client::{H2ClientConnection, H2ClientOptions};
use pingora_core::protocols::http::v2::pool::H2Pool;
use pingora_core::protocols::http::ClientSession;
use pingora_core::Result;
use tokio::sync::watch;

/// HTTP/2 connections kept per peer; more are opened while all are full, but only
/// this many stay pooled.
const H2_CONNECTIONS_PER_PEER: usize = 8;

/// How the proxy reaches its upstreams.
pub(crate) struct Upstreams {
    connector: Connector,
    h1: HttpConnector,
    h2: H2Pool,
    /// HTTP/2 connections being opened, by peer key: requests that find no room on a
    /// pooled connection wait for the one being opened instead of opening their own.
    h2_opening: Mutex<HashMap<u64, Arc<watch::Sender<Opening>>>>,
}

/// Where the opening of a shared HTTP/2 connection stands, as seen by the requests
/// waiting for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// Still connecting.
    InProgress,
    /// Open and pooled, with its opener's stream already counted: look in the pool.
    Pooled,
    /// Failed, or the peer did not speak HTTP/2: each waiter connects on its own.
    Failed,
}

/// What an HTTP/2 request found when it looked for a connection.
enum H2Slot {
    /// A pooled connection with room for a stream.
    Pooled(H2ClientConnection),
    /// Another request is opening a connection to the peer: wait for it.
    Wait(watch::Receiver<Opening>),
    /// Open one, and tell the waiters how it went.
    Open(Arc<watch::Sender<Opening>>),
}

impl Upstreams {
    /// Upstreams reached through `connector`, keeping `h1_pool_size` idle HTTP/1.x
    /// connections.
    pub(crate) fn new(connector: Connector, h1_pool_size: usize) -> Self {
        Upstreams {
            h1: HttpConnector::new(connector.clone(), h1_pool_size),
            connector,
            h2: H2Pool::new(H2_CONNECTIONS_PER_PEER, Duration::from_secs(60)),
            h2_opening: Mutex::new(HashMap::new()),
        }
    }

    /// Idle HTTP/1.x connections pooled now.
    pub(crate) fn idle_count(&self) -> usize {
        self.h1.idle_count()
    }

    /// A session to `peer`: reused (an idle pooled HTTP/1.x connection, or a stream on a
    /// pooled HTTP/2 connection) when `allow_reuse` and one is there, else on a new
    /// connection. The flag in the result says whether the connection was reused.
    pub(crate) async fn connect(
        &self,
        peer: &HttpPeer,
        allow_reuse: bool,
    ) -> Result<(ClientSession, bool)> {
        let timeouts = peer.options.client_timeouts();
        if allow_reuse {
            if let Some(mut s) = self.h1.reused(peer) {
                s.set_timeouts(timeouts);
                return Ok((s.into(), true));
            }
        }
        if !peer.options.http2 {
            return Ok((self.h1.connect(peer).await?.into(), false));
        }
        if !allow_reuse {
            // A retry after a dead pooled connection: a connection of its own.
            return self.open_h2_stream(peer).await;
        }
        let key = peer.pool_key();
        loop {
            match self.h2_slot(key) {
                H2Slot::Pooled(conn) => match conn.new_stream(timeouts).await {
                    Ok(stream) => return Ok((ClientSession::H2(stream), true)),
                    // Closed or going away meanwhile: look again (the pool drops it).
                    Err(e) if e.retry => continue,
                    Err(e) => return Err(e),
                },
                H2Slot::Wait(mut opening) => {
                    // The opener gives up within its connect and handshake timeouts.
                    let limit = peer.options.connect_timeout * 2 + Duration::from_millis(100);
                    let outcome = tokio::time::timeout(
                        limit,
                        opening.wait_for(|o| *o != Opening::InProgress),
                    )
                    .await
                    .ok()
                    .and_then(|r| r.ok().map(|o| *o));
                    if outcome != Some(Opening::Pooled) {
                        return self.open_h2_stream(peer).await;
                    }
                    // Look in the pool again: the new connection may have room, or be
                    // full already, and then someone opens the next one.
                }
                H2Slot::Open(opening) => {
                    // Waiters hear how it went, even if this request is cancelled.
                    let mut opener = Opener {
                        upstreams: self,
                        key,
                        opening,
                        outcome: Opening::Failed,
                    };
                    let result = self.open_h2_stream(peer).await;
                    if let Ok((ClientSession::H2(_), _)) = &result {
                        opener.outcome = Opening::Pooled;
                    }
                    return result;
                }
            }
        }
    }

    /// Opens a connection to `peer` and the stream of this request on it, before the
    /// connection is pooled (so other requests cannot take the stream's place).
    async fn open_h2_stream(&self, peer: &HttpPeer) -> Result<(ClientSession, bool)> {
        match self.open(peer).await? {
            Opened::H2(conn) => {
                let stream = conn.new_stream(peer.options.client_timeouts()).await?;
                self.h2.put(peer.pool_key(), conn);
                Ok((ClientSession::H2(stream), false))
            }
            Opened::H1(session) => Ok((ClientSession::H1(*session), false)),
        }
    }

    /// Looks for a pooled HTTP/2 connection to `key` with room, or for someone
    /// opening one; else this request becomes the opener.
    fn h2_slot(&self, key: u64) -> H2Slot {
        if let Some(conn) = self.h2.get(key) {
            return H2Slot::Pooled(conn);
        }
        let mut opening = self.h2_opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = opening.get(&key) {
            return H2Slot::Wait(tx.subscribe());
        }
        let (tx, _) = watch::channel(Opening::InProgress);
        let tx = Arc::new(tx);
        opening.insert(key, Arc::clone(&tx));
        H2Slot::Open(tx)
    }

    /// The connection to `key` is open and pooled (or failed): tells the requests
    /// waiting for it.
    fn opened(&self, key: u64, opening: &Arc<watch::Sender<Opening>>, outcome: Opening) {
        let mut map = self.h2_opening.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&key).is_some_and(|o| Arc::ptr_eq(o, opening)) {
            map.remove(&key);
        }
        drop(map);
        opening.send_replace(outcome);
    }

    /// Opens a connection to a peer that may speak HTTP/2: HTTP/2 with prior knowledge
    /// on plain TCP, or whatever ALPN chose over TLS.
    async fn open(&self, peer: &HttpPeer) -> Result<Opened> {
        let stream = self.connector.connect(peer).await?;
        let https = peer.options.tls.is_some();
        if https && stream.alpn() != Some(b"h2".as_slice()) {
            return Ok(Opened::H1(Box::new(H1ClientSession::new(
                stream,
                peer.options.client_timeouts(),
            ))));
        }
        let opts = H2ClientOptions {
            https,
            handshake_timeout: peer.options.connect_timeout,
            ..H2ClientOptions::default()
        };
        Ok(Opened::H2(
            H2ClientConnection::handshake(stream, opts).await?,
        ))
    }

    /// Gives a session back once its exchange is over: an HTTP/1.x connection goes to
    /// the keep-alive pool; an HTTP/2 stream just ends (its connection stays pooled).
    pub(crate) fn release(&self, peer: &HttpPeer, session: ClientSession) {
        if let Some(h1) = session.into_http1() {
            self.h1.release(peer, h1);
        }
    }
}

/// The request opening a shared HTTP/2 connection: when dropped (done, failed or
/// cancelled), it stops being the opener and tells the waiters the outcome.
struct Opener<'a> {
    upstreams: &'a Upstreams,
    key: u64,
    opening: Arc<watch::Sender<Opening>>,
    outcome: Opening,
}

impl Drop for Opener<'_> {
    fn drop(&mut self) {
        self.upstreams.opened(self.key, &self.opening, self.outcome);
    }
}

/// A new connection to a peer that may speak HTTP/2.
enum Opened {
    H2(H2ClientConnection),
    H1(Box<H1ClientSession>),
}

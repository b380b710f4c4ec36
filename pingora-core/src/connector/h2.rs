//! HTTP/2 sessions to upstreams. Unlike an HTTP/1 connection, which is taken out of its
//! pool for one exchange, an HTTP/2 connection stays in the pool ([`H2Pool`]) while it
//! carries many exchanges at once, each on a stream of its own.
//!
//! # Who opens a shared connection
//!
//! A request that finds no pooled connection with room for a stream either becomes the
//! *opener* of a new connection to the peer, or, when another request is already
//! opening one, waits for that one instead of opening its own (so a burst of requests to
//! a new peer opens one connection, not one each). The opener opens its own stream
//! before the connection is pooled, so others cannot take its place, and tells the
//! waiters how it went even when it is cancelled (see `Opener`): when the connection is
//! pooled they look in the pool again; when it failed (or TLS ALPN chose HTTP/1.1) each
//! connects on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Context;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::dial::Connector;
use super::peer::HttpPeer;
use super::reaper::{Reap, Reaper};
use crate::error::Result;
use crate::protocols::http::v1::client::H1ClientSession;
use crate::protocols::http::v2::client::{H2ClientConnection, H2ClientOptions};
use crate::protocols::http::ClientSession;

/// HTTP/2 connections by peer key (see [`HttpPeer::pool_key`]), at most
/// `max_per_key` each. A connection leaves the pool when it ends, when the server
/// sends GOAWAY, and when it has had no stream in flight for its idle timeout: at that
/// moment, by the pool's reaper task (see the reaper in `reaper.rs`), not only when
/// the pool is next asked. The lock is held only for short bookkeeping, never across
/// an await, and connections are dropped outside it.
pub struct H2Pool {
    shared: Arc<Shared>,
}

struct Shared {
    max_per_key: usize,
    inner: Mutex<HashMap<u64, Vec<Pooled>>>,
    reaper: Reaper,
}

/// A pooled connection and how long it may stay without a stream.
struct Pooled {
    conn: H2ClientConnection,
    idle_timeout: Duration,
}

impl Pooled {
    /// Closed, going away, or idle for its timeout.
    fn is_stale(&self) -> bool {
        self.conn.is_closed()
            || self
                .conn
                .idle_for()
                .is_some_and(|idle| idle >= self.idle_timeout)
    }
}

impl std::fmt::Debug for H2Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Pool")
            .field("max_per_key", &self.shared.max_per_key)
            .field("connections", &self.len())
            .finish()
    }
}

impl H2Pool {
    /// A pool keeping at most `max_per_key` connections per peer.
    pub fn new(max_per_key: usize) -> Self {
        H2Pool {
            shared: Arc::new(Shared {
                max_per_key,
                inner: Mutex::new(HashMap::new()),
                reaper: Reaper::new(),
            }),
        }
    }

    /// A connection to `key` that can take another stream now. Closed, GOAWAY'd and
    /// idle-expired connections are dropped on the way; full ones are skipped (the
    /// caller then opens a new connection and [`H2Pool::put`]s it).
    pub fn get(&self, key: u64) -> Option<H2ClientConnection> {
        let mut dropped = Vec::new();
        let found = {
            let mut map = self.shared.lock();
            let list = map.get_mut(&key)?;
            drain_stale(list, &mut dropped);
            // The least busy connection with room, so load spreads over them.
            let found = list
                .iter()
                .map(|p| &p.conn)
                .filter(|c| c.has_capacity())
                .min_by_key(|c| c.in_flight())
                .cloned();
            if list.is_empty() {
                map.remove(&key);
            }
            found
        };
        drop(dropped);
        found
    }

    /// Shares `conn` for `key`, to be closed once it has had no stream for
    /// `idle_timeout`. Returns false when it was not kept: it is closed, or `key` has
    /// `max_per_key` connections and none of them is idle (the caller can still use
    /// `conn`; it closes when dropped). Putting a connection already pooled does
    /// nothing and returns true.
    pub fn put(&self, key: u64, conn: H2ClientConnection, idle_timeout: Duration) -> bool {
        if conn.is_closed() || self.shared.max_per_key == 0 || idle_timeout.is_zero() {
            return false;
        }
        let mut dropped = Vec::new();
        let kept = {
            let mut map = self.shared.lock();
            let list = map.entry(key).or_default();
            if list.iter().any(|p| p.conn.same_connection(&conn)) {
                return true;
            }
            drain_stale(list, &mut dropped);
            if list.len() >= self.shared.max_per_key {
                // Make room by dropping an idle connection, if there is one.
                if let Some(pos) = list.iter().position(|p| p.conn.in_flight() == 0) {
                    dropped.push(list.swap_remove(pos).conn);
                }
            }
            if list.len() < self.shared.max_per_key {
                list.push(Pooled { conn, idle_timeout });
                true
            } else {
                false
            }
        };
        drop(dropped);
        if kept {
            // New connections are rare (one per peer and concurrency step): the
            // reaper just looks at the pool again, and starts watching this one.
            self.shared.reaper.wake();
            self.shared.reaper.ensure_running(&self.shared);
        }
        kept
    }

    /// How many connections are pooled for `key` (including ones not yet found stale).
    pub fn connections(&self, key: u64) -> usize {
        self.shared.lock().get(&key).map_or(0, Vec::len)
    }

    /// How many connections are pooled in all.
    pub fn len(&self) -> usize {
        self.shared.lock().values().map(Vec::len).sum()
    }

    /// How many pooled connections are open with no stream in flight.
    pub fn idle_len(&self) -> usize {
        let map = self.shared.lock();
        map.values()
            .flatten()
            .filter(|p| p.conn.in_flight() == 0 && !p.conn.is_closed())
            .count()
    }

    /// Whether no connection is pooled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Vec<Pooled>>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Reap for Shared {
    fn reap(&self, now: Instant, cx: &mut Context<'_>) -> Option<Instant> {
        let mut dropped = Vec::new();
        let mut next: Option<Instant> = None;
        let mut map = self.lock();
        map.retain(|_, list| {
            drain_stale(list, &mut dropped);
            let mut i = 0;
            while i < list.len() {
                let pooled = &list[i];
                if pooled.conn.poll_closed(cx).is_ready() {
                    dropped.push(list.swap_remove(i).conn);
                    continue;
                }
                // A busy connection expires at the earliest one timeout from now.
                let left = pooled.conn.idle_for().map_or(pooled.idle_timeout, |idle| {
                    pooled.idle_timeout.saturating_sub(idle)
                });
                let due = now + left;
                next = Some(next.map_or(due, |n| n.min(due)));
                i += 1;
            }
            !list.is_empty()
        });
        drop(map);
        drop(dropped);
        next
    }
}

/// Moves the stale connections of `list` to `dropped`.
fn drain_stale(list: &mut Vec<Pooled>, dropped: &mut Vec<H2ClientConnection>) {
    let mut i = 0;
    while i < list.len() {
        if list[i].is_stale() {
            dropped.push(list.swap_remove(i).conn);
        } else {
            i += 1;
        }
    }
}

/// HTTP/2 connections kept per peer; more are opened while all are full, but only
/// this many stay pooled.
const H2_CONNECTIONS_PER_PEER: usize = 8;

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

/// A new connection to a peer that may speak HTTP/2.
enum Opened {
    H2(H2ClientConnection),
    H1(Box<H1ClientSession>),
}

/// Sessions to peers that may speak HTTP/2: streams on shared pooled connections,
/// opened once per peer at a time (see the module documentation).
pub(crate) struct H2Sessions {
    pool: H2Pool,
    /// HTTP/2 connections being opened, by peer key: requests that find no room on a
    /// pooled connection wait for the one being opened instead of opening their own.
    opening: Mutex<HashMap<u64, Arc<watch::Sender<Opening>>>>,
}

impl H2Sessions {
    /// Sessions keeping up to 8 connections per peer, each closed once it had no
    /// stream for its peer's idle timeout.
    pub(crate) fn new() -> Self {
        H2Sessions {
            pool: H2Pool::new(H2_CONNECTIONS_PER_PEER),
            opening: Mutex::new(HashMap::new()),
        }
    }

    /// A session to `peer` (whose options allow HTTP/2): a stream on a pooled
    /// connection when `allow_reuse` and one has room, else on a new connection (or
    /// an HTTP/1.1 session, when TLS ALPN chose it). The flag says whether the
    /// connection was reused.
    pub(crate) async fn session(
        &self,
        dial: &Connector,
        peer: &HttpPeer,
        allow_reuse: bool,
    ) -> Result<(ClientSession, bool)> {
        if !allow_reuse {
            // A retry after a dead pooled connection: a connection of its own.
            return self.open_stream(dial, peer).await;
        }
        let timeouts = peer.options.client_timeouts();
        let key = peer.pool_key();
        loop {
            match self.slot(key) {
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
                        return self.open_stream(dial, peer).await;
                    }
                    // Look in the pool again: the new connection may have room, or be
                    // full already, and then someone opens the next one.
                }
                H2Slot::Open(opening) => {
                    // Waiters hear how it went, even if this request is cancelled.
                    let mut opener = Opener {
                        sessions: self,
                        key,
                        opening,
                        outcome: Opening::Failed,
                    };
                    let result = self.open_stream(dial, peer).await;
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
    async fn open_stream(
        &self,
        dial: &Connector,
        peer: &HttpPeer,
    ) -> Result<(ClientSession, bool)> {
        match open(dial, peer).await? {
            Opened::H2(conn) => {
                let stream = conn.new_stream(peer.options.client_timeouts()).await?;
                self.pool
                    .put(peer.pool_key(), conn, peer.options.idle_timeout);
                Ok((ClientSession::H2(stream), false))
            }
            Opened::H1(session) => Ok((ClientSession::H1(*session), false)),
        }
    }

    /// A stream on a new connection of its own, never pooled (the connection ends with
    /// the stream): for peers whose connections carry a PROXY header.
    pub(crate) async fn private_session(
        &self,
        dial: &Connector,
        peer: &HttpPeer,
    ) -> Result<(ClientSession, bool)> {
        match open(dial, peer).await? {
            Opened::H2(conn) => {
                let stream = conn.new_stream(peer.options.client_timeouts()).await?;
                Ok((ClientSession::H2(stream), false))
            }
            Opened::H1(session) => Ok((ClientSession::H1(*session), false)),
        }
    }

    /// Pooled connections open with no stream in flight.
    pub(crate) fn idle_count(&self) -> usize {
        self.pool.idle_len()
    }

    /// Looks for a pooled connection to `key` with room, or for someone opening one;
    /// else this request becomes the opener.
    fn slot(&self, key: u64) -> H2Slot {
        if let Some(conn) = self.pool.get(key) {
            return H2Slot::Pooled(conn);
        }
        let mut opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
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
        let mut map = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&key).is_some_and(|o| Arc::ptr_eq(o, opening)) {
            map.remove(&key);
        }
        drop(map);
        opening.send_replace(outcome);
    }
}

/// Opens a connection to a peer that may speak HTTP/2: HTTP/2 with prior knowledge
/// on plain TCP, or whatever ALPN chose over TLS.
async fn open(dial: &Connector, peer: &HttpPeer) -> Result<Opened> {
    let stream = dial.connect(peer).await?;
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

/// The request opening a shared HTTP/2 connection: when dropped (done, failed or
/// cancelled), it stops being the opener and tells the waiters the outcome.
struct Opener<'a> {
    sessions: &'a H2Sessions,
    key: u64,
    opening: Arc<watch::Sender<Opening>>,
    outcome: Opening,
}

impl Drop for Opener<'_> {
    fn drop(&mut self) {
        self.sessions.opened(self.key, &self.opening, self.outcome);
    }
}

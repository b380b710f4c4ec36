//! [`PerClientConnections`]: wraps a [`ServerApp`] so that one client address holds at
//! most so many connections at once; more are closed as soon as they are accepted.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;

use futures_util::future::{FutureExt, OptionFuture};
use pingora_core::protocols::{ConnectionInfo, Stream};
use pingora_core::service::ServerApp;
use pingora_core::shutdown::ShutdownWatch;

/// Independent locks over the counts, so that accepts on many threads rarely meet.
const SHARDS: usize = 16;

/// A [`ServerApp`] that refuses (closes) a connection from an address that already
/// holds `max` open connections, and serves the others with the wrapped app. Without a
/// limit it passes every connection through untouched. Unix-socket clients have no
/// address and are never limited.
pub struct PerClientConnections<A> {
    inner: A,
    max: Option<u32>,
    hasher: RandomState,
    counts: [Mutex<HashMap<IpAddr, u32>>; SHARDS],
}

impl<A: ServerApp> PerClientConnections<A> {
    /// `inner`, limited to `max` connections per client address (None: no limit).
    pub fn new(inner: A, max: Option<u32>) -> Self {
        PerClientConnections {
            inner,
            max,
            hasher: RandomState::new(),
            counts: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    /// The wrapped app.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// Open connections counted for `ip` now.
    pub fn connections_of(&self, ip: IpAddr) -> u32 {
        self.shard(ip)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .copied()
            .unwrap_or(0)
    }

    fn shard(&self, ip: IpAddr) -> &Mutex<HashMap<IpAddr, u32>> {
        let i = self.hasher.hash_one(ip) as usize % SHARDS;
        &self.counts[i]
    }

    /// Counts a connection of `ip` in, unless it already has `max`.
    fn enter(&self, ip: IpAddr, max: u32) -> bool {
        let mut counts = self.shard(ip).lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self, ip: IpAddr) {
        let mut counts = self.shard(ip).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }
}

/// Counts a connection out when it ends, however it ends.
struct Held<'a, A: ServerApp> {
    limit: &'a PerClientConnections<A>,
    ip: IpAddr,
}

impl<A: ServerApp> Drop for Held<'_, A> {
    fn drop(&mut self) {
        self.limit.leave(self.ip);
    }
}

impl<A: ServerApp> ServerApp for PerClientConnections<A> {
    fn process_connection(
        &self,
        stream: Stream,
        conn: ConnectionInfo,
        shutdown: ShutdownWatch,
    ) -> impl Future<Output = ()> + Send {
        // The client is the PROXY header's source when the connection came with one.
        let peer = conn.client();
        // None: refused (the stream is dropped, closing it); Some(None): not counted (no
        // limit, or a unix-socket client).
        let held = match (self.max, peer.ip()) {
            (Some(max), Some(ip)) if !self.enter(ip, max) => {
                log::info!("client {peer}: refused, it already has {max} connections open");
                None
            }
            (Some(_), Some(ip)) => Some(Some(Held { limit: self, ip })),
            _ => Some(None),
        };
        // Decided before the future is made, and the guard attached to the inner app's
        // future in place (not moved into an `async` block beside a copy of it): this is
        // the connection's task for its whole life.
        let serving = held.map(|held| {
            self.inner
                .process_connection(stream, conn, shutdown)
                .map(move |()| drop(held))
        });
        OptionFuture::from(serving).map(|_| ())
    }

    /// HTTP/3 requests pass straight through: a QUIC connection is not counted (see
    /// `docs/http3.md`).
    #[cfg(feature = "http3")]
    async fn process_h3_stream(&self, stream: pingora_core::protocols::http::v3::H3ServerStream) {
        self.inner.process_h3_stream(stream).await;
    }
}

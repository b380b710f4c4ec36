//! HTTP/1.x sessions to upstreams: an idle pooled connection when one is usable, else a
//! new one from the [`Connector`]. A connection is taken out of the pool for one
//! exchange and given back after it, if it can carry another.

use std::task::{Context, Poll};

use super::dial::Connector;
use super::peer::HttpPeer;
use super::pool::{ConnectionPool, Reusable};
use crate::error::Result;
use crate::protocols::http::v1::client::H1ClientSession;

impl Reusable for H1ClientSession {
    fn is_reusable(&self) -> bool {
        self.is_idle_and_open()
    }

    fn poll_unusable(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_idle_end(cx)
    }
}

/// Upstream HTTP/1.x connections: fresh ones from a [`Connector`], idle ones from a
/// bounded keep-alive pool.
pub(crate) struct H1Sessions {
    pool: ConnectionPool<H1ClientSession>,
}

impl H1Sessions {
    /// Sessions keeping at most `pool_size` idle connections in all.
    pub(crate) fn new(pool_size: usize) -> Self {
        H1Sessions {
            pool: ConnectionPool::new(pool_size),
        }
    }

    /// An idle pooled connection to `peer` if one is usable, set to `peer`'s timeouts
    /// (the connection may have served another route to the same address).
    pub(crate) fn reused(&self, peer: &HttpPeer) -> Option<H1ClientSession> {
        let mut session = self.pool.get(peer.pool_key())?;
        session.set_timeouts(peer.options.client_timeouts());
        Some(session)
    }

    /// A new connection to `peer`.
    pub(crate) async fn connect(
        &self,
        dial: &Connector,
        peer: &HttpPeer,
    ) -> Result<H1ClientSession> {
        let stream = dial.connect(peer).await?;
        Ok(H1ClientSession::new(stream, peer.options.client_timeouts()))
    }

    /// Gives a connection back after a complete exchange; kept only if reusable.
    pub(crate) fn release(&self, peer: &HttpPeer, session: H1ClientSession) {
        if session.is_idle_and_open() {
            self.pool
                .put(peer.pool_key(), session, peer.options.idle_timeout);
        }
    }

    /// How many idle connections are pooled.
    pub(crate) fn idle_count(&self) -> usize {
        self.pool.len()
    }
}

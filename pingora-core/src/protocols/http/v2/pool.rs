//! Shared HTTP/2 upstream connections by peer: unlike HTTP/1 connections, which are
//! taken out of their pool for one exchange, an HTTP/2 connection stays in the pool
//! while it carries many exchanges at once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::client::H2ClientConnection;

/// HTTP/2 connections by peer key (see `HttpPeer::pool_key`), at most
/// `max_per_key` each. The lock is held only for short bookkeeping, never across an
/// await, and connections are dropped outside it.
pub struct H2Pool {
    max_per_key: usize,
    idle_timeout: Duration,
    inner: Mutex<HashMap<u64, Vec<H2ClientConnection>>>,
}

impl std::fmt::Debug for H2Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Pool")
            .field("max_per_key", &self.max_per_key)
            .field("idle_timeout", &self.idle_timeout)
            .field("connections", &self.len())
            .finish()
    }
}

impl H2Pool {
    /// A pool keeping at most `max_per_key` connections per peer, each dropped once it
    /// has had no stream in flight for `idle_timeout`.
    pub fn new(max_per_key: usize, idle_timeout: Duration) -> Self {
        H2Pool {
            max_per_key,
            idle_timeout,
            inner: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Vec<H2ClientConnection>>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_stale(&self, conn: &H2ClientConnection) -> bool {
        conn.is_closed()
            || conn
                .idle_for()
                .is_some_and(|idle| idle >= self.idle_timeout)
    }

    /// A connection to `key` that can take another stream now. Closed, GOAWAY'd and
    /// idle-expired connections are dropped on the way; full ones are skipped (the
    /// caller then opens a new connection and [`H2Pool::put`]s it).
    pub fn get(&self, key: u64) -> Option<H2ClientConnection> {
        let mut dropped = Vec::new();
        let found = {
            let mut map = self.lock();
            let list = map.get_mut(&key)?;
            let mut i = 0;
            while i < list.len() {
                if self.is_stale(&list[i]) {
                    dropped.push(list.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            // The least busy connection with room, so load spreads over them.
            let found = list
                .iter()
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

    /// Shares `conn` for `key`. Returns false when it was not kept: it is closed, or
    /// `key` has `max_per_key` connections and none of them is idle (the caller can
    /// still use `conn`; it closes when dropped). Putting a connection already pooled
    /// does nothing and returns true.
    pub fn put(&self, key: u64, conn: H2ClientConnection) -> bool {
        if conn.is_closed() || self.max_per_key == 0 {
            return false;
        }
        let mut dropped = Vec::new();
        let kept = {
            let mut map = self.lock();
            let list = map.entry(key).or_default();
            if list.iter().any(|c| c.same_connection(&conn)) {
                return true;
            }
            let mut i = 0;
            while i < list.len() {
                if self.is_stale(&list[i]) {
                    dropped.push(list.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            if list.len() >= self.max_per_key {
                // Make room by dropping an idle connection, if there is one.
                if let Some(pos) = list.iter().position(|c| c.in_flight() == 0) {
                    dropped.push(list.swap_remove(pos));
                }
            }
            if list.len() < self.max_per_key {
                list.push(conn);
                true
            } else {
                false
            }
        };
        drop(dropped);
        kept
    }

    /// How many connections are pooled for `key` (including ones not yet found stale).
    pub fn connections(&self, key: u64) -> usize {
        self.lock().get(&key).map_or(0, Vec::len)
    }

    /// How many connections are pooled in all.
    pub fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Whether no connection is pooled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every closed or idle-expired connection (for a periodic sweep).
    pub fn evict_stale(&self) {
        let mut dropped = Vec::new();
        {
            let mut map = self.lock();
            map.retain(|_, list| {
                let mut i = 0;
                while i < list.len() {
                    if self.is_stale(&list[i]) {
                        dropped.push(list.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
                !list.is_empty()
            });
        }
        drop(dropped);
    }
}

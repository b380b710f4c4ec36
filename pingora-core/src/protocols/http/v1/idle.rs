//! An HTTP/1.x client connection between two requests, reduced to what must outlive them.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use super::io::{poll_readable_within, ReadTimer};
use super::server::{H1ServerSession, ServerSessionOptions};
use crate::protocols::{ClientAddr, ConnectionInfo, Stream};
use crate::shutdown::{Phase, ShutdownWatch};

/// A keep-alive client connection with no request in progress: the stream, who the
/// client is, and how many requests it carried; no buffers and no exchange state.
///
/// A server that holds its idle connections in this form (a few hundred bytes each,
/// beside the socket) rather than as whole [`H1ServerSession`]s keeps thousands of them
/// cheaply. [`H1ServerSession::into_idle`] makes one after a response;
/// [`H1IdleConnection::wait`] waits for the next request, and
/// [`H1IdleConnection::resume`] turns it back into a session.
pub struct H1IdleConnection {
    stream: Stream,
    conn: ConnectionInfo,
    read_timer: ReadTimer,
    requests: u64,
}

impl H1IdleConnection {
    pub(super) fn new(
        stream: Stream,
        conn: ConnectionInfo,
        read_timer: ReadTimer,
        requests: u64,
    ) -> Self {
        H1IdleConnection {
            stream,
            conn,
            read_timer,
            requests,
        }
    }

    /// The client's address.
    pub fn peer(&self) -> &ClientAddr {
        self.conn.client()
    }

    /// Waits up to `keepalive_timeout` for the client's next request. True once the
    /// client sent something (or closed: the resumed session then reads the end);
    /// false when the connection should end: it stayed idle past the timeout,
    /// `shutdown` reached [`Phase::Closing`], or the socket failed.
    pub async fn wait(
        &mut self,
        keepalive_timeout: Duration,
        shutdown: &mut ShutdownWatch,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + keepalive_timeout;
        let stream = &self.stream;
        let waited = match stream.read_waiting() {
            Ok(true) => return true,
            Ok(false) => {
                // One small future polling the three ends in turn (it is part of every
                // idle connection's task).
                let mut closing = std::pin::pin!(shutdown.reached(Phase::Closing));
                let timer = &mut self.read_timer;
                std::future::poll_fn(|cx| {
                    if closing.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(false));
                    }
                    poll_readable_within(stream, timer, deadline, cx)
                })
                .await
            }
            Err(e) => Err(e),
        };
        match waited {
            Ok(arrived) => {
                if !arrived && shutdown.phase() < Phase::Closing {
                    log_keepalive_timeout(self.conn.client(), keepalive_timeout);
                }
                arrived
            }
            Err(e) => {
                log::debug!("client {}: {e}", self.conn.client());
                false
            }
        }
    }

    /// The session for the next request, after [`H1IdleConnection::wait`] saw it
    /// arrive. `opts` and `shutdown` are the server's, given again.
    pub fn resume(self, opts: ServerSessionOptions, shutdown: ShutdownWatch) -> H1ServerSession {
        H1ServerSession::from_parts(
            self.stream,
            self.conn,
            opts,
            shutdown,
            self.read_timer,
            self.requests,
            // `wait` saw the socket readable: the session reads without asking again.
            true,
        )
    }
}

/// Logs that an idle connection reached its keep-alive timeout and is closed.
pub(super) fn log_keepalive_timeout(client: &ClientAddr, keepalive_timeout: Duration) {
    log::debug!(
        "client {client}: idle past the keep-alive timeout (keepalive_timeout_ms: {}); closed",
        keepalive_timeout.as_millis()
    );
}

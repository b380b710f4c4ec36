//! An HTTP/1.x client connection between two requests, reduced to what must outlive them.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;

use super::io::{read_more, readable_within, ReadTimer, HEAD_CHUNK};
use super::server::{H1ServerSession, ServerSessionOptions};
use crate::error::{Error, ErrorKind, Result, Side};
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
                    match stream.poll_read_ready(cx) {
                        Poll::Ready(r) => Poll::Ready(r.map(|()| true)),
                        Poll::Pending => timer.poll_expired(cx, deadline).map(|()| Ok(false)),
                    }
                })
                .await
            }
            Err(e) => Err(e),
        };
        match waited {
            Ok(arrived) => {
                if !arrived && shutdown.phase() < Phase::Closing {
                    log::debug!(
                        "client {}: idle past the keep-alive timeout (keepalive_timeout_ms: {}); closed",
                        self.conn.client(),
                        keepalive_timeout.as_millis()
                    );
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
        H1ServerSession::resume(
            self.stream,
            self.conn,
            opts,
            shutdown,
            self.read_timer,
            self.requests,
        )
    }
}

/// Waits for the first bytes of a request, within `wait`, and reads them into `buf`:
/// `Some(n)` with the count read (0 when the client closed), `None` when `shutdown`
/// reached [`Phase::Closing`] first, a [`ErrorKind::ReadTimeout`] error when `wait`
/// passed. While nothing arrived, `buf` is left without memory: an idle connection
/// holds no buffer. `arrived` says the caller already saw the socket readable.
pub(super) async fn first_bytes(
    stream: &mut Stream,
    buf: &mut BytesMut,
    timer: &mut ReadTimer,
    wait: Duration,
    shutdown: &mut ShutdownWatch,
    arrived: bool,
) -> Result<Option<usize>> {
    let read = async move {
        // One deadline for the wait and the read together.
        let deadline = tokio::time::Instant::now() + wait;
        if !arrived && buf.is_empty() && !stream.read_waiting().unwrap_or(true) {
            // Nothing buffered and nothing arrived: wait without a buffer. Once bytes
            // arrive, `read_more` allocates the head buffer again; a client whose next
            // request is already there never gets here.
            *buf = BytesMut::new();
            let arrived = readable_within(stream, timer, deadline)
                .await
                .map_err(|e| Error::from_io(Side::Downstream, "reading", e))?;
            if !arrived {
                return Err(Error::new(
                    ErrorKind::ReadTimeout,
                    Side::Downstream,
                    format!("no data for {}ms", wait.as_millis()),
                ));
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        read_more(stream, buf, HEAD_CHUNK, timer, left, Side::Downstream).await
    };
    tokio::select! {
        biased;
        r = read => r.map(Some),
        _ = shutdown.reached(Phase::Closing) => Ok(None),
    }
}

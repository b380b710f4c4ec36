//! Keep-alive PINGs: finding out that a quiet HTTP/2 connection's peer is gone.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use h2::{Ping, PingPong};
use tokio::time::{Instant, Sleep};

/// How often to PING a connection and how long to wait for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepalivePing {
    /// Time between the answer to one PING and the next PING.
    pub interval: Duration,
    /// Most time to wait for a PING's answer before the connection is deemed dead.
    pub timeout: Duration,
}

/// Sends a PING every `interval` and waits `timeout` for its answer. A poll-driven
/// state machine, so it can sit in a `select!` loop and be polled again after any
/// other branch won.
pub(crate) struct Keepalive {
    pings: PingPong,
    cfg: KeepalivePing,
    timer: Pin<Box<Sleep>>,
    awaiting_pong: bool,
}

impl Keepalive {
    pub(crate) fn new(pings: PingPong, cfg: KeepalivePing) -> Self {
        Keepalive {
            pings,
            cfg,
            timer: Box::pin(tokio::time::sleep(cfg.interval)),
            awaiting_pong: false,
        }
    }

    /// Ready once the peer is deemed gone: a PING went unanswered for `timeout`, or
    /// the connection can no longer carry PINGs. The connection must be polled
    /// meanwhile for answers to arrive.
    pub(crate) fn poll_dead(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.awaiting_pong {
                match self.pings.poll_pong(cx) {
                    Poll::Ready(Ok(_)) => {
                        self.awaiting_pong = false;
                        let next = Instant::now() + self.cfg.interval;
                        self.timer.as_mut().reset(next);
                        continue;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => {
                        // The timer now measures the wait for the answer.
                        return self.timer.as_mut().poll(cx);
                    }
                }
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.pings.send_ping(Ping::opaque()).is_err() {
                return Poll::Ready(());
            }
            self.awaiting_pong = true;
            let deadline = Instant::now() + self.cfg.timeout;
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl std::fmt::Debug for Keepalive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keepalive")
            .field("cfg", &self.cfg)
            .field("awaiting_pong", &self.awaiting_pong)
            .finish()
    }
}

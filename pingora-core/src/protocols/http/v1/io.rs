//! Buffered reads and writes with timeouts, shared by the server and client sessions.

use std::future::Future;
use std::io::IoSlice;
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::stream::{write_all_vectored, Stream};

/// Room made in the buffer before reading a head: most heads fit in one read.
pub(crate) const HEAD_CHUNK: usize = 4 * 1024;
/// Room made in the buffer before reading a body: large reads cut system calls.
pub(crate) const BODY_CHUNK: usize = 64 * 1024;
/// An idle connection's buffer larger than this is given back to the allocator.
pub(crate) const IDLE_BUF_MAX: usize = 16 * 1024;

/// The timer of one connection's reads: a single `Sleep`, made on the first read that
/// has to wait and kept for the connection's life.
///
/// A read that completes at once touches no timer. One that waits moves the timer only
/// when it must fire sooner than it is set to; when it fires for an earlier deadline
/// than the read's own (left from a shorter wait, or from the previous read), it is
/// moved on to the read's deadline. So a keep-alive connection registers its timer about
/// once per timeout period, not once per read (a timer registration and removal per
/// read was about 5% of the proxy's CPU).
#[derive(Debug, Default)]
pub(crate) struct ReadTimer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl ReadTimer {
    /// `Ready` once `deadline` passed; until then `cx` is woken by then (or sooner).
    fn poll_expired(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if sleep.deadline() > deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        loop {
            ready!(sleep.as_mut().poll(cx));
            if sleep.deadline() >= deadline {
                return Poll::Ready(());
            }
            // It fired for an earlier deadline: wait on to this one.
            sleep.as_mut().reset(deadline);
        }
    }
}

/// Reads more bytes into `buf` within `timeout` (kept by `timer`), making room for about
/// `chunk` bytes first; `Ok(0)` means the peer closed. Cancel-safe: if dropped before
/// completion nothing was read.
pub(crate) async fn read_more(
    stream: &mut Stream,
    buf: &mut BytesMut,
    chunk: usize,
    timer: &mut ReadTimer,
    timeout: Duration,
    side: Side,
) -> Result<usize> {
    if buf.capacity() - buf.len() < chunk / 4 {
        buf.reserve(chunk);
    }
    let mut read = pin!(stream.read_buf(buf));
    // Counted from the first time the read has to wait.
    let mut deadline = None;
    let done = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = read.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + timeout);
        timer.poll_expired(cx, deadline).map(|()| None)
    })
    .await;
    match done {
        Some(Ok(n)) => Ok(n),
        Some(Err(e)) => Err(Error::from_io(side, "reading", e)),
        None => Err(Error::new(
            ErrorKind::ReadTimeout,
            side,
            format!("no data for {}ms", timeout.as_millis()),
        )),
    }
}

/// Waits, holding no buffer, until `stream` has bytes to read (or was closed, or
/// failed), until `deadline` at most (kept by `timer`, as reads are): `Ok(false)` when
/// the deadline passed first. As [`Stream::readable`], it trusts the runtime's readiness
/// without a peek (a spurious one makes the next read wait as any read does).
pub(crate) async fn readable_within(
    stream: &Stream,
    timer: &mut ReadTimer,
    deadline: Instant,
) -> std::io::Result<bool> {
    if stream.read_waiting()? {
        return Ok(true);
    }
    std::future::poll_fn(|cx| poll_readable_within(stream, timer, deadline, cx)).await
}

/// One poll of [`readable_within`]'s wait, for callers that wait on more than the
/// socket and the deadline in the same future.
pub(super) fn poll_readable_within(
    stream: &Stream,
    timer: &mut ReadTimer,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<bool>> {
    match stream.poll_read_ready(cx) {
        Poll::Ready(r) => Poll::Ready(r.map(|()| true)),
        Poll::Pending => timer.poll_expired(cx, deadline).map(|()| Ok(false)),
    }
}

/// Frees a large buffer on a connection that has nothing buffered, so that idle
/// connections hold little memory.
pub(crate) fn shrink_idle(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > IDLE_BUF_MAX {
        *buf = BytesMut::new();
    }
}

/// Writes every slice in order within `timeout`.
pub(crate) async fn write_all(
    stream: &mut Stream,
    bufs: &mut [IoSlice<'_>],
    timeout: Duration,
    side: Side,
) -> Result<()> {
    within_write_timeout(write_all_vectored(stream, bufs), timeout, side).await
}

/// Runs a write within `timeout`, as an error of `side` when it fails or times out.
async fn within_write_timeout(
    write: impl Future<Output = std::io::Result<()>>,
    timeout: Duration,
    side: Side,
) -> Result<()> {
    let mut write = pin!(write);
    // Most writes complete at once: then no timer is made at all.
    let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
    let done = match first {
        Poll::Ready(r) => Ok(r),
        Poll::Pending => tokio::time::timeout(timeout, write).await,
    };
    match done {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::from_io(side, "writing", e)),
        Err(_) => Err(Error::new(
            ErrorKind::WriteTimeout,
            side,
            format!("write blocked for {}ms", timeout.as_millis()),
        )),
    }
}

/// Most bytes [`write_all_taking_replies`] takes in while a write is blocked.
pub(crate) const REPLY_INBOX_MAX: usize = 1024 * 1024;

/// How much one read of [`write_all_taking_replies`] takes in at most.
const REPLY_CHUNK: usize = 16 * 1024;

/// Like [`write_all`], but while the peer does not take our bytes, takes in what it
/// sends meanwhile (into `inbox`, up to [`REPLY_INBOX_MAX`] bytes in it), so that a peer
/// that answers while it reads (an echo, a streaming service) is never stuck writing
/// to us while we are stuck writing to it. Only for plain TCP and unix streams; over
/// TLS it is [`write_all`].
pub(crate) async fn write_all_taking_replies(
    stream: &mut Stream,
    bufs: &mut [IoSlice<'_>],
    inbox: &mut BytesMut,
    timeout: Duration,
    side: Side,
) -> Result<()> {
    if stream.is_tls() {
        return write_all(stream, bufs, timeout, side).await;
    }
    let work = async {
        let mut bufs = bufs;
        IoSlice::advance_slices(&mut bufs, 0);
        let mut reading = true;
        while !bufs.is_empty() {
            let n = std::future::poll_fn(|cx| loop {
                if let Poll::Ready(r) = Pin::new(&mut *stream).poll_write_vectored(cx, bufs) {
                    return Poll::Ready(r);
                }
                if !reading || inbox.len() >= REPLY_INBOX_MAX {
                    return Poll::Pending;
                }
                // Read straight into the inbox (no buffer of its own in this future: it
                // is part of every request's state machine).
                let start = inbox.len();
                let room = REPLY_CHUNK.min(REPLY_INBOX_MAX - start);
                inbox.resize(start + room, 0);
                let mut rb = ReadBuf::new(&mut inbox[start..]);
                let polled = Pin::new(&mut *stream).poll_read(cx, &mut rb);
                let got = rb.filled().len();
                inbox.truncate(start + got);
                match polled {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) if got == 0 => reading = false,
                    Poll::Ready(Ok(())) => {}
                    // Left for the next read of the response to report.
                    Poll::Ready(Err(_)) => reading = false,
                }
            })
            .await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut bufs, n);
        }
        Ok(())
    };
    within_write_timeout(work, timeout, side).await
}

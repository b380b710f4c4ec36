//! Buffered reads and writes with timeouts, shared by the server and client sessions.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::stream::{write_all_vectored, Stream};

/// Room made in the buffer before reading a head: most heads fit in one read.
pub(crate) const HEAD_CHUNK: usize = 4 * 1024;
/// Room made in the buffer before reading a body: large reads cut system calls.
pub(crate) const BODY_CHUNK: usize = 64 * 1024;
/// An idle connection's buffer larger than this is given back to the allocator.
pub(crate) const IDLE_BUF_MAX: usize = 16 * 1024;

/// Reads more bytes into `buf` within `timeout`, making room for about `chunk` bytes
/// first; `Ok(0)` means the peer closed. Cancel-safe: if dropped before completion
/// nothing was read.
pub(crate) async fn read_more(
    stream: &mut Stream,
    buf: &mut BytesMut,
    chunk: usize,
    timeout: Duration,
    side: Side,
) -> Result<usize> {
    if buf.capacity() - buf.len() < chunk / 4 {
        buf.reserve(chunk);
    }
    match tokio::time::timeout(timeout, stream.read_buf(buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(Error::from_io(side, "reading", e)),
        Err(_) => Err(Error::new(
            ErrorKind::ReadTimeout,
            side,
            format!("no data for {}ms", timeout.as_millis()),
        )),
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
    write: impl std::future::Future<Output = std::io::Result<()>>,
    timeout: Duration,
    side: Side,
) -> Result<()> {
    match tokio::time::timeout(timeout, write).await {
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

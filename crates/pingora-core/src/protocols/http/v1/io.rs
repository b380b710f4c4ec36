//! Buffered reads and writes with timeouts, shared by the server and client sessions.

use std::io::IoSlice;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;

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
    match tokio::time::timeout(timeout, write_all_vectored(stream, bufs)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::from_io(side, "writing", e)),
        Err(_) => Err(Error::new(
            ErrorKind::WriteTimeout,
            side,
            format!("write blocked for {}ms", timeout.as_millis()),
        )),
    }
}

//! Buffered reads and writes with timeouts, shared by the server and client sessions.

use std::io::IoSlice;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;

use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::stream::{write_all_vectored, Stream};

/// Bytes asked of the kernel per read.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// Reads more bytes into `buf` within `timeout`; `Ok(0)` means the peer closed.
/// Cancel-safe: if dropped before completion nothing was read.
pub(crate) async fn read_more(
    stream: &mut Stream,
    buf: &mut BytesMut,
    timeout: Duration,
    side: Side,
) -> Result<usize> {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
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

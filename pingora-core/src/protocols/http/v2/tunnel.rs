//! [`H2Tunnel`]: one HTTP/2 stream as a byte stream (`AsyncRead` + `AsyncWrite`), for
//! the tunnel an extended CONNECT (RFC 8441, WebSocket over HTTP/2) opens.
//!
//! Reading takes DATA payloads and gives their window back as they are consumed;
//! writing sends at most the window the peer granted, waiting for more; shutting down
//! sends END_STREAM. A peer's RST_STREAM reads as a reset connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most window asked for at once by one write.
const MAX_RESERVE: usize = 1 << 20;

/// An HTTP/2 stream carrying a tunnel, as a byte stream. The connection it belongs to
/// must keep being driven (see the [server docs](super::server)).
pub struct H2Tunnel {
    recv: RecvStream,
    send: SendStream<Bytes>,
    /// The part of the last DATA payload not read yet.
    pending: Bytes,
    ended: bool,
    /// Whatever must live as long as the tunnel (an upstream stream's place in its
    /// connection's count).
    _held: Option<Box<dyn Send + Sync>>,
}

impl std::fmt::Debug for H2Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Tunnel")
            .field("pending", &self.pending.len())
            .field("ended", &self.ended)
            .finish()
    }
}

fn h2_io(e: h2::Error) -> io::Error {
    if e.is_reset() || e.is_go_away() {
        io::Error::new(io::ErrorKind::ConnectionReset, e)
    } else {
        io::Error::other(e)
    }
}

impl H2Tunnel {
    /// The tunnel over a stream whose response head (2xx, not end of stream) was sent.
    pub(crate) fn new(recv: RecvStream, send: SendStream<Bytes>) -> Self {
        H2Tunnel {
            recv,
            send,
            pending: Bytes::new(),
            ended: false,
            _held: None,
        }
    }

    /// The same tunnel, keeping `held` alive until it is dropped.
    pub(crate) fn holding(mut self, held: Box<dyn Send + Sync>) -> Self {
        self._held = Some(held);
        self
    }
}

impl AsyncRead for H2Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.pending.is_empty() {
            match this.recv.poll_data(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(h2_io(e))),
                Poll::Ready(Some(Ok(data))) => {
                    // Fails only when the stream is gone, which the next poll reports.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    this.pending = data;
                }
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Tunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let send = &mut self.send;
        send.reserve_capacity(data.len().min(MAX_RESERVE));
        loop {
            let granted = send.capacity();
            if granted > 0 {
                let n = granted.min(data.len());
                send.send_data(Bytes::copy_from_slice(&data[..n]), false)
                    .map_err(h2_io)?;
                return Poll::Ready(Ok(n));
            }
            match send.poll_capacity(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(h2_io(e))),
                Poll::Ready(None) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the HTTP/2 stream was closed",
                    )))
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Frames go out as the connection is driven.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.ended {
            self.ended = true;
            self.send.send_data(Bytes::new(), true).map_err(h2_io)?;
        }
        Poll::Ready(Ok(()))
    }
}

//! Byte-stream adapters under the HTTP/2 connections: replaying bytes already read
//! ([`PrefixedIo`]) and watching the frames a server sends ([`FrameWatch`]).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream whose first reads return `prefix`: bytes an earlier reader (the HTTP/1
/// session sniffing for the h2c preface) took off the stream already.
#[derive(Debug)]
pub struct PrefixedIo<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> PrefixedIo<S> {
    /// Replays `prefix`, then reads from `inner`.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        PrefixedIo { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PrefixedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PrefixedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// What the peer announced, as seen by a [`FrameWatch`].
pub trait FrameObserver: Send + Sync + 'static {
    /// A SETTINGS frame (not an acknowledgement) arrived; `max_streams` is its
    /// SETTINGS_MAX_CONCURRENT_STREAMS value when present.
    fn on_settings(&self, max_streams: Option<u32>);
    /// A GOAWAY frame arrived: streams above `last_stream_id` were not processed.
    fn on_goaway(&self, last_stream_id: u32);
}

const FRAME_HEADER_LEN: usize = 9;
const TYPE_SETTINGS: u8 = 0x4;
const TYPE_GOAWAY: u8 = 0x7;
const FLAG_ACK: u8 = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// Most payload bytes kept for inspection (SETTINGS entries past this are not seen).
const KEEP_PAYLOAD: usize = 6 * 16;

/// Splits the bytes a peer sends into frames and reports SETTINGS and GOAWAY frames.
///
/// `h2` applies those frames too, but it does not say which streams a GOAWAY left
/// unprocessed, nor when the first SETTINGS arrived; watching the bytes does.
#[derive(Debug, Default)]
struct FrameScanner {
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame not seen yet.
    remaining: usize,
    kind: u8,
    flags: u8,
    payload: Vec<u8>,
}

impl FrameScanner {
    fn feed(&mut self, mut data: &[u8], observer: &dyn FrameObserver) {
        while !data.is_empty() {
            if self.header_len < FRAME_HEADER_LEN {
                let n = (FRAME_HEADER_LEN - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
                self.header_len += n;
                data = &data[n..];
                if self.header_len < FRAME_HEADER_LEN {
                    return;
                }
                let h = self.header;
                self.remaining =
                    usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                self.kind = h[3];
                self.flags = h[4];
                self.payload.clear();
                if self.remaining == 0 {
                    self.end_frame(observer);
                }
                continue;
            }
            let n = self.remaining.min(data.len());
            let interesting = matches!(self.kind, TYPE_SETTINGS | TYPE_GOAWAY);
            if interesting && self.payload.len() < KEEP_PAYLOAD {
                let keep = n.min(KEEP_PAYLOAD - self.payload.len());
                self.payload.extend_from_slice(&data[..keep]);
            }
            self.remaining -= n;
            data = &data[n..];
            if self.remaining == 0 {
                self.end_frame(observer);
            }
        }
    }

    fn end_frame(&mut self, observer: &dyn FrameObserver) {
        match self.kind {
            TYPE_SETTINGS if self.flags & FLAG_ACK == 0 => {
                let max = self.payload.chunks_exact(6).rev().find_map(|e| {
                    let id = u16::from_be_bytes([e[0], e[1]]);
                    (id == SETTINGS_MAX_CONCURRENT_STREAMS)
                        .then(|| u32::from_be_bytes([e[2], e[3], e[4], e[5]]))
                });
                observer.on_settings(max);
            }
            TYPE_GOAWAY if self.payload.len() >= 4 => {
                let p = &self.payload;
                let last = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
                observer.on_goaway(last);
            }
            _ => {}
        }
        self.header_len = 0;
        self.payload.clear();
    }
}

/// A client-side stream that reports the SETTINGS and GOAWAY frames the server sends
/// to a [`FrameObserver`], without changing a byte.
pub struct FrameWatch<S> {
    inner: S,
    scanner: FrameScanner,
    observer: std::sync::Arc<dyn FrameObserver>,
}

impl<S> FrameWatch<S> {
    /// Watches what `inner` receives (from its first byte: a server's preface is a
    /// SETTINGS frame).
    pub fn new(inner: S, observer: std::sync::Arc<dyn FrameObserver>) -> Self {
        FrameWatch {
            inner,
            scanner: FrameScanner::default(),
            observer,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameWatch<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let fresh = &buf.filled()[before..];
            this.scanner.feed(fresh, this.observer.as_ref());
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameWatch<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl FrameObserver for Seen {
        fn on_settings(&self, max_streams: Option<u32>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("settings {max_streams:?}"));
        }
        fn on_goaway(&self, last_stream_id: u32) {
            self.0
                .lock()
                .unwrap()
                .push(format!("goaway {last_stream_id}"));
        }
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.push(kind);
        f.push(flags);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn sample_frames() -> Vec<u8> {
        let mut bytes = Vec::new();
        // SETTINGS with MAX_CONCURRENT_STREAMS = 7 and INITIAL_WINDOW_SIZE.
        let mut p = vec![0, 3, 0, 0, 0, 7];
        p.extend_from_slice(&[0, 4, 0, 1, 0, 0]);
        bytes.extend(frame(TYPE_SETTINGS, 0, 0, &p));
        bytes.extend(frame(TYPE_SETTINGS, FLAG_ACK, 0, &[]));
        bytes.extend(frame(0x0, 0x1, 1, &[b'x'; 300]));
        bytes.extend(frame(TYPE_SETTINGS, 0, 0, &[]));
        let mut g = 0x8000_0005u32.to_be_bytes().to_vec();
        g.extend_from_slice(&0u32.to_be_bytes());
        g.extend_from_slice(b"debug data");
        bytes.extend(frame(TYPE_GOAWAY, 0, 0, &g));
        bytes
    }

    #[test]
    fn scanner_reports_settings_and_goaway_whatever_the_split() {
        let bytes = sample_frames();
        let want = ["settings Some(7)", "settings None", "goaway 5"];
        for step in [1, 2, 5, 9, 10, 64, bytes.len()] {
            let seen = Seen::default();
            let mut s = FrameScanner::default();
            for piece in bytes.chunks(step) {
                s.feed(piece, &seen);
            }
            assert_eq!(*seen.0.lock().unwrap(), want, "split {step}");
        }
    }

    #[tokio::test]
    async fn frame_watch_passes_bytes_unchanged() {
        let (mut a, b) = tokio::io::duplex(64);
        let seen = std::sync::Arc::new(Seen::default());
        let mut w = FrameWatch::new(b, seen.clone());
        let bytes = sample_frames();
        let sent = bytes.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&sent).await.unwrap();
            a.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        w.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, bytes);
        assert_eq!(seen.0.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn prefixed_io_replays_the_prefix_first() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut p = PrefixedIo::new(Bytes::from_static(b"hello "), b);
        a.write_all(b"world").await.unwrap();
        drop(a);
        let mut got = String::new();
        p.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "hello world");
    }
}

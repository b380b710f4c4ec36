//! A connected byte stream: TCP, unix, or TLS over one of them, with the few socket
//! operations the sessions need.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// The address of the far end of a [`Stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAddr {
    /// A TCP peer.
    Tcp(std::net::SocketAddr),
    /// A unix-socket peer (usually unnamed).
    Unix,
}

impl ClientAddr {
    /// The peer's IP address, when it has one.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            ClientAddr::Tcp(a) => Some(a.ip()),
            ClientAddr::Unix => None,
        }
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAddr::Tcp(a) => write!(f, "{a}"),
            ClientAddr::Unix => f.write_str("unix"),
        }
    }
}

/// A connected stream the HTTP sessions read and write.
///
/// Which variants exist depends on the crate's features (`Tls` needs `tls`), so code
/// outside this crate must not match on it exhaustively.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A unix-socket connection.
    Unix(UnixStream),
    /// TLS over another stream, handshake done.
    #[cfg(feature = "tls")]
    Tls(Box<tokio_boring::SslStream<Stream>>),
}

impl Stream {
    /// Reads without waiting: `Ok(0)` means the peer closed, `WouldBlock` means nothing to read.
    ///
    /// Used to check that an idle pooled connection is still usable. On a TLS stream
    /// nothing is consumed: the socket under it is peeked instead, and `Ok(n > 0)` means
    /// data (a record, or an alert such as `close_notify`) is waiting.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read(buf),
            Stream::Unix(s) => s.try_read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => {
                if s.ssl().pending() > 0 {
                    return Ok(s.ssl().pending());
                }
                s.get_ref().peek_raw()
            }
        }
    }

    /// Whether bytes (or the peer's close, or an error) are waiting to be read right
    /// now; reads nothing and never waits. A system call (a peek) is made only when the
    /// runtime's cached readiness says the socket may be readable.
    pub fn read_waiting(&self) -> io::Result<bool> {
        #[cfg(feature = "tls")]
        if let Stream::Tls(s) = self {
            if s.ssl().pending() > 0 {
                return Ok(true);
            }
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.poll_read_ready(&mut cx) {
            Poll::Pending => return Ok(false),
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Ready(Ok(())) => {}
        }
        match self.peek_raw() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(_) => Ok(true),
        }
    }

    /// Waits, holding no buffer, until bytes (or the peer's close, or an error) are
    /// waiting to be read: an idle connection can give its buffers back meanwhile.
    pub async fn readable(&self) -> io::Result<()> {
        while !self.read_waiting()? {
            std::future::poll_fn(|cx| self.poll_read_ready(cx)).await?;
        }
        Ok(())
    }

    /// Looks at the socket's receive queue without consuming it: `Ok(0)` closed,
    /// `Ok(n)` bytes waiting, `WouldBlock` nothing yet. On `WouldBlock` the runtime's
    /// cached read readiness is cleared too, so that [`Stream::poll_read_ready`] waits
    /// for new bytes instead of reporting the ones already read.
    fn peek_raw(&self) -> io::Result<usize> {
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        // `try_io` runs the closure only when readiness is set, and clears it on
        // `WouldBlock`: given an always-`WouldBlock` closure, it just clears it.
        let clear = || Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock));
        match self {
            // The sockets are non-blocking (tokio set them so): the peek never waits.
            Stream::Tcp(s) => {
                let r = socket2::SockRef::from(s).peek(&mut probe);
                if is_would_block(&r) {
                    let _ = s.try_io(tokio::io::Interest::READABLE, clear);
                }
                r
            }
            Stream::Unix(s) => {
                let r = socket2::SockRef::from(s).peek(&mut probe);
                if is_would_block(&r) {
                    let _ = s.try_io(tokio::io::Interest::READABLE, clear);
                }
                r
            }
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.get_ref().peek_raw(),
        }
    }

    /// Registers `cx`'s waker to be woken when the socket under this stream (under TLS
    /// too) has bytes to read, was closed by the peer, or failed; `Ready` when the
    /// runtime already saw that. Reads nothing and makes no system call.
    ///
    /// The readiness may be stale (left from bytes a session already read): check with
    /// [`Stream::try_read`], which clears it when nothing is there, and poll again. Only
    /// the waker of the last call (or of the last pending read) is woken.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_read_ready(cx),
            Stream::Unix(s) => s.poll_read_ready(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.get_ref().poll_read_ready(cx),
        }
    }

    /// The address of the far end.
    pub fn peer_addr(&self) -> ClientAddr {
        match self {
            Stream::Tcp(s) => s
                .peer_addr()
                .map(ClientAddr::Tcp)
                .unwrap_or(ClientAddr::Unix),
            Stream::Unix(_) => ClientAddr::Unix,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.get_ref().peer_addr(),
        }
    }

    /// The local address of a TCP stream (under TLS too); `None` for unix sockets.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Stream::Tcp(s) => s.local_addr().ok(),
            Stream::Unix(_) => None,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.get_ref().local_addr(),
        }
    }

    /// The application protocol agreed by TLS ALPN (`b"h2"`, `b"http/1.1"`), if any.
    /// Always `None` on plain streams and in builds without the `tls` feature.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.ssl().selected_alpn_protocol(),
            _ => None,
        }
    }

    /// What the client's certificate showed, on a TLS stream whose listener asks for
    /// one (see `TlsAcceptorOptions::client_auth`); `None` otherwise. Reads the
    /// handshake's result: call it once per connection.
    pub fn client_cert(&self) -> Option<super::tls::ClientCertInfo> {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(s) => super::tls::client_auth::client_cert_of(s.ssl()),
            _ => None,
        }
    }

    /// Whether the stream is encrypted with TLS.
    pub fn is_tls(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(_) => true,
            _ => false,
        }
    }

    /// The server name the client asked for with TLS SNI (on accepted TLS streams).
    pub fn server_name(&self) -> Option<&str> {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.ssl().servername(boring::ssl::NameType::HOST_NAME),
            _ => None,
        }
    }
}

fn is_would_block<T>(r: &io::Result<T>) -> bool {
    matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Most bytes gathered into one TLS write from several small buffers: one full record.
#[cfg(feature = "tls")]
const TLS_GATHER_BYTES: usize = 16 * 1024;

/// Writes `bufs` to a TLS stream as one record where they are small enough to gather,
/// instead of one record (and often one system call) per buffer.
#[cfg(feature = "tls")]
fn poll_write_tls_vectored(
    s: &mut tokio_boring::SslStream<Stream>,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
    let Some(first) = nonempty.next() else {
        return Poll::Ready(Ok(0));
    };
    if first.len() >= TLS_GATHER_BYTES {
        return Pin::new(s).poll_write(cx, first);
    }
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut gathered = Vec::with_capacity(total.min(TLS_GATHER_BYTES));
    gathered.extend_from_slice(first);
    for b in nonempty {
        let room = TLS_GATHER_BYTES - gathered.len();
        if room == 0 {
            break;
        }
        // A partial buffer is fine: the caller advances by the count written.
        gathered.extend_from_slice(&b[..b.len().min(room)]);
    }
    Pin::new(s).poll_write(cx, &gathered)
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => poll_write_tls_vectored(s, cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Writes every byte of `bufs`, in order, with as few system calls as the kernel allows.
pub async fn write_all_vectored(stream: &mut Stream, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut bufs = bufs;
    // Skip leading empty slices so that an all-empty write is a no-op.
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = stream.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn readable_waits_without_a_buffer_for_bytes_or_the_close() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let mut stream = Stream::Tcp(listener.accept().await.unwrap().0);
        assert!(!stream.read_waiting().unwrap());
        let waiting = tokio::time::timeout(Duration::from_millis(50), stream.readable()).await;
        assert!(waiting.is_err(), "readable before any byte arrived");

        peer.write_all(b"GET").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), stream.readable())
            .await
            .unwrap()
            .unwrap();
        assert!(stream.read_waiting().unwrap());
        let mut got = [0u8; 3];
        stream.read_exact(&mut got).await.unwrap();
        // Bytes read: nothing waits any more, even though the cached readiness is stale.
        assert!(!stream.read_waiting().unwrap());

        drop(peer);
        tokio::time::timeout(Duration::from_secs(5), stream.readable())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stream.read(&mut got).await.unwrap(), 0);
    }
}

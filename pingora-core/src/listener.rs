//! Listening sockets: where they listen, how they are bound, and accepting from them.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::{TcpListener, UnixListener};

use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::proxy_protocol::ProxyProtocolOptions;
use crate::protocols::tls::TlsAcceptor;
use crate::protocols::{ClientAddr, Stream};

/// Where a listener listens: `IP:PORT` or `unix:/path`. The one type shared with the
/// configuration file (`pingora_config`), so a parsed YAML address is used as it is.
/// Its `Display` form is canonical: listeners handed over during an upgrade are
/// matched by it, and it parses back with `str::parse`.
pub use pingora_config::{ListenAddr, ListenAddrParseError};

/// How a listening socket is set up, and whether its connections speak TLS.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// The accept queue length passed to `listen(2)`.
    pub backlog: u32,
    /// Terminate TLS on accepted connections with this acceptor (`None`: plain). The
    /// handshake runs in each connection's own task, never in the accept loop.
    pub tls: Option<Arc<TlsAcceptor>>,
    /// Read a PROXY protocol header first on accepted connections (`None`: off). Like
    /// the handshake, it is read in each connection's own task, before TLS.
    pub proxy_protocol: Option<ProxyProtocolOptions>,
    /// Also serve HTTP/3 on a UDP socket bound on the same address (feature `http3`;
    /// only on a TLS listener, whose certificates it serves).
    #[cfg(feature = "http3")]
    pub http3: Option<crate::protocols::http::v3::H3ServerOptions>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            tls: None,
            proxy_protocol: None,
            #[cfg(feature = "http3")]
            http3: None,
        }
    }
}

impl ListenOptions {
    /// Whether the listener wants its companion UDP socket (HTTP/3).
    fn wants_udp(&self) -> bool {
        #[cfg(feature = "http3")]
        return self.http3.is_some() && self.tls.is_some();
        #[cfg(not(feature = "http3"))]
        return false;
    }
}

/// A bound, listening socket, not yet registered with a runtime.
///
/// It is a plain file descriptor so that it can be created before the runtimes exist,
/// handed to another process during an upgrade, and registered with any runtime later.
#[derive(Debug)]
pub struct BoundListener {
    addr: ListenAddr,
    socket: Socket,
    /// The UDP socket on the same address, for HTTP/3 (handed over with the TCP one).
    udp: Option<Socket>,
}

/// The prefix that names a listener's UDP socket in a hand-over (`udp:IP:PORT`).
pub const UDP_HANDOVER_PREFIX: &str = "udp:";

impl BoundListener {
    /// Binds and listens on `addr`: TCP sockets get `SO_REUSEADDR` and `SO_REUSEPORT`,
    /// unix sockets replace a stale socket file nobody listens on.
    pub fn bind(addr: &ListenAddr, opts: &ListenOptions) -> Result<Self> {
        let socket = match addr {
            ListenAddr::Tcp(a) => bind_tcp(*a, opts),
            ListenAddr::Unix(p) => bind_unix(p, opts),
        }
        .map_err(|e| {
            Error::because(
                ErrorKind::BindError,
                Side::Internal,
                format!("cannot listen on {addr}"),
                e,
            )
        })?;
        let mut bound = BoundListener {
            addr: addr.clone(),
            socket,
            udp: None,
        };
        bound.ensure_udp(opts)?;
        Ok(bound)
    }

    /// Binds the companion UDP socket when `opts` wants one and none is there yet (an
    /// inherited listener whose old configuration had no HTTP/3); drops one `opts` does
    /// not want.
    pub fn ensure_udp(&mut self, opts: &ListenOptions) -> Result<()> {
        if !opts.wants_udp() {
            self.udp = None;
            return Ok(());
        }
        if self.udp.is_some() {
            return Ok(());
        }
        // The port actually bound, so that port 0 gets the same port for both.
        let Some(addr) = self.local_addr() else {
            return Ok(());
        };
        let udp = bind_udp(addr).map_err(|e| {
            Error::because(
                ErrorKind::BindError,
                Side::Internal,
                format!("cannot bind UDP {addr} for HTTP/3"),
                e,
            )
        })?;
        self.udp = Some(udp);
        Ok(())
    }

    /// Attaches a UDP socket received from another process.
    pub fn set_udp_fd(&mut self, fd: OwnedFd) {
        self.udp = Some(Socket::from(fd));
    }

    /// The UDP socket, if any, for handing it to another process.
    pub fn udp_fd(&self) -> Option<BorrowedFd<'_>> {
        self.udp.as_ref().map(|s| s.as_fd())
    }

    /// Takes the UDP socket out, to serve HTTP/3 on it.
    pub fn take_udp(&mut self) -> Option<std::net::UdpSocket> {
        self.udp.take().map(Into::into)
    }

    /// Wraps a listening socket received from another process (for example during an upgrade).
    pub fn from_fd(addr: ListenAddr, fd: OwnedFd) -> Self {
        BoundListener {
            addr,
            socket: Socket::from(fd),
            udp: None,
        }
    }

    /// Where this listener listens.
    pub fn addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// The actual local address (useful after binding port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok().and_then(|a| a.as_socket())
    }

    /// The socket's file descriptor, for handing it to another process.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Duplicates the socket (both copies refer to the same listening socket).
    pub fn try_clone(&self) -> Result<Self> {
        let socket = self.socket.try_clone().map_err(|e| {
            Error::because(
                ErrorKind::Io,
                Side::Internal,
                format!("cannot duplicate listener {}", self.addr),
                e,
            )
        })?;
        let udp = match &self.udp {
            Some(u) => Some(u.try_clone().map_err(|e| {
                Error::because(
                    ErrorKind::Io,
                    Side::Internal,
                    format!("cannot duplicate the UDP socket of {}", self.addr),
                    e,
                )
            })?),
            None => None,
        };
        Ok(BoundListener {
            addr: self.addr.clone(),
            socket,
            udp,
        })
    }

    /// Registers the socket with the current tokio runtime. Must be called inside a runtime.
    pub fn into_async(self) -> Result<AsyncListener> {
        let ctx = |e| {
            Error::because(
                ErrorKind::Io,
                Side::Internal,
                format!("cannot register listener {}", self.addr),
                e,
            )
        };
        self.socket.set_nonblocking(true).map_err(ctx)?;
        let inner = match &self.addr {
            ListenAddr::Tcp(_) => {
                let std: std::net::TcpListener = self.socket.into();
                AcceptSocket::Tcp(TcpListener::from_std(std).map_err(ctx)?)
            }
            ListenAddr::Unix(_) => {
                let std: std::os::unix::net::UnixListener = self.socket.into();
                AcceptSocket::Unix(UnixListener::from_std(std).map_err(ctx)?)
            }
        };
        Ok(AsyncListener {
            addr: self.addr,
            inner,
        })
    }
}

fn bind_tcp(addr: SocketAddr, opts: &ListenOptions) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_cloexec(true)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog(opts))?;
    Ok(socket)
}

/// A UDP socket for QUIC. No `SO_REUSEPORT`: another process on the port would get
/// part of the packets of our connections (an upgrade hands this socket over instead).
fn bind_udp(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_cloexec(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn bind_unix(path: &std::path::Path, opts: &ListenOptions) -> std::io::Result<Socket> {
    remove_stale_unix_socket(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_cloexec(true)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(backlog(opts))?;
    Ok(socket)
}

/// Removes a unix socket file left behind by a dead process; refuses when a live process listens.
fn remove_stale_unix_socket(path: &std::path::Path) -> std::io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another process is listening on this socket",
        )),
        Err(_) => std::fs::remove_file(path),
    }
}

fn backlog(opts: &ListenOptions) -> i32 {
    i32::try_from(opts.backlog).unwrap_or(i32::MAX)
}

enum AcceptSocket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A listener registered with a tokio runtime, ready to accept connections.
pub struct AsyncListener {
    addr: ListenAddr,
    inner: AcceptSocket,
}

impl AsyncListener {
    /// Where this listener listens.
    pub fn addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// Waits for the next connection. TCP connections get `TCP_NODELAY`.
    pub async fn accept(&self) -> std::io::Result<(Stream, ClientAddr)> {
        match &self.inner {
            AcceptSocket::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), ClientAddr::Tcp(peer)))
            }
            AcceptSocket::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), ClientAddr::Unix))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_round_trips() {
        for s in ["127.0.0.1:8080", "[::]:8443", "unix:/run/pingora/web.sock"] {
            assert_eq!(s.parse::<ListenAddr>().unwrap().to_string(), s);
        }
        assert!("unix:".parse::<ListenAddr>().is_err());
        assert!("nonsense".parse::<ListenAddr>().is_err());
    }

    #[test]
    fn binds_tcp_with_reuseport_twice() {
        let a = BoundListener::bind(
            &ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()),
            &ListenOptions::default(),
        )
        .unwrap();
        let port = a.local_addr().unwrap().port();
        let addr = ListenAddr::Tcp(format!("127.0.0.1:{port}").parse().unwrap());
        // SO_REUSEPORT lets a second socket bind the same port.
        BoundListener::bind(&addr, &ListenOptions::default()).unwrap();
    }

    #[test]
    fn unix_listener_replaces_stale_file_but_not_live_one() {
        let dir = std::env::temp_dir().join(format!("listener-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        std::fs::write(&path, b"").unwrap();
        let addr = ListenAddr::Unix(path.clone());
        let live = BoundListener::bind(&addr, &ListenOptions::default()).unwrap();
        let err = BoundListener::bind(&addr, &ListenOptions::default()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BindError);
        drop(live);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

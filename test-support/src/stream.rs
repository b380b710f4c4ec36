//! Where a client connects ([`Target`]: a TCP address or a unix socket path) and the
//! connected stream ([`ClientStream`]).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::client::{RawClient, Response};

/// Time a [`Target`] connection waits for the connect, and for each read and write.
pub const TARGET_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A listening address: TCP or a unix socket. Displayed the way the config writes a
/// listener (`127.0.0.1:8080`, `unix:/path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP listener.
    Tcp(SocketAddr),
    /// A unix-socket listener.
    Unix(PathBuf),
}

impl Target {
    /// A new connection, reads and writes bounded by [`TARGET_IO_TIMEOUT`].
    pub fn connect(&self) -> io::Result<RawClient> {
        RawClient::connect_to(self, TARGET_IO_TIMEOUT, TARGET_IO_TIMEOUT)
    }

    /// `GET path` on a fresh connection with `Connection: close`; the final response.
    pub fn get(&self, path: &str) -> io::Result<Response> {
        self.connect()?.get(path, true)
    }

    /// The TCP address; panics for a unix socket.
    pub fn tcp_addr(&self) -> SocketAddr {
        match self {
            Target::Tcp(a) => *a,
            Target::Unix(p) => panic!("{} is a unix socket, not a TCP address", p.display()),
        }
    }
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Target {
        Target::Tcp(addr)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(a) => write!(f, "{a}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A connected TCP or unix stream.
#[derive(Debug)]
pub enum ClientStream {
    /// TCP (no Nagle delay).
    Tcp(TcpStream),
    /// A unix socket.
    Unix(UnixStream),
}

impl ClientStream {
    /// Connects to `target`; `timeout` bounds a TCP connect.
    pub fn connect(target: &Target, timeout: Duration) -> io::Result<ClientStream> {
        Ok(match target {
            Target::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, timeout)?;
                s.set_nodelay(true)?;
                ClientStream::Tcp(s)
            }
            Target::Unix(p) => ClientStream::Unix(UnixStream::connect(p)?),
        })
    }

    /// A second handle on the same socket.
    pub fn try_clone(&self) -> io::Result<ClientStream> {
        Ok(match self {
            ClientStream::Tcp(s) => ClientStream::Tcp(s.try_clone()?),
            ClientStream::Unix(s) => ClientStream::Unix(s.try_clone()?),
        })
    }

    /// Sets the read timeout (`None`: block).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.set_read_timeout(t),
            ClientStream::Unix(s) => s.set_read_timeout(t),
        }
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        match self {
            ClientStream::Tcp(s) => s.read_timeout(),
            ClientStream::Unix(s) => s.read_timeout(),
        }
    }

    /// Sets the write timeout (`None`: block).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.set_write_timeout(t),
            ClientStream::Unix(s) => s.set_write_timeout(t),
        }
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.shutdown(how),
            ClientStream::Unix(s) => s.shutdown(how),
        }
    }

    /// The local address of a TCP stream (an `Unsupported` error on a unix socket).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            ClientStream::Tcp(s) => s.local_addr(),
            ClientStream::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a unix socket has no TCP address",
            )),
        }
    }
}

impl Read for &ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            ClientStream::Tcp(s) => (&*s).read(buf),
            ClientStream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for &ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            ClientStream::Tcp(s) => (&*s).write(buf),
            ClientStream::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match *self {
            ClientStream::Tcp(s) => (&*s).flush(),
            ClientStream::Unix(s) => (&*s).flush(),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

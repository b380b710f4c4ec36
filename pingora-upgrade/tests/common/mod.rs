//! Helpers shared by the integration tests: temp dirs, listeners, time limits.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use pingora_upgrade::{HandedListener, SendOptions};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh directory whose name is unique to this process and call.
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pgup-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Send options with short retry intervals for tests.
pub fn quick_opts() -> SendOptions {
    SendOptions {
        connect_retries: 100,
        retry_interval: Duration::from_millis(20),
        io_timeout: Duration::from_secs(5),
    }
}

/// Runs `f` on a thread and panics if it has not finished within `limit`.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("did not finish within {limit:?}: {e}"))
}

/// Spawns `f` on a thread; `join_within` collects its result with a limit.
pub fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// Waits for a result from [`spawn`], panicking after `limit`.
pub fn join_within<T>(rx: mpsc::Receiver<T>, limit: Duration) -> T {
    rx.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("thread did not finish within {limit:?}: {e}"))
}

/// A TCP listener on 127.0.0.1 with an OS-chosen port, and its address string.
pub fn tcp_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// A unix listener at `path`, and its address string `unix:PATH`.
pub fn unix_listener(path: &Path) -> (UnixListener, String) {
    let listener = UnixListener::bind(path).unwrap();
    (listener, format!("unix:{}", path.display()))
}

/// Waits until `fd` is readable (a pending connection), panicking after 5 s.
fn wait_readable(fd: &impl AsFd) {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::from(5000u16)).unwrap();
    assert_eq!(
        ready, 1,
        "no pending connection on the received listener within 5 s"
    );
}

/// Proves `fd` is the listening socket at TCP `addr`: a client connecting to
/// `addr` is accepted on `fd`, and bytes flow both ways.
pub fn assert_accepts_tcp(fd: OwnedFd, addr: &str) {
    let listener = TcpListener::from(fd);
    let target: SocketAddr = addr.parse().unwrap();
    assert_eq!(listener.local_addr().unwrap(), target);
    let mut client = TcpStream::connect(target).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    wait_readable(&listener);
    let (mut server, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    server.write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
}

/// Proves `fd` is the unix listening socket at `unix:PATH`.
pub fn assert_accepts_unix(fd: OwnedFd, addr: &str) {
    let path = addr.strip_prefix("unix:").unwrap();
    let listener = UnixListener::from(fd);
    assert_eq!(
        listener.local_addr().unwrap().as_pathname(),
        Some(Path::new(path))
    );
    let mut client = UnixStream::connect(path).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    wait_readable(&listener);
    let (mut server, _) = listener.accept().unwrap();
    server.write_all(b"ok").unwrap();
    let mut buf = [0u8; 2];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ok");
}

/// Checks the received listeners carry `expected` addresses in order and that
/// each one accepts connections made to its address.
pub fn assert_handed(received: Vec<HandedListener>, expected: &[String]) {
    let addrs: Vec<&str> = received.iter().map(|l| l.addr.as_str()).collect();
    assert_eq!(
        addrs,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for listener in received {
        if listener.addr.starts_with("unix:") {
            assert_accepts_unix(listener.fd, &listener.addr);
        } else {
            assert_accepts_tcp(listener.fd, &listener.addr);
        }
    }
}

/// Reads a refusal ack from a raw peer connection and returns its text.
pub fn read_refusal(stream: &mut UnixStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut header = [0u8; 7];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(&header[..4], b"PGUP");
    assert_eq!(header[4], 1, "expected a refusal status");
    let len = u16::from_be_bytes([header[5], header[6]]) as usize;
    let mut text = vec![0u8; len];
    stream.read_exact(&mut text).unwrap();
    String::from_utf8(text).unwrap()
}

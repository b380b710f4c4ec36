//! The new instance's side: wait at the upgrade socket and take the listeners.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{getsockopt, sockopt};

use crate::channel::{deadline_after, Channel};
use crate::error::{Result, UpgradeError};
use crate::peer::check_peer;
use crate::protocol::{encode_ack, read_hello, ACK_ACCEPTED, ACK_REFUSED, MAX_FDS_PER_MESSAGE};

/// How long one peer may take over its whole hand-over, by default.
pub const DEFAULT_PEER_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long we try to tell a refused peer why, at most.
const REFUSAL_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest single `poll` wait; the loop re-checks the deadline after each.
const MAX_POLL_SLICE_MS: u16 = u16::MAX;

/// Mode of the upgrade socket file: owner read/write only.
const SOCKET_FILE_MODE: u32 = 0o600;

/// One listening socket received from the old instance.
///
/// The descriptor is owned: dropping a `HandedListener` (or its `fd`) closes
/// this process's copy of the socket, which is how the caller discards the
/// listeners its own configuration no longer has.
#[derive(Debug)]
pub struct HandedListener {
    /// The address the socket listens on, exactly as the old instance named it
    /// (for example `0.0.0.0:8080`, `[::]:8443` or `unix:/run/x.sock`).
    pub addr: String,
    /// The listening socket itself, with `FD_CLOEXEC` set.
    pub fd: OwnedFd,
}

/// A unix socket at the upgrade path where the new instance waits for the old
/// one to hand over its listening sockets.
///
/// The socket file is created with mode 0600 and removed when the receiver is
/// dropped (if it is still the file this receiver created).
#[derive(Debug)]
pub struct UpgradeReceiver {
    listener: UnixListener,
    path: PathBuf,
    file_identity: (u64, u64),
    peer_io_timeout: Duration,
    also_allowed_uid: Option<u32>,
}

impl UpgradeReceiver {
    /// Creates the upgrade socket at `path` and starts listening on it.
    ///
    /// A socket file already at `path` is removed first if nobody listens on
    /// it any more (a leftover of a crashed instance). If a process accepts
    /// connections there, this fails with [`UpgradeError::AlreadyWaiting`]; if
    /// `path` is something other than a socket, with [`UpgradeError::NotASocket`].
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        remove_stale_socket(path)?;
        let listener = UnixListener::bind(path).map_err(|e| {
            if e.kind() == io::ErrorKind::AddrInUse {
                UpgradeError::AlreadyWaiting {
                    path: path.to_path_buf(),
                }
            } else {
                UpgradeError::io(format!("binding the upgrade socket {}", path.display()), e)
            }
        })?;
        // From here on, a failure must not leave our socket file behind.
        let cleanup = |e: UpgradeError| {
            let _ = fs::remove_file(path);
            e
        };
        fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_FILE_MODE))
            .map_err(|e| UpgradeError::io(format!("setting mode 0600 on {}", path.display()), e))
            .map_err(cleanup)?;
        let meta = fs::symlink_metadata(path)
            .map_err(|e| UpgradeError::io(format!("inspecting {}", path.display()), e))
            .map_err(cleanup)?;
        listener
            .set_nonblocking(true)
            .map_err(|e| UpgradeError::io(format!("configuring {}", path.display()), e))
            .map_err(cleanup)?;
        log::debug!("waiting for upgrade hand-overs at {}", path.display());
        Ok(UpgradeReceiver {
            listener,
            path: path.to_path_buf(),
            file_identity: (meta.dev(), meta.ino()),
            peer_io_timeout: DEFAULT_PEER_IO_TIMEOUT,
            also_allowed_uid: None,
        })
    }

    /// Limits how long any one peer may take over its hand-over (default
    /// [`DEFAULT_PEER_IO_TIMEOUT`]), so a peer that connects and stalls delays
    /// a legitimate sender by at most this much.
    pub fn with_peer_io_timeout(mut self, timeout: Duration) -> Self {
        self.peer_io_timeout = timeout;
        self
    }

    /// Also accepts a sender running as `uid`: a new instance started as root that will
    /// drop to a service user must accept the old instance, which already runs as it.
    pub fn allow_uid(mut self, uid: u32) -> Self {
        self.also_allowed_uid = Some(uid);
        self
    }

    /// The path of the upgrade socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits up to `timeout` for the old instance and returns its listeners,
    /// in the order it sent them.
    ///
    /// A peer running as another user (neither ours nor root), a peer that
    /// breaks the protocol, closes early or stalls is refused (told why when
    /// possible), logged, and the wait goes on for a legitimate peer. Only
    /// after a complete hand-over is the sender acknowledged. When `timeout`
    /// passes without one, returns [`UpgradeError::Timeout`] naming the last
    /// refusal, if any.
    ///
    /// The caller keeps the listeners its configuration has, drops the rest
    /// (closing them), and binds fresh whatever is missing.
    pub fn receive(&self, timeout: Duration) -> Result<Vec<HandedListener>> {
        let started = Instant::now();
        let deadline = deadline_after(timeout);
        let mut last_refusal: Option<String> = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let mut during =
                    "waiting for the old instance to hand over its listeners".to_string();
                if let Some(reason) = last_refusal {
                    during.push_str(&format!(" (last refused peer: {reason})"));
                }
                return Err(UpgradeError::Timeout {
                    path: self.path.clone(),
                    waited: started.elapsed(),
                    during,
                });
            }
            if !self.wait_for_peer(left)? {
                continue;
            }
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    return Err(UpgradeError::io(
                        format!("accepting on the upgrade socket {}", self.path.display()),
                        e,
                    ))
                }
            };
            let peer_deadline = deadline.min(deadline_after(self.peer_io_timeout));
            match self.serve_peer(stream, peer_deadline) {
                Ok(listeners) => {
                    log::info!(
                        "received {} listening sockets over {}",
                        listeners.len(),
                        self.path.display()
                    );
                    return Ok(listeners);
                }
                Err(e) => {
                    log::warn!(
                        "refused a peer on the upgrade socket {}: {e}",
                        self.path.display()
                    );
                    last_refusal = Some(e.to_string());
                }
            }
        }
    }

    /// Polls the listening socket for up to `left`; true when a peer is waiting.
    fn wait_for_peer(&self, left: Duration) -> Result<bool> {
        // Round up so a sub-millisecond remainder does not become a busy loop.
        let ms = left.as_nanos().div_ceil(1_000_000);
        let slice = u16::try_from(ms).unwrap_or(MAX_POLL_SLICE_MS);
        let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(slice)) {
            Ok(n) => Ok(n > 0),
            Err(Errno::EINTR) => Ok(false),
            Err(e) => Err(UpgradeError::io(
                format!("waiting on the upgrade socket {}", self.path.display()),
                io::Error::from(e),
            )),
        }
    }

    /// Runs one peer's hand-over; on failure tells the peer why (best effort).
    fn serve_peer(&self, stream: UnixStream, deadline: Instant) -> Result<Vec<HandedListener>> {
        let mut channel = Channel::new(stream, &self.path, deadline)?;
        match read_handover(&mut channel, self.also_allowed_uid) {
            Ok(listeners) => {
                channel.send_all(&encode_ack(ACK_ACCEPTED, ""), "sending the acknowledgement")?;
                Ok(listeners)
            }
            Err(e) => {
                channel.shorten_deadline(REFUSAL_SEND_TIMEOUT);
                let _ = channel.send_all(
                    &encode_ack(ACK_REFUSED, &e.to_string()),
                    "sending a refusal",
                );
                Err(e)
            }
        }
    }
}

impl Drop for UpgradeReceiver {
    fn drop(&mut self) {
        // Remove the file only if it is still ours: a later instance may have
        // replaced it after we stopped listening.
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.file_identity {
                if let Err(e) = fs::remove_file(&self.path) {
                    log::warn!(
                        "could not remove the upgrade socket {}: {e}",
                        self.path.display()
                    );
                }
            }
        }
    }
}

/// Removes a socket file nobody listens on; refuses if someone does.
fn remove_stale_socket(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(UpgradeError::io(
                format!("inspecting {}", path.display()),
                e,
            ))
        }
    };
    if !meta.file_type().is_socket() {
        return Err(UpgradeError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(UpgradeError::AlreadyWaiting {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("removing the stale upgrade socket {}", path.display());
            match fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(UpgradeError::io(
                    format!("removing the stale upgrade socket {}", path.display()),
                    e,
                )),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(UpgradeError::io(
            format!("probing the existing upgrade socket {}", path.display()),
            e,
        )),
    }
}

/// Reads a whole hand-over from a peer: credentials, hello, addresses, descriptors.
fn read_handover(
    channel: &mut Channel,
    also_allowed_uid: Option<u32>,
) -> Result<Vec<HandedListener>> {
    check_peer(channel.stream(), also_allowed_uid)?;

    let addrs = read_hello(channel)?;
    let count = addrs.len();
    if channel.received_fd_count() != 0 {
        return Err(UpgradeError::protocol(
            "descriptors arrived with the hello instead of after it",
        ));
    }

    while channel.received_fd_count() < count {
        let before = channel.received_fd_count();
        let mut marker = [0u8; 1];
        channel.recv_exact(&mut marker, "receiving descriptors")?;
        let announced = usize::from(marker[0]);
        let got = channel.received_fd_count() - before;
        if announced == 0 || announced > MAX_FDS_PER_MESSAGE || got != announced {
            return Err(UpgradeError::protocol(format!(
                "a descriptor message announced {announced} descriptors but carried {got}"
            )));
        }
    }
    if channel.received_fd_count() != count {
        return Err(UpgradeError::protocol(format!(
            "received {} descriptors for {count} listeners",
            channel.received_fd_count()
        )));
    }

    let fds = channel.take_fds();
    let mut listeners = Vec::with_capacity(count);
    for (addr, fd) in addrs.into_iter().zip(fds) {
        check_listening(&fd, &addr)?;
        listeners.push(HandedListener { addr, fd });
    }
    Ok(listeners)
}

/// Verifies a received descriptor is a listening socket, or a datagram socket (the UDP
/// socket of a listener serving QUIC, which has nothing to listen with).
fn check_listening(fd: &OwnedFd, addr: &str) -> Result<()> {
    if matches!(
        getsockopt(fd, sockopt::SockType),
        Ok(nix::sys::socket::SockType::Datagram)
    ) {
        return Ok(());
    }
    match getsockopt(fd, sockopt::AcceptConn) {
        Ok(true) => Ok(()),
        Ok(false) => Err(UpgradeError::protocol(format!(
            "the descriptor sent for {addr} is a socket that is not listening"
        ))),
        Err(e) => Err(UpgradeError::protocol(format!(
            "the descriptor sent for {addr} is not a listening socket ({e})"
        ))),
    }
}

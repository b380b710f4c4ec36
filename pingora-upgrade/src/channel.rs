//! A connected unix stream bounded by a deadline, able to pass descriptors.
//!
//! Every send and receive sets the socket's timeout to the time left before
//! the deadline, so a stalled peer can hold us up to the deadline and no more.
//! Every receive offers room for a full `SCM_RIGHTS` message and keeps the
//! descriptors that arrive, whichever data bytes they came with.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::error::{Result, UpgradeError};
use crate::protocol::{MessageSource, MAX_FDS_PER_MESSAGE};

/// Smallest socket timeout we set: a zero timeout means "block forever".
const MIN_SOCKET_TIMEOUT: Duration = Duration::from_millis(1);

/// Furthest deadline we compute; longer waits are capped here instead of overflowing.
const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The instant `wait` from now, capped at [`MAX_WAIT`] so huge values cannot overflow.
pub(crate) fn deadline_after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait.min(MAX_WAIT)).unwrap_or(now)
}

/// One side of an upgrade connection.
pub(crate) struct Channel {
    stream: UnixStream,
    path: PathBuf,
    started: Instant,
    deadline: Instant,
    received_fds: Vec<OwnedFd>,
    received_bytes: usize,
}

impl Channel {
    /// Wraps a connected stream; all I/O must finish by `deadline`.
    pub(crate) fn new(stream: UnixStream, path: &Path, deadline: Instant) -> Result<Self> {
        stream.set_nonblocking(false).map_err(|e| {
            UpgradeError::io(format!("configuring a connection on {}", path.display()), e)
        })?;
        Ok(Channel {
            stream,
            path: path.to_path_buf(),
            started: Instant::now(),
            deadline,
            received_fds: Vec::new(),
            received_bytes: 0,
        })
    }

    /// Brings the deadline forward to at most `limit` from now.
    pub(crate) fn shorten_deadline(&mut self, limit: Duration) {
        self.deadline = self.deadline.min(deadline_after(limit));
    }

    /// The underlying stream (for credential checks).
    pub(crate) fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Number of descriptors received so far.
    pub(crate) fn received_fd_count(&self) -> usize {
        self.received_fds.len()
    }

    /// Takes every descriptor received so far.
    pub(crate) fn take_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.received_fds)
    }

    fn timeout_error(&self, during: &str) -> UpgradeError {
        UpgradeError::Timeout {
            path: self.path.clone(),
            waited: self.started.elapsed(),
            during: during.to_string(),
        }
    }

    /// Time left before the deadline, or a timeout error when none is left.
    fn remaining(&self, during: &str) -> Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timeout_error(during));
        }
        Ok(left.max(MIN_SOCKET_TIMEOUT))
    }

    fn arm_send_timeout(&self, during: &str) -> Result<()> {
        let left = self.remaining(during)?;
        self.stream.set_write_timeout(Some(left)).map_err(|e| {
            UpgradeError::io(
                format!("setting a write timeout on {}", self.path.display()),
                e,
            )
        })
    }

    fn arm_recv_timeout(&self, during: &str) -> Result<()> {
        let left = self.remaining(during)?;
        self.stream.set_read_timeout(Some(left)).map_err(|e| {
            UpgradeError::io(
                format!("setting a read timeout on {}", self.path.display()),
                e,
            )
        })
    }

    fn map_errno(&self, err: Errno, during: &str) -> UpgradeError {
        if err == Errno::EAGAIN || err == Errno::EWOULDBLOCK {
            self.timeout_error(during)
        } else {
            UpgradeError::io(
                format!("{during} on {}", self.path.display()),
                io::Error::from(err),
            )
        }
    }

    /// Sends all of `data` (no descriptors).
    pub(crate) fn send_all(&mut self, mut data: &[u8], during: &str) -> Result<()> {
        while !data.is_empty() {
            self.arm_send_timeout(during)?;
            match sendmsg::<()>(
                self.stream.as_raw_fd(),
                &[IoSlice::new(data)],
                &[],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(0) => {
                    return Err(UpgradeError::io(
                        format!("{during} on {}", self.path.display()),
                        io::Error::from(io::ErrorKind::WriteZero),
                    ))
                }
                Ok(n) => data = &data[n..],
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(self.map_errno(e, during)),
            }
        }
        Ok(())
    }

    /// Sends one byte carrying `fds` (at most [`MAX_FDS_PER_MESSAGE`]) as `SCM_RIGHTS`.
    pub(crate) fn send_fds(
        &mut self,
        marker: u8,
        fds: &[BorrowedFd<'_>],
        during: &str,
    ) -> Result<()> {
        debug_assert!(!fds.is_empty() && fds.len() <= MAX_FDS_PER_MESSAGE);
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let data = [marker];
        loop {
            self.arm_send_timeout(during)?;
            match sendmsg::<()>(
                self.stream.as_raw_fd(),
                &[IoSlice::new(&data)],
                &[ControlMessage::ScmRights(&raw)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                // The descriptors travel with the first byte, so one byte sent is all.
                Ok(1) => return Ok(()),
                Ok(_) => {
                    return Err(UpgradeError::io(
                        format!("{during} on {}", self.path.display()),
                        io::Error::from(io::ErrorKind::WriteZero),
                    ))
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(self.map_errno(e, during)),
            }
        }
    }

    /// Fills `buf` exactly, keeping any descriptors that arrive meanwhile.
    ///
    /// An end of stream before `buf` is full is a protocol error.
    pub(crate) fn recv_exact(&mut self, buf: &mut [u8], during: &str) -> Result<()> {
        let mut filled = 0;
        let mut cmsg_buffer = nix::cmsg_space!([RawFd; MAX_FDS_PER_MESSAGE]);
        while filled < buf.len() {
            self.arm_recv_timeout(during)?;
            let mut iov = [IoSliceMut::new(&mut buf[filled..])];
            let (bytes, fds, truncated) = match recvmsg::<()>(
                self.stream.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_buffer),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
                    let mut fds = Vec::new();
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for cmsg in cmsgs {
                            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                                fds.extend(raw);
                            }
                        }
                    }
                    (msg.bytes, fds, truncated)
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(self.map_errno(e, during)),
            };
            self.received_fds
                .extend(fds.into_iter().map(own_received_fd));
            if truncated {
                return Err(UpgradeError::protocol(format!(
                    "{during}: descriptors were lost because a message carried more than {MAX_FDS_PER_MESSAGE}"
                )));
            }
            if bytes == 0 {
                return Err(UpgradeError::protocol(format!(
                    "{during}: the peer closed the connection after {} bytes",
                    self.received_bytes
                )));
            }
            filled += bytes;
            self.received_bytes += bytes;
        }
        Ok(())
    }
}

impl MessageSource for Channel {
    fn recv_exact(&mut self, buf: &mut [u8], during: &str) -> Result<()> {
        Channel::recv_exact(self, buf, during)
    }
}

/// Takes ownership of a descriptor the kernel just installed from `SCM_RIGHTS`.
#[allow(unsafe_code)]
fn own_received_fd(raw: RawFd) -> OwnedFd {
    // SAFETY: `raw` was installed into this process's descriptor table by the
    // recvmsg call that returned it; nothing else knows about it yet, so this
    // OwnedFd is its sole owner and will close it exactly once.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

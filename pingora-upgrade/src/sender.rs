//! The old instance's side: connect to the upgrade socket and send the listeners.

use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::channel::{deadline_after, Channel};
use crate::error::{Result, UpgradeError};
use crate::peer::check_peer;
use crate::protocol::{self, encode_hello, ACK_ACCEPTED, MAX_FDS_PER_MESSAGE};

/// First pause after a failed connect to the upgrade socket.
const FIRST_CONNECT_BACKOFF: Duration = Duration::from_millis(2);

/// Longest pause between two connects to the upgrade socket.
pub const MAX_CONNECT_BACKOFF: Duration = Duration::from_millis(25);

/// How [`send_listeners`] connects and how long it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOptions {
    /// How many `retry_interval`s to keep trying to connect while nobody
    /// listens at the path yet (default 5): the connect gives up after
    /// `connect_retries × retry_interval`.
    pub connect_retries: u32,
    /// The unit of that wait (default 1 s). Within it, connecting is tried
    /// again after a short back-off (a few milliseconds, doubling up to
    /// [`MAX_CONNECT_BACKOFF`]), so the hand-over starts as soon as the new
    /// instance listens rather than at the next whole interval.
    pub retry_interval: Duration,
    /// Time allowed for the whole exchange once connected, acknowledgement
    /// included (default 10 s).
    pub io_timeout: Duration,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            connect_retries: 5,
            retry_interval: Duration::from_secs(1),
            io_timeout: Duration::from_secs(10),
        }
    }
}

/// Hands `listeners` (each with the address it listens on) to the new
/// instance waiting at `path`, and returns once it acknowledged them.
///
/// Connecting is retried for up to `opts.connect_retries × opts.retry_interval`
/// while the socket is missing or nobody listens on it, with a back-off of a
/// few milliseconds, so the new instance may start before or after this call
/// and the hand-over begins within milliseconds of it listening. The descriptors are
/// duplicated into the receiver; the caller's copies stay open and are the
/// caller's to close once this returns `Ok`.
///
/// Errors: [`UpgradeError::Timeout`] when nobody answered within the retries
/// or the exchange overran `opts.io_timeout`; [`UpgradeError::Refused`] when
/// the receiver turned the hand-over down; [`UpgradeError::PeerUid`] when the
/// receiver runs as another user; [`UpgradeError::InvalidListener`] when an
/// address is empty or too long, or there are too many listeners.
pub fn send_listeners(
    path: impl AsRef<Path>,
    listeners: &[(&str, BorrowedFd<'_>)],
    opts: SendOptions,
) -> Result<()> {
    let path = path.as_ref();
    let addrs: Vec<&str> = listeners.iter().map(|(addr, _)| *addr).collect();
    let hello = encode_hello(&addrs)?;
    let fds: Vec<BorrowedFd<'_>> = listeners.iter().map(|(_, fd)| *fd).collect();

    let stream = connect_with_retries(path, &opts)?;
    check_peer(&stream, None)?;
    let mut channel = Channel::new(stream, path, deadline_after(opts.io_timeout))?;

    let sent = send_handover(&mut channel, &hello, &fds);
    if let Err(send_error) = sent {
        // The receiver may have refused and closed early; prefer its reason.
        return match read_ack(&mut channel, path) {
            Err(refused @ UpgradeError::Refused { .. }) => Err(refused),
            _ => Err(send_error),
        };
    }
    read_ack(&mut channel, path)?;
    log::info!(
        "handed {} listening sockets to the new instance at {}",
        listeners.len(),
        path.display()
    );
    Ok(())
}

/// Sends the hello, then the descriptors in messages of at most `SCM_MAX_FD`.
fn send_handover(channel: &mut Channel, hello: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    channel.send_all(hello, "sending the listener addresses")?;
    for chunk in fds.chunks(MAX_FDS_PER_MESSAGE) {
        // MAX_FDS_PER_MESSAGE fits in a byte, so the cast cannot truncate.
        channel.send_fds(chunk.len() as u8, chunk, "sending the listening sockets")?;
    }
    Ok(())
}

/// Waits for the receiver's ack: `Ok` when accepted, `Refused` otherwise.
fn read_ack(channel: &mut Channel, path: &Path) -> Result<()> {
    let (status, reason) = protocol::read_ack(channel)?;
    if status == ACK_ACCEPTED {
        Ok(())
    } else {
        Err(UpgradeError::Refused {
            path: path.to_path_buf(),
            reason,
        })
    }
}

/// Whether a failed connect means "the new instance is not listening yet".
fn worth_retrying(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused | io::ErrorKind::WouldBlock
    )
}

/// Connects to `path`, retrying while nobody listens there yet.
fn connect_with_retries(path: &Path, opts: &SendOptions) -> Result<UnixStream> {
    let started = Instant::now();
    let deadline = started + opts.retry_interval.saturating_mul(opts.connect_retries);
    let mut backoff = FIRST_CONNECT_BACKOFF.min(opts.retry_interval);
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        match UnixStream::connect(path) {
            Ok(stream) => return Ok(stream),
            Err(e) if worth_retrying(&e) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(UpgradeError::Timeout {
                        path: path.to_path_buf(),
                        waited: started.elapsed(),
                        during: format!(
                            "connecting to the new instance ({attempts} attempts, last error: {e})"
                        ),
                    });
                }
                if attempts == 1 {
                    log::debug!(
                        "upgrade socket {} not ready ({e}); retrying for up to {:?}",
                        path.display(),
                        deadline - now
                    );
                }
                // Nothing to poll on before the file exists: a short sleep, growing.
                std::thread::sleep(backoff.min(deadline - now));
                backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF.max(FIRST_CONNECT_BACKOFF));
            }
            Err(e) => {
                return Err(UpgradeError::io(
                    format!("connecting to the upgrade socket {}", path.display()),
                    e,
                ))
            }
        }
    }
}

//! Daemon mode: detach from the terminal with a double fork, and optionally make the
//! foreground parent wait until the daemon reports that it serves.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{chdir, dup2_stderr, dup2_stdin, dup2_stdout, pipe2, setsid, ForkResult, Pid};

use crate::error::{Error, ErrorKind, Result, Side};

/// How to become a daemon.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Make the foreground parent exit only once the daemon is ready (0), or died or
    /// timed out (1). Otherwise the parent exits 0 at once.
    pub wait_for_ready: bool,
    /// How long the parent waits for readiness.
    pub ready_timeout: Duration,
    /// How long the daemon retries its SIGUSR1 to the parent when not permitted yet.
    pub notify_timeout: Duration,
    /// The daemon's working directory (`/` when `None`).
    pub working_directory: Option<PathBuf>,
    /// Where stdout and stderr go (`/dev/null` when `None`).
    pub output: Option<PathBuf>,
}

/// Held by the daemon: tells the waiting parent that the server is ready.
#[derive(Debug)]
pub struct ReadyNotifier {
    parent: Pid,
    pipe: Option<OwnedFd>,
    notify_timeout: Duration,
}

impl ReadyNotifier {
    /// Reports readiness: a byte on the pipe the parent waits on, and SIGUSR1 to the
    /// parent (retried while the parent is not ours to signal yet).
    pub fn ready(mut self) {
        if let Some(fd) = self.pipe.take() {
            let mut f = std::fs::File::from(fd);
            let _ = f.write_all(b"R");
        }
        let deadline = Instant::now() + self.notify_timeout;
        loop {
            match kill(self.parent, Signal::SIGUSR1) {
                Ok(()) => return,
                Err(nix::errno::Errno::EPERM) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(_) => return,
            }
        }
    }
}

/// Detaches the process: fork, `setsid`, fork again, `chdir`, stdio to `/dev/null` (or
/// `output`). Returns in the daemon only; the original process exits here (at once, or
/// once the daemon is ready with `wait_for_ready`).
///
/// Must be called while the process has a single thread (before any runtime starts).
pub fn daemonize(opts: &DaemonOptions) -> Result<Option<ReadyNotifier>> {
    let parent = nix::unistd::getpid();
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(|e| sys_error("pipe", e))?;
    if opts.wait_for_ready {
        ignore_sigusr1()?;
    }
    match fork_process()? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            let code = if opts.wait_for_ready {
                wait_for_ready(read_end, opts.ready_timeout)
            } else {
                0
            };
            std::process::exit(code);
        }
        ForkResult::Child => {}
    }
    drop(read_end);
    setsid().map_err(|e| sys_error("setsid", e))?;
    if let ForkResult::Parent { .. } = fork_process()? {
        // The session leader leaves so the daemon can never get a terminal again.
        std::process::exit(0);
    }
    let dir = opts
        .working_directory
        .clone()
        .unwrap_or_else(|| PathBuf::from("/"));
    chdir(&dir).map_err(|e| sys_error("chdir", e))?;
    redirect_stdio(opts.output.as_ref())?;
    Ok(opts.wait_for_ready.then(|| ReadyNotifier {
        parent,
        pipe: Some(write_end),
        notify_timeout: opts.notify_timeout,
    }))
}

#[allow(unsafe_code)]
fn fork_process() -> Result<ForkResult> {
    // SAFETY: called only while the process is single-threaded (see `daemonize`), so the
    // child cannot inherit a lock held by another thread.
    unsafe { nix::unistd::fork() }.map_err(|e| sys_error("fork", e))
}

#[allow(unsafe_code)]
fn ignore_sigusr1() -> Result<()> {
    use nix::sys::signal::{signal, SigHandler};
    // SAFETY: SIG_IGN installs no handler code, so no async-signal-safety concerns.
    unsafe { signal(Signal::SIGUSR1, SigHandler::SigIgn) }
        .map(|_| ())
        .map_err(|e| sys_error("ignoring SIGUSR1", e))
}

/// The parent's wait: 0 when the daemon reported ready, 1 when it died or took too long.
fn wait_for_ready(read_end: OwnedFd, timeout: Duration) -> i32 {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!(
                "pingora: the daemon did not report ready within {}s",
                timeout.as_secs()
            );
            return 1;
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(read_end.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => {
                let mut f = std::fs::File::from(read_end);
                let mut byte = [0u8; 1];
                return match f.read(&mut byte) {
                    Ok(1) => 0,
                    _ => {
                        eprintln!("pingora: the daemon exited before it was ready (see error_log)");
                        1
                    }
                };
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("pingora: waiting for the daemon failed: {e}");
                return 1;
            }
        }
    }
}

fn redirect_stdio(output: Option<&PathBuf>) -> Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::because(ErrorKind::Io, Side::Internal, "cannot open /dev/null", e))?;
    dup2_stdin(&null).map_err(|e| sys_error("redirecting stdin", e))?;
    let out = match output {
        Some(path) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                Error::because(
                    ErrorKind::Io,
                    Side::Internal,
                    format!("cannot open {}", path.display()),
                    e,
                )
            })?,
        None => null,
    };
    dup2_stdout(&out).map_err(|e| sys_error("redirecting stdout", e))?;
    dup2_stderr(&out).map_err(|e| sys_error("redirecting stderr", e))?;
    Ok(())
}

fn sys_error(what: &str, e: nix::Error) -> Error {
    Error::because(
        ErrorKind::Io,
        Side::Internal,
        format!("daemon: {what} failed"),
        e,
    )
}

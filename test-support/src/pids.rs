//! Processes known only by their pid: the ones a pid file names, or that the binary
//! started itself (a reloaded instance, a daemon). Reading pid files, watching such
//! processes, signalling them, and [`Strays`], which kills whatever is left.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::net::wait_until;

/// The pid the pid file names, if it exists and parses.
pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Waits up to `timeout` until the pid file names a pid for which `accept` holds;
/// that pid.
pub fn wait_pid_file(path: &Path, timeout: Duration, accept: impl Fn(u32) -> bool) -> Option<u32> {
    let mut found = None;
    wait_until(timeout, || {
        found = read_pid(path).filter(|p| accept(*p));
        found.is_some()
    });
    found
}

/// Whether `pid` is a live (not zombie) process.
pub fn is_running(pid: u32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let state = status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .map(str::trim)
        .unwrap_or("");
    !(state.starts_with('Z') || state.starts_with('X'))
}

/// Waits up to `timeout` until `pid` is gone (or a zombie); true if it is.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    wait_until(timeout, || !is_running(pid))
}

/// Whether `pid` is a live `pingora` process (guards against signalling a reused pid).
pub fn is_pingora(pid: u32) -> bool {
    is_running(pid)
        && fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("pingora"))
            .unwrap_or(false)
}

/// Sends `sig` to `pid` with `kill(2)`.
pub fn send_signal(pid: u32, sig: Signal) -> io::Result<()> {
    let raw =
        i32::try_from(pid).map_err(|_| io::Error::other(format!("pid {pid} out of range")))?;
    nix::sys::signal::kill(Pid::from_raw(raw), sig).map_err(io::Error::from)
}

/// Processes the binary started itself (a reloaded instance, a daemon): SIGKILLed on
/// drop if they still run as `pingora`, so a failing test leaves nothing behind.
#[derive(Debug, Default)]
pub struct Strays {
    pids: Mutex<Vec<u32>>,
}

impl Strays {
    /// Adds a pid to kill at the end.
    pub fn add(&self, pid: u32) {
        self.pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pid);
    }
}

impl Drop for Strays {
    fn drop(&mut self) {
        let pids = std::mem::take(&mut *self.pids.lock().unwrap_or_else(|p| p.into_inner()));
        for pid in pids {
            if is_pingora(pid) {
                let _ = send_signal(pid, Signal::SIGKILL);
            }
        }
    }
}

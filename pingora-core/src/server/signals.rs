//! The process signals the server reacts to, and the small runtime that waits for them.

use crate::error::{Error, ErrorKind, Result, Side};

/// The process signals the server reacts to, caught from the moment they are installed
/// (a signal arriving before the server waits for it is kept, not lost).
pub struct Signals {
    pub(super) rt: Option<tokio::runtime::Runtime>,
    pub(super) term: tokio::signal::unix::Signal,
    pub(super) int: tokio::signal::unix::Signal,
    pub(super) quit: tokio::signal::unix::Signal,
    pub(super) hup: tokio::signal::unix::Signal,
    pub(super) usr1: tokio::signal::unix::Signal,
}

impl Signals {
    /// Catches SIGTERM, SIGINT, SIGQUIT, SIGHUP and SIGUSR1 from now on. Call it after
    /// any fork (daemon mode).
    pub fn install() -> Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let rt = control_runtime()?;
        let sig = |k| {
            let _enter = rt.enter();
            signal(k).map_err(|e| {
                Error::because(
                    ErrorKind::Io,
                    Side::Internal,
                    "cannot install signal handler",
                    e,
                )
            })
        };
        Ok(Signals {
            term: sig(SignalKind::terminate())?,
            int: sig(SignalKind::interrupt())?,
            quit: sig(SignalKind::quit())?,
            hup: sig(SignalKind::hangup())?,
            usr1: sig(SignalKind::user_defined1())?,
            rt: Some(rt),
        })
    }
}

/// A small runtime for the server's own control work (signals, timers).
pub fn control_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::because(
                ErrorKind::Io,
                Side::Internal,
                "cannot start control runtime",
                e,
            )
        })
}

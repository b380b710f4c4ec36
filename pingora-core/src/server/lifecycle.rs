//! The hooks the running server calls at points of its life, and why a reload can fail.

use std::path::PathBuf;

/// A boxed error from an application's own check (configuration, certificates...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a reload (SIGHUP) was refused. The server goes on serving as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// This server has no way to start a new instance of itself.
    #[error("reload is not supported by this server")]
    Unsupported,
    /// The server was started without a configuration file.
    #[error("the server was started without -c, so there is no file to reload")]
    NoConfigFile,
    /// The configuration file, read again, is invalid (the cause says where and why).
    #[error(transparent)]
    Invalid(BoxError),
    /// The path of the running program could not be found.
    #[error("cannot find this binary: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// The new instance could not be started.
    #[error("cannot start {}: {source}", exe.display())]
    Spawn {
        /// The program that was to be started.
        exe: PathBuf,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
}

/// What the process around the server does at points of its life (readiness
/// notification, reload, log files). Every method has a do-nothing default.
///
/// [`Server::run_forever`](crate::server::Server::run_forever) brings its own
/// implementation; implement it yourself only to drive
/// [`RunningServer::run`](crate::server::RunningServer::run) directly.
pub trait Lifecycle {
    /// Every listener accepts.
    fn ready(&mut self) {}
    /// SIGHUP: check the new configuration and start the new instance. An error keeps
    /// the server running as it is.
    fn reload(&mut self) -> Result<(), ReloadError> {
        Err(ReloadError::Unsupported)
    }
    /// A hand-over is about to be attempted.
    fn upgrading(&mut self) {}
    /// After the listeners were handed over: waits until the new instance serves.
    /// `false` means it never did, and this instance goes on serving (the sockets are
    /// shared, so nothing was lost). Blocks the control thread while it waits.
    fn new_instance_ready(&mut self) -> bool {
        true
    }
    /// The new instance took the listeners and serves; this one will drain and exit.
    fn handed_over(&mut self) {}
    /// The hand-over failed; this instance keeps serving.
    fn upgrade_failed(&mut self) {}
    /// SIGUSR1: reopen log files.
    fn reopen_logs(&mut self) {}
    /// The server begins to stop.
    fn stopping(&mut self) {}
}

/// A [`Lifecycle`] that does nothing (and refuses reloads).
pub struct NoHooks;

impl Lifecycle for NoHooks {}

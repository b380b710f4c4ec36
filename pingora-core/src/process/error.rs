//! Why a server could not start, and the exit code each reason gives.

use std::path::PathBuf;

use super::config::ConfigLoadError;
use crate::server::BoxError;

/// Exit code for bad usage or an invalid configuration.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for any other start-up failure.
pub const EXIT_FAILURE: u8 = 1;

/// Why the process could not start (or, once started, could not run).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// The configuration file was refused.
    #[error(transparent)]
    Config(#[from] ConfigLoadError),
    /// The listening sockets of the running instance did not arrive (`-u`).
    #[error(transparent)]
    Upgrade(#[from] pingora_upgrade::UpgradeError),
    /// A step of the server failed: resolving the user, binding, daemonizing,
    /// dropping privileges, catching signals, starting the services.
    #[error(transparent)]
    Server(#[from] crate::Error),
    /// The pid file could not be written.
    #[error("cannot write pid_file {}: {source}", path.display())]
    PidFile {
        /// The configured `pid_file`.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The application's own start-up step failed (see
    /// [`ProcessHooks::after_daemonize`](super::ProcessHooks::after_daemonize)).
    #[error(transparent)]
    Application(BoxError),
}

impl BootstrapError {
    /// The process's exit code for this failure: [`EXIT_CONFIG`] for a refused
    /// configuration, [`EXIT_FAILURE`] otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            BootstrapError::Config(_) => EXIT_CONFIG,
            _ => EXIT_FAILURE,
        }
    }
}

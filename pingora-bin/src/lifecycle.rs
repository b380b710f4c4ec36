//! What the binary adds to the process's life: the access log's writer thread, log
//! reopening on SIGUSR1, and the admin listener's `/health` after a hand-over.

use pingora_core::process::ProcessHooks;
use pingora_core::server::BoxError;

use crate::error::BinError;

/// The binary's [`ProcessHooks`].
pub struct BinHooks;

impl ProcessHooks for BinHooks {
    fn after_daemonize(&mut self) -> Result<(), BoxError> {
        crate::access_log::start().map_err(|e| BinError::AccessLogWriter(e).into())
    }

    fn reopen_logs(&mut self) {
        if let Err(e) = crate::log::reopen() {
            ::log::error!("cannot reopen error_log: {e}");
        }
        crate::access_log::reopen();
    }

    fn handed_over(&mut self) {
        crate::admin::handed_over();
    }
}

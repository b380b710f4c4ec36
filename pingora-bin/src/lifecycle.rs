//! What the binary adds to the process's life: the access log's writer thread, the
//! services' caches (opened after daemonizing, flushed at exit), log reopening on
//! SIGUSR1, and the admin listener's `/health` after a hand-over.

use pingora_core::process::ProcessHooks;
use pingora_core::server::BoxError;

use crate::error::BinError;

/// The binary's [`ProcessHooks`].
#[derive(Default)]
pub struct BinHooks {
    /// The services' caches, opened in `after_daemonize`.
    #[cfg(feature = "cache")]
    pub caches: Vec<crate::cache::ServiceCache>,
}

impl BinHooks {
    /// The process is about to exit: waits for the caches' queued disk writes, so that
    /// the next instance finds every entry stored so far.
    pub fn exiting(&mut self) {
        #[cfg(feature = "cache")]
        for cache in &self.caches {
            if cache.has_disk() {
                ::log::info!(
                    "cache of {}: writing queued entries to disk",
                    cache.service()
                );
                cache.flush();
            }
        }
    }
}

impl ProcessHooks for BinHooks {
    fn after_daemonize(&mut self) -> Result<(), BoxError> {
        crate::access_log::start().map_err(BinError::AccessLogWriter)?;
        // After daemonizing (the disk tier has a thread) and switching user (its files
        // belong to the user that serves).
        #[cfg(feature = "cache")]
        for cache in &self.caches {
            cache.open()?;
        }
        Ok(())
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

//! What an application adds to the process's life.

use std::path::Path;
use std::process::Command;

use pingora_config::ServerConf;

use crate::server::{BoxError, ReloadError};

/// An application's part in the process's life. Every method has a default, and `()`
/// is the application with nothing to add.
pub trait ProcessHooks {
    /// After daemonizing and dropping privileges, before the services start: start the
    /// application's own threads here (threads do not survive the daemon's fork). An
    /// error stops the start-up with exit code 1.
    fn after_daemonize(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// SIGHUP, once the configuration file was read again and passed its rules: the
    /// application's last word before the new instance is started. An error refuses
    /// the reload and the server goes on as it is.
    fn check_reload(&mut self, _next: &ServerConf) -> Result<(), ReloadError> {
        Ok(())
    }

    /// The command that starts the new instance on SIGHUP. The default runs `exe` (this
    /// program) with `-c conf -u`, plus `-d` when this instance is a daemon; an
    /// application with a command line of its own returns what it needs.
    fn reload_command(&self, exe: &Path, conf: &Path, daemon: bool) -> Command {
        let mut cmd = Command::new(exe);
        cmd.arg("-c").arg(conf).arg("-u");
        if daemon {
            cmd.arg("-d");
        }
        cmd
    }

    /// SIGUSR1: reopen the application's log files.
    fn reopen_logs(&mut self) {}

    /// A new instance took the listening sockets and serves; this one drains and exits.
    fn handed_over(&mut self) {}
}

impl ProcessHooks for () {}

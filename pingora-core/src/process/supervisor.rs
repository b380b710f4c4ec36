//! The process's side of the server's life: readiness (to a waiting parent and to
//! systemd), reload by starting a new instance, the hand-over, the application's hooks.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::config::ConfigRules;
use super::daemon::ReadyNotifier;
use super::hooks::ProcessHooks;
use super::notify::sd_notify;
use super::reload::{current_exe, wait_for_new_instance};
use crate::server::{Lifecycle, ReloadError};

/// The [`Lifecycle`] of a server run by [`Server::run_with`](crate::server::Server::run_with).
pub(super) struct Supervisor<'a> {
    /// The configuration file, absolute, if any.
    pub(super) conf_path: Option<PathBuf>,
    /// The rules the file is loaded by (again on SIGHUP).
    pub(super) rules: ConfigRules,
    /// Whether this instance runs as a daemon (a reload starts the new one with `-d`).
    pub(super) daemon: bool,
    /// Whether this instance took over from another one (`-u`).
    pub(super) upgraded: bool,
    /// Tells a waiting foreground parent that we are ready.
    pub(super) notifier: Option<ReadyNotifier>,
    /// Set once a new instance took the listeners: `pid_file` is the new one's now.
    pub(super) handed_over: bool,
    /// This instance's `pid_file`.
    pub(super) pid_file: PathBuf,
    /// The `pid_file` of the configuration a reload starts (it may differ).
    pub(super) next_pid_file: Option<PathBuf>,
    /// How long a hand-over waits for the new instance to serve.
    pub(super) new_instance_timeout: Duration,
    /// The application's hooks.
    pub(super) app: &'a mut dyn ProcessHooks,
}

impl Lifecycle for Supervisor<'_> {
    fn ready(&mut self) {
        let pid = std::process::id();
        log::info!("ready: every listener accepts (pid {pid})");
        if self.upgraded {
            sd_notify(&format!("MAINPID={pid}\nREADY=1"));
        } else {
            sd_notify("READY=1");
        }
        if let Some(n) = self.notifier.take() {
            n.ready();
        }
    }

    fn reload(&mut self) -> Result<(), ReloadError> {
        let path = self.conf_path.clone().ok_or(ReloadError::NoConfigFile)?;
        let next = self
            .rules
            .load(&path)
            .map_err(|e| ReloadError::Invalid(Box::new(e)))?;
        self.app.check_reload(&next)?;
        self.next_pid_file = Some(next.pid_file);
        let exe = current_exe()?;
        let mut cmd = self.app.reload_command(&exe, &path, self.daemon);
        cmd.stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|source| ReloadError::Spawn { exe, source })?;
        log::info!(
            "reload: configuration {} is valid; started new instance (pid {})",
            path.display(),
            child.id()
        );
        // Reap it when it (or, with -d, its foreground part) exits.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(())
    }

    fn new_instance_ready(&mut self) -> bool {
        let path = self
            .next_pid_file
            .take()
            .unwrap_or_else(|| self.pid_file.clone());
        wait_for_new_instance(&path, self.new_instance_timeout)
    }

    fn upgrading(&mut self) {
        sd_notify("RELOADING=1");
    }

    fn handed_over(&mut self) {
        self.handed_over = true;
        self.app.handed_over();
        log::info!("the new instance serves; draining this one");
    }

    fn upgrade_failed(&mut self) {
        sd_notify("READY=1");
    }

    fn reopen_logs(&mut self) {
        self.app.reopen_logs();
    }

    fn stopping(&mut self) {
        // After a hand-over the service goes on in the new instance: STOPPING=1 from
        // this one (accepted with NotifyAccess=all) would make systemd stop the unit.
        if !self.handed_over {
            sd_notify("STOPPING=1");
        }
    }
}

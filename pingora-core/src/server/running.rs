//! A started server: waits for signals, hands listeners over, drains and stops.

use std::time::Duration;

use super::handover::{hand_over, UpgradeOptions};
use super::lifecycle::{Lifecycle, NoHooks};
use super::signals::{control_runtime, Signals};
use super::{ServerOptions, StopRequest};
use crate::error::{Error, ErrorKind, Result, Side};
use crate::listener::BoundListener;
use crate::runtime::ServiceRuntime;
use crate::shutdown::{Phase, ShutdownController};

/// Services running on their runtimes; stopping consumes it.
pub struct RunningServer {
    pub(super) opts: ServerOptions,
    pub(super) listeners: Vec<BoundListener>,
    pub(super) upgrade: Option<UpgradeOptions>,
    pub(super) runtimes: Vec<ServiceRuntime>,
    pub(super) shutdown: ShutdownController,
}

impl RunningServer {
    /// The controller that moves every task through the shutdown phases.
    pub fn shutdown_controller(&self) -> &ShutdownController {
        &self.shutdown
    }

    /// Stops the services as asked and returns once they are gone.
    ///
    /// Graceful: keeps accepting for the grace period, then stops accepting and waits for
    /// live connections to finish (keep-alive ones close after their next response) up to
    /// the shutdown timeout, then closes what is left. Background services run until
    /// the end of the drain, then stop with their runtimes.
    pub fn stop(mut self, how: StopRequest) {
        // Our copies of the listening sockets; the accept tasks hold their own.
        self.listeners.clear();
        if how == StopRequest::Graceful {
            let shutdown = self.shutdown.clone();
            let grace = self.opts.grace_period;
            let timeout = self.opts.graceful_shutdown_timeout;
            let waited = control_runtime().map(|rt| rt.block_on(drain(shutdown, grace, timeout)));
            if let Err(e) = waited {
                log::error!("{e}");
            }
        }
        self.shutdown.advance(Phase::Closing);
        for rt in self.runtimes {
            rt.shutdown(Duration::from_millis(100));
        }
    }

    /// Waits for SIGTERM (graceful) or SIGINT (fast), then stops accordingly.
    /// SIGQUIT, SIGHUP and SIGUSR1 are handled as [`RunningServer::run`] describes,
    /// with no upgrade socket and no hooks.
    pub fn run_until_signal(self) -> Result<()> {
        let signals = Signals::install()?;
        self.run(signals, &mut NoHooks)
    }

    /// Serves until told to stop by one of `signals`, then stops and returns:
    ///
    /// - SIGTERM: graceful shutdown; SIGINT: fast shutdown;
    /// - SIGQUIT: hands every listening socket to a new instance over the upgrade socket
    ///   (see [`RunningServer::set_upgrade`]), then shuts down gracefully; if the
    ///   hand-over fails the server keeps serving;
    /// - SIGHUP: asks [`Lifecycle::reload`] to start a new instance, then as SIGQUIT;
    /// - SIGUSR1: [`Lifecycle::reopen_logs`].
    ///
    /// Install the signals ([`Signals::install`]) before anything tells the world the
    /// server exists (a pid file), so that no early signal kills the process.
    pub fn run(self, mut signals: Signals, hooks: &mut dyn Lifecycle) -> Result<()> {
        let rt = signals
            .rt
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Internal, Side::Internal, "signals used twice"))?;
        let how = rt.block_on(self.wait_for_stop(&mut signals, hooks));
        hooks.stopping();
        drop(signals);
        drop(rt);
        self.stop(how);
        Ok(())
    }

    /// Sets where and how listening sockets are handed over on SIGQUIT/SIGHUP.
    pub fn set_upgrade(&mut self, upgrade: UpgradeOptions) {
        self.upgrade = Some(upgrade);
    }

    async fn wait_for_stop(&self, signals: &mut Signals, hooks: &mut dyn Lifecycle) -> StopRequest {
        let Signals {
            term,
            int,
            quit,
            hup,
            usr1,
            ..
        } = signals;
        hooks.ready();
        loop {
            tokio::select! {
                _ = term.recv() => {
                    log::info!("SIGTERM: graceful shutdown");
                    return StopRequest::Graceful;
                }
                _ = int.recv() => {
                    log::info!("SIGINT: fast shutdown");
                    return StopRequest::Fast;
                }
                _ = quit.recv() => {
                    log::info!("SIGQUIT: handing listeners over to a new instance");
                    if self.upgrade_to_new_instance(hooks).await {
                        return StopRequest::Graceful;
                    }
                }
                _ = hup.recv() => {
                    log::info!("SIGHUP: reloading");
                    match hooks.reload() {
                        Ok(()) => {
                            if self.upgrade_to_new_instance(hooks).await {
                                return StopRequest::Graceful;
                            }
                        }
                        Err(e) => log::error!("reload refused, still serving the old configuration: {e}"),
                    }
                }
                _ = usr1.recv() => {
                    hooks.reopen_logs();
                    log::info!("SIGUSR1: log files reopened");
                }
            }
        }
    }

    /// Hands the listeners over and confirms the new instance serves; true when this
    /// instance is to drain and exit.
    async fn upgrade_to_new_instance(&self, hooks: &mut dyn Lifecycle) -> bool {
        hooks.upgrading();
        if hand_over(self.upgrade.as_ref(), &self.listeners).await
            && self.confirm_new_instance(hooks)
        {
            hooks.handed_over();
            return true;
        }
        hooks.upgrade_failed();
        false
    }

    /// Stops accepting and asks the hooks whether the instance that took the listeners
    /// serves; if not, accepts again (the sockets are shared, nothing was lost).
    fn confirm_new_instance(&self, hooks: &mut dyn Lifecycle) -> bool {
        self.shutdown.set_accepting(false);
        if hooks.new_instance_ready() {
            self.shutdown.set_handed_over();
            return true;
        }
        log::error!("the new instance took the listeners but did not start serving; still serving");
        self.shutdown.set_accepting(true);
        false
    }
}

/// The graceful part of a stop: the grace period, then the drain, then closing.
async fn drain(shutdown: ShutdownController, grace: Duration, timeout: Duration) {
    if !grace.is_zero() {
        shutdown.set_accepting(true);
        log::info!("grace period: accepting for {}s more", grace.as_secs());
        tokio::time::sleep(grace).await;
    }
    shutdown.advance(Phase::Draining);
    log::info!(
        "draining {} connection(s) for up to {}s",
        shutdown.live(),
        timeout.as_secs()
    );
    if !shutdown.wait_idle(timeout).await {
        log::warn!(
            "{} connection(s) still open after {}s; closing them",
            shutdown.live(),
            timeout.as_secs()
        );
    }
    shutdown.advance(Phase::Closing);
    // Idle connections notice Closing and leave at once.
    shutdown.wait_idle(Duration::from_millis(500)).await;
}

//! The server: binds every service's listeners, runs each service on its own runtime,
//! and handles the process signals that stop it.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result, Side};
use crate::listener::BoundListener;
use crate::runtime::{RuntimeOptions, ServiceRuntime};
use crate::service::Service;
use crate::shutdown::{Phase, ShutdownController};

/// Server-wide settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Default runtime settings; a service may override the thread count.
    pub runtime: RuntimeOptions,
    /// Accept tasks per listening socket (and per runtime).
    pub listener_tasks_per_fd: usize,
    /// How long to keep accepting after a shutdown was asked for, before draining begins.
    pub grace_period: Duration,
    /// The most time in-flight work gets once accepting stopped.
    pub graceful_shutdown_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            runtime: RuntimeOptions::default(),
            listener_tasks_per_fd: 1,
            grace_period: Duration::ZERO,
            graceful_shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// How the server was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRequest {
    /// Stop accepting, let in-flight work finish within the timeout (SIGTERM).
    Graceful,
    /// Stop now (SIGINT).
    Fast,
}

/// A set of services and the process around them.
pub struct Server {
    opts: ServerOptions,
    services: Vec<Box<dyn Service>>,
    bound: Vec<Vec<BoundListener>>,
    shutdown: ShutdownController,
}

/// Services running on their runtimes; stopping consumes it.
pub struct RunningServer {
    opts: ServerOptions,
    listeners: Vec<BoundListener>,
    upgrade: Option<UpgradeOptions>,
    runtimes: Vec<ServiceRuntime>,
    shutdown: ShutdownController,
}

impl Server {
    /// A server with no services.
    pub fn new(opts: ServerOptions) -> Self {
        Server {
            opts,
            services: Vec::new(),
            bound: Vec::new(),
            shutdown: ShutdownController::new(),
        }
    }

    /// Adds a service; it starts when the server starts.
    pub fn add_service(&mut self, service: impl Service) {
        self.services.push(Box::new(service));
    }

    /// The controller that moves every task through the shutdown phases.
    pub fn shutdown_controller(&self) -> &ShutdownController {
        &self.shutdown
    }

    /// Binds every listener of every service that is not bound yet, taking a socket
    /// from `inherited` first when one with the same address is there (an upgrade).
    pub fn bind_listeners(&mut self, inherited: &mut Vec<BoundListener>) -> Result<()> {
        for service in self.services.iter().skip(self.bound.len()) {
            let mut listeners = Vec::with_capacity(service.listen_addrs().len());
            for (addr, opts) in service.listen_addrs() {
                let listener = match inherited.iter().position(|l| l.addr() == addr) {
                    Some(i) => inherited.swap_remove(i),
                    None => BoundListener::bind(addr, opts)?,
                };
                listeners.push(listener);
            }
            self.bound.push(listeners);
        }
        Ok(())
    }

    /// The bound listeners of every service, in order (after [`Server::bind_listeners`]).
    pub fn listeners(&self) -> impl Iterator<Item = &BoundListener> {
        self.bound.iter().flatten()
    }

    /// Starts every service on its own runtime. Listeners not bound yet are bound now.
    pub fn start(mut self) -> Result<RunningServer> {
        self.bind_listeners(&mut Vec::new())?;
        let mut runtimes = Vec::with_capacity(self.services.len());
        let mut kept = Vec::new();
        for (service, listeners) in self.services.iter().zip(self.bound.drain(..)) {
            for l in &listeners {
                kept.push(l.try_clone()?);
            }
            let mut rt_opts = self.opts.runtime.clone();
            if let Some(t) = service.threads() {
                rt_opts.threads = t;
            }
            let rt = ServiceRuntime::new(service.name(), &rt_opts)?;
            service.start(
                &rt.handles(),
                listeners,
                self.opts.listener_tasks_per_fd,
                &self.shutdown,
            )?;
            runtimes.push(rt);
        }
        Ok(RunningServer {
            opts: self.opts,
            listeners: kept,
            upgrade: None,
            runtimes,
            shutdown: self.shutdown,
        })
    }
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
    /// the shutdown timeout, then closes what is left.
    pub fn stop(mut self, how: StopRequest) {
        // Our copies of the listening sockets; the accept tasks hold their own.
        self.listeners.clear();
        if how == StopRequest::Graceful {
            let shutdown = self.shutdown.clone();
            let grace = self.opts.grace_period;
            let timeout = self.opts.graceful_shutdown_timeout;
            let waited = control_runtime().map(|rt| {
                rt.block_on(async move {
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
                })
            });
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
    ///   (see [`ServerOptions`] and [`RunningServer::set_upgrade`]), then shuts down
    ///   gracefully; if the hand-over fails the server keeps serving;
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
        let how = rt.block_on(self.wait_for_stop(&mut signals, hooks))?;
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

    async fn wait_for_stop(
        &self,
        signals: &mut Signals,
        hooks: &mut dyn Lifecycle,
    ) -> Result<StopRequest> {
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
                    return Ok(StopRequest::Graceful);
                }
                _ = int.recv() => {
                    log::info!("SIGINT: fast shutdown");
                    return Ok(StopRequest::Fast);
                }
                _ = quit.recv() => {
                    log::info!("SIGQUIT: handing listeners over to a new instance");
                    hooks.upgrading();
                    if self.hand_over().await && self.confirm_new_instance(hooks) {
                        hooks.handed_over();
                        return Ok(StopRequest::Graceful);
                    }
                    hooks.upgrade_failed();
                }
                _ = hup.recv() => {
                    log::info!("SIGHUP: reloading");
                    match hooks.reload() {
                        Ok(()) => {
                            hooks.upgrading();
                            if self.hand_over().await && self.confirm_new_instance(hooks) {
                                hooks.handed_over();
                                return Ok(StopRequest::Graceful);
                            }
                            hooks.upgrade_failed();
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

    /// Stops accepting and asks the hooks whether the instance that took the listeners
    /// serves; if not, accepts again (the sockets are shared, nothing was lost).
    fn confirm_new_instance(&self, hooks: &mut dyn Lifecycle) -> bool {
        self.shutdown.set_accepting(false);
        if hooks.new_instance_ready() {
            return true;
        }
        log::error!("the new instance took the listeners but did not start serving; still serving");
        self.shutdown.set_accepting(true);
        false
    }

    /// Sends every listening socket to the new instance; true when it took them.
    async fn hand_over(&self) -> bool {
        let Some(upgrade) = self.upgrade.clone() else {
            log::error!("no upgrade socket configured; still serving");
            return false;
        };
        let mut copies = Vec::with_capacity(self.listeners.len());
        for l in &self.listeners {
            match l.try_clone() {
                Ok(c) => copies.push(c),
                Err(e) => {
                    log::error!("cannot prepare hand-over: {e}; still serving");
                    return false;
                }
            }
        }
        let sent = tokio::task::spawn_blocking(move || {
            let names: Vec<String> = copies.iter().map(|l| l.addr().to_string()).collect();
            let fds: Vec<(&str, std::os::fd::BorrowedFd<'_>)> = names
                .iter()
                .zip(&copies)
                .map(|(n, l)| (n.as_str(), l.as_fd()))
                .collect();
            let opts = pingora_upgrade::SendOptions {
                connect_retries: upgrade.connect_retries,
                ..pingora_upgrade::SendOptions::default()
            };
            pingora_upgrade::send_listeners(&upgrade.sock, &fds, opts)
        })
        .await;
        match sent {
            Ok(Ok(())) => {
                log::info!(
                    "{} listener(s) handed over through {}",
                    self.listeners.len(),
                    upgrade_path_display(&self.upgrade)
                );
                true
            }
            Ok(Err(e)) => {
                log::error!("hand-over failed, still serving: {e}");
                false
            }
            Err(e) => {
                log::error!("hand-over task failed, still serving: {e}");
                false
            }
        }
    }
}

fn upgrade_path_display(u: &Option<UpgradeOptions>) -> String {
    u.as_ref()
        .map_or_else(String::new, |u| u.sock.display().to_string())
}

/// The process signals the server reacts to, caught from the moment they are installed
/// (a signal arriving before the server waits for it is kept, not lost).
pub struct Signals {
    rt: Option<tokio::runtime::Runtime>,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
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

/// Where listening sockets are handed to a new instance during an upgrade.
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// The unix socket the new instance listens on.
    pub sock: std::path::PathBuf,
    /// One-second retries of connecting to it.
    pub connect_retries: u32,
}

/// What the process around the server does at points of its life (the binary
/// implements it: readiness notification, reload, log files). Every method has a
/// do-nothing default.
pub trait Lifecycle {
    /// Every listener accepts.
    fn ready(&mut self) {}
    /// SIGHUP: check the new configuration and start the new instance. An error keeps
    /// the server running as it is.
    fn reload(&mut self) -> std::result::Result<(), String> {
        Err("reload is not supported by this server".into())
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

/// A [`Lifecycle`] that does nothing.
pub struct NoHooks;

impl Lifecycle for NoHooks {}

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

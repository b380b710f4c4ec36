//! The server: binds every service's listeners, runs each service on its own runtime,
//! and handles the process signals that stop it.
//!
//! [`Server::run_forever`] (in [`crate::process`]) runs the whole process life around
//! it: command line, configuration file, daemon, privileges, pid file, upgrade. The
//! lower steps ([`Server::start`], [`RunningServer::run`]) stay public for programs
//! that assemble their own.

mod handover;
mod lifecycle;
mod running;
mod signals;

use std::time::Duration;

use crate::background::{Background, BackgroundService};
use crate::error::Result;
use crate::listener::BoundListener;
use crate::process::setup::Setup;
use crate::runtime::{RuntimeOptions, ServiceRuntime};
use crate::service::Service;
use crate::shutdown::ShutdownController;

pub use handover::UpgradeOptions;
pub use lifecycle::{BoxError, Lifecycle, NoHooks, ReloadError};
pub use running::RunningServer;
pub use signals::{control_runtime, Signals};

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
    pub(crate) opts: ServerOptions,
    services: Vec<Box<dyn Service>>,
    bound: Vec<Vec<BoundListener>>,
    shutdown: ShutdownController,
    /// The command line and configuration file the process runs with.
    pub(crate) setup: Setup,
}

impl Server {
    /// A server with no services, with `opts` and no command line or configuration
    /// file (see [`Server::from_args`] for those).
    pub fn new(opts: ServerOptions) -> Self {
        Server::with_setup(opts, Setup::default())
    }

    pub(crate) fn with_setup(opts: ServerOptions, setup: Setup) -> Self {
        Server {
            opts,
            services: Vec::new(),
            bound: Vec::new(),
            shutdown: ShutdownController::new(),
            setup,
        }
    }

    /// The server-wide settings, to change before the server starts.
    pub fn options_mut(&mut self) -> &mut ServerOptions {
        &mut self.opts
    }

    /// Adds a service; it starts when the server starts.
    pub fn add_service(&mut self, service: impl Service) {
        self.services.push(Box::new(service));
    }

    /// Adds work that runs beside the services (health checks, discovery, cache
    /// eviction) on a runtime of its own. It starts with the services (after
    /// daemonizing), keeps running through a drain, and is stopped when the server
    /// stops; it can watch the [`ShutdownWatch`](crate::shutdown::ShutdownWatch) it is
    /// given to stop earlier.
    pub fn add_background(&mut self, name: impl Into<String>, task: impl BackgroundService) {
        self.services.push(Box::new(Background::new(name, task)));
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
                    Some(i) => {
                        let mut l = inherited.swap_remove(i);
                        l.ensure_udp(opts)?;
                        l
                    }
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

    /// How many services (background work included) the server runs.
    pub fn service_count(&self) -> usize {
        self.services.len()
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

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
        for (service, listeners) in self.services.iter().zip(self.bound.drain(..)) {
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
    pub fn stop(self, how: StopRequest) {
        if how == StopRequest::Graceful {
            let shutdown = self.shutdown.clone();
            let grace = self.opts.grace_period;
            let timeout = self.opts.graceful_shutdown_timeout;
            let waited = control_runtime().map(|rt| {
                rt.block_on(async move {
                    if !grace.is_zero() {
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
    pub fn run_until_signal(self) -> Result<()> {
        let how = control_runtime()?.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let sig = |k| {
                signal(k).map_err(|e| {
                    Error::because(ErrorKind::Io, Side::Internal, "cannot install signal handler", e)
                })
            };
            let mut term = sig(SignalKind::terminate())?;
            let mut int = sig(SignalKind::interrupt())?;
            let how = tokio::select! {
                _ = term.recv() => { log::info!("SIGTERM: graceful shutdown"); StopRequest::Graceful }
                _ = int.recv() => { log::info!("SIGINT: fast shutdown"); StopRequest::Fast }
            };
            Ok::<_, Error>(how)
        })?;
        self.stop(how);
        Ok(())
    }
}

/// A small runtime for the server's own control work (signals, timers).
pub fn control_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::because(ErrorKind::Io, Side::Internal, "cannot start control runtime", e))
}

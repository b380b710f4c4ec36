//! Background services: work that runs beside the listening services, with no listener
//! of its own (health checks, discovery, periodic clean-ups).

use std::future::Future;
use std::sync::Mutex;

use tokio::runtime::Handle;

use crate::error::{Error, ErrorKind, Result, Side};
use crate::listener::{BoundListener, ListenAddr, ListenOptions};
use crate::service::Service;
use crate::shutdown::{ShutdownController, ShutdownWatch};

/// Work the server runs once, on a runtime of its own, from the moment the services
/// start until the server stops (see [`Server::add_background`]).
///
/// A closure `|shutdown| async move { ... }` is one. The task keeps running through a
/// drain (a health checker goes on judging backends while connections finish); it is
/// dropped when the server stops, or may return earlier, for example once
/// `shutdown.reached(Phase::Draining)` completes.
///
/// [`Server::add_background`]: crate::server::Server::add_background
pub trait BackgroundService: Send + 'static {
    /// Runs the work; `shutdown` tells where the server is in its life.
    fn run(self, shutdown: ShutdownWatch) -> impl Future<Output = ()> + Send + 'static;
}

impl<F, Fut> BackgroundService for F
where
    F: FnOnce(ShutdownWatch) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn run(self, shutdown: ShutdownWatch) -> impl Future<Output = ()> + Send + 'static {
        self(shutdown)
    }
}

/// A [`BackgroundService`] as a [`Service`] with no listener and one thread.
pub(crate) struct Background<B> {
    name: String,
    task: Mutex<Option<B>>,
}

impl<B: BackgroundService> Background<B> {
    pub(crate) fn new(name: impl Into<String>, task: B) -> Self {
        Background {
            name: name.into(),
            task: Mutex::new(Some(task)),
        }
    }
}

impl<B: BackgroundService> Service for Background<B> {
    fn name(&self) -> &str {
        &self.name
    }

    fn listen_addrs(&self) -> &[(ListenAddr, ListenOptions)] {
        &[]
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }

    fn start(
        &self,
        handles: &[Handle],
        _listeners: Vec<BoundListener>,
        _tasks_per_fd: usize,
        shutdown: &ShutdownController,
    ) -> Result<()> {
        let internal = |what: &str| {
            Error::new(
                ErrorKind::Internal,
                Side::Internal,
                format!("background service {}: {what}", self.name),
            )
        };
        let task = self
            .task
            .lock()
            .map_err(|_| internal("poisoned"))?
            .take()
            .ok_or_else(|| internal("started twice"))?;
        let handle = handles.first().ok_or_else(|| internal("no runtime"))?;
        handle.spawn(task.run(shutdown.watch()));
        Ok(())
    }
}

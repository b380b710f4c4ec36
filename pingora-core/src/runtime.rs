//! Tokio runtimes for services: one work-stealing runtime, or several single-threaded ones.

use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;

use crate::error::{Error, ErrorKind, Result, Side};

/// How a service's runtime is built.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// One multi-threaded work-stealing runtime (true) or `threads` independent
    /// single-threaded runtimes (false). With one thread both are a single-threaded runtime.
    pub work_stealing: bool,
    /// Cap of each runtime's blocking pool (tokio's default when `None`).
    pub max_blocking_threads: Option<usize>,
    /// How long idle blocking threads live (tokio's default when `None`).
    pub blocking_threads_ttl: Option<Duration>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            threads: 1,
            work_stealing: true,
            max_blocking_threads: None,
            blocking_threads_ttl: None,
        }
    }
}

/// The runtime(s) a service runs on. Dropping it stops every task on it.
pub struct ServiceRuntime {
    name: String,
    kind: Kind,
}

enum Kind {
    Stealing(Runtime),
    Pinned(Vec<PinnedThread>),
}

/// A single-threaded runtime running on a thread of its own until told to stop.
struct PinnedThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServiceRuntime {
    /// Builds and starts the runtime(s) for the service `name`.
    pub fn new(name: &str, opts: &RuntimeOptions) -> Result<Self> {
        let threads = opts.threads.max(1);
        let kind = if opts.work_stealing && threads > 1 {
            let mut b = Builder::new_multi_thread();
            b.worker_threads(threads)
                .thread_name(format!("{name}-worker"));
            apply_blocking(&mut b, opts);
            Kind::Stealing(b.enable_all().build().map_err(|e| rt_error(name, e))?)
        } else {
            let mut pinned = Vec::with_capacity(threads);
            for i in 0..threads {
                pinned.push(PinnedThread::start(name, i, opts)?);
            }
            Kind::Pinned(pinned)
        };
        Ok(ServiceRuntime {
            name: name.to_string(),
            kind,
        })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Handles to spawn work on: one for a work-stealing runtime, one per thread otherwise.
    pub fn handles(&self) -> Vec<Handle> {
        match &self.kind {
            Kind::Stealing(rt) => vec![rt.handle().clone()],
            Kind::Pinned(threads) => threads.iter().map(|t| t.handle.clone()).collect(),
        }
    }

    /// Stops the runtime(s), giving running tasks up to `timeout` to notice.
    pub fn shutdown(self, timeout: Duration) {
        match self.kind {
            Kind::Stealing(rt) => rt.shutdown_timeout(timeout),
            Kind::Pinned(threads) => {
                for t in threads {
                    t.stop();
                }
            }
        }
    }
}

impl PinnedThread {
    fn start(name: &str, index: usize, opts: &RuntimeOptions) -> Result<Self> {
        let mut b = Builder::new_current_thread();
        apply_blocking(&mut b, opts);
        let rt = b.enable_all().build().map_err(|e| rt_error(name, e))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{index}"))
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| rt_error(name, e))?;
        Ok(PinnedThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn apply_blocking(b: &mut Builder, opts: &RuntimeOptions) {
    if let Some(n) = opts.max_blocking_threads {
        b.max_blocking_threads(n.max(1));
    }
    if let Some(ttl) = opts.blocking_threads_ttl {
        b.thread_keep_alive(ttl);
    }
}

fn rt_error(name: &str, e: std::io::Error) -> Error {
    Error::because(
        ErrorKind::Io,
        Side::Internal,
        format!("cannot start the runtime of service {name}"),
        e,
    )
}

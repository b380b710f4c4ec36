//! Services: what the server starts on its runtimes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::error::Result;
use crate::listener::{AsyncListener, BoundListener, ListenAddr, ListenOptions};
use crate::protocols::tls::TlsAcceptor;
use crate::protocols::{ClientAddr, Stream};
use crate::shutdown::{Phase, ShutdownController, ShutdownWatch};

/// An application that serves accepted connections (for example an HTTP proxy).
pub trait ServerApp: Send + Sync + 'static {
    /// Serves one connection until it is done. Should return promptly once `shutdown`
    /// reaches [`Phase::Closing`] and the connection is idle.
    fn process_connection(
        &self,
        stream: Stream,
        peer: ClientAddr,
        shutdown: ShutdownWatch,
    ) -> impl Future<Output = ()> + Send;
}

/// Something the server runs on a runtime of its own.
pub trait Service: Send + Sync + 'static {
    /// A name for logs and thread names.
    fn name(&self) -> &str;

    /// The addresses this service listens on.
    fn listen_addrs(&self) -> &[(ListenAddr, ListenOptions)];

    /// A thread count overriding the server's default, if any.
    fn threads(&self) -> Option<usize>;

    /// Starts serving on already bound `listeners` (one per address of
    /// [`Service::listen_addrs`], same order), spawning on `handles`.
    fn start(
        &self,
        handles: &[Handle],
        listeners: Vec<BoundListener>,
        tasks_per_fd: usize,
        shutdown: &ShutdownController,
    ) -> Result<()>;
}

/// A service that accepts connections on its listeners and hands them to a [`ServerApp`].
pub struct ListeningService<A> {
    name: String,
    app: Arc<A>,
    addrs: Vec<(ListenAddr, ListenOptions)>,
    threads: Option<usize>,
}

impl<A: ServerApp> ListeningService<A> {
    /// A service named `name` serving `app`, with no listeners yet.
    pub fn new(name: impl Into<String>, app: A) -> Self {
        ListeningService {
            name: name.into(),
            app: Arc::new(app),
            addrs: Vec::new(),
            threads: None,
        }
    }

    /// Adds a listening address.
    pub fn add_listener(&mut self, addr: ListenAddr, opts: ListenOptions) -> &mut Self {
        self.addrs.push((addr, opts));
        self
    }

    /// Overrides the server's thread count for this service.
    pub fn set_threads(&mut self, threads: Option<usize>) -> &mut Self {
        self.threads = threads;
        self
    }

    /// The application.
    pub fn app(&self) -> &Arc<A> {
        &self.app
    }
}

impl<A: ServerApp> Service for ListeningService<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn listen_addrs(&self) -> &[(ListenAddr, ListenOptions)] {
        &self.addrs
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }

    fn start(
        &self,
        handles: &[Handle],
        listeners: Vec<BoundListener>,
        tasks_per_fd: usize,
        shutdown: &ShutdownController,
    ) -> Result<()> {
        for (i, bound) in listeners.into_iter().enumerate() {
            let tls = self.addrs.get(i).and_then(|(_, opts)| opts.tls.clone());
            // Every runtime gets its own registration of the same socket, so that
            // single-threaded runtimes accept for themselves.
            for handle in handles {
                let copy = bound.try_clone()?;
                let listener = {
                    let _enter = handle.enter();
                    Arc::new(copy.into_async()?)
                };
                for _ in 0..tasks_per_fd.max(1) {
                    handle.spawn(accept_loop(
                        listener.clone(),
                        tls.clone(),
                        self.app.clone(),
                        shutdown.clone(),
                    ));
                }
            }
        }
        Ok(())
    }
}

async fn accept_loop<A: ServerApp>(
    listener: Arc<AsyncListener>,
    tls: Option<Arc<TlsAcceptor>>,
    app: Arc<A>,
    shutdown: ShutdownController,
) {
    let mut watch = shutdown.watch();
    let mut gate = shutdown.accept_gate();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = watch.reached(Phase::Draining) => return,
            _ = gate.paused() => {
                tokio::select! {
                    _ = watch.reached(Phase::Draining) => return,
                    _ = gate.resumed() => continue,
                }
            }
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let guard = shutdown.track();
                let app = app.clone();
                let watch = shutdown.watch();
                let tls = tls.clone();
                tokio::spawn(async move {
                    // The handshake runs here, in the connection's task, so that a slow
                    // or silent client never holds up the accept loop.
                    let stream = match tls {
                        None => stream,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => s,
                            Err(e) => {
                                log::debug!("{peer}: {e}");
                                return;
                            }
                        },
                    };
                    app.process_connection(stream, peer, watch).await;
                    drop(guard);
                });
            }
            Err(e) => {
                // Typically EMFILE: back off a little instead of spinning.
                log::error!("accept on {} failed: {e}", listener.addr());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

//! Services: what the server starts on its runtimes.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

pub use crate::background::BackgroundService;
#[cfg(feature = "http3")]
use crate::protocols::http::v3::H3ServerStream;

#[cfg(feature = "http3")]
mod quic;
use crate::error::{Error, ErrorKind, Result, Side};
use crate::listener::{AsyncListener, BoundListener, ListenAddr, ListenOptions};
use crate::protocols::proxy_protocol::{HeaderOutcome, ProxyProtocolOptions};
use crate::protocols::tls::{TlsAcceptor, TlsAcceptorOptions, TlsCertificate};
use crate::protocols::{ClientAddr, ConnectionInfo, Stream};
use crate::shutdown::{Phase, ShutdownController, ShutdownWatch};

/// An application that serves accepted connections (for example an HTTP proxy).
pub trait ServerApp: Send + Sync + 'static {
    /// Serves one connection until it is done. Should return promptly once `shutdown`
    /// reaches [`Phase::Closing`] and the connection is idle.
    /// `conn` tells who the client is (after the PROXY protocol, when the listener
    /// reads it), where it connected and whether it speaks TLS.
    fn process_connection(
        &self,
        stream: Stream,
        conn: ConnectionInfo,
        shutdown: ShutdownWatch,
    ) -> impl Future<Output = ()> + Send;

    /// Serves one HTTP/3 request (feature `http3`): QUIC connections are accepted and
    /// driven by the service, each request stream handed here on a task of its own.
    /// The default answers `501 Not Implemented`.
    #[cfg(feature = "http3")]
    fn process_h3_stream(&self, stream: H3ServerStream) -> impl Future<Output = ()> + Send {
        async move {
            let mut stream = stream;
            let _ = stream
                .respond_error(http::StatusCode::NOT_IMPLEMENTED)
                .await;
        }
    }
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

    /// Listens on a TCP address written `IP:PORT` (`0.0.0.0:8080`, `[::]:8080`).
    pub fn add_tcp(&mut self, addr: &str) -> Result<&mut Self> {
        let addr = parse_tcp(addr)?;
        Ok(self.add_listener(addr, ListenOptions::default()))
    }

    /// Listens on a unix socket at `path` (a stale socket file is replaced).
    pub fn add_unix(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.add_listener(ListenAddr::Unix(path.into()), ListenOptions::default())
    }

    /// Listens on `addr` (`IP:PORT`) with TLS, serving the certificate chain in the PEM
    /// file `cert` with the private key in `key`, offering HTTP/2 and HTTP/1.1 by ALPN.
    /// Fails when the files cannot be read or do not match (or without the `tls` feature).
    pub fn add_tls(
        &mut self,
        addr: &str,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<&mut Self> {
        self.add_tls_with(addr, cert, key, TlsAcceptorOptions::default())
    }

    /// As [`ListeningService::add_tls`], with the ALPN protocols and handshake timeout of `opts`.
    pub fn add_tls_with(
        &mut self,
        addr: &str,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        opts: TlsAcceptorOptions,
    ) -> Result<&mut Self> {
        let addr = parse_tcp(addr)?;
        let cert = TlsCertificate::from_files(cert.as_ref(), key.as_ref())?;
        let acceptor = TlsAcceptor::new(vec![cert], opts)?;
        let opts = ListenOptions {
            tls: Some(Arc::new(acceptor)),
            ..ListenOptions::default()
        };
        Ok(self.add_listener(addr, opts))
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
        for (i, mut bound) in listeners.into_iter().enumerate() {
            let opts = self.addrs.get(i).map(|(_, opts)| opts);
            let tls = opts.and_then(|o| o.tls.clone());
            let udp = bound.take_udp();
            #[cfg(feature = "http3")]
            if let (Some(udp), Some(tls), Some(h3)) = (udp, &tls, opts.and_then(|o| o.http3)) {
                quic::start(udp, tls, h3, self.app.clone(), handles, shutdown)?;
            }
            #[cfg(not(feature = "http3"))]
            drop(udp);
            let proxy_protocol = opts.and_then(|o| o.proxy_protocol.clone()).map(Arc::new);
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
                        proxy_protocol.clone(),
                        self.app.clone(),
                        shutdown.clone(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Parses a TCP listening address, refusing `unix:` paths (see `add_unix`).
fn parse_tcp(text: &str) -> Result<ListenAddr> {
    match text.parse::<ListenAddr>() {
        Ok(addr @ ListenAddr::Tcp(_)) => Ok(addr),
        Ok(ListenAddr::Unix(_)) => Err(Error::new(
            ErrorKind::Internal,
            Side::Internal,
            format!("`{text}` is a unix socket: use add_unix"),
        )),
        Err(e) => Err(Error::because(
            ErrorKind::Internal,
            Side::Internal,
            "cannot listen",
            e,
        )),
    }
}

async fn accept_loop<A: ServerApp>(
    listener: Arc<AsyncListener>,
    tls: Option<Arc<TlsAcceptor>>,
    proxy_protocol: Option<Arc<ProxyProtocolOptions>>,
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
                let proxy_protocol = proxy_protocol.clone();
                tokio::spawn(async move {
                    // The PROXY header and the TLS handshake are read here, in the
                    // connection's task, so that a slow or silent client never holds
                    // up the accept loop. That future is boxed: it must not size every
                    // connection's task for the connection's whole life.
                    let Some((stream, conn)) = Box::pin(open_connection(
                        stream,
                        peer,
                        proxy_protocol.as_deref(),
                        tls,
                    ))
                    .await
                    else {
                        return;
                    };
                    app.process_connection(stream, conn, watch).await;
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

/// What runs on an accepted connection before the application sees it: the PROXY
/// protocol header (when the listener reads one), then the TLS handshake (on a TLS
/// listener). `None` when the connection is refused or fails there.
async fn open_connection(
    mut stream: Stream,
    peer: ClientAddr,
    proxy_protocol: Option<&ProxyProtocolOptions>,
    tls: Option<Arc<TlsAcceptor>>,
) -> Option<(Stream, ConnectionInfo)> {
    let mut conn = ConnectionInfo::accepted(peer, &stream);
    if let Some(pp) = proxy_protocol {
        match pp.accept(&mut stream, conn.socket_peer()).await {
            HeaderOutcome::Header(header) => conn = conn.with_proxy_header(header),
            HeaderOutcome::NoHeader => {}
            HeaderOutcome::Refused(_) => return None,
        }
    }
    let stream = match tls {
        None => stream,
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(s) => s,
            Err(e) => {
                log::debug!("{}: {e}", conn.client());
                return None;
            }
        },
    };
    let tls = stream.is_tls();
    Some((stream, conn.with_tls(tls)))
}

//! A real HTTP/2 origin (h2c with prior knowledge) on 127.0.0.1 for tests of HTTP/2
//! clients and proxies. It runs its own small tokio runtime on a thread, so tests
//! drive it through a blocking API, and it counts connections and streams.
//!
//! Every request is answered `200` with response headers telling what arrived
//! (`x-conn`, `x-stream`, `x-method`, `x-path`, `x-authority`, `x-scheme`,
//! `x-request-id` echoed, `x-protocol` for an extended CONNECT, which it accepts unless
//! built [`H2OriginBuilder::without_extended_connect`]),
//! then:
//! - `/bytes/<n>`: `n` bytes of [`crate::deterministic_bytes`] with
//!   [`crate::LARGE_STREAM_SEED`], streamed;
//! - `/hold...`: held (counted by [`H2Origin::held`]) until
//!   [`H2Origin::release_held`], then answered like any other path;
//! - `/sink...`: the request body read and dropped (an upload), no response body;
//! - any other path: the request body echoed back as it arrives (a client must read
//!   the response while it sends, or both sides stall once the windows are full).
//!
//! Every body ends with trailers `x-body-len` and `x-body-checksum` (length and
//! [`crate::checksum`] of the request body) plus the request's own trailers.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tokio::sync::watch;

use crate::data::{ByteStream, Checksum, LARGE_STREAM_SEED};

/// How an [`H2Origin`] behaves.
#[derive(Debug, Clone, Default)]
pub struct H2OriginBuilder {
    max_concurrent_streams: Option<u32>,
    goaway_after: Option<usize>,
    refuse_after: Option<usize>,
    no_extended_connect: bool,
}

impl H2OriginBuilder {
    /// Announces SETTINGS_MAX_CONCURRENT_STREAMS = `n` (h2's default otherwise).
    pub fn max_concurrent_streams(mut self, n: u32) -> Self {
        self.max_concurrent_streams = Some(n);
        self
    }

    /// Starts a graceful shutdown (GOAWAY) of each connection once it accepted `n`
    /// streams; streams already on their way are still served.
    pub fn goaway_after(mut self, n: usize) -> Self {
        self.goaway_after = Some(n);
        self
    }

    /// Does not announce SETTINGS_ENABLE_CONNECT_PROTOCOL: extended CONNECT (a
    /// WebSocket over HTTP/2) is refused.
    pub fn without_extended_connect(mut self) -> Self {
        self.no_extended_connect = true;
        self
    }

    /// Resets every stream after the first `n` of each connection with
    /// REFUSED_STREAM, without looking at it.
    pub fn refuse_after(mut self, n: usize) -> Self {
        self.refuse_after = Some(n);
        self
    }

    /// Binds 127.0.0.1 on a free port and starts serving.
    ///
    /// # Panics
    /// When no port can be bound or the runtime cannot start (test set-up failures).
    pub fn start(self) -> H2Origin {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("h2 origin: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("h2 origin: no local address: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("h2 origin: cannot set non-blocking: {e}"));
        let stats = Arc::new(Stats::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let (release_tx, release_rx) = watch::channel(false);
        let cfg = Arc::new(self);
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("h2-origin".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("h2 origin: cannot start a runtime: {e}"));
                rt.block_on(serve(listener, cfg, thread_stats, stop_rx, release_rx));
            })
            .unwrap_or_else(|e| panic!("h2 origin: cannot spawn its thread: {e}"));
        H2Origin {
            addr,
            stats,
            stop: stop_tx,
            release: release_tx,
            thread: Some(thread),
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    connections: AtomicUsize,
    open_connections: AtomicUsize,
    streams: AtomicUsize,
    active: AtomicUsize,
    peak_active: AtomicUsize,
    held: AtomicUsize,
    refused: AtomicUsize,
    served: Mutex<Vec<String>>,
}

/// A running HTTP/2 origin; stops when dropped.
#[derive(Debug)]
pub struct H2Origin {
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    release: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl H2Origin {
    /// An origin with default behaviour.
    pub fn start() -> H2Origin {
        H2OriginBuilder::default().start()
    }

    /// An origin to configure first.
    pub fn builder() -> H2OriginBuilder {
        H2OriginBuilder::default()
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// TCP connections open now.
    pub fn open_connections(&self) -> usize {
        self.stats.open_connections.load(Ordering::SeqCst)
    }

    /// Streams accepted so far (refused ones included).
    pub fn streams(&self) -> usize {
        self.stats.streams.load(Ordering::SeqCst)
    }

    /// Most streams being served at the same time so far.
    pub fn peak_concurrent_streams(&self) -> usize {
        self.stats.peak_active.load(Ordering::SeqCst)
    }

    /// Requests to `/hold...` waiting for [`H2Origin::release_held`] now.
    pub fn held(&self) -> usize {
        self.stats.held.load(Ordering::SeqCst)
    }

    /// Lets every held request (and every later one) go on.
    pub fn release_held(&self) {
        self.release.send_replace(true);
    }

    /// Streams reset with REFUSED_STREAM so far.
    pub fn refused(&self) -> usize {
        self.stats.refused.load(Ordering::SeqCst)
    }

    /// The `x-request-id` of every request answered in full, in completion order
    /// (`"-"` for requests without one).
    pub fn served_ids(&self) -> Vec<String> {
        self.stats
            .served
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

impl Drop for H2Origin {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: TcpListener,
    cfg: Arc<H2OriginBuilder>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
    release: watch::Receiver<bool>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = listener.accept() => {
                let Ok((tcp, _)) = r else { continue };
                let index = stats.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(connection(tcp, index, cfg.clone(), stats.clone(), release.clone()));
            }
        }
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    index: usize,
    cfg: Arc<H2OriginBuilder>,
    stats: Arc<Stats>,
    release: watch::Receiver<bool>,
) {
    stats.open_connections.fetch_add(1, Ordering::SeqCst);
    let mut builder = h2::server::Builder::new();
    // Extended CONNECT (RFC 8441): a WebSocket's stream is echoed like any body.
    if !cfg.no_extended_connect {
        builder.enable_connect_protocol();
    }
    if let Some(n) = cfg.max_concurrent_streams {
        builder.max_concurrent_streams(n);
    }
    if let Ok(mut conn) = builder.handshake::<_, Bytes>(tcp).await {
        let mut accepted = 0usize;
        while let Some(Ok((req, mut respond))) = conn.accept().await {
            accepted += 1;
            stats.streams.fetch_add(1, Ordering::SeqCst);
            if cfg.refuse_after.is_some_and(|n| accepted > n) {
                stats.refused.fetch_add(1, Ordering::SeqCst);
                respond.send_reset(Reason::REFUSED_STREAM);
                continue;
            }
            if cfg.goaway_after == Some(accepted) {
                conn.graceful_shutdown();
            }
            let stats = stats.clone();
            let release = release.clone();
            tokio::spawn(async move {
                let now = stats.active.fetch_add(1, Ordering::SeqCst) + 1;
                stats.peak_active.fetch_max(now, Ordering::SeqCst);
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string();
                let done = answer(req, &mut respond, index, accepted, &stats, release).await;
                stats.active.fetch_sub(1, Ordering::SeqCst);
                if done.is_ok() {
                    if let Ok(mut s) = stats.served.lock() {
                        s.push(id);
                    }
                }
            });
        }
    }
    stats.open_connections.fetch_sub(1, Ordering::SeqCst);
}

async fn answer(
    req: Request<RecvStream>,
    respond: &mut SendResponse<Bytes>,
    conn: usize,
    stream: usize,
    stats: &Stats,
    mut release: watch::Receiver<bool>,
) -> Result<(), h2::Error> {
    let path = req.uri().path().to_string();
    if path.starts_with("/hold") {
        stats.held.fetch_add(1, Ordering::SeqCst);
        let _ = release.wait_for(|r| *r).await;
        stats.held.fetch_sub(1, Ordering::SeqCst);
    }
    let mut resp = Response::new(());
    *resp.status_mut() = StatusCode::OK;
    {
        let h = resp.headers_mut();
        let text = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("?"));
        h.insert("x-conn", HeaderValue::from(conn));
        h.insert("x-stream", HeaderValue::from(stream));
        h.insert("x-method", text(req.method().as_str()));
        h.insert(
            "x-path",
            text(req.uri().path_and_query().map_or("", |p| p.as_str())),
        );
        h.insert(
            "x-authority",
            text(req.uri().authority().map_or("", |a| a.as_str())),
        );
        h.insert("x-scheme", text(req.uri().scheme_str().unwrap_or("")));
        if let Some(p) = req.extensions().get::<h2::ext::Protocol>() {
            h.insert("x-protocol", text(p.as_str()));
        }
        if let Some(id) = req.headers().get("x-request-id") {
            h.insert("x-request-id", id.clone());
        }
    }
    let send_only: Option<u64> = path.strip_prefix("/bytes/").and_then(|n| n.parse().ok());
    let mut body = req.into_body();
    let mut send = respond.send_response(resp, false)?;
    let mut sum = Checksum::new();
    match send_only {
        Some(n) => {
            // The request body (if any) is still read, for the trailers.
            let mut pattern = ByteStream::new(LARGE_STREAM_SEED);
            let mut left = n;
            while left > 0 {
                let piece = left.min(64 * 1024) as usize;
                let mut buf = vec![0; piece];
                pattern.fill(&mut buf);
                send_all(&mut send, Bytes::from(buf)).await?;
                left -= piece as u64;
            }
            while let Some(data) = body.data().await {
                let data = data?;
                let _ = body.flow_control().release_capacity(data.len());
                sum.update(&data);
            }
        }
        None => {
            let echo = !path.starts_with("/sink");
            while let Some(data) = body.data().await {
                let data = data?;
                let _ = body.flow_control().release_capacity(data.len());
                sum.update(&data);
                if echo {
                    send_all(&mut send, data).await?;
                }
            }
        }
    }
    let mut trailers = body.trailers().await?.unwrap_or_default();
    trailers.insert("x-body-len", HeaderValue::from(sum.len()));
    trailers.insert("x-body-checksum", HeaderValue::from(sum.value()));
    send_trailers(&mut send, trailers)
}

fn send_trailers(send: &mut SendStream<Bytes>, trailers: HeaderMap) -> Result<(), h2::Error> {
    send.send_trailers(trailers)
}

/// Sends `data` within the window the peer grants, never queueing more.
async fn send_all(send: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), h2::Error> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|cx| loop {
            if send.capacity() > 0 {
                return std::task::Poll::Ready(Ok(send.capacity()));
            }
            match send.poll_capacity(cx) {
                std::task::Poll::Ready(Some(Ok(_))) => continue,
                std::task::Poll::Ready(Some(Err(e))) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Ready(None) => {
                    return std::task::Poll::Ready(Err(h2::Error::from(Reason::STREAM_CLOSED)))
                }
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        })
        .await?;
        let piece = data.split_to(granted.min(data.len()));
        send.send_data(piece, false)?;
    }
    Ok(())
}

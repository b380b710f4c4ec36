//! A real HTTP/1.1 origin server on 127.0.0.1 for proxy tests: one thread per
//! connection, keep-alive and pipelining, with counters and a log of what it received.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::data::Checksum;
use crate::proxy_header::{read_proxy_header, SeenProxyHeader};
use crate::reply::{self, head_bytes, write_chunk, write_last_chunk, Reply};
use crate::wire::{
    self, framing_from_headers, has_token, owned_headers, Framing, Headers, WireReader,
};

/// Request bodies longer than this are not kept in [`ReceivedRequest::body`]
/// (their length and checksum still are).
pub const MAX_STORED_BODY: usize = 4 * 1024 * 1024;

/// The head of a request, as given to the origin's handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Request target as sent, e.g. `/a?b`.
    pub path: String,
    /// Protocol version as sent, e.g. `HTTP/1.1`.
    pub version: String,
    /// Header fields in wire order, names lowercased.
    pub headers: Headers,
    /// Index (from 0) of the origin connection the request came on.
    pub connection: usize,
    /// The PROXY header its connection started with (origins built with
    /// [`OriginBuilder::expect_proxy_header`]).
    pub proxy: Option<SeenProxyHeader>,
}

impl RequestHead {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }
}

/// A request the origin read completely, as kept in its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Request target as sent.
    pub path: String,
    /// Protocol version as sent, e.g. `HTTP/1.1`.
    pub version: String,
    /// Header fields in wire order, names lowercased.
    pub headers: Headers,
    /// The body, when at most [`MAX_STORED_BODY`] bytes (else empty; see `body_len`).
    pub body: Vec<u8>,
    /// Length of the body received.
    pub body_len: u64,
    /// [`crate::checksum`] of the body received.
    pub body_checksum: u64,
    /// Trailer fields of a chunked body, names lowercased.
    pub trailers: Headers,
    /// Index (from 0) of the origin connection the request came on.
    pub connection: usize,
    /// The PROXY header its connection started with, if the origin expects one.
    pub proxy: Option<SeenProxyHeader>,
}

impl ReceivedRequest {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        wire::header_all(&self.headers, name)
    }
}

type Handler = dyn Fn(&RequestHead) -> Reply + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    expect_proxy_header: bool,
    idle_timeout: Option<Duration>,
    io_timeout: Duration,
    connections: AtomicUsize,
    requests: AtomicUsize,
    received: Mutex<Vec<ReceivedRequest>>,
    errors: Mutex<Vec<String>>,
    live: Mutex<Vec<(usize, TcpStream)>>,
    stopping: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Options of an [`Origin`] before it starts.
#[derive(Debug, Clone)]
pub struct OriginBuilder {
    idle_timeout: Option<Duration>,
    io_timeout: Duration,
    expect_proxy_header: bool,
}

impl Default for OriginBuilder {
    fn default() -> Self {
        OriginBuilder {
            idle_timeout: None,
            io_timeout: Duration::from_secs(30),
            expect_proxy_header: false,
        }
    }
}

impl OriginBuilder {
    /// Close a keep-alive connection that stays idle (no new request) this long.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// Read/write timeout on each connection while a request is in progress (default 30 s).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// Every connection must start with a PROXY header (v1 or v2), kept with its
    /// requests ([`RequestHead::proxy`]); a connection without one is closed and
    /// reported in [`Origin::errors`].
    pub fn expect_proxy_header(mut self) -> Self {
        self.expect_proxy_header = true;
        self
    }

    /// Binds 127.0.0.1:0 and starts serving with `handler`.
    pub fn start<F>(self, handler: F) -> Origin
    where
        F: Fn(&RequestHead) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("origin cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("origin has no local address: {e}"));
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            expect_proxy_header: self.expect_proxy_header,
            idle_timeout: self.idle_timeout,
            io_timeout: self.io_timeout,
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            live: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name(format!("origin-accept-{}", addr.port()))
            .spawn(move || accept_loop(listener, accept_shared))
            .unwrap_or_else(|e| panic!("cannot spawn origin thread: {e}"));
        Origin {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }
}

/// An HTTP/1.1 origin server listening on 127.0.0.1; stops when dropped.
pub struct Origin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Origin {
    /// Starts an origin with default options that answers every request with `handler`.
    pub fn start<F>(handler: F) -> Origin
    where
        F: Fn(&RequestHead) -> Reply + Send + Sync + 'static,
    {
        OriginBuilder::default().start(handler)
    }

    /// An origin that answers every request (health checks included) with 200 and
    /// `name`: tells backends apart behind a load balancer.
    pub fn named(name: &'static str) -> Origin {
        Origin::start(move |_| Reply::ok(name))
    }

    /// Options for an origin (idle timeout, I/O timeout).
    pub fn builder() -> OriginBuilder {
        OriginBuilder::default()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Request heads received so far (counted before the body is read).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests read completely (head and body), in the order they completed.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.received).clone()
    }

    /// The last request read completely, if any.
    pub fn last_received(&self) -> Option<ReceivedRequest> {
        lock(&self.shared.received).last().cloned()
    }

    /// Protocol or I/O errors met on connections (for diagnosing failed tests).
    pub fn errors(&self) -> Vec<String> {
        lock(&self.shared.errors).clone()
    }

    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.live).len()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for (_, s) in lock(&self.shared.live).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.acceptor.take() {
            let _ = handle.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.connections.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.live).push((id, clone));
        }
        let conn_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("origin-conn-{id}"))
            .spawn(move || {
                if let Err(e) = serve_connection(stream, id, &conn_shared) {
                    lock(&conn_shared.errors).push(format!("connection {id}: {e}"));
                }
                lock(&conn_shared.live).retain(|(i, _)| *i != id);
            });
        if spawned.is_err() {
            lock(&shared.live).retain(|(i, _)| *i != id);
        }
    }
}

/// Whether a request is body-streaming: the innermost reply streams the request body.
fn streams_request_body(reply: &Reply) -> bool {
    match reply {
        Reply::StreamEcho | Reply::WebSocketEcho => true,
        Reply::Delay(_, inner) | Reply::Interim(_, inner) => streams_request_body(inner),
        _ => false,
    }
}

/// Adds a `Connection` header to replies that carry handler headers, when absent.
fn add_connection_header(reply: &mut Reply, value: &str) {
    match reply {
        Reply::Full { headers, .. } | Reply::Chunked { headers, .. }
            if wire::header(headers, "connection").is_none() =>
        {
            headers.push(("connection".to_string(), value.to_string()));
        }
        Reply::Delay(_, inner) | Reply::Interim(_, inner) => add_connection_header(inner, value),
        _ => {}
    }
}

struct Conn {
    reader: WireReader<TcpStream>,
    writer: TcpStream,
}

fn serve_connection(stream: TcpStream, id: usize, shared: &Shared) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(shared.io_timeout))?;
    let writer = stream.try_clone()?;
    let mut conn = Conn {
        reader: WireReader::new(stream),
        writer,
    };
    let proxy = if shared.expect_proxy_header {
        conn.reader
            .get_ref()
            .set_read_timeout(Some(shared.io_timeout))?;
        Some(read_proxy_header(&mut conn.reader)?)
    } else {
        None
    };
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        let idle = if conn.reader.buffered().is_empty() {
            shared.idle_timeout.unwrap_or(shared.io_timeout)
        } else {
            shared.io_timeout
        };
        conn.reader.get_ref().set_read_timeout(Some(idle))?;
        let head = match conn.reader.read_head() {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                // Idle keep-alive connection: close it, as a real server would.
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        conn.reader
            .get_ref()
            .set_read_timeout(Some(shared.io_timeout))?;
        let Some(head) = parse_request_head(&head, id, proxy.clone()) else {
            conn.writer.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )?;
            return Err(wire::invalid(format!(
                "unparsable request head {:?}",
                String::from_utf8_lossy(&head)
            )));
        };
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let framing = framing_from_headers(&head.headers, Framing::None)?;
        let http10 = head.version == "HTTP/1.0";
        let client_close = has_token(&head.headers, "connection", "close")
            || (http10 && !has_token(&head.headers, "connection", "keep-alive"));
        let mut reply = (shared.handler)(&head);
        if client_close {
            add_connection_header(&mut reply, "close");
        } else if http10 {
            add_connection_header(&mut reply, "keep-alive");
        }
        let close_after = client_close || reply.closes_connection();
        if framing != Framing::None && has_token(&head.headers, "expect", "100-continue") {
            conn.writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let head_only = head.method.eq_ignore_ascii_case("HEAD");
        if streams_request_body(&reply) {
            respond_streaming(&mut conn, &reply, head, framing, shared)?;
        } else {
            let received = read_whole_body(&mut conn.reader, head, framing)?;
            let body = received.body.clone();
            lock(&shared.received).push(received);
            respond(&mut conn, &reply, &body, head_only)?;
        }
        if close_after {
            if matches!(innermost(&reply), Reply::ResetAfter { .. }) {
                return Ok(()); // dropping with SO_LINGER 0 sends the RST
            }
            let _ = conn.writer.flush();
            let _ = conn.writer.shutdown(Shutdown::Write);
            // Drain what the peer may still send so the close stays a FIN, not a RST.
            conn.reader
                .get_ref()
                .set_read_timeout(Some(Duration::from_millis(500)))?;
            let _ = conn.reader.read_to_eof(&mut |_| Ok(()));
            return Ok(());
        }
    }
}

fn innermost(reply: &Reply) -> &Reply {
    match reply {
        Reply::Delay(_, inner) | Reply::Interim(_, inner) => innermost(inner),
        other => other,
    }
}

fn parse_request_head(
    bytes: &[u8],
    connection: usize,
    proxy: Option<SeenProxyHeader>,
) -> Option<RequestHead> {
    let mut raw = [httparse::EMPTY_HEADER; 256];
    let mut req = httparse::Request::new(&mut raw);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    Some(RequestHead {
        method: req.method?.to_string(),
        path: req.path?.to_string(),
        version: format!("HTTP/1.{}", req.version?),
        headers: owned_headers(req.headers),
        connection,
        proxy,
    })
}

fn read_whole_body(
    reader: &mut WireReader<TcpStream>,
    head: RequestHead,
    framing: Framing,
) -> io::Result<ReceivedRequest> {
    let mut body = Vec::new();
    let mut sum = Checksum::new();
    let trailers = reader.read_body(framing, &mut |d| {
        sum.update(d);
        if body.len() + d.len() <= MAX_STORED_BODY {
            body.extend_from_slice(d);
        }
        Ok(())
    })?;
    if sum.len() > MAX_STORED_BODY as u64 {
        body = Vec::new();
    }
    Ok(ReceivedRequest {
        method: head.method,
        path: head.path,
        version: head.version,
        headers: head.headers,
        body,
        body_len: sum.len(),
        body_checksum: sum.value(),
        trailers,
        connection: head.connection,
        proxy: head.proxy,
    })
}

fn respond(conn: &mut Conn, reply: &Reply, body: &[u8], head_only: bool) -> io::Result<()> {
    match reply {
        Reply::Echo => {
            let mut out = head_bytes(200, &[], &[("content-length", body.len().to_string())]);
            if !head_only {
                out.extend_from_slice(body);
            }
            conn.writer.write_all(&out)
        }
        Reply::Delay(wait, inner) if matches!(innermost(inner), Reply::Echo) => {
            thread::sleep(*wait);
            respond(conn, inner, body, head_only)
        }
        Reply::Interim(codes, inner) if matches!(innermost(inner), Reply::Echo) => {
            for code in codes {
                reply::write_interim(&mut conn.writer, *code)?;
            }
            respond(conn, inner, body, head_only)
        }
        other => reply::write_simple(&mut conn.writer, other, head_only),
    }
}

fn respond_streaming(
    conn: &mut Conn,
    reply: &Reply,
    head: RequestHead,
    framing: Framing,
    shared: &Shared,
) -> io::Result<()> {
    match reply {
        Reply::Delay(wait, inner) => {
            thread::sleep(*wait);
            respond_streaming(conn, inner, head, framing, shared)
        }
        Reply::Interim(codes, inner) => {
            for code in codes {
                reply::write_interim(&mut conn.writer, *code)?;
            }
            respond_streaming(conn, inner, head, framing, shared)
        }
        Reply::StreamEcho => {
            conn.writer.write_all(&head_bytes(
                200,
                &[],
                &[("transfer-encoding", "chunked".to_string())],
            ))?;
            let mut sum = Checksum::new();
            let writer = &mut conn.writer;
            let trailers = conn.reader.read_body(framing, &mut |d| {
                sum.update(d);
                write_chunk(writer, d)
            })?;
            write_last_chunk(&mut conn.writer, &[])?;
            log_streamed(shared, head, &sum, trailers);
            Ok(())
        }
        Reply::WebSocketEcho => {
            log_streamed(shared, head, &Checksum::new(), Vec::new());
            conn.writer.write_all(&head_bytes(
                101,
                &[],
                &[
                    ("upgrade", "websocket".to_string()),
                    ("connection", "Upgrade".to_string()),
                    ("sec-websocket-accept", "test-support-accept".to_string()),
                ],
            ))?;
            conn.reader
                .get_ref()
                .set_read_timeout(Some(shared.io_timeout))?;
            let writer = &mut conn.writer;
            conn.reader.read_to_eof(&mut |d| writer.write_all(d))?;
            Ok(())
        }
        other => reply::write_simple(&mut conn.writer, other, false),
    }
}

fn log_streamed(shared: &Shared, head: RequestHead, sum: &Checksum, trailers: Headers) {
    lock(&shared.received).push(ReceivedRequest {
        method: head.method,
        path: head.path,
        version: head.version,
        headers: head.headers,
        body: Vec::new(),
        body_len: sum.len(),
        body_checksum: sum.value(),
        trailers,
        connection: head.connection,
        proxy: head.proxy,
    });
}

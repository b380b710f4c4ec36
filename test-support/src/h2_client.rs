//! A blocking HTTP/2 client for black-box tests: it speaks h2c with prior knowledge
//! over plain TCP, HTTP/2 over TLS chosen by ALPN, or HTTP/2 over any stream already
//! set up; it runs its own small tokio runtime and gives every request a deadline.
//!
//! Bodies are streamed both ways under flow control: a request body can be generated
//! on the fly ([`H2Body::Pattern`]) while the response is read, and a response body
//! is checksummed as it arrives (only its first [`MAX_KEPT_BODY`] bytes are kept), so
//! multi-MiB exchanges cost little memory. [`H2Client::request_all`] runs many
//! requests concurrently on the one connection.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Runtime;

use crate::data::{ByteStream, Checksum};

/// Response bodies longer than this are not kept in [`H2Response::body`] (their
/// length and checksum still are).
pub const MAX_KEPT_BODY: usize = 1024 * 1024;

/// Time a request may take, from sending its head to reading its trailers, unless
/// [`H2Client::set_timeout`] says otherwise.
pub const DEFAULT_H2_TIMEOUT: Duration = Duration::from_secs(20);

/// The body of an [`H2Request`].
#[derive(Debug, Clone, Default)]
pub enum H2Body {
    /// No body: END_STREAM goes with the head (unless there are trailers).
    #[default]
    Empty,
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` bytes of the [`ByteStream`] seeded with `seed`, generated as they are
    /// sent.
    Pattern {
        /// Body length.
        len: u64,
        /// Seed of the byte stream.
        seed: u64,
    },
}

/// One request to send with an [`H2Client`].
#[derive(Debug, Clone)]
pub struct H2Request {
    method: Method,
    path: String,
    authority: Option<String>,
    headers: Vec<(String, String)>,
    body: H2Body,
    trailers: Vec<(String, String)>,
}

impl H2Request {
    /// A request with `method` for `path` (origin form, e.g. `/a?b`), with
    /// `:authority` `test` until [`H2Request::authority`] says otherwise.
    pub fn new(method: &str, path: &str) -> Self {
        H2Request {
            method: Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET),
            path: path.to_string(),
            authority: Some("test".to_string()),
            headers: Vec::new(),
            body: H2Body::Empty,
            trailers: Vec::new(),
        }
    }

    /// A GET of `path`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// Sets `:authority` (`None`: no `:authority` at all).
    pub fn authority(mut self, authority: Option<&str>) -> Self {
        self.authority = authority.map(str::to_string);
        self
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: H2Body) -> Self {
        self.body = body;
        self
    }

    /// Adds a trailer field, sent after the body.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_string(), value.to_string()));
        self
    }
}

/// What came back for an [`H2Request`].
#[derive(Debug, Clone)]
pub struct H2Response {
    /// Status code.
    pub status: u16,
    /// Header fields.
    pub headers: HeaderMap,
    /// The first [`MAX_KEPT_BODY`] bytes of the body.
    pub body: Vec<u8>,
    /// Length of the body.
    pub body_len: u64,
    /// [`crate::checksum`] of the whole body.
    pub body_checksum: u64,
    /// Trailer fields (empty when there were none).
    pub trailers: HeaderMap,
    /// Whether END_STREAM came with the response head (no body, no trailers).
    pub ended_with_head: bool,
}

impl H2Response {
    /// The first value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first value of trailer `name`, as text.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The kept body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A blocking HTTP/2 client connection. Its methods may be called from several
/// threads at once; each request is a stream of the one connection.
pub struct H2Client {
    rt: Arc<Runtime>,
    sender: SendRequest<Bytes>,
    scheme: &'static str,
    timeout: Duration,
}

impl std::fmt::Debug for H2Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Client")
            .field("scheme", &self.scheme)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn io_err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what}: timed out"))
}

/// A runtime for one client (its connection task and its requests).
pub fn h2_client_runtime() -> io::Result<Arc<Runtime>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("h2-client")
        .enable_all()
        .build()
        .map(Arc::new)
}

impl H2Client {
    /// Connects to `addr` and speaks HTTP/2 with prior knowledge (h2c): preface and
    /// SETTINGS exchanged within `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<H2Client> {
        let rt = h2_client_runtime()?;
        let tcp = rt.block_on(async {
            tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| timed_out("connecting"))?
        })?;
        tcp.set_nodelay(true)?;
        Self::handshake(rt, tcp, "http", timeout)
    }

    #[cfg(feature = "tls")]
    /// Connects to `addr` over TLS, sending `sni`, trusting only `ca_pem`, offering
    /// ALPN `h2` and `http/1.1`; fails unless the server picks `h2`. Then speaks
    /// HTTP/2 with `:scheme` `https`. Everything within `timeout`.
    pub fn connect_tls(
        addr: SocketAddr,
        sni: &str,
        ca_pem: &str,
        timeout: Duration,
    ) -> io::Result<H2Client> {
        use boring::ssl::{SslConnector, SslMethod, SslVerifyMode};
        let mut b = SslConnector::builder(SslMethod::tls()).map_err(|e| io_err("TLS setup", e))?;
        let mut store =
            boring::x509::store::X509StoreBuilder::new().map_err(|e| io_err("CA store", e))?;
        for cert in boring::x509::X509::stack_from_pem(ca_pem.as_bytes())
            .map_err(|e| io_err("CA PEM", e))?
        {
            store.add_cert(cert).map_err(|e| io_err("CA store", e))?;
        }
        b.set_cert_store_builder(store);
        b.set_verify(SslVerifyMode::PEER);
        b.set_alpn_protos(b"\x02h2\x08http/1.1")
            .map_err(|e| io_err("ALPN", e))?;
        let config = b.build().configure().map_err(|e| io_err("TLS setup", e))?;
        let rt = h2_client_runtime()?;
        let tls = rt.block_on(async {
            let handshake = async {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                tokio_boring::connect(config, sni, tcp)
                    .await
                    .map_err(|e| io_err("TLS handshake", e))
            };
            tokio::time::timeout(timeout, handshake)
                .await
                .map_err(|_| timed_out("TLS handshake"))?
        })?;
        match tls.ssl().selected_alpn_protocol() {
            Some(b"h2") => Self::handshake(rt, tls, "https", timeout),
            other => Err(io_err(
                "ALPN",
                format!(
                    "the server chose {:?}, not h2",
                    other.map(String::from_utf8_lossy)
                ),
            )),
        }
    }

    /// Speaks HTTP/2 on `io` (already connected, e.g. TLS after ALPN chose `h2`),
    /// using `rt`, the runtime `io` was made on; requests say `:scheme` `scheme`.
    pub fn handshake<T>(
        rt: Arc<Runtime>,
        io: T,
        scheme: &'static str,
        timeout: Duration,
    ) -> io::Result<H2Client>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let sender = rt.block_on(async {
            // Until the server's SETTINGS arrive, assume the 100 streams RFC 9113 asks
            // servers to allow (h2 assumes no limit, and a burst of requests sent that
            // early would be refused by a server allowing 100).
            let mut builder = h2::client::Builder::new();
            builder.initial_max_send_streams(100);
            let (sender, conn) = tokio::time::timeout(timeout, builder.handshake(io))
                .await
                .map_err(|_| timed_out("HTTP/2 handshake"))?
                .map_err(|e| io_err("HTTP/2 handshake", e))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            // The server's SETTINGS come with its first frames: wait until streams can
            // be opened, so a server that does not speak HTTP/2 fails here.
            tokio::time::timeout(timeout, sender.ready())
                .await
                .map_err(|_| timed_out("HTTP/2 SETTINGS from the server"))?
                .map_err(|e| io_err("HTTP/2 connection", e))
        })?;
        Ok(H2Client {
            rt,
            sender,
            scheme,
            timeout,
        })
    }

    /// Sets the deadline of each request from now on.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends `req`, streaming its body while the response is read, and returns the
    /// whole response. Fails on any protocol error, a reset, or the deadline.
    pub fn request(&self, req: H2Request) -> io::Result<H2Response> {
        let fut = exchange(self.sender.clone(), self.scheme, req);
        let timeout = self.timeout;
        self.rt.block_on(async move {
            tokio::time::timeout(timeout, fut)
                .await
                .map_err(|_| timed_out("HTTP/2 request"))?
        })
    }

    /// Sends every request at once, each on its own stream of this connection
    /// (streams beyond the server's limit wait for a free one), and returns the
    /// results in the order of `reqs`. Each request has the client's deadline.
    pub fn request_all(&self, reqs: Vec<H2Request>) -> Vec<io::Result<H2Response>> {
        let timeout = self.timeout;
        let tasks: Vec<_> = reqs
            .into_iter()
            .map(|req| {
                let fut = exchange(self.sender.clone(), self.scheme, req);
                self.rt.spawn(async move {
                    tokio::time::timeout(timeout, fut)
                        .await
                        .map_err(|_| timed_out("HTTP/2 request"))?
                })
            })
            .collect();
        self.rt.block_on(async move {
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await.unwrap_or_else(|e| Err(io_err("request task", e))));
            }
            out
        })
    }
}

fn build_request(scheme: &str, req: &H2Request) -> io::Result<Request<()>> {
    let uri = match &req.authority {
        Some(a) => format!("{scheme}://{a}{}", req.path),
        None => req.path.clone(),
    };
    let mut builder = Request::builder().method(req.method.clone()).uri(uri);
    for (n, v) in &req.headers {
        builder = builder.header(n.as_str(), v.as_str());
    }
    builder
        .body(())
        .map_err(|e| io_err("building the request", e))
}

fn header_map(fields: &[(String, String)]) -> io::Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (n, v) in fields {
        let name = HeaderName::from_bytes(n.as_bytes()).map_err(|e| io_err("trailer name", e))?;
        let value = HeaderValue::from_str(v).map_err(|e| io_err("trailer value", e))?;
        map.append(name, value);
    }
    Ok(map)
}

/// One request: head, then the body sent and the response read at the same time.
async fn exchange(
    sender: SendRequest<Bytes>,
    scheme: &'static str,
    req: H2Request,
) -> io::Result<H2Response> {
    let head = build_request(scheme, &req)?;
    let trailers = header_map(&req.trailers)?;
    let no_body = matches!(req.body, H2Body::Empty) && trailers.is_empty();
    let mut sender = sender
        .ready()
        .await
        .map_err(|e| io_err("waiting for a free stream", e))?;
    let (response, send) = sender
        .send_request(head, no_body)
        .map_err(|e| io_err("sending the request head", e))?;
    let upload = async move {
        if no_body {
            return Ok(());
        }
        send_body(send, req.body, trailers).await
    };
    let download = async move {
        let resp = response
            .await
            .map_err(|e| io_err("reading the response head", e))?;
        read_response(resp).await
    };
    // A server may answer in full before it has read the whole request body and then
    // reset the stream (RFC 9113, section 8.1): the complete response is the answer,
    // and the upload's failure is not an error of the exchange. An upload that failed
    // for another reason shows in the response (or its absence).
    let (_sent, got) = tokio::join!(upload, download);
    got
}

async fn send_body(
    mut send: SendStream<Bytes>,
    body: H2Body,
    trailers: HeaderMap,
) -> io::Result<()> {
    match body {
        H2Body::Empty => {}
        H2Body::Bytes(data) => send_data(&mut send, Bytes::from(data)).await?,
        H2Body::Pattern { len, seed } => {
            let mut gen = ByteStream::new(seed);
            let mut left = len;
            while left > 0 {
                let n = left.min(64 * 1024) as usize;
                let mut buf = vec![0; n];
                gen.fill(&mut buf);
                send_data(&mut send, Bytes::from(buf)).await?;
                left -= n as u64;
            }
        }
    }
    if trailers.is_empty() {
        send.send_data(Bytes::new(), true)
            .map_err(|e| io_err("ending the request body", e))
    } else {
        send.send_trailers(trailers)
            .map_err(|e| io_err("sending the request trailers", e))
    }
}

/// Sends `data` within the window the peer grants.
async fn send_data(send: &mut SendStream<Bytes>, mut data: Bytes) -> io::Result<()> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = poll_fn(|cx| loop {
            if send.capacity() > 0 {
                return Poll::Ready(Ok(send.capacity()));
            }
            match send.poll_capacity(cx) {
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io_err("request body", e))),
                Poll::Ready(None) => {
                    return Poll::Ready(Err(io_err("request body", "stream closed")))
                }
                Poll::Pending => return Poll::Pending,
            }
        })
        .await?;
        let piece = data.split_to(granted.min(data.len()));
        send.send_data(piece, false)
            .map_err(|e| io_err("sending the request body", e))?;
    }
    Ok(())
}

async fn read_response(resp: http::Response<RecvStream>) -> io::Result<H2Response> {
    let (parts, mut body) = resp.into_parts();
    let ended_with_head = body.is_end_stream();
    let mut sum = Checksum::new();
    let mut kept = Vec::new();
    while let Some(data) = body.data().await {
        let data = data.map_err(|e| io_err("reading the response body", e))?;
        let _ = body.flow_control().release_capacity(data.len());
        sum.update(&data);
        let room = MAX_KEPT_BODY.saturating_sub(kept.len());
        kept.extend_from_slice(&data[..room.min(data.len())]);
    }
    let trailers = body
        .trailers()
        .await
        .map_err(|e| io_err("reading the response trailers", e))?
        .unwrap_or_default();
    Ok(H2Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: kept,
        body_len: sum.len(),
        body_checksum: sum.value(),
        trailers,
        ended_with_head,
    })
}

//! WebSocket over HTTP/2 (RFC 8441) for black-box tests: a client ([`H2WebSocket`]:
//! `h2` opens the extended CONNECT stream, `tokio-tungstenite` speaks WebSocket on it)
//! and a real WebSocket echo origin over HTTP/1.1 ([`WebSocketEchoOrigin`]). Blocking
//! API with a deadline per step.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use h2::{RecvStream, SendStream};
use http::{Method, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The server answered the extended CONNECT with something else than `200`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2WebSocketRefused {
    /// The status, or `None` when the server does not allow extended CONNECT
    /// (no SETTINGS_ENABLE_CONNECT_PROTOCOL) or reset the stream.
    pub status: Option<u16>,
    /// Why, in words.
    pub reason: String,
}

/// A WebSocket open over one stream of an HTTP/2 connection (h2c, prior knowledge).
pub struct H2WebSocket {
    rt: Runtime,
    ws: WebSocketStream<DuplexStream>,
    timeout: Duration,
    /// The response headers of the extended CONNECT.
    pub response_headers: http::HeaderMap,
}

impl std::fmt::Debug for H2WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2WebSocket").finish_non_exhaustive()
    }
}

fn refused(status: Option<u16>, reason: impl std::fmt::Display) -> H2WebSocketRefused {
    H2WebSocketRefused {
        status,
        reason: reason.to_string(),
    }
}

impl H2WebSocket {
    /// Connects to `addr` with h2c and opens a WebSocket on `path` for `authority`
    /// (`:protocol websocket`), waiting at most `timeout` for each step.
    pub fn connect(
        addr: SocketAddr,
        authority: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<H2WebSocket, H2WebSocketRefused> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| refused(None, e))?;
        let uri = format!("http://{authority}{path}");
        let opened = rt.block_on(async {
            tokio::time::timeout(timeout, open(addr, &uri))
                .await
                .map_err(|_| refused(None, "timed out"))?
        })?;
        let (recv, send, headers) = opened;
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        rt.spawn(pump(theirs, recv, send));
        let ws = rt.block_on(WebSocketStream::from_raw_socket(ours, Role::Client, None));
        Ok(H2WebSocket {
            rt,
            ws,
            timeout,
            response_headers: headers,
        })
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send(Message::text(text))
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: Vec<u8>) -> io::Result<()> {
        self.send(Message::binary(data))
    }

    fn send(&mut self, msg: Message) -> io::Result<()> {
        let timeout = self.timeout;
        let ws = &mut self.ws;
        self.rt.block_on(async {
            tokio::time::timeout(timeout, ws.send(msg))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "send timed out"))?
                .map_err(io::Error::other)
        })
    }

    /// The next data message (text or binary, as bytes), skipping pings and pongs;
    /// `None` once the server closed.
    pub fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        let timeout = self.timeout;
        let ws = &mut self.ws;
        self.rt.block_on(async {
            loop {
                let next = tokio::time::timeout(timeout, ws.next())
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "recv timed out"))?;
                match next {
                    None | Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Ok(Message::Text(t))) => return Ok(Some(t.as_bytes().to_vec())),
                    Some(Ok(Message::Binary(b))) => return Ok(Some(b.to_vec())),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(io::Error::other(e)),
                }
            }
        })
    }

    /// Sends a close frame and waits for the server's (or the end of the stream).
    pub fn close(mut self) -> io::Result<()> {
        let timeout = self.timeout;
        let ws = &mut self.ws;
        self.rt.block_on(async {
            let _ = tokio::time::timeout(timeout, ws.close(None)).await;
            while let Ok(Some(Ok(_))) = tokio::time::timeout(timeout, ws.next()).await {}
        });
        Ok(())
    }
}

async fn open(
    addr: SocketAddr,
    uri: &str,
) -> Result<(RecvStream, SendStream<Bytes>, http::HeaderMap), H2WebSocketRefused> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| refused(None, e))?;
    let (mut client, mut conn) = h2::client::handshake(tcp)
        .await
        .map_err(|e| refused(None, e))?;
    let mut pings = conn.ping_pong();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // The server's SETTINGS come before its answer to a PING: once the PONG is back,
    // whether it allows extended CONNECT is known.
    if let Some(pings) = pings.as_mut() {
        pings
            .ping(h2::Ping::opaque())
            .await
            .map_err(|e| refused(None, e))?;
    }
    client = client.ready().await.map_err(|e| refused(None, e))?;
    if !client.is_extended_connect_protocol_enabled() {
        return Err(refused(
            None,
            "the server did not send SETTINGS_ENABLE_CONNECT_PROTOCOL",
        ));
    }
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri(uri)
        .header("sec-websocket-version", "13")
        .body(())
        .map_err(|e| refused(None, e))?;
    req.extensions_mut()
        .insert(h2::ext::Protocol::from_static("websocket"));
    let (response, send) = client
        .send_request(req, false)
        .map_err(|e| refused(None, e))?;
    let response = response.await.map_err(|e| refused(None, e))?;
    let status = response.status();
    if status != http::StatusCode::OK {
        return Err(refused(
            Some(status.as_u16()),
            "the server refused the upgrade",
        ));
    }
    let headers = response.headers().clone();
    Ok((response.into_body(), send, headers))
}

/// Moves bytes between the WebSocket's end of the pipe and the HTTP/2 stream.
async fn pump(pipe: DuplexStream, mut recv: RecvStream, mut send: SendStream<Bytes>) {
    let (mut from_ws, mut to_ws) = tokio::io::split(pipe);
    let down = async move {
        while let Some(Ok(data)) = recv.data().await {
            let _ = recv.flow_control().release_capacity(data.len());
            if to_ws.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = to_ws.shutdown().await;
    };
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from_ws.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut rest = Bytes::copy_from_slice(&buf[..n]);
            while !rest.is_empty() {
                send.reserve_capacity(rest.len());
                let available = send.capacity();
                let granted = if available > 0 {
                    available
                } else {
                    match poll_fn(|cx| send.poll_capacity(cx)).await {
                        Some(Ok(k)) => k,
                        _ => return,
                    }
                };
                if granted > 0 {
                    let piece = rest.split_to(granted.min(rest.len()));
                    if send.send_data(piece, false).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = send.send_data(Bytes::new(), true);
    };
    tokio::join!(down, up);
}

/// A WebSocket origin over HTTP/1.1 (`tokio-tungstenite`'s server handshake, so the
/// `Sec-WebSocket-Key` / `Sec-WebSocket-Accept` exchange is checked for real) that
/// echoes every data message; it remembers the headers of the last upgrade request.
pub struct WebSocketEchoOrigin {
    addr: SocketAddr,
    last_headers: std::sync::Arc<std::sync::Mutex<Option<http::HeaderMap>>>,
    _rt: Runtime,
}

impl std::fmt::Debug for WebSocketEchoOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketEchoOrigin")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl WebSocketEchoOrigin {
    /// Starts the origin on a free port of 127.0.0.1.
    pub fn start() -> io::Result<WebSocketEchoOrigin> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let last_headers = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = last_headers.clone();
        rt.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    // The callback's error type is tungstenite's, whatever its size.
                    #[allow(clippy::result_large_err)]
                    let record =
                        |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                            *seen.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(req.headers().clone());
                            Ok(resp)
                        };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, record).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if let Message::Close(_) = msg {
                            let _ = ws.close(None).await;
                            return;
                        }
                        let data = matches!(msg, Message::Text(_) | Message::Binary(_));
                        if data && ws.send(msg).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(WebSocketEchoOrigin {
            addr,
            last_headers,
            _rt: rt,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The headers of the last upgrade request it accepted.
    pub fn last_headers(&self) -> Option<http::HeaderMap> {
        self.last_headers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

//! A blocking HTTP/3 client for black-box tests (feature `http3`): QUIC on quinn, h3,
//! rustls trusting the test CA. It runs its own small tokio runtime and gives every
//! request a deadline. Bodies stream both ways at once; a response body is checksummed
//! as it arrives (only its first [`MAX_KEPT_BODY`] bytes are kept).

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{HeaderMap, Method, Request};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::runtime::Runtime;

use crate::data::{ByteStream, Checksum};
use crate::h2_client::{H2Body, MAX_KEPT_BODY};

/// Time a request may take, from sending its head to its last body byte.
pub const DEFAULT_H3_TIMEOUT: Duration = Duration::from_secs(30);

type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// A response read by an [`H3Client`].
#[derive(Debug, Clone)]
pub struct H3Response {
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
}

impl H3Response {
    /// The first value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The kept body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/3 connection to a server, usable from plain (non-async) test code.
pub struct H3Client {
    rt: Arc<Runtime>,
    send: SendRequest,
    authority: String,
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    timeout: Duration,
}

fn io_err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

impl H3Client {
    /// Connects to `addr` over QUIC with SNI `server_name`, trusting the CA
    /// certificates in `ca_pem`, and sets up HTTP/3.
    pub fn connect(addr: SocketAddr, server_name: &str, ca_pem: &str) -> io::Result<H3Client> {
        let rt = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("h3-client")
                .enable_all()
                .build()?,
        );
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| io_err("CA PEM", e))?;
            roots.add(cert).map_err(|e| io_err("CA certificate", e))?;
        }
        // ring, as the server side uses (deprecated only for lacking post-quantum kx).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| io_err("TLS config", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| io_err("QUIC TLS config", e))?;
        let config = quinn::ClientConfig::new(Arc::new(quic));
        let name = server_name.to_string();
        let setup = async move {
            let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            endpoint.set_default_client_config(config);
            let connecting = endpoint
                .connect(addr, &name)
                .map_err(|e| io_err("QUIC connect", e))?;
            let conn = connecting.await.map_err(|e| io_err("QUIC handshake", e))?;
            let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
                .await
                .map_err(|e| io_err("HTTP/3 setup", e))?;
            tokio::spawn(async move {
                let _ = poll_fn(|cx| driver.poll_close(cx)).await;
            });
            Ok::<_, io::Error>((endpoint, conn, send))
        };
        let (endpoint, conn, send) = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), setup)
                .await
                .map_err(|_| io_err("HTTP/3 connect", "timed out"))?
        })?;
        Ok(H3Client {
            rt,
            send,
            authority: format!("{server_name}:{}", addr.port()),
            endpoint,
            conn,
            timeout: DEFAULT_H3_TIMEOUT,
        })
    }

    /// Sends one request (`method`, origin-form `path`, `body`; a body gets a
    /// `content-length`) and reads the whole response.
    pub fn request(&self, method: &str, path: &str, body: H2Body) -> io::Result<H3Response> {
        let fut = exchange(self.send.clone(), self.uri(path), method.to_string(), body);
        self.rt.block_on(with_deadline(self.timeout, fut))
    }

    /// Sends every request at once on this connection, as concurrent streams; the
    /// results in the same order.
    pub fn request_all(
        &self,
        requests: Vec<(String, String, H2Body)>,
    ) -> Vec<io::Result<H3Response>> {
        let timeout = self.timeout;
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|(method, path, body)| {
                let fut = exchange(self.send.clone(), self.uri(&path), method, body);
                self.rt.spawn(with_deadline(timeout, fut))
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

    /// The QUIC close reason once the connection is closed (`None` while it is open).
    pub fn close_reason(&self) -> Option<String> {
        self.conn.close_reason().map(|e| e.to_string())
    }

    fn uri(&self, path: &str) -> String {
        format!("https://{}{path}", self.authority)
    }
}

impl Drop for H3Client {
    fn drop(&mut self) {
        self.conn.close(0x100u32.into(), b"done");
        self.endpoint.close(0x100u32.into(), b"done");
    }
}

async fn with_deadline(
    timeout: Duration,
    fut: impl std::future::Future<Output = io::Result<H3Response>>,
) -> io::Result<H3Response> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| io_err("HTTP/3 request", "timed out"))?
}

async fn exchange(
    mut send: SendRequest,
    uri: String,
    method: String,
    body: H2Body,
) -> io::Result<H3Response> {
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| io_err("method", e))?;
    let mut req = Request::builder().method(method).uri(uri);
    let len = match &body {
        H2Body::Empty => None,
        H2Body::Bytes(b) => Some(b.len() as u64),
        H2Body::Pattern { len, .. } => Some(*len),
    };
    if let Some(len) = len {
        req = req.header("content-length", len);
    }
    let req = req.body(()).map_err(|e| io_err("request", e))?;
    let stream = send
        .send_request(req)
        .await
        .map_err(|e| io_err("sending the request head", e))?;
    let (mut tx, mut rx) = stream.split();
    let upload = async move {
        match body {
            H2Body::Empty => {}
            H2Body::Bytes(b) => tx
                .send_data(Bytes::from(b))
                .await
                .map_err(|e| io_err("sending the body", e))?,
            H2Body::Pattern { len, seed } => {
                let mut pattern = ByteStream::new(seed);
                let mut left = len;
                while left > 0 {
                    let n = left.min(64 * 1024) as usize;
                    let mut chunk = vec![0u8; n];
                    pattern.fill(&mut chunk);
                    tx.send_data(Bytes::from(chunk))
                        .await
                        .map_err(|e| io_err("sending the body", e))?;
                    left -= n as u64;
                }
            }
        }
        tx.finish().await.map_err(|e| io_err("ending the body", e))
    };
    let download = async move {
        let resp = rx
            .recv_response()
            .await
            .map_err(|e| io_err("reading the response head", e))?;
        let mut sum = Checksum::new();
        let mut kept = Vec::new();
        while let Some(mut chunk) = rx
            .recv_data()
            .await
            .map_err(|e| io_err("reading the response body", e))?
        {
            while chunk.has_remaining() {
                let piece = chunk.chunk();
                sum.update(piece);
                let room = MAX_KEPT_BODY.saturating_sub(kept.len());
                kept.extend_from_slice(&piece[..piece.len().min(room)]);
                let n = piece.len();
                chunk.advance(n);
            }
        }
        Ok::<_, io::Error>(H3Response {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: kept,
            body_len: sum.len(),
            body_checksum: sum.value(),
        })
    };
    let (sent, got) = tokio::join!(upload, download);
    let got = got?;
    // The server may answer before reading the whole body (and stop it): that is fine.
    if let Err(e) = sent {
        if got.status < 400 {
            return Err(e);
        }
    }
    Ok(got)
}

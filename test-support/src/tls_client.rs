//! A blocking TLS client for tests: which certificate and protocol the server chose,
//! whether a session was resumed, and plain byte exchanges on top.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boring::ssl::{
    SslConnector, SslMethod, SslSession, SslSessionCacheMode, SslStream, SslVerifyMode, SslVersion,
};
use boring::x509::X509;

use crate::tls::TestCert;

/// What a [`TlsClient`] trusts, offers and presents.
#[derive(Debug, Clone, Default)]
pub struct TlsClientConfig {
    /// Trust only this CA (PEM); `None` accepts any certificate.
    pub ca_pem: Option<String>,
    /// Protocols offered in ALPN, most preferred first (none: no ALPN).
    pub alpn: Vec<String>,
    /// A client certificate to present when asked.
    pub client_cert: Option<TestCert>,
    /// Speak TLS 1.2 at most (TLS 1.3 otherwise).
    pub tls12_only: bool,
    /// Ask the server to staple its OCSP response (`status_request`).
    pub status_request: bool,
}

/// A TLS client that remembers the last session a server gave it.
pub struct TlsClient {
    connector: SslConnector,
    last_session: Arc<Mutex<Option<SslSession>>>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

fn tls_io(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// ALPN list in wire format (length-prefixed names).
fn alpn_wire(protocols: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in protocols {
        out.push(p.len() as u8);
        out.extend_from_slice(p.as_bytes());
    }
    out
}

impl TlsClient {
    /// A client with `config`. Panics on a bad PEM in it (test input).
    pub fn new(config: TlsClientConfig) -> TlsClient {
        let mut b = SslConnector::builder(SslMethod::tls())
            .unwrap_or_else(|e| panic!("TLS client setup: {e}"));
        match &config.ca_pem {
            Some(pem) => {
                let mut store = boring::x509::store::X509StoreBuilder::new()
                    .unwrap_or_else(|e| panic!("CA store: {e}"));
                for cert in X509::stack_from_pem(pem.as_bytes())
                    .unwrap_or_else(|e| panic!("bad CA PEM: {e}"))
                {
                    store
                        .add_cert(cert)
                        .unwrap_or_else(|e| panic!("CA store: {e}"));
                }
                b.set_cert_store_builder(store);
                b.set_verify(SslVerifyMode::PEER);
            }
            None => b.set_verify(SslVerifyMode::NONE),
        }
        if !config.alpn.is_empty() {
            b.set_alpn_protos(&alpn_wire(&config.alpn))
                .unwrap_or_else(|e| panic!("ALPN: {e}"));
        }
        if let Some(cert) = &config.client_cert {
            let x509 = X509::from_pem(cert.cert_pem.as_bytes())
                .unwrap_or_else(|e| panic!("bad client cert: {e}"));
            let key = boring::pkey::PKey::private_key_from_pem(cert.key_pem.as_bytes())
                .unwrap_or_else(|e| panic!("bad client key: {e}"));
            b.set_certificate(&x509)
                .unwrap_or_else(|e| panic!("client cert: {e}"));
            b.set_private_key(&key)
                .unwrap_or_else(|e| panic!("client key: {e}"));
        }
        if config.status_request {
            b.enable_ocsp_stapling();
        }
        if config.tls12_only {
            b.set_max_proto_version(Some(SslVersion::TLS1_2))
                .unwrap_or_else(|e| panic!("TLS version: {e}"));
        }
        let last_session = Arc::new(Mutex::new(None));
        let keep = Arc::clone(&last_session);
        b.set_session_cache_mode(SslSessionCacheMode::CLIENT);
        b.set_new_session_callback(move |_, session| {
            *keep.lock().unwrap_or_else(|p| p.into_inner()) = Some(session);
        });
        TlsClient {
            connector: b.build(),
            last_session,
        }
    }

    /// A fresh handshake with `addr`, sending `sni` (an IP address sends no SNI).
    pub fn connect(&self, addr: SocketAddr, sni: &str) -> io::Result<TlsConnection> {
        self.handshake(addr, sni, false, &[])
    }

    /// A fresh handshake with `addr` after writing `prefix` in the clear (a PROXY
    /// protocol header, as a balancer in front of a TLS listener sends it).
    pub fn connect_after(
        &self,
        addr: SocketAddr,
        sni: &str,
        prefix: &[u8],
    ) -> io::Result<TlsConnection> {
        self.handshake(addr, sni, false, prefix)
    }

    /// A handshake offering the last session this client was given, to test resumption
    /// (see [`TlsConnection::session_reused`]). Read a response on an earlier
    /// connection first: TLS 1.3 servers send their tickets after the handshake.
    pub fn connect_resuming(&self, addr: SocketAddr, sni: &str) -> io::Result<TlsConnection> {
        self.handshake(addr, sni, true, &[])
    }

    /// Whether a server gave this client a session it could resume.
    pub fn has_session(&self) -> bool {
        self.last_session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    #[allow(unsafe_code)]
    fn handshake(
        &self,
        addr: SocketAddr,
        sni: &str,
        resume: bool,
        prefix: &[u8],
    ) -> io::Result<TlsConnection> {
        let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        tcp.write_all(prefix)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_nodelay(true)?;
        let mut config = self.connector.configure().map_err(tls_io)?;
        if resume {
            let session = self
                .last_session
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(session) = session {
                // SAFETY: the session was handed out by this client's own context (the
                // new-session callback above), the one `config` was made from.
                unsafe { config.set_session(&session) }.map_err(tls_io)?;
            }
        }
        let stream = config.connect(sni, tcp).map_err(tls_io)?;
        Ok(TlsConnection { stream })
    }
}

/// One TLS connection made by a [`TlsClient`].
#[derive(Debug)]
pub struct TlsConnection {
    stream: SslStream<TcpStream>,
}

impl TlsConnection {
    /// The protocol the server picked in ALPN.
    pub fn alpn(&self) -> Option<String> {
        self.stream
            .ssl()
            .selected_alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// The DNS names (subject alternative names) of the certificate the server showed.
    pub fn peer_names(&self) -> Vec<String> {
        let Some(cert) = self.stream.ssl().peer_certificate() else {
            return Vec::new();
        };
        cert.subject_alt_names()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.dnsname().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The OCSP response the server stapled, if any.
    pub fn ocsp_response(&self) -> Option<Vec<u8>> {
        self.stream.ssl().ocsp_status().map(<[u8]>::to_vec)
    }

    /// Whether the handshake resumed an earlier session.
    pub fn session_reused(&self) -> bool {
        self.stream.ssl().session_reused()
    }

    /// The protocol version agreed, e.g. `TLSv1.3`.
    pub fn version(&self) -> &'static str {
        self.stream.ssl().version_str()
    }

    /// Reads what the server sends first (one read, up to 16 KiB); an error when the
    /// server closes or the connection fails (a TLS 1.3 server refusing the client's
    /// certificate shows here, after the client's side of the handshake finished).
    pub fn read_some(&mut self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 16 * 1024];
        let n = self.stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        buf.truncate(n);
        Ok(buf)
    }

    /// Writes `request` and reads until the server closes (so ask with
    /// `Connection: close`).
    pub fn exchange(&mut self, request: &[u8]) -> io::Result<Vec<u8>> {
        self.stream.write_all(request)?;
        self.stream.flush()?;
        let mut out = Vec::new();
        match self.stream.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            // A server closing without close_notify still delivered what it sent.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(out),
            Err(e) => Err(e),
        }
    }
}

impl Read for TlsConnection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for TlsConnection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

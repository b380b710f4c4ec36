//! A TLS front for test origins: terminates TLS on 127.0.0.1 with a test certificate and
//! relays the plain bytes to a backend (usually an [`crate::Origin`]), recording what each
//! handshake looked like (SNI, ALPN, client certificate).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use boring::nid::Nid;
use boring::ssl::{
    select_next_proto, AlpnError, NameType, SslAcceptor, SslMethod, SslRef, SslVerifyMode,
};
use boring::x509::X509;

use crate::tls::TestCert;

/// One completed handshake, as the front saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrontHandshake {
    /// The server name the client sent (SNI).
    pub server_name: Option<String>,
    /// The protocol agreed in ALPN.
    pub alpn: Option<String>,
    /// The common name of the certificate the client presented.
    pub client_cert: Option<String>,
}

#[derive(Default)]
struct Record {
    handshakes: Vec<FrontHandshake>,
    failures: Vec<String>,
}

/// Options of a [`TlsFront`] before it starts.
#[derive(Debug, Clone)]
pub struct TlsFrontBuilder {
    cert: TestCert,
    client_ca_pem: Option<String>,
    alpn: Vec<String>,
}

impl TlsFrontBuilder {
    /// Requires a client certificate signed by this CA (PEM).
    pub fn require_client_cert(mut self, ca_pem: &str) -> Self {
        self.client_ca_pem = Some(ca_pem.to_string());
        self
    }

    /// Protocols accepted in ALPN, most preferred first (default `http/1.1`).
    pub fn alpn(mut self, protocols: &[&str]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_string()).collect();
        self
    }

    /// Binds 127.0.0.1:0 and starts relaying to `backend`.
    pub fn start(self, backend: SocketAddr) -> TlsFront {
        let acceptor = self.acceptor();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("TLS front cannot bind: {e}"));
        std_listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("TLS front: {e}"));
        let addr = std_listener
            .local_addr()
            .unwrap_or_else(|e| panic!("TLS front: {e}"));
        let record = Arc::new(Mutex::new(Record::default()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_record = Arc::clone(&record);
        let thread = thread::Builder::new()
            .name(format!("tls-front-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("TLS front runtime: {e}"));
                rt.block_on(serve(
                    std_listener,
                    acceptor,
                    backend,
                    thread_record,
                    stop_rx,
                ));
            })
            .unwrap_or_else(|e| panic!("cannot spawn the TLS front: {e}"));
        TlsFront {
            addr,
            record,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn acceptor(&self) -> SslAcceptor {
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
            .unwrap_or_else(|e| panic!("TLS front setup: {e}"));
        let cert = X509::from_pem(self.cert.cert_pem.as_bytes())
            .unwrap_or_else(|e| panic!("bad front cert: {e}"));
        let key = boring::pkey::PKey::private_key_from_pem(self.cert.key_pem.as_bytes())
            .unwrap_or_else(|e| panic!("bad front key: {e}"));
        b.set_certificate(&cert)
            .unwrap_or_else(|e| panic!("front cert: {e}"));
        b.set_private_key(&key)
            .unwrap_or_else(|e| panic!("front key: {e}"));
        if let Some(ca) = &self.client_ca_pem {
            let mut store = boring::x509::store::X509StoreBuilder::new()
                .unwrap_or_else(|e| panic!("CA store: {e}"));
            for c in X509::stack_from_pem(ca.as_bytes()).unwrap_or_else(|e| panic!("CA: {e}")) {
                store
                    .add_cert(c)
                    .unwrap_or_else(|e| panic!("CA store: {e}"));
            }
            b.set_cert_store_builder(store);
            b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
        let mut wire = Vec::new();
        for p in &self.alpn {
            wire.push(p.len() as u8);
            wire.extend_from_slice(p.as_bytes());
        }
        let wire: &'static [u8] = Box::leak(wire.into_boxed_slice());
        b.set_alpn_select_callback(move |_, client| {
            select_next_proto(wire, client).ok_or(AlpnError::NOACK)
        });
        b.build()
    }
}

/// A running TLS front. Stops when dropped.
pub struct TlsFront {
    addr: SocketAddr,
    record: Arc<Mutex<Record>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TlsFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFront")
            .field("addr", &self.addr)
            .finish()
    }
}

fn lock(m: &Mutex<Record>) -> MutexGuard<'_, Record> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TlsFront {
    /// Options for a front showing `cert`.
    pub fn builder(cert: &TestCert) -> TlsFrontBuilder {
        TlsFrontBuilder {
            cert: cert.clone(),
            client_ca_pem: None,
            alpn: vec!["http/1.1".to_string()],
        }
    }

    /// A front showing `cert`, relaying to `backend`, with the default options.
    pub fn start(backend: SocketAddr, cert: &TestCert) -> TlsFront {
        TlsFront::builder(cert).start(backend)
    }

    /// Where the front listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The handshakes completed so far, in order.
    pub fn handshakes(&self) -> Vec<FrontHandshake> {
        lock(&self.record).handshakes.clone()
    }

    /// Why each failed handshake failed, in order.
    pub fn failures(&self) -> Vec<String> {
        lock(&self.record).failures.clone()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn describe(ssl: &SslRef) -> FrontHandshake {
    FrontHandshake {
        server_name: ssl.servername(NameType::HOST_NAME).map(str::to_string),
        alpn: ssl
            .selected_alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        client_cert: ssl.peer_certificate().and_then(|c| {
            c.subject_name()
                .entries_by_nid(Nid::COMMONNAME)
                .next()
                .and_then(|e| e.data().as_utf8().ok().map(|s| s.to_string()))
        }),
    }
}

async fn serve(
    listener: std::net::TcpListener,
    acceptor: SslAcceptor,
    backend: SocketAddr,
    record: Arc<Mutex<Record>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => panic!("TLS front listener: {e}"),
    };
    let acceptor = Arc::new(acceptor);
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let acceptor = Arc::clone(&acceptor);
        let record = Arc::clone(&record);
        tokio::spawn(async move {
            let mut tls = match tokio_boring::accept(&acceptor, tcp).await {
                Ok(s) => s,
                Err(e) => {
                    lock(&record).failures.push(e.to_string());
                    return;
                }
            };
            lock(&record).handshakes.push(describe(tls.ssl()));
            let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        });
    }
}

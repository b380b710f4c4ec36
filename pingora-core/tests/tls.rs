//! TLS acceptor and upstream TLS on real sockets: ALPN, SNI certificate choice,
//! verification, client certificates, resumption, timeouts, pooled-connection probing.
#![cfg(feature = "tls")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora_core::connector::{Connector, HttpPeer, PeerAddress, PeerOptions};
use pingora_core::protocols::tls::{
    ClientCertificate, ServerAlpn, TlsAcceptor, TlsAcceptorOptions, TlsCertificate, TrustRoots,
    UpstreamTls, UpstreamTlsOptions,
};
use pingora_core::protocols::Stream;
use pingora_core::{ErrorKind, Side};
use test_support::{TestCa, TestCert, TlsClient, TlsClientConfig, TlsFront};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Any single step of these tests that takes longer has hung.
const STEP: Duration = Duration::from_secs(10);

fn certificate(cert: &TestCert) -> TlsCertificate {
    TlsCertificate::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())
        .expect("test certificate loads")
}

fn acceptor(certs: &[&TestCert], alpn: ServerAlpn) -> Arc<TlsAcceptor> {
    let opts = TlsAcceptorOptions {
        alpn,
        ..TlsAcceptorOptions::default()
    };
    Arc::new(TlsAcceptor::new(certs.iter().map(|c| certificate(c)).collect(), opts).unwrap())
}

fn upstream(ca: Option<&TestCa>, sni: Option<&str>) -> UpstreamTls {
    UpstreamTls::new(UpstreamTlsOptions {
        sni: sni.map(str::to_string),
        verify: ca.is_some(),
        roots: ca.map_or(TrustRoots::System, |ca| {
            TrustRoots::Pem(ca.cert_pem().as_bytes().to_vec())
        }),
        ..UpstreamTlsOptions::default()
    })
    .unwrap()
}

/// What the server side saw of one accepted connection.
#[derive(Debug)]
struct Accepted {
    alpn: Option<Vec<u8>>,
    server_name: Option<String>,
}

/// Accepts TLS connections with `acceptor`; each one gets `b"hello"` written and is then
/// held open until the client closes. The results come back on the returned channel.
async fn serve(
    acceptor: Arc<TlsAcceptor>,
) -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Result<Accepted, pingora_core::Error>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match acceptor.accept(Stream::Tcp(tcp)).await {
                    Ok(mut s) => {
                        let _ = tx.send(Ok(Accepted {
                            alpn: s.alpn().map(<[u8]>::to_vec),
                            server_name: s.server_name().map(str::to_string),
                        }));
                        let _ = s.write_all(b"hello").await;
                        let _ = s.flush().await;
                        let mut sink = [0u8; 64];
                        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn tcp(addr: SocketAddr) -> Stream {
    Stream::Tcp(TcpStream::connect(addr).await.unwrap())
}

async fn next<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(STEP, rx.recv())
        .await
        .expect("server side reported in time")
        .expect("server side still running")
}

async fn read_hello(s: &mut Stream) {
    let mut buf = [0u8; 5];
    tokio::time::timeout(STEP, s.read_exact(&mut buf))
        .await
        .expect("hello in time")
        .expect("hello read");
    assert_eq!(&buf, b"hello");
}

#[tokio::test]
async fn alpn_prefers_h2_and_falls_back_to_http1() {
    let ca = TestCa::new("ALPN CA");
    let cert = ca.issue(&["alpn.test"]);
    let client = upstream(Some(&ca), Some("alpn.test"));

    let (addr, mut rx) = serve(acceptor(&[&cert], ServerAlpn::H2AndHttp1)).await;
    let s = client.connect(tcp(addr).await, None, true).await.unwrap();
    assert_eq!(s.alpn(), Some(&b"h2"[..]), "h2 offered and preferred");
    assert!(s.is_tls());
    let seen = next(&mut rx).await.unwrap();
    assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(seen.server_name.as_deref(), Some("alpn.test"));

    let s = client.connect(tcp(addr).await, None, false).await.unwrap();
    assert_eq!(s.alpn(), Some(&b"http/1.1"[..]), "only http/1.1 offered");
    next(&mut rx).await.unwrap();

    let (addr, mut rx) = serve(acceptor(&[&cert], ServerAlpn::Http1Only)).await;
    let s = client.connect(tcp(addr).await, None, true).await.unwrap();
    assert_eq!(
        s.alpn(),
        Some(&b"http/1.1"[..]),
        "server offers http/1.1 only"
    );
    next(&mut rx).await.unwrap();

    // A client offering only what we do not speak still gets through, without ALPN.
    let addr2 = addr;
    let alpn = tokio::task::spawn_blocking(move || {
        let c = TlsClient::new(TlsClientConfig {
            alpn: vec!["spdy/3".into()],
            ..TlsClientConfig::default()
        });
        c.connect(addr2, "alpn.test").map(|c| c.alpn())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(alpn, None);
    assert_eq!(next(&mut rx).await.unwrap().alpn, None);
}

#[tokio::test]
async fn sni_picks_the_certificate() {
    let ca = TestCa::new("SNI CA");
    let default = ca.issue(&["default.test"]);
    let exact = ca.issue(&["a.test", "b.test"]);
    let wildcard = ca.issue(&["*.wild.test"]);
    let acc = acceptor(&[&default, &exact, &wildcard], ServerAlpn::H2AndHttp1);
    assert_eq!(
        acc.certificate_names(),
        &[
            vec!["default.test".to_string()],
            vec!["a.test".to_string(), "b.test".to_string()],
            vec!["*.wild.test".to_string()],
        ]
    );
    let (addr, mut rx) = serve(acc).await;

    // With verification on, a handshake only succeeds if the certificate names the host.
    for name in [
        "default.test",
        "a.test",
        "b.test",
        "x.wild.test",
        "Y.Wild.Test",
    ] {
        let mut s = upstream(Some(&ca), Some(name))
            .connect(tcp(addr).await, None, false)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        read_hello(&mut s).await;
        next(&mut rx).await.unwrap();
    }

    // Names no certificate covers, and no SNI at all, get the default certificate.
    let ca_pem = ca.cert_pem().to_string();
    let names = tokio::task::spawn_blocking(move || {
        let c = TlsClient::new(TlsClientConfig {
            ca_pem: Some(ca_pem),
            ..TlsClientConfig::default()
        });
        let unknown = c.connect(addr, "nobody.test").map_err(|e| e.to_string());
        // An IP address sends no SNI.
        let no_sni = TlsClient::new(TlsClientConfig::default())
            .connect(addr, "127.0.0.1")
            .map(|c| c.peer_names());
        (unknown.err(), no_sni.unwrap())
    })
    .await
    .unwrap();
    // nobody.test does not match default.test: the name check fails on the client,
    // which shows the default certificate was served.
    assert!(names.0.is_some(), "unknown name must not verify");
    assert_eq!(names.1, vec!["default.test".to_string()]);
    // A two-label wildcard match does not exist: deep.x.wild.test gets the default.
    let err = upstream(Some(&ca), Some("deep.x.wild.test"))
        .connect(tcp(addr).await, None, false)
        .await
        .unwrap_err();
    assert!(err.context.contains("certificate verify failed"), "{err}");
}

#[tokio::test]
async fn untrusted_certificates_fail_with_their_cause() {
    let ca = TestCa::new("Trusted CA");
    let other = TestCa::new("Other CA");
    let (addr, _rx) = serve(acceptor(
        &[&other.issue(&["up.test"])],
        ServerAlpn::H2AndHttp1,
    ))
    .await;
    let err = upstream(Some(&ca), Some("up.test"))
        .connect(tcp(addr).await, None, false)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::TlsHandshake);
    assert_eq!(err.side, Side::Upstream);
    assert!(!err.retry, "a certificate we do not trust stays untrusted");
    assert!(
        err.context
            .contains("certificate verify failed: unable to get local issuer"),
        "{err}"
    );

    // Self-signed, checked against the system roots.
    let (addr, _rx2) = serve(acceptor(
        &[&TestCert::self_signed(&["self.test"])],
        ServerAlpn::H2AndHttp1,
    ))
    .await;
    let system = UpstreamTls::new(UpstreamTlsOptions {
        sni: Some("self.test".into()),
        ..UpstreamTlsOptions::default()
    })
    .unwrap();
    let err = system
        .connect(tcp(addr).await, None, false)
        .await
        .unwrap_err();
    assert!(
        err.context
            .contains("certificate verify failed: self signed certificate"),
        "{err}"
    );
    // verify: false accepts it.
    let mut s = upstream(None, Some("self.test"))
        .connect(tcp(addr).await, None, false)
        .await
        .unwrap();
    read_hello(&mut s).await;

    // Trusted chain, wrong name.
    let (addr, _rx3) = serve(acceptor(
        &[&ca.issue(&["other.test"])],
        ServerAlpn::H2AndHttp1,
    ))
    .await;
    let err = upstream(Some(&ca), Some("up.test"))
        .connect(tcp(addr).await, None, false)
        .await
        .unwrap_err();
    assert!(err.context.contains("certificate verify failed"), "{err}");
    assert!(
        err.context.contains("(up.test)"),
        "names the server name: {err}"
    );
}

#[tokio::test]
async fn ip_peers_are_checked_against_ip_names() {
    let ca = TestCa::new("IP CA");
    let (addr, _rx) = serve(acceptor(
        &[&ca.issue(&["127.0.0.1"])],
        ServerAlpn::H2AndHttp1,
    ))
    .await;
    let tls = upstream(Some(&ca), None);
    tls.connect(tcp(addr).await, Some("127.0.0.1"), false)
        .await
        .expect("IP SAN matches");
    let err = tls
        .connect(tcp(addr).await, Some("127.0.0.2"), false)
        .await
        .unwrap_err();
    assert!(err.context.contains("certificate verify failed"), "{err}");
}

#[tokio::test]
async fn client_certificate_is_presented_when_configured() {
    let ca = TestCa::new("mTLS CA");
    let origin = test_support::Origin::start(|_| test_support::Reply::ok("x"));
    let front = TlsFront::builder(&ca.issue(&["mtls.test"]))
        .require_client_cert(ca.cert_pem())
        .start(origin.addr());
    let client = ca.issue_client("proxy-client");
    let with_cert = UpstreamTls::new(UpstreamTlsOptions {
        sni: Some("mtls.test".into()),
        roots: TrustRoots::Pem(ca.cert_pem().as_bytes().to_vec()),
        client_cert: Some(ClientCertificate::Pem {
            cert: client.cert_pem.clone().into_bytes(),
            key: client.key_pem.clone().into_bytes(),
        }),
        ..UpstreamTlsOptions::default()
    })
    .unwrap();
    let mut s = with_cert
        .connect(tcp(front.addr()).await, None, false)
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(STEP, s.read_to_end(&mut reply)).await;
    assert!(reply.starts_with(b"HTTP/1.1 200"), "{reply:?}");
    assert_eq!(
        front.handshakes()[0].client_cert.as_deref(),
        Some("proxy-client")
    );

    // Without a certificate the origin refuses; under TLS 1.3 that may only show on
    // the first read, as the client finishes its handshake before the server checks.
    let without = upstream(Some(&ca), Some("mtls.test"));
    if let Ok(mut s) = without.connect(tcp(front.addr()).await, None, false).await {
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(STEP, s.read(&mut buf)).await.unwrap();
        assert!(
            !matches!(read, Ok(n) if n > 0),
            "no data without a client cert"
        );
    }
    assert_eq!(front.handshakes().len(), 1);
}

#[tokio::test]
async fn sessions_are_resumed() {
    let ca = TestCa::new("Resume CA");
    let (addr, mut rx) = serve(acceptor(&[&ca.issue(&["r.test"])], ServerAlpn::H2AndHttp1)).await;
    for tls12_only in [false, true] {
        let ca_pem = ca.cert_pem().to_string();
        let (first, second, version) = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let c = TlsClient::new(TlsClientConfig {
                ca_pem: Some(ca_pem),
                tls12_only,
                ..TlsClientConfig::default()
            });
            let mut one = c.connect(addr, "r.test").unwrap();
            // Reading lets the client take the tickets sent after the handshake.
            let mut buf = [0u8; 5];
            one.read_exact(&mut buf).unwrap();
            assert!(c.has_session());
            let two = c.connect_resuming(addr, "r.test").unwrap();
            (one.session_reused(), two.session_reused(), two.version())
        })
        .await
        .unwrap();
        assert!(!first);
        assert!(second, "session resumed ({version})");
        assert_eq!(version, if tls12_only { "TLSv1.2" } else { "TLSv1.3" });
        next(&mut rx).await.unwrap();
        next(&mut rx).await.unwrap();
    }
}

#[tokio::test]
async fn silent_clients_time_out() {
    let ca = TestCa::new("Timeout CA");
    let acc = Arc::new(
        TlsAcceptor::new(
            vec![certificate(&ca.issue(&["t.test"]))],
            TlsAcceptorOptions {
                handshake_timeout: Duration::from_millis(200),
                ..TlsAcceptorOptions::default()
            },
        )
        .unwrap(),
    );
    let (addr, mut rx) = serve(acc).await;
    let _silent = TcpStream::connect(addr).await.unwrap();
    let err = next(&mut rx).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::TlsHandshake);
    assert_eq!(err.side, Side::Downstream);
    assert!(err.context.contains("timed out after 200ms"), "{err}");

    // Plain HTTP sent to a TLS port is a handshake failure, not a crash.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let err = next(&mut rx).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::TlsHandshake);
}

#[tokio::test]
async fn idle_tls_connections_are_probed_without_consuming() {
    let ca = TestCa::new("Probe CA");
    let (addr, mut rx) = serve(acceptor(&[&ca.issue(&["p.test"])], ServerAlpn::H2AndHttp1)).await;
    let mut s = upstream(Some(&ca), Some("p.test"))
        .connect(tcp(addr).await, None, false)
        .await
        .unwrap();
    next(&mut rx).await.unwrap();
    // "hello" is waiting: the probe sees data and leaves it for the reader.
    let waiting = tokio::time::timeout(STEP, async {
        loop {
            match s.try_read(&mut [0u8; 1]) {
                Ok(n) => return n,
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .unwrap();
    assert!(waiting > 0);
    read_hello(&mut s).await;
    let idle = s.try_read(&mut [0u8; 1]).unwrap_err();
    assert_eq!(idle.kind(), std::io::ErrorKind::WouldBlock);
}

#[tokio::test]
async fn connector_wraps_tls_and_pools_apart() {
    let ca = TestCa::new("Connector CA");
    let (addr, mut rx) = serve(acceptor(&[&ca.issue(&["c.test"])], ServerAlpn::H2AndHttp1)).await;
    let tls = Arc::new(upstream(Some(&ca), Some("c.test")));
    let options = PeerOptions {
        tls: Some(tls.clone()),
        http2: true,
        ..PeerOptions::default()
    };
    let peer = HttpPeer::new(PeerAddress::Inet(addr), options.clone());
    let mut s = Connector::default().connect(&peer).await.unwrap();
    assert_eq!(s.alpn(), Some(&b"h2"[..]));
    read_hello(&mut s).await;
    assert_eq!(
        next(&mut rx).await.unwrap().server_name.as_deref(),
        Some("c.test")
    );

    let plain = HttpPeer::new(PeerAddress::Inet(addr), PeerOptions::default());
    let other_sni = HttpPeer::new(
        PeerAddress::Inet(addr),
        PeerOptions {
            tls: Some(Arc::new(upstream(Some(&ca), Some("d.test")))),
            http2: true,
            ..PeerOptions::default()
        },
    );
    let same = HttpPeer::new(
        PeerAddress::Inet(addr),
        PeerOptions {
            tls: Some(Arc::new(upstream(Some(&ca), Some("c.test")))),
            ..options
        },
    );
    assert_ne!(peer.pool_key(), plain.pool_key());
    assert_ne!(peer.pool_key(), other_sni.pool_key());
    assert_eq!(peer.pool_key(), same.pool_key());

    // A verification failure through the connector is not retried.
    let err = Connector::default().connect(&other_sni).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::TlsHandshake);
    assert!(!err.retry);
}

#[test]
fn certificates_are_checked_when_loaded() {
    let ca = TestCa::new("Load CA");
    let a = ca.issue(&["a.test", "*.b.test", "127.0.0.1"]);
    let b = ca.issue(&["other.test"]);
    let loaded = certificate(&a);
    assert_eq!(loaded.names(), ["a.test", "*.b.test"]);
    let e = TlsCertificate::from_pem(a.cert_pem.as_bytes(), b.key_pem.as_bytes()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TlsConfig);
    assert!(e.context.contains("does not belong"), "{e}");
    let e = TlsCertificate::from_pem(b"not pem", a.key_pem.as_bytes()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TlsConfig);
    let e = TlsCertificate::from_files(
        std::path::Path::new("/nonexistent/c.pem"),
        std::path::Path::new("/nonexistent/k.pem"),
    )
    .unwrap_err();
    assert!(e.context.contains("/nonexistent/c.pem"), "{e}");
    let e = UpstreamTls::new(UpstreamTlsOptions {
        roots: TrustRoots::Pem(b"nothing".to_vec()),
        ..UpstreamTlsOptions::default()
    })
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::TlsConfig);
}

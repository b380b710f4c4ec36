//! Upstream TLS key logging to `$SSLKEYLOGFILE` (its own test binary: the variable and the
//! opened file are process-wide).
#![cfg(feature = "tls")]

use std::time::Duration;

use pingora_core::protocols::tls::{
    TlsAcceptor, TlsAcceptorOptions, TlsCertificate, TrustRoots, UpstreamTls, UpstreamTlsOptions,
};
use pingora_core::protocols::Stream;
use test_support::{TestCa, TestDir};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn keys_are_logged_only_when_asked() {
    let dir = TestDir::new().unwrap();
    let log = dir.join("keys.log");
    // Set before any TLS context exists; nothing else in this binary reads it.
    std::env::set_var("SSLKEYLOGFILE", &log);

    let ca = TestCa::new("Keylog CA");
    let cert = ca.issue(&["k.test"]);
    let acceptor = TlsAcceptor::new(
        vec![TlsCertificate::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap()],
        TlsAcceptorOptions::default(),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Connections are held until the test ends; the handshake is all that matters.
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(s) = acceptor.accept(Stream::Tcp(tcp)).await {
                held.push(s);
            }
        }
    });
    let upstream = |keylog| {
        UpstreamTls::new(UpstreamTlsOptions {
            sni: Some("k.test".into()),
            roots: TrustRoots::Pem(ca.cert_pem().as_bytes().to_vec()),
            keylog,
            ..UpstreamTlsOptions::default()
        })
        .unwrap()
    };
    let connect = |tls: UpstreamTls| async move {
        let tcp = Stream::Tcp(TcpStream::connect(addr).await.unwrap());
        tokio::time::timeout(Duration::from_secs(10), tls.connect(tcp, None, false))
            .await
            .unwrap()
            .unwrap()
    };

    let _quiet = connect(upstream(false)).await;
    assert!(
        std::fs::read_to_string(&log).unwrap_or_default().is_empty(),
        "nothing logged without keylog"
    );
    let _logged = connect(upstream(true)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    // TLS 1.3 secrets in the NSS key log format.
    assert!(text.contains("CLIENT_HANDSHAKE_TRAFFIC_SECRET "), "{text}");
    assert!(text.contains("CLIENT_TRAFFIC_SECRET_0 "), "{text}");
    assert!(text.lines().all(|l| l.split(' ').count() == 3), "{text}");
}

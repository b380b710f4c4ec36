//! The listener TLS extras through the library API, on real sockets with a BoringSSL
//! client: client certificates (required, optional, per SNI certificate), stapled OCSP
//! responses and the rules that refuse one, session tickets sealed with shared keys.
#![cfg(feature = "tls")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pingora_core::protocols::tls::{
    ClientAuth, ClientAuthMode, ClientCertInfo, TicketKeys, TlsAcceptor, TlsAcceptorOptions,
    TlsCertificate, TrustRoots,
};
use pingora_core::protocols::Stream;
use test_support::{OcspCertStatus, OcspSpec, TestCa, TestCert, TlsClient, TlsClientConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn certificate(cert: &TestCert) -> TlsCertificate {
    TlsCertificate::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())
        .expect("test certificate loads")
}

fn client_auth(mode: ClientAuthMode, ca: &TestCa) -> ClientAuth {
    ClientAuth {
        mode,
        ca: TrustRoots::Pem(ca.cert_pem().as_bytes().to_vec()),
    }
}

/// Serves `acceptor` on a runtime of its own: each accepted connection gets one line
/// naming its client-certificate result (`-` for none), then is held until the client
/// closes. Handshake failures are dropped.
fn serve(acceptor: TlsAcceptor) -> (SocketAddr, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let acceptor = Arc::new(acceptor);
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(Stream::Tcp(tcp)).await else {
                    return;
                };
                let line = describe(s.client_cert());
                let _ = s.write_all(line.as_bytes()).await;
                let _ = s.flush().await;
                let mut sink = [0u8; 64];
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    (addr, rt)
}

fn describe(cert: Option<ClientCertInfo>) -> String {
    match cert {
        None => "-\n".to_string(),
        Some(c) => format!("{} {}\n", c.verify_text(), c.subject().unwrap_or("-")),
    }
}

/// Connects with `client` and reads the server's line; `Err` when the handshake or
/// the read fails (a TLS 1.3 server refuses a client certificate after the client
/// finished, so the failure shows on the read).
fn line(client: &TlsClient, addr: SocketAddr, sni: &str) -> Result<String, String> {
    let mut c = client.connect(addr, sni).map_err(|e| e.to_string())?;
    let got = c.read_some().map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&got).trim().to_string())
}

fn client_with(ca: &TestCa, cert: Option<&TestCert>) -> TlsClient {
    TlsClient::new(TlsClientConfig {
        ca_pem: Some(ca.cert_pem().to_string()),
        client_cert: cert.cloned(),
        ..TlsClientConfig::default()
    })
}

#[test]
fn required_client_certificates_fail_the_handshake_without_a_good_one() {
    let server_ca = TestCa::new("server CA");
    let client_ca = TestCa::new("client CA");
    let other_ca = TestCa::new("other CA");
    let opts = TlsAcceptorOptions {
        client_auth: Some(client_auth(ClientAuthMode::Require, &client_ca)),
        ..TlsAcceptorOptions::default()
    };
    let acceptor = TlsAcceptor::new(vec![certificate(&server_ca.issue(&["a.test"]))], opts);
    let (addr, _rt) = serve(acceptor.unwrap());

    let alice = client_ca.issue_client("alice");
    let got = line(&client_with(&server_ca, Some(&alice)), addr, "a.test").unwrap();
    assert_eq!(got, "SUCCESS CN=alice");

    let none = line(&client_with(&server_ca, None), addr, "a.test");
    assert!(none.is_err(), "no certificate: {none:?}");
    let mallory = other_ca.issue_client("mallory");
    let wrong = line(&client_with(&server_ca, Some(&mallory)), addr, "a.test");
    assert!(wrong.is_err(), "certificate of another CA: {wrong:?}");
}

#[test]
fn optional_client_certificates_report_the_result() {
    let server_ca = TestCa::new("server CA");
    let client_ca = TestCa::new("client CA");
    let other_ca = TestCa::new("other CA");
    let opts = TlsAcceptorOptions {
        client_auth: Some(client_auth(ClientAuthMode::Optional, &client_ca)),
        ..TlsAcceptorOptions::default()
    };
    let acceptor = TlsAcceptor::new(vec![certificate(&server_ca.issue(&["a.test"]))], opts);
    let (addr, _rt) = serve(acceptor.unwrap());

    let alice = client_ca.issue_client("alice");
    let ok = line(&client_with(&server_ca, Some(&alice)), addr, "a.test").unwrap();
    assert_eq!(ok, "SUCCESS CN=alice");
    let none = line(&client_with(&server_ca, None), addr, "a.test").unwrap();
    assert_eq!(none, "NONE -");
    let mallory = other_ca.issue_client("mallory");
    let failed = line(&client_with(&server_ca, Some(&mallory)), addr, "a.test").unwrap();
    assert!(
        failed.starts_with("FAILED:") && failed.ends_with("CN=mallory"),
        "{failed}"
    );
}

#[test]
fn client_certificates_per_sni_certificate() {
    let server_ca = TestCa::new("server CA");
    let client_ca = TestCa::new("client CA");
    // The default certificate asks for nothing; api.test requires a client certificate.
    let open = certificate(&server_ca.issue(&["www.test"]));
    let guarded = certificate(&server_ca.issue(&["api.test"]))
        .with_client_auth(client_auth(ClientAuthMode::Require, &client_ca));
    let acceptor = TlsAcceptor::new(vec![open, guarded], TlsAcceptorOptions::default());
    let (addr, _rt) = serve(acceptor.unwrap());

    let anonymous = client_with(&server_ca, None);
    assert_eq!(line(&anonymous, addr, "www.test").unwrap(), "-");
    assert!(line(&anonymous, addr, "api.test").is_err());
    let alice = client_with(&server_ca, Some(&client_ca.issue_client("alice")));
    assert_eq!(line(&alice, addr, "api.test").unwrap(), "SUCCESS CN=alice");
}

#[test]
fn a_fresh_ocsp_response_is_stapled_when_asked_for() {
    let ca = TestCa::new("OCSP CA");
    let cert = ca.issue(&["ocsp.test"]);
    let response = ca.ocsp_response(&cert, &OcspSpec::fresh());
    let chain = cert.with_issuer(&ca);
    let tls = certificate(&chain)
        .with_ocsp_response(response.clone())
        .expect("a fresh response for this certificate is accepted");
    assert!(tls.has_ocsp());
    assert!(tls
        .ocsp_next_update()
        .is_some_and(|t| t > SystemTime::now()));
    let (addr, _rt) = serve(TlsAcceptor::new(vec![tls], TlsAcceptorOptions::default()).unwrap());

    let asking = TlsClient::new(TlsClientConfig {
        ca_pem: Some(ca.cert_pem().to_string()),
        status_request: true,
        ..TlsClientConfig::default()
    });
    let c = asking.connect(addr, "ocsp.test").unwrap();
    assert_eq!(c.ocsp_response(), Some(response.clone()), "stapled as read");
    let tls12 = TlsClient::new(TlsClientConfig {
        ca_pem: Some(ca.cert_pem().to_string()),
        status_request: true,
        tls12_only: true,
        ..TlsClientConfig::default()
    });
    let c = tls12.connect(addr, "ocsp.test").unwrap();
    assert_eq!(c.ocsp_response(), Some(response.clone()), "TLS 1.2 too");
    let silent = client_with(&ca, None);
    let c = silent.connect(addr, "ocsp.test").unwrap();
    assert_eq!(c.ocsp_response(), None, "not stapled unless asked");
}

#[test]
fn ocsp_responses_that_do_not_fit_are_refused() {
    let ca = TestCa::new("OCSP CA");
    let cert = ca.issue(&["ocsp.test"]);
    let chain = cert.with_issuer(&ca);
    let refused = |der: Vec<u8>| -> String {
        certificate(&chain)
            .with_ocsp_response(der)
            .expect_err("refused")
            .to_string()
    };
    let e = refused(ca.ocsp_response(&cert, &OcspSpec::expired()));
    assert!(e.contains("expired"), "{e}");
    let revoked = OcspSpec {
        status: OcspCertStatus::Revoked,
        ..OcspSpec::fresh()
    };
    let e = refused(ca.ocsp_response(&cert, &revoked));
    assert!(e.contains("revoked"), "{e}");
    let unknown = OcspSpec {
        status: OcspCertStatus::Unknown,
        ..OcspSpec::fresh()
    };
    let e = refused(ca.ocsp_response(&cert, &unknown));
    assert!(e.contains("unknown"), "{e}");
    let future = OcspSpec {
        this_update: SystemTime::now() + Duration::from_secs(86_400),
        next_update: Some(SystemTime::now() + Duration::from_secs(2 * 86_400)),
        ..OcspSpec::fresh()
    };
    let e = refused(ca.ocsp_response(&cert, &future));
    assert!(e.contains("not valid yet"), "{e}");
    let other = ca.issue(&["other.test"]);
    let e = refused(ca.ocsp_response(&other, &OcspSpec::fresh()));
    assert!(e.contains("not for this certificate"), "{e}");
    let e = refused(b"not DER at all".to_vec());
    assert!(e.contains("not a DER OCSP response"), "{e}");
    // Another CA's response about a certificate it issued with the same name: the
    // issuer hashes differ.
    let other_ca = TestCa::new("OCSP CA 2");
    let e = refused(other_ca.ocsp_response(&other_ca.issue(&["ocsp.test"]), &OcspSpec::fresh()));
    assert!(e.contains("not for this certificate"), "{e}");
    // A damaged signature (the response ends with it).
    let mut tampered = ca.ocsp_response(&cert, &OcspSpec::fresh());
    let last = tampered.len() - 1;
    tampered[last] ^= 0x55;
    let e = refused(tampered);
    assert!(e.contains("signature"), "{e}");
    // Without the issuer in the chain the signature cannot be checked, and the rest is.
    let leaf_only =
        certificate(&cert).with_ocsp_response(ca.ocsp_response(&cert, &OcspSpec::fresh()));
    assert!(leaf_only.is_ok());
}

fn ticket_keys(seeds: &[u8]) -> TicketKeys {
    let mut bytes = Vec::new();
    for seed in seeds {
        bytes.extend((0..80u8).map(|i| i.wrapping_mul(31).wrapping_add(*seed)));
    }
    TicketKeys::from_bytes(&bytes).unwrap()
}

fn ticket_acceptor(cert: &TestCert, keys: Option<TicketKeys>) -> TlsAcceptor {
    let opts = TlsAcceptorOptions {
        ticket_keys: keys,
        ..TlsAcceptorOptions::default()
    };
    TlsAcceptor::new(vec![certificate(cert)], opts).unwrap()
}

/// Gets a session from `first`, then tries to resume it on `second`.
fn resumes_across(first: SocketAddr, second: SocketAddr, tls12_only: bool) -> bool {
    let client = TlsClient::new(TlsClientConfig {
        tls12_only,
        ..TlsClientConfig::default()
    });
    let mut c = client.connect(first, "t.test").unwrap();
    c.read_some().unwrap(); // TLS 1.3 tickets come after the handshake
    assert!(client.has_session());
    let mut again = client.connect_resuming(second, "t.test").unwrap();
    again.read_some().unwrap();
    again.session_reused()
}

#[test]
fn shared_ticket_keys_resume_sessions_across_acceptors() {
    let ca = TestCa::new("ticket CA");
    let cert = ca.issue(&["t.test"]);
    let (a, _ra) = serve(ticket_acceptor(&cert, Some(ticket_keys(&[1]))));
    let (b, _rb) = serve(ticket_acceptor(&cert, Some(ticket_keys(&[1]))));
    for tls12_only in [false, true] {
        assert!(
            resumes_across(a, b, tls12_only),
            "same keys (tls12_only {tls12_only})"
        );
    }
    // Rotation: a new key first, the old one kept: old tickets still open.
    let (rotated, _rr) = serve(ticket_acceptor(&cert, Some(ticket_keys(&[2, 1]))));
    assert!(resumes_across(a, rotated, false), "older key still opens");
    // Different keys, or none: a full handshake.
    let (other, _ro) = serve(ticket_acceptor(&cert, Some(ticket_keys(&[3]))));
    assert!(!resumes_across(a, other, false), "other keys cannot open");
    let (own, _rw) = serve(ticket_acceptor(&cert, None));
    let (own2, _rw2) = serve(ticket_acceptor(&cert, None));
    assert!(!resumes_across(own, own2, false), "per-process keys differ");
}

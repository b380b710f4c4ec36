//! QUIC's TLS 1.3: a `rustls` server configuration made from a TLS listener's own
//! certificates, with the same choice by SNI as the TCP side (exact name, else a
//! wildcard covering one label, else the first certificate) and ALPN `h3` only.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::H3ServerOptions;
use super::ALPN_H3;
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::tls::server::NameTable;
use crate::protocols::tls::TlsAcceptor;

/// Picks a listener certificate by the client's SNI.
#[derive(Debug)]
struct SniCertificates {
    keys: Vec<Arc<CertifiedKey>>,
    names: NameTable,
}

impl ResolvesServerCert for SniCertificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let pick = hello
            .server_name()
            .and_then(|n| self.names.lookup(n))
            .unwrap_or(0);
        self.keys.get(pick).cloned()
    }
}

fn config_error(what: &str, cause: impl Into<crate::error::Cause>) -> Error {
    Error::because(
        ErrorKind::TlsConfig,
        Side::Internal,
        what.to_string(),
        cause,
    )
}

/// The QUIC server configuration of a TLS listener: its certificates (by SNI), ALPN
/// `h3`, TLS 1.3, and the transport limits of `opts`. Refused when the listener asks for
/// client certificates (not offered over QUIC yet: serving HTTP/3 would bypass them).
pub fn server_config(tls: &TlsAcceptor, opts: &H3ServerOptions) -> Result<quinn::ServerConfig> {
    if tls.asks_client_certificates() {
        return Err(Error::new(
            ErrorKind::TlsConfig,
            Side::Internal,
            "HTTP/3 cannot ask for client certificates yet: a listener with client_auth \
             cannot serve http3",
        ));
    }
    // ring: no second C crypto library to build beside BoringSSL. Its provider is
    // deprecated for lacking post-quantum key exchange (see docs/http3.md).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut keys = Vec::with_capacity(tls.certificates().len());
    for cert in tls.certificates() {
        let (chain, key) = cert.to_der()?;
        let chain: Vec<CertificateDer<'static>> =
            chain.into_iter().map(CertificateDer::from).collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
        let signer = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| config_error("QUIC TLS: unsupported private key", e))?;
        keys.push(Arc::new(CertifiedKey::new(chain, signer)));
    }
    let resolver = SniCertificates {
        keys,
        names: NameTable::build(tls.certificates()),
    };
    let mut crypto = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_error("QUIC TLS: cannot set TLS 1.3", e))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    crypto.alpn_protocols = vec![ALPN_H3.to_vec()];
    // No 0-RTT: early data can be replayed, and requests are not sorted into safe ones.
    crypto.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(crypto)
        .map_err(|e| config_error("QUIC TLS: unusable TLS configuration", e))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport(opts)?));
    Ok(config)
}

/// QUIC transport limits from `opts`.
fn transport(opts: &H3ServerOptions) -> Result<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(opts.max_concurrent_streams.into())
        // The client's control stream and its two QPACK streams, with room to spare.
        .max_concurrent_uni_streams(8u32.into())
        .stream_receive_window(opts.stream_receive_window.into())
        .receive_window(opts.connection_receive_window.into())
        .send_window(opts.send_window);
    let idle = quinn::IdleTimeout::try_from(opts.idle_timeout)
        .map_err(|e| config_error("QUIC: idle timeout out of range", e))?;
    t.max_idle_timeout(Some(idle));
    Ok(t)
}

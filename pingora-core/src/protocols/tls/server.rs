//! TLS termination on listeners: certificates by SNI, ALPN, handshake with a time limit.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use boring::ssl::{
    select_next_proto, AlpnError, NameType, SslAcceptor, SslAcceptorBuilder, SslMethod,
    SslSessionCacheMode, SslVersion,
};

use super::certificate::TlsCertificate;
use super::{ServerAlpn, TlsAcceptorOptions};
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::Stream;

/// Identifies our sessions in the session cache; the same for every certificate so that
/// a session survives the switch to the certificate SNI picked.
const SESSION_ID_CONTEXT: &[u8] = b"pingora";

/// Which certificate serves which server name.
#[derive(Debug, Default)]
struct NameTable {
    /// Exact names, lowercased, to an index into the certificates.
    exact: HashMap<String, usize>,
    /// Wildcard names by the part after `*.` (`*.example.com` is stored as `example.com`).
    wildcard: HashMap<String, usize>,
}

impl NameTable {
    /// The first certificate naming a name wins.
    fn build(certs: &[TlsCertificate]) -> NameTable {
        let mut table = NameTable::default();
        for (i, cert) in certs.iter().enumerate() {
            for name in cert.names() {
                match name.strip_prefix("*.") {
                    Some(parent) => table.wildcard.entry(parent.to_string()).or_insert(i),
                    None => table.exact.entry(name.clone()).or_insert(i),
                };
            }
        }
        table
    }

    /// The certificate for `name`: an exact match, else a wildcard covering one label.
    fn lookup(&self, name: &str) -> Option<usize> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(&i) = self.exact.get(&name) {
            return Some(i);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).copied()
    }
}

/// The TLS side of a listener: accepts handshakes with its certificates.
///
/// The first certificate is the default, served when the client sends no SNI or a name no
/// certificate covers. Build it once per listener and share it (`Arc`) between runtimes:
/// session tickets it issues are then valid on every thread.
pub struct TlsAcceptor {
    /// The default certificate's context; its SNI callback switches to the others.
    acceptor: SslAcceptor,
    names: Vec<Vec<String>>,
    handshake_timeout: Duration,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("certificates", &self.names)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

fn setup_error(e: boring::error::ErrorStack) -> Error {
    Error::because(
        ErrorKind::TlsConfig,
        Side::Internal,
        "cannot set up the TLS acceptor",
        e,
    )
}

/// A context with our protocol settings and `cert`.
fn context_for(cert: &TlsCertificate, alpn: ServerAlpn) -> Result<SslAcceptorBuilder> {
    let mut builder =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(setup_error)?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(setup_error)?;
    builder
        .set_max_proto_version(Some(SslVersion::TLS1_3))
        .map_err(setup_error)?;
    builder
        .set_session_id_context(SESSION_ID_CONTEXT)
        .map_err(setup_error)?;
    // Session IDs (TLS 1.2) are kept in the server cache; tickets (both versions) are
    // on by default, with keys BoringSSL makes and rotates itself.
    builder.set_session_cache_mode(SslSessionCacheMode::SERVER);
    let offered: &'static [u8] = match alpn {
        ServerAlpn::H2AndHttp1 => b"\x02h2\x08http/1.1",
        ServerAlpn::Http1Only => b"\x08http/1.1",
    };
    builder.set_alpn_select_callback(move |_, client| {
        // Our order first: h2 wins when the client offers both. No common protocol:
        // carry on without ALPN (the client may still speak HTTP/1.1).
        select_next_proto(offered, client).ok_or(AlpnError::NOACK)
    });
    cert.install(&mut builder)?;
    Ok(builder)
}

impl TlsAcceptor {
    /// An acceptor serving `certs` (at least one; the first is the default).
    pub fn new(certs: Vec<TlsCertificate>, opts: TlsAcceptorOptions) -> Result<Self> {
        if certs.is_empty() {
            return Err(Error::new(
                ErrorKind::TlsConfig,
                Side::Internal,
                "a TLS listener needs at least one certificate",
            ));
        }
        let table = NameTable::build(&certs);
        // A context per certificate (the default's stays unused), switched to by SNI.
        let mut others = Vec::with_capacity(certs.len());
        for cert in &certs {
            others.push(context_for(cert, opts.alpn)?.build());
        }
        let mut default = context_for(&certs[0], opts.alpn)?;
        if certs.len() > 1 {
            default.set_servername_callback(move |ssl, _alert| {
                let pick = ssl
                    .servername(NameType::HOST_NAME)
                    .and_then(|name| table.lookup(name));
                if let Some(i @ 1..) = pick {
                    // Keeping the default context when the switch fails is the best we
                    // can do; the client will see the default certificate.
                    if let Err(e) = ssl.set_ssl_context(others[i].context()) {
                        log::warn!("TLS: cannot switch to certificate {i}: {e}");
                    }
                }
                Ok(())
            });
        }
        Ok(TlsAcceptor {
            acceptor: default.build(),
            names: certs.iter().map(|c| c.names().to_vec()).collect(),
            handshake_timeout: opts.handshake_timeout,
        })
    }

    /// The host names of each certificate, in the order given.
    pub fn certificate_names(&self) -> &[Vec<String>] {
        &self.names
    }

    /// Most time a client has for the handshake.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Runs the server side of the handshake on `stream` within the handshake timeout.
    /// Errors are [`ErrorKind::TlsHandshake`] on [`Side::Downstream`].
    pub async fn accept(&self, stream: Stream) -> Result<Stream> {
        let handshake = tokio_boring::accept(&self.acceptor, stream);
        match tokio::time::timeout(self.handshake_timeout, handshake).await {
            Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
            Ok(Err(e)) => Err(Error::new(
                ErrorKind::TlsHandshake,
                Side::Downstream,
                format!("TLS handshake with the client failed: {}", describe(&e)),
            )),
            Err(_) => Err(Error::new(
                ErrorKind::TlsHandshake,
                Side::Downstream,
                format!(
                    "TLS handshake with the client timed out after {}ms",
                    self.handshake_timeout.as_millis()
                ),
            )),
        }
    }
}

/// A one-line cause for a failed handshake: the I/O error, else the TLS error.
pub(super) fn describe<S>(e: &tokio_boring::HandshakeError<S>) -> String {
    if let Some(io) = e.as_io_error() {
        return io.to_string();
    }
    if let Some(ssl) = e.ssl() {
        if let Err(verify) = ssl.verify_result() {
            if verify != boring::x509::X509VerifyError::INVALID_CALL {
                return format!("certificate verify failed: {}", verify.error_string());
            }
        }
    }
    let text = e.to_string();
    if text.is_empty() {
        "the handshake failed".to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_lookup_exact_then_wildcard() {
        let mut t = NameTable::default();
        t.exact.insert("a.example.com".into(), 1);
        t.wildcard.insert("example.com".into(), 2);
        assert_eq!(t.lookup("a.example.com"), Some(1));
        assert_eq!(t.lookup("A.Example.COM."), Some(1));
        assert_eq!(t.lookup("b.example.com"), Some(2));
        // A wildcard covers exactly one label.
        assert_eq!(t.lookup("x.b.example.com"), None);
        assert_eq!(t.lookup("example.com"), None);
        assert_eq!(t.lookup("other.org"), None);
    }

    #[test]
    fn no_certificate_is_an_error() {
        let e = TlsAcceptor::new(Vec::new(), TlsAcceptorOptions::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TlsConfig);
    }
}

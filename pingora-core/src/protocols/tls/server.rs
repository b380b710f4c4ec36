//! TLS termination on listeners: certificates by SNI, ALPN, client certificates,
//! stapled OCSP responses, shared session-ticket keys, handshake with a time limit.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use boring::ex_data::Index;
use boring::ssl::{
    select_next_proto, AlpnError, NameType, SslAcceptor, SslAcceptorBuilder, SslContext, SslMethod,
    SslRef, SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use boring::stack::Stack;
use boring::x509::{X509Name, X509StoreContext, X509StoreContextRef};

use super::certificate::TlsCertificate;
use super::client_auth::{ClientAuth, ClientAuthMode};
use super::ffi;
use super::ocsp::OcspStaple;
use super::ticket_keys::TicketKeys;
use super::{ServerAlpn, TlsAcceptorOptions};
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::Stream;

/// Identifies our sessions in the session cache and in tickets when no client
/// certificate is asked for. Contexts that ask for one use a context id of their own
/// ([`session_id_context`]), so that a session made without a client certificate can
/// never be resumed where one is required.
const SESSION_ID_CONTEXT: &[u8] = b"pingora";

/// Which certificate serves which server name.
#[derive(Debug, Default)]
pub(crate) struct NameTable {
    /// Exact names, lowercased, to an index into the certificates.
    exact: HashMap<String, usize>,
    /// Wildcard names by the part after `*.` (`*.example.com` is stored as `example.com`).
    wildcard: HashMap<String, usize>,
}

impl NameTable {
    /// The first certificate naming a name wins.
    pub(crate) fn build(certs: &[TlsCertificate]) -> NameTable {
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
    pub(crate) fn lookup(&self, name: &str) -> Option<usize> {
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
/// session tickets it issues are then valid on every thread (and, with
/// [`TlsAcceptorOptions::ticket_keys`], in every process sharing the keys).
pub struct TlsAcceptor {
    /// The default certificate's context; its SNI callback switches to the others.
    acceptor: SslAcceptor,
    names: Vec<Vec<String>>,
    handshake_timeout: Duration,
    /// The certificates, for the listener's QUIC side (its TLS is not BoringSSL's).
    #[cfg(feature = "http3")]
    certs: Vec<TlsCertificate>,
    /// Whether a certificate asks for client certificates (QUIC refuses to serve then).
    #[cfg(feature = "http3")]
    client_auth: bool,
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

fn config_error(what: String) -> Error {
    Error::new(ErrorKind::TlsConfig, Side::Internal, what)
}

/// The verify mode that carries a client-certificate policy: `FAIL_IF_NO_PEER_CERT`
/// marks `require` (see [`verify_client_cert`]).
fn verify_mode(auth: Option<&ClientAuth>) -> SslVerifyMode {
    match auth.map(|a| a.mode) {
        None => SslVerifyMode::NONE,
        Some(ClientAuthMode::Optional) => SslVerifyMode::PEER,
        Some(ClientAuthMode::Require) => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
    }
}

/// The verify callback of every context: a chain that does not verify fails the
/// handshake when certificates are required, and is let through (its error kept as the
/// connection's verify result) when they are optional. The policy is read from the
/// connection's own verify mode, which the SNI callback sets per certificate.
fn verify_client_cert(preverify_ok: bool, store: &mut X509StoreContextRef) -> bool {
    if preverify_ok {
        return true;
    }
    let Ok(index) = X509StoreContext::ssl_idx() else {
        return false;
    };
    store.ex_data(index).is_some_and(|ssl| {
        !ssl.verify_mode()
            .contains(SslVerifyMode::FAIL_IF_NO_PEER_CERT)
    })
}

/// The session id context of a context asking for client certificates as `auth` says:
/// different for different policies and CA sets, equal in every process with the same
/// configuration (so shared ticket keys resume across processes).
fn session_id_context(auth: Option<&ClientAuth>) -> Result<Vec<u8>> {
    let Some(auth) = auth else {
        return Ok(SESSION_ID_CONTEXT.to_vec());
    };
    let mut material = auth.mode.as_str().as_bytes().to_vec();
    match &auth.ca {
        super::TrustRoots::System => material.extend_from_slice(b"/system"),
        super::TrustRoots::File(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                Error::because(
                    ErrorKind::TlsConfig,
                    Side::Internal,
                    format!("cannot read the client CA file {}", path.display()),
                    e,
                )
            })?;
            material.extend_from_slice(&pem);
        }
        super::TrustRoots::Pem(pem) => material.extend_from_slice(pem),
    }
    let digest = boring::hash::hash(boring::hash::MessageDigest::sha256(), &material)
        .map_err(setup_error)?;
    let mut id = b"pingora-ca:".to_vec();
    id.extend_from_slice(&digest[..16]);
    Ok(id)
}

/// Asks for client certificates as `auth` says, verified against its CA.
fn install_client_auth(builder: &mut SslAcceptorBuilder, auth: Option<&ClientAuth>) -> Result<()> {
    // Every context gets the callback, so that whichever one SNI picks has it.
    builder.set_verify_callback(verify_mode(auth), verify_client_cert);
    let Some(auth) = auth else {
        return Ok(());
    };
    let (store, cas) = super::client::trust_store(&auth.ca)?;
    builder
        .set_verify_cert_store(store.build())
        .map_err(setup_error)?;
    // The acceptable issuers sent in the certificate request: clients holding several
    // certificates pick one of these.
    let mut names = Stack::<X509Name>::new().map_err(setup_error)?;
    for ca in &cas {
        let der = ca.subject_name().to_der().map_err(setup_error)?;
        let name = X509Name::from_der(&der).map_err(setup_error)?;
        names.push(name).map_err(setup_error)?;
    }
    builder.set_client_ca_list(names);
    Ok(())
}

/// Where a context keeps its stapled OCSP response (for the freshness check).
fn ocsp_index() -> Option<Index<SslContext, Arc<OcspStaple>>> {
    static INDEX: OnceLock<Option<Index<SslContext, Arc<OcspStaple>>>> = OnceLock::new();
    *INDEX.get_or_init(|| SslContext::new_ex_index().ok())
}

/// Called when a client asks for the certificate status: staple the context's response
/// while it is fresh, say nothing once its `nextUpdate` passed.
fn staple_if_fresh(ssl: &mut SslRef) -> std::result::Result<bool, boring::error::ErrorStack> {
    let fresh = ocsp_index()
        .and_then(|i| ssl.ssl_context().ex_data(i))
        .is_some_and(|staple| staple.fresh_at(SystemTime::now()));
    Ok(fresh)
}

/// Staples `cert`'s OCSP response, if it has one.
fn install_ocsp(builder: &mut SslAcceptorBuilder, cert: &TlsCertificate) -> Result<()> {
    let Some(staple) = cert.ocsp() else {
        return Ok(());
    };
    let index = ocsp_index().ok_or_else(|| config_error("cannot allocate the OCSP slot".into()))?;
    ffi::set_ocsp_response(builder, &staple.der).map_err(config_error)?;
    builder.replace_ex_data(index, staple.clone());
    builder
        .set_status_callback(staple_if_fresh)
        .map_err(setup_error)?;
    Ok(())
}

/// A context with our protocol settings, `cert` and what goes with it.
fn context_for(
    cert: &TlsCertificate,
    opts: &TlsAcceptorOptions,
    tickets: Option<&Arc<TicketKeys>>,
) -> Result<SslAcceptorBuilder> {
    let mut builder =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(setup_error)?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(setup_error)?;
    builder
        .set_max_proto_version(Some(SslVersion::TLS1_3))
        .map_err(setup_error)?;
    let auth = cert.client_auth().or(opts.client_auth.as_ref());
    builder
        .set_session_id_context(&session_id_context(auth)?)
        .map_err(setup_error)?;
    // Session IDs (TLS 1.2) are kept in the server cache; tickets (both versions) are
    // on by default, sealed with keys BoringSSL makes and rotates itself, or with the
    // configured ticket keys.
    builder.set_session_cache_mode(SslSessionCacheMode::SERVER);
    let offered: &'static [u8] = match opts.alpn {
        ServerAlpn::H2AndHttp1 => b"\x02h2\x08http/1.1",
        ServerAlpn::Http1Only => b"\x08http/1.1",
    };
    builder.set_alpn_select_callback(move |_, client| {
        // Our order first: h2 wins when the client offers both. No common protocol:
        // carry on without ALPN (the client may still speak HTTP/1.1).
        select_next_proto(offered, client).ok_or(AlpnError::NOACK)
    });
    cert.install(&mut builder)?;
    install_client_auth(&mut builder, auth)?;
    install_ocsp(&mut builder, cert)?;
    if let Some(keys) = tickets {
        ffi::set_ticket_keys(&mut builder, keys.clone()).map_err(config_error)?;
    }
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
        let tickets = opts.ticket_keys.clone().map(Arc::new);
        let table = NameTable::build(&certs);
        let modes: Vec<SslVerifyMode> = certs
            .iter()
            .map(|c| verify_mode(c.client_auth().or(opts.client_auth.as_ref())))
            .collect();
        // A context per certificate (the default's stays unused), switched to by SNI.
        let mut others = Vec::with_capacity(certs.len());
        for cert in &certs {
            others.push(context_for(cert, &opts, tickets.as_ref())?.build());
        }
        let mut default = context_for(&certs[0], &opts, tickets.as_ref())?;
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
                        return Ok(());
                    }
                    // The verify mode stays the default context's through a switch:
                    // set the chosen certificate's own.
                    if modes[i] != modes[0] {
                        ssl.set_verify_callback(modes[i], verify_client_cert);
                    }
                }
                Ok(())
            });
        }
        Ok(TlsAcceptor {
            acceptor: default.build(),
            names: certs.iter().map(|c| c.names().to_vec()).collect(),
            handshake_timeout: opts.handshake_timeout,
            #[cfg(feature = "http3")]
            client_auth: opts.client_auth.is_some()
                || certs.iter().any(|c| c.client_auth().is_some()),
            #[cfg(feature = "http3")]
            certs,
        })
    }

    /// The certificates, in the order given (the first is the default).
    #[cfg(feature = "http3")]
    pub(crate) fn certificates(&self) -> &[TlsCertificate] {
        &self.certs
    }

    /// Whether any certificate asks clients for a certificate.
    #[cfg(feature = "http3")]
    pub(crate) fn asks_client_certificates(&self) -> bool {
        self.client_auth
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

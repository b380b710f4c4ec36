//! TLS towards upstreams: one BoringSSL context per upstream configuration, a handshake per
//! new connection.

use std::fmt;
use std::hash::{Hash, Hasher};

use boring::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use boring::x509::store::X509StoreBuilder;
use boring::x509::X509;

use super::certificate::TlsCertificate;
use super::server::describe;
use super::{ClientCertificate, TrustRoots, UpstreamTlsOptions};
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::Stream;

/// Debian's (and many distributions') CA bundle, used besides BoringSSL's default paths,
/// which point at a directory most systems do not have.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// ALPN offer with HTTP/2 allowed (h2 preferred), in wire format.
const OFFER_H2_AND_HTTP1: &[u8] = b"\x02h2\x08http/1.1";
/// ALPN offer for HTTP/1.1 only, in wire format.
const OFFER_HTTP1: &[u8] = b"\x08http/1.1";

/// TLS settings for one upstream, with the BoringSSL context built from them.
///
/// Build it once per upstream configuration and share it (`Arc`) between its peers. Two
/// values built from equal [`UpstreamTlsOptions`] compare and hash equal, so connections
/// made with either may be pooled together.
pub struct UpstreamTls {
    connector: SslConnector,
    options: UpstreamTlsOptions,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("sni", &self.options.sni)
            .field("verify", &self.options.verify)
            .field("roots", &RootsSummary(&self.options.roots))
            .field("client_cert", &self.options.client_cert.is_some())
            .finish()
    }
}

/// Debug form of the roots that does not print PEM text.
struct RootsSummary<'a>(&'a TrustRoots);

impl fmt::Debug for RootsSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            TrustRoots::System => f.write_str("System"),
            TrustRoots::File(p) => write!(f, "File({})", p.display()),
            TrustRoots::Pem(_) => f.write_str("Pem(..)"),
        }
    }
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.options == other.options
    }
}

impl Eq for UpstreamTls {}

impl Hash for UpstreamTls {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.options.hash(state);
    }
}

fn setup_error(what: &str) -> impl Fn(boring::error::ErrorStack) -> Error + '_ {
    move |e| Error::because(ErrorKind::TlsConfig, Side::Internal, what.to_string(), e)
}

/// The CA certificates of a PEM bundle; an error when it holds none.
fn load_bundle(pem: &[u8], origin: &str) -> Result<Vec<X509>> {
    let certs = X509::stack_from_pem(pem).map_err(setup_error(origin))?;
    if certs.is_empty() {
        return Err(Error::new(
            ErrorKind::TlsConfig,
            Side::Internal,
            format!("{origin}: no certificate found in the PEM"),
        ));
    }
    Ok(certs)
}

/// A store of the certificates `roots` names, and those certificates (none for the
/// system roots, which are many and only found when needed).
pub(super) fn trust_store(roots: &TrustRoots) -> Result<(X509StoreBuilder, Vec<X509>)> {
    let mut store = X509StoreBuilder::new().map_err(setup_error("cannot make a CA store"))?;
    let certs = match roots {
        TrustRoots::System => {
            store
                .set_default_paths()
                .map_err(setup_error("cannot load the system CA paths"))?;
            // Missing bundle: the default paths are all there is.
            match std::fs::read(SYSTEM_CA_BUNDLE) {
                Ok(pem) => X509::stack_from_pem(&pem).unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        }
        TrustRoots::File(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                Error::because(
                    ErrorKind::TlsConfig,
                    Side::Internal,
                    format!("cannot read CA file {}", path.display()),
                    e,
                )
            })?;
            load_bundle(&pem, &format!("CA file {}", path.display()))?
        }
        TrustRoots::Pem(pem) => load_bundle(pem, "CA PEM text")?,
    };
    for cert in &certs {
        // A certificate already in the store is not an error worth failing for.
        let _ = store.add_cert(cert.clone());
    }
    let listed = match roots {
        TrustRoots::System => Vec::new(),
        _ => certs,
    };
    Ok((store, listed))
}

impl UpstreamTls {
    /// Builds the context: protocol versions, trust roots, client certificate, key log.
    pub fn new(options: UpstreamTlsOptions) -> Result<Self> {
        let mut builder = SslConnector::builder(SslMethod::tls())
            .map_err(setup_error("cannot set up upstream TLS"))?;
        builder
            .set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(setup_error("cannot set TLS versions"))?;
        builder
            .set_max_proto_version(Some(SslVersion::TLS1_3))
            .map_err(setup_error("cannot set TLS versions"))?;
        if options.verify {
            builder.set_cert_store_builder(trust_store(&options.roots)?.0);
            builder.set_verify(SslVerifyMode::PEER);
        } else {
            builder.set_verify(SslVerifyMode::NONE);
        }
        if let Some(client) = &options.client_cert {
            let cert = match client {
                ClientCertificate::Files { cert, key } => TlsCertificate::from_files(cert, key)?,
                ClientCertificate::Pem { cert, key } => TlsCertificate::from_pem(cert, key)?,
            };
            cert.install(&mut builder)?;
        }
        if options.keylog {
            super::keylog::install(&mut builder);
        }
        Ok(UpstreamTls {
            connector: builder.build(),
            options,
        })
    }

    /// The options this was built from.
    pub fn options(&self) -> &UpstreamTlsOptions {
        &self.options
    }

    /// Runs the client side of the handshake on `stream` (no time limit of its own: the
    /// caller bounds the whole connect).
    ///
    /// `host` is the peer's host name or IP, used for SNI and the name check when no `sni`
    /// is configured. `offer_h2` offers `h2` before `http/1.1` in ALPN; see
    /// [`Stream::alpn`] for what was agreed. Errors are [`ErrorKind::TlsHandshake`] on
    /// [`Side::Upstream`]; a certificate that does not verify is not retryable.
    pub async fn connect(
        &self,
        stream: Stream,
        host: Option<&str>,
        offer_h2: bool,
    ) -> Result<Stream> {
        let peer = stream.peer_addr();
        let setup = |e| {
            Error::because(
                ErrorKind::TlsHandshake,
                Side::Upstream,
                format!("cannot set up TLS to {peer}"),
                e,
            )
        };
        let mut config = self.connector.configure().map_err(setup)?;
        let offer = if offer_h2 {
            OFFER_H2_AND_HTTP1
        } else {
            OFFER_HTTP1
        };
        config.set_alpn_protos(offer).map_err(setup)?;
        let name = self.options.sni.as_deref().or(host);
        if !self.options.verify || name.is_none() {
            // Without a name only the chain can be checked.
            config.set_verify_hostname(false);
        }
        if name.is_none() {
            config.set_use_server_name_indication(false);
        }
        let shown = name.unwrap_or("");
        match tokio_boring::connect(config, shown, stream).await {
            Ok(tls) => Ok(Stream::Tls(Box::new(tls))),
            Err(e) => {
                let verify_failed = e.ssl().is_some_and(|ssl| {
                    ssl.verify_result()
                        .is_err_and(|v| v != boring::x509::X509VerifyError::INVALID_CALL)
                });
                // An interrupted handshake may work on a fresh connection; a certificate
                // we do not trust will not.
                let retry = !verify_failed && e.as_io_error().is_some();
                let target = match name {
                    Some(n) => format!("{peer} ({n})"),
                    None => peer.to_string(),
                };
                Err(Error::new(
                    ErrorKind::TlsHandshake,
                    Side::Upstream,
                    format!("TLS handshake with {target} failed: {}", describe(&e)),
                )
                .with_retry(retry))
            }
        }
    }
}

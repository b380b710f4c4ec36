//! A certificate chain with its private key, read from PEM, the host names it covers,
//! and what goes with it: a stapled OCSP response, client-certificate settings.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use boring::nid::Nid;
use boring::pkey::{PKey, Private};
use boring::ssl::SslContextBuilder;
use boring::x509::X509;

use super::client_auth::ClientAuth;
use super::ocsp::{self, OcspStaple};
use crate::error::{Error, ErrorKind, Result, Side};

/// A certificate chain (leaf first) and the leaf's private key; optionally an OCSP
/// response to staple and client-certificate settings of its own.
#[derive(Clone)]
pub struct TlsCertificate {
    chain: Vec<X509>,
    key: PKey<Private>,
    names: Vec<String>,
    origin: String,
    ocsp: Option<Arc<OcspStaple>>,
    client_auth: Option<ClientAuth>,
}

impl fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("origin", &self.origin)
            .field("names", &self.names)
            .field("ocsp", &self.ocsp.is_some())
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

fn config_error(what: String, cause: impl Into<crate::error::Cause>) -> Error {
    Error::because(ErrorKind::TlsConfig, Side::Internal, what, cause)
}

impl TlsCertificate {
    /// Reads the chain and the key from PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self> {
        let read = |p: &Path, what: &str| {
            std::fs::read(p)
                .map_err(|e| config_error(format!("cannot read TLS {what} {}", p.display()), e))
        };
        let chain = read(cert, "certificate")?;
        let key_pem = read(key, "key")?;
        Self::parse(
            &chain,
            &key_pem,
            format!("{} and {}", cert.display(), key.display()),
        )
    }

    /// Reads the chain and the key from PEM text.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self> {
        Self::parse(chain, key, "PEM text".to_string())
    }

    fn parse(chain_pem: &[u8], key_pem: &[u8], origin: String) -> Result<Self> {
        let chain = X509::stack_from_pem(chain_pem)
            .map_err(|e| config_error(format!("{origin}: bad certificate PEM"), e))?;
        let Some(leaf) = chain.first() else {
            return Err(Error::new(
                ErrorKind::TlsConfig,
                Side::Internal,
                format!("{origin}: no certificate found in the PEM"),
            ));
        };
        let key = PKey::private_key_from_pem(key_pem)
            .map_err(|e| config_error(format!("{origin}: bad private key PEM"), e))?;
        let matches = leaf
            .public_key()
            .map(|public| key.public_eq(&public))
            .unwrap_or(false);
        if !matches {
            return Err(Error::new(
                ErrorKind::TlsConfig,
                Side::Internal,
                format!("{origin}: the private key does not belong to the certificate"),
            ));
        }
        let names = host_names(leaf);
        Ok(TlsCertificate {
            chain,
            key,
            names,
            origin,
            ocsp: None,
            client_auth: None,
        })
    }

    /// Staples the DER OCSP response `der` for clients that ask for one. Fails when
    /// the response does not fit this certificate: not a successful basic response, not
    /// about this certificate, not `good`, expired or not yet valid, or (when the
    /// issuer is in the chain) not signed by the issuer or its delegated responder.
    /// Once its `nextUpdate` passes, the response is no longer stapled.
    pub fn with_ocsp_response(self, der: Vec<u8>) -> Result<Self> {
        self.with_ocsp_at(&der, "OCSP response", SystemTime::now())
    }

    /// As [`TlsCertificate::with_ocsp_response`], with the response read from `path`.
    pub fn with_ocsp_file(self, path: &Path) -> Result<Self> {
        let der = std::fs::read(path).map_err(|e| {
            config_error(format!("cannot read the OCSP file {}", path.display()), e)
        })?;
        let what = format!("OCSP file {}", path.display());
        self.with_ocsp_at(&der, &what, SystemTime::now())
    }

    fn with_ocsp_at(mut self, der: &[u8], what: &str, now: SystemTime) -> Result<Self> {
        let staple = ocsp::check(der, &self.chain, now).map_err(|reason| {
            Error::new(
                ErrorKind::TlsConfig,
                Side::Internal,
                format!("{what} refused for {}: {reason}", self.origin),
            )
        })?;
        if !staple.signature_checked {
            log::warn!(
                "{what}: its signature is not checked: the chain of {} does not include \
                 the issuer's certificate",
                self.origin
            );
        }
        self.ocsp = Some(Arc::new(staple));
        Ok(self)
    }

    /// Asks clients served this certificate for their own, as `client_auth` says
    /// (replacing the listener's [`TlsAcceptorOptions::client_auth`](super::TlsAcceptorOptions)
    /// for this certificate's names).
    pub fn with_client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = Some(client_auth);
        self
    }

    /// This certificate's own client-certificate settings, if any.
    pub fn client_auth(&self) -> Option<&ClientAuth> {
        self.client_auth.as_ref()
    }

    /// When the stapled OCSP response goes stale (`None`: no response, or one without
    /// `nextUpdate`).
    pub fn ocsp_next_update(&self) -> Option<SystemTime> {
        self.ocsp.as_ref().and_then(|o| o.next_update)
    }

    /// Whether an OCSP response is stapled.
    pub fn has_ocsp(&self) -> bool {
        self.ocsp.is_some()
    }

    /// The checked OCSP response, if any.
    pub(crate) fn ocsp(&self) -> Option<&Arc<OcspStaple>> {
        self.ocsp.as_ref()
    }

    /// The host names the leaf certificate covers, lowercased: its DNS subject
    /// alternative names, or its common name when it has none. May hold wildcards
    /// such as `*.example.com`.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The chain (leaf first) and the private key as DER (PKCS#8 for the key): what a
    /// TLS stack other than BoringSSL (QUIC's) is fed.
    #[cfg(feature = "http3")]
    pub(crate) fn to_der(&self) -> Result<(Vec<Vec<u8>>, Vec<u8>)> {
        let what = || format!("{}: cannot encode the certificate as DER", self.origin);
        let chain = self
            .chain
            .iter()
            .map(|c| c.to_der())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| config_error(what(), e))?;
        let key = self
            .key
            .private_key_to_der_pkcs8()
            .map_err(|e| config_error(what(), e))?;
        Ok((chain, key))
    }

    /// The leaf certificate.
    pub(crate) fn leaf(&self) -> &X509 {
        &self.chain[0]
    }

    /// Installs the chain and key in a context being built.
    pub(crate) fn install(&self, ctx: &mut SslContextBuilder) -> Result<()> {
        let fail = |e| config_error(format!("{}: cannot use the certificate", self.origin), e);
        ctx.set_certificate(self.leaf()).map_err(fail)?;
        for extra in &self.chain[1..] {
            ctx.add_extra_chain_cert(extra.clone()).map_err(fail)?;
        }
        ctx.set_private_key(&self.key).map_err(fail)?;
        ctx.check_private_key().map_err(fail)?;
        Ok(())
    }
}

/// DNS SANs of `cert`, else its CN; lowercased.
fn host_names(cert: &X509) -> Vec<String> {
    let sans: Vec<String> = cert
        .subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.dnsname().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default();
    if !sans.is_empty() {
        return sans;
    }
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .filter_map(|e| e.data().as_utf8().ok().map(|s| s.to_ascii_lowercase()))
        .collect()
}

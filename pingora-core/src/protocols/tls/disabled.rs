//! Stand-ins for the TLS types in builds without the `tls` feature: same names and
//! signatures, constructors that fail, and no value that can exist.

use std::convert::Infallible;
use std::path::Path;
use std::time::Duration;

use super::{TlsAcceptorOptions, UpstreamTlsOptions};
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::Stream;

fn unsupported() -> Error {
    Error::new(
        ErrorKind::TlsConfig,
        Side::Internal,
        "pingora-core was built without TLS support (feature `tls`)",
    )
}

/// A certificate chain and its key (never exists in this build: it has no TLS).
#[derive(Debug, Clone)]
pub struct TlsCertificate {
    never: Infallible,
}

impl TlsCertificate {
    /// Fails: this build has no TLS.
    pub fn from_files(_cert: &Path, _key: &Path) -> Result<Self> {
        Err(unsupported())
    }

    /// Fails: this build has no TLS.
    pub fn from_pem(_chain: &[u8], _key: &[u8]) -> Result<Self> {
        Err(unsupported())
    }

    /// The host names the certificate covers.
    pub fn names(&self) -> &[String] {
        match self.never {}
    }

    /// Staples an OCSP response.
    pub fn with_ocsp_response(self, _der: Vec<u8>) -> Result<Self> {
        match self.never {}
    }

    /// Staples the OCSP response in a file.
    pub fn with_ocsp_file(self, _path: &Path) -> Result<Self> {
        match self.never {}
    }

    /// Client-certificate settings of this certificate.
    pub fn with_client_auth(self, _client_auth: super::ClientAuth) -> Self {
        match self.never {}
    }

    /// This certificate's own client-certificate settings.
    pub fn client_auth(&self) -> Option<&super::ClientAuth> {
        match self.never {}
    }

    /// When the stapled OCSP response goes stale.
    pub fn ocsp_next_update(&self) -> Option<std::time::SystemTime> {
        match self.never {}
    }

    /// Whether an OCSP response is stapled.
    pub fn has_ocsp(&self) -> bool {
        match self.never {}
    }
}

/// The TLS side of a listener (never exists in this build: it has no TLS).
#[derive(Debug)]
pub struct TlsAcceptor {
    never: Infallible,
}

impl TlsAcceptor {
    /// Fails: this build has no TLS.
    pub fn new(_certs: Vec<TlsCertificate>, _opts: TlsAcceptorOptions) -> Result<Self> {
        Err(unsupported())
    }

    /// The host names of each certificate.
    pub fn certificate_names(&self) -> &[Vec<String>] {
        match self.never {}
    }

    /// Most time a client has for the handshake.
    pub fn handshake_timeout(&self) -> Duration {
        match self.never {}
    }

    /// Runs the server side of a handshake.
    pub async fn accept(&self, _stream: Stream) -> Result<Stream> {
        match self.never {}
    }
}

/// TLS settings for one upstream (never exists in this build: it has no TLS).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    never: Infallible,
}

impl UpstreamTls {
    /// Fails: this build has no TLS.
    pub fn new(_options: UpstreamTlsOptions) -> Result<Self> {
        Err(unsupported())
    }

    /// The options this was built from.
    pub fn options(&self) -> &UpstreamTlsOptions {
        match self.never {}
    }

    /// Runs the client side of a handshake.
    pub async fn connect(
        &self,
        _stream: Stream,
        _host: Option<&str>,
        _offer_h2: bool,
    ) -> Result<Stream> {
        match self.never {}
    }
}

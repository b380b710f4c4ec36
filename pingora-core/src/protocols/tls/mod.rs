//! TLS on both sides of the proxy, on BoringSSL (feature `tls`).
//!
//! - [`TlsAcceptor`] terminates TLS on a listener: one or more certificates chosen by the
//!   client's SNI, ALPN (`h2` and `http/1.1`, or `http/1.1` only), TLS 1.2 and 1.3,
//!   session resumption (with [`TicketKeys`] shared between processes when given),
//!   client certificates ([`ClientAuth`], the result per connection in
//!   [`ClientCertInfo`]), stapled OCSP responses, and a handshake timeout.
//! - [`UpstreamTls`] speaks TLS to an upstream: SNI, verification against a CA bundle or the
//!   system roots (or none when asked), an optional client certificate, ALPN.
//! - [`TlsCertificate`] is a certificate chain and its private key, read from PEM.
//!
//! The types exist in every build so that callers need no `cfg`: without the `tls`
//! feature their constructors return an [`ErrorKind::TlsConfig`](crate::ErrorKind::TlsConfig)
//! error saying so, and no value of them can exist.

use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "tls")]
mod certificate;
#[cfg(feature = "tls")]
mod client;
pub(crate) mod client_auth;
#[cfg(not(feature = "tls"))]
mod disabled;
#[cfg(feature = "tls")]
mod ffi;
#[cfg(feature = "tls")]
mod keylog;
#[cfg(feature = "tls")]
mod ocsp;
#[cfg(feature = "tls")]
pub(crate) mod server;
mod ticket_keys;

pub use client_auth::{ClientAuth, ClientAuthMode, ClientCertInfo, ClientCertVerify};
pub use ticket_keys::TicketKeys;

#[cfg(feature = "tls")]
pub use certificate::TlsCertificate;
#[cfg(feature = "tls")]
pub use client::UpstreamTls;
#[cfg(not(feature = "tls"))]
pub use disabled::{TlsAcceptor, TlsCertificate, UpstreamTls};
#[cfg(feature = "tls")]
pub use server::TlsAcceptor;

/// ALPN identifier of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN identifier of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Whether this build can speak TLS (pingora-core was built with the `tls` feature).
pub const fn supported() -> bool {
    cfg!(feature = "tls")
}

/// Which application protocols a listener offers in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ServerAlpn {
    /// `h2` and `http/1.1`; `h2` is chosen when the client offers both.
    #[default]
    H2AndHttp1,
    /// `http/1.1` only (for servers that cannot serve HTTP/2).
    Http1Only,
}

impl ServerAlpn {
    /// The protocols offered, most preferred first.
    pub fn protocols(self) -> &'static [&'static [u8]] {
        match self {
            ServerAlpn::H2AndHttp1 => &[ALPN_H2, ALPN_HTTP1],
            ServerAlpn::Http1Only => &[ALPN_HTTP1],
        }
    }
}

/// How a listener does TLS, besides its certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsAcceptorOptions {
    /// The protocols offered in ALPN.
    pub alpn: ServerAlpn,
    /// Most time a client has to complete the handshake after connecting.
    pub handshake_timeout: Duration,
    /// Ask clients for certificates (mutual TLS), for every certificate of the listener
    /// that has no client-certificate settings of its own
    /// (`TlsCertificate::with_client_auth`). `None`: no certificate is asked for.
    pub client_auth: Option<ClientAuth>,
    /// Seal and open session tickets with these keys instead of keys made by the
    /// process, so that sessions resume in every process that has them (across an
    /// upgrade, across a fleet). `None`: per-process keys.
    pub ticket_keys: Option<TicketKeys>,
}

impl Default for TlsAcceptorOptions {
    fn default() -> Self {
        TlsAcceptorOptions {
            alpn: ServerAlpn::default(),
            handshake_timeout: Duration::from_secs(10),
            client_auth: None,
            ticket_keys: None,
        }
    }
}

/// The certificates an upstream's chain is verified against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum TrustRoots {
    /// The system's CA bundle (BoringSSL's default paths, and
    /// `/etc/ssl/certs/ca-certificates.crt` when it exists).
    #[default]
    System,
    /// Only the CA certificates of this PEM file.
    File(PathBuf),
    /// Only the CA certificates of this PEM text.
    Pem(Vec<u8>),
}

/// Where a client certificate and its key come from (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientCertificate {
    /// PEM files: the chain (leaf first) and the private key.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// PEM text: the chain (leaf first) and the private key.
    Pem {
        /// The certificate chain.
        cert: Vec<u8>,
        /// The private key.
        key: Vec<u8>,
    },
}

/// How to speak TLS to one upstream. Built once per upstream into an [`UpstreamTls`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamTlsOptions {
    /// The name sent in SNI and checked against the certificate; `None`: the peer's host
    /// name (no SNI for an IP address, whose certificate must then name that IP).
    pub sni: Option<String>,
    /// Verify the certificate chain and name. `false` accepts any certificate.
    pub verify: bool,
    /// What the chain is verified against.
    pub roots: TrustRoots,
    /// A certificate to present when the upstream asks for one.
    pub client_cert: Option<ClientCertificate>,
    /// Append the session keys to the file named by `$SSLKEYLOGFILE` (for debugging with
    /// a packet capture), when that variable is set.
    pub keylog: bool,
}

impl Default for UpstreamTlsOptions {
    fn default() -> Self {
        UpstreamTlsOptions {
            sni: None,
            verify: true,
            roots: TrustRoots::System,
            client_cert: None,
            keylog: false,
        }
    }
}

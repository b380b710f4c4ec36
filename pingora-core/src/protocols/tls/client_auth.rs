//! Client certificates on listeners (mutual TLS): how a listener asks for them
//! ([`ClientAuth`]) and what a connection's certificate showed ([`ClientCertInfo`]).

use std::fmt;

use super::TrustRoots;

/// What a listener does with clients that present no certificate, or one that does not
/// verify against its CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAuthMode {
    /// The handshake fails unless the client presents a certificate that verifies.
    Require,
    /// The handshake succeeds either way; the result is told to the application
    /// ([`ClientCertInfo`]) to act on.
    Optional,
}

impl ClientAuthMode {
    /// The mode's name in the configuration: `require` or `optional`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMode::Require => "require",
            ClientAuthMode::Optional => "optional",
        }
    }
}

/// Client certificates on a listener (or on one of its SNI certificates): the mode and
/// the CA certificates client chains are verified against (their names are also sent
/// to the client as the acceptable issuers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientAuth {
    /// Required or optional.
    pub mode: ClientAuthMode,
    /// What client chains are verified against.
    pub ca: TrustRoots,
}

impl ClientAuth {
    /// Client certificates in `mode`, verified against the PEM CA file `ca_file`.
    pub fn from_ca_file(mode: ClientAuthMode, ca_file: impl Into<std::path::PathBuf>) -> Self {
        ClientAuth {
            mode,
            ca: TrustRoots::File(ca_file.into()),
        }
    }
}

/// The verification result of a connection's client certificate, as nginx's
/// `$ssl_client_verify` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCertVerify {
    /// A certificate was presented and verified.
    Success,
    /// No certificate was presented.
    None,
    /// A certificate was presented and did not verify, for this reason (for example
    /// `certificate has expired`, `unable to get local issuer certificate`).
    Failed(String),
}

/// What a TLS client's certificate showed, on a listener that asks for one: read once
/// at the handshake and shared by every request of the connection.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertInfo {
    verify: ClientCertVerify,
    verify_text: Box<str>,
    subject: Option<Box<str>>,
}

impl fmt::Debug for ClientCertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertInfo")
            .field("verify", &self.verify_text)
            .field("subject", &self.subject)
            .finish()
    }
}

impl ClientCertInfo {
    /// The result `verify` for a certificate whose subject is `subject` (RFC 2253
    /// form; `None` when no certificate was presented).
    pub fn new(verify: ClientCertVerify, subject: Option<String>) -> Self {
        let verify_text = match &verify {
            ClientCertVerify::Success => "SUCCESS".into(),
            ClientCertVerify::None => "NONE".into(),
            ClientCertVerify::Failed(reason) => format!("FAILED:{reason}").into(),
        };
        ClientCertInfo {
            verify,
            verify_text,
            subject: subject.map(Into::into),
        }
    }

    /// The verification result.
    pub fn verify(&self) -> &ClientCertVerify {
        &self.verify
    }

    /// The result as text: `SUCCESS`, `NONE` or `FAILED:reason` (`$ssl_client_verify`).
    pub fn verify_text(&self) -> &str {
        &self.verify_text
    }

    /// Whether a certificate was presented and verified.
    pub fn verified(&self) -> bool {
        self.verify == ClientCertVerify::Success
    }

    /// The subject distinguished name of the client's certificate in RFC 2253 form,
    /// most specific part first (`CN=alice,O=Example`), when one was presented
    /// (`$ssl_client_s_dn`).
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
}

/// The client-certificate result of the TLS connection `ssl`: `None` when the server
/// did not ask for a certificate.
#[cfg(feature = "tls")]
pub(crate) fn client_cert_of(ssl: &boring::ssl::SslRef) -> Option<ClientCertInfo> {
    use boring::ssl::SslVerifyMode;
    use boring::x509::X509VerifyError;

    if ssl.verify_mode() == SslVerifyMode::NONE {
        return None;
    }
    let Some(cert) = ssl.peer_certificate() else {
        return Some(ClientCertInfo::new(ClientCertVerify::None, None));
    };
    let subject = cert
        .subject_name()
        .print_ex(boring_sys::XN_FLAG_RFC2253)
        .filter(|s| !s.is_empty());
    let verify = match ssl.verify_result() {
        Ok(()) => ClientCertVerify::Success,
        Err(e) if e == X509VerifyError::INVALID_CALL => {
            ClientCertVerify::Failed("no verification result".into())
        }
        Err(e) => ClientCertVerify::Failed(e.error_string().to_string()),
    };
    Some(ClientCertInfo::new(verify, subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_text_is_nginx_like() {
        let ok = ClientCertInfo::new(ClientCertVerify::Success, Some("CN=a".into()));
        assert_eq!(ok.verify_text(), "SUCCESS");
        assert!(ok.verified());
        assert_eq!(ok.subject(), Some("CN=a"));
        let none = ClientCertInfo::new(ClientCertVerify::None, None);
        assert_eq!(none.verify_text(), "NONE");
        assert!(!none.verified());
        let bad = ClientCertInfo::new(
            ClientCertVerify::Failed("certificate has expired".into()),
            Some("CN=b".into()),
        );
        assert_eq!(bad.verify_text(), "FAILED:certificate has expired");
        assert!(!bad.verified());
    }
}

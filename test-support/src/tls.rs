//! Certificates minted while the tests run: a test CA, server and client certificates it
//! signs, self-signed ones. Nothing private is ever checked in.

use std::io;
use std::path::{Path, PathBuf};

pub use crate::tls_ocsp::{OcspCertStatus, OcspSpec};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate (PEM) and its private key (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl TestCert {
    /// A self-signed server certificate for `names` (DNS names or IP addresses).
    pub fn self_signed(names: &[&str]) -> TestCert {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("cannot make a key: {e}"));
        let mut params = leaf_params(names, ExtendedKeyUsagePurpose::ServerAuth);
        // Like `openssl req -x509`: no key usage limits, so that verifiers see a
        // certificate that signed itself (rather than one with an unknown issuer).
        params.key_usages.clear();
        params.use_authority_key_identifier_extension = false;
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("cannot self-sign: {e}"));
        TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// This certificate followed by `issuer`'s: a chain as a `cert` file holds it.
    pub fn with_issuer(&self, issuer: &TestCa) -> TestCert {
        TestCert {
            cert_pem: format!("{}{}", self.cert_pem, issuer.cert_pem()),
            key_pem: self.key_pem.clone(),
        }
    }

    /// Writes `STEM.crt` and `STEM.key` in `dir` and returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> io::Result<(PathBuf, PathBuf)> {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem)?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((cert, key))
    }
}

/// A certificate authority for one test: signs server and client certificates, and
/// OCSP responses about them.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

fn leaf_params(names: &[&str], usage: ExtendedKeyUsagePurpose) -> CertificateParams {
    let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params =
        CertificateParams::new(owned).unwrap_or_else(|e| panic!("bad names {names:?}: {e}"));
    if let Some(first) = names.first() {
        params.distinguished_name.push(DnType::CommonName, *first);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params
}

impl TestCa {
    /// A new CA whose certificate has the common name `name`.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("cannot make a key: {e}"));
        let mut params = CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| panic!("CA params: {e}"));
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("cannot self-sign the CA: {e}"));
        TestCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM: what a client trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes the CA certificate to `dir/NAME.crt` and returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> io::Result<PathBuf> {
        let path = dir.join(format!("{name}.crt"));
        std::fs::write(&path, &self.cert_pem)?;
        Ok(path)
    }

    /// A server certificate for `names` (DNS names, wildcards like `*.a.test`, or IP
    /// addresses); the first is also the common name.
    pub fn issue(&self, names: &[&str]) -> TestCert {
        self.sign(leaf_params(names, ExtendedKeyUsagePurpose::ServerAuth))
    }

    /// A DER OCSP response about `cert` (which this CA issued), signed by this CA:
    /// what an `ocsp_file` holds. See [`OcspSpec`] for what it says.
    pub fn ocsp_response(&self, cert: &TestCert, spec: &OcspSpec) -> Vec<u8> {
        crate::tls_ocsp::response(&self.cert_pem, &self.key_pem, &cert.cert_pem, spec)
    }

    /// A client certificate with the common name `name`.
    pub fn issue_client(&self, name: &str) -> TestCert {
        let mut params = leaf_params(&[], ExtendedKeyUsagePurpose::ClientAuth);
        params.distinguished_name.push(DnType::CommonName, name);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> TestCert {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("cannot make a key: {e}"));
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("cannot sign: {e}"));
        TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

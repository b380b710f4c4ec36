//! Stapled OCSP responses: checked against their certificate when loaded, then handed
//! to clients that ask (`status_request`) while they are fresh.
//!
//! A response is accepted only when all of these hold:
//! - it parses as a DER OCSP response (RFC 6960) whose status is `successful` and whose
//!   type is the basic response;
//! - one of its single responses names the certificate: same serial number, same hash
//!   of the issuer's name, and, when the issuer's certificate is in the chain, the same
//!   hash of the issuer's key;
//! - that single response says `good` (not `revoked`, not `unknown`);
//! - its `thisUpdate` is not in the future (5 minutes of clock skew allowed) and its
//!   `nextUpdate`, when it has one, is still ahead;
//! - when the issuer's certificate is in the chain: the response is signed by the
//!   issuer, or by a responder certificate included in the response that the issuer
//!   signed for OCSP signing. Without the issuer in the chain the signature cannot be
//!   checked; that is accepted and said in the log.

use std::time::{Duration, SystemTime};

use boring::hash::MessageDigest;
use boring::pkey::{PKey, Public};
use boring::sign::Verifier;
use boring::x509::X509;
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::Certificate;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus, SingleResponse};

/// How far in the future a `thisUpdate` may be (clocks differ).
const CLOCK_SKEW: Duration = Duration::from_secs(300);

const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const OID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

/// A checked OCSP response, ready to staple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OcspStaple {
    /// The response as read (DER).
    pub(crate) der: Vec<u8>,
    /// After this the response is stale and no longer stapled (`None`: never).
    pub(crate) next_update: Option<SystemTime>,
    /// Whether the signature could be checked (the issuer is in the chain).
    pub(crate) signature_checked: bool,
}

impl OcspStaple {
    /// Whether the response may still be stapled at `now`.
    pub(crate) fn fresh_at(&self, now: SystemTime) -> bool {
        self.next_update.is_none_or(|t| now < t)
    }
}

/// Checks `der` as the OCSP response of the leaf of `chain` at `now` (see the module
/// docs for the rules); the reason when it is refused.
pub(crate) fn check(der: &[u8], chain: &[X509], now: SystemTime) -> Result<OcspStaple, String> {
    let response =
        OcspResponse::from_der(der).map_err(|e| format!("not a DER OCSP response: {e}"))?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(format!(
            "the responder did not answer with a status ({:?})",
            response.response_status
        ));
    }
    let bytes = response
        .response_bytes
        .ok_or("the response has no response bytes")?;
    if bytes.response_type != OID_OCSP_BASIC {
        return Err(format!(
            "unsupported response type {} (only the basic OCSP response is)",
            bytes.response_type
        ));
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| format!("bad basic OCSP response: {e}"))?;
    let parsed = parse_chain(chain)?;
    let leaf = &parsed[0];
    let issuer = issuer_of(leaf, &parsed[1..])?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|s| names_certificate(s, leaf, issuer.map(|(c, _)| c)))
        .ok_or_else(|| {
            format!(
                "the response is not for this certificate (serial {})",
                leaf.tbs_certificate.serial_number
            )
        })?;
    match single.cert_status {
        CertStatus::Good(_) => {}
        CertStatus::Revoked(_) => return Err("the response says the certificate is revoked".into()),
        CertStatus::Unknown(_) => {
            return Err("the response says the certificate is unknown to the responder".into())
        }
    }
    let this_update = SystemTime::UNIX_EPOCH + single.this_update.0.to_unix_duration();
    if this_update > now + CLOCK_SKEW {
        return Err(format!(
            "the response is not valid yet (thisUpdate {})",
            single.this_update.0.to_date_time()
        ));
    }
    let next_update = single
        .next_update
        .map(|t| (SystemTime::UNIX_EPOCH + t.0.to_unix_duration(), t));
    if let Some((at, text)) = &next_update {
        if *at <= now {
            return Err(format!(
                "the response has expired (nextUpdate {})",
                text.0.to_date_time()
            ));
        }
    }
    let signature_checked = match issuer {
        Some((_, index)) => {
            check_signature(&basic, &chain[index])?;
            true
        }
        None => false,
    };
    Ok(OcspStaple {
        der: der.to_vec(),
        next_update: next_update.map(|(at, _)| at),
        signature_checked,
    })
}

fn parse_chain(chain: &[X509]) -> Result<Vec<Certificate>, String> {
    if chain.is_empty() {
        return Err("no certificate to check the response against".into());
    }
    chain
        .iter()
        .map(|c| {
            let der = c.to_der().map_err(|e| e.to_string())?;
            Certificate::from_der(&der).map_err(|e| format!("cannot read the certificate: {e}"))
        })
        .collect()
}

/// The certificate of `rest` (with its index in the whole chain) that issued `leaf`.
fn issuer_of<'a>(
    leaf: &Certificate,
    rest: &'a [Certificate],
) -> Result<Option<(&'a Certificate, usize)>, String> {
    let wanted = leaf
        .tbs_certificate
        .issuer
        .to_der()
        .map_err(|e| e.to_string())?;
    Ok(rest.iter().enumerate().find_map(|(i, c)| {
        let subject = c.tbs_certificate.subject.to_der().ok()?;
        (subject == wanted).then_some((c, i + 1))
    }))
}

/// The digest named by a CertID's hash algorithm.
fn digest_for(oid: &ObjectIdentifier) -> Option<MessageDigest> {
    match oid.to_string().as_str() {
        "1.3.14.3.2.26" => Some(MessageDigest::sha1()),
        "2.16.840.1.101.3.4.2.1" => Some(MessageDigest::sha256()),
        "2.16.840.1.101.3.4.2.2" => Some(MessageDigest::sha384()),
        "2.16.840.1.101.3.4.2.3" => Some(MessageDigest::sha512()),
        _ => None,
    }
}

/// Whether `single` is about `leaf` (issued by `issuer`, when known).
fn names_certificate(
    single: &SingleResponse,
    leaf: &Certificate,
    issuer: Option<&Certificate>,
) -> bool {
    let id = &single.cert_id;
    if id.serial_number != leaf.tbs_certificate.serial_number {
        return false;
    }
    let Some(md) = digest_for(&id.hash_algorithm.oid) else {
        return false;
    };
    let hash = |data: &[u8]| boring::hash::hash(md, data).ok();
    let Ok(issuer_name) = leaf.tbs_certificate.issuer.to_der() else {
        return false;
    };
    if hash(&issuer_name).as_deref() != Some(id.issuer_name_hash.as_bytes()) {
        return false;
    }
    match issuer {
        Some(issuer) => {
            let key = issuer
                .tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes();
            hash(key).as_deref() == Some(id.issuer_key_hash.as_bytes())
        }
        None => true,
    }
}

/// Checks that `basic` was signed by `issuer` or by a responder certificate it carries
/// that `issuer` signed for OCSP signing.
fn check_signature(basic: &BasicOcspResponse, issuer: &X509) -> Result<(), String> {
    let issuer_key = issuer
        .public_key()
        .map_err(|e| format!("cannot read the issuer's key: {e}"))?;
    let signed = basic
        .tbs_response_data
        .to_der()
        .map_err(|e| format!("cannot encode the response data: {e}"))?;
    let signature = basic
        .signature
        .as_bytes()
        .ok_or("the response's signature is not whole bytes")?;
    let alg = &basic.signature_algorithm.oid;
    if verify(alg, &issuer_key, &signed, signature)? {
        return Ok(());
    }
    for cert in basic.certs.iter().flatten() {
        if let Some(key) = delegated_responder_key(cert, issuer, &issuer_key) {
            if verify(alg, &key, &signed, signature)? {
                return Ok(());
            }
        }
    }
    Err(
        "the response's signature does not verify with the issuer's key or a responder \
         certificate it signed"
            .into(),
    )
}

/// The key of `cert` when `issuer` signed it and it may sign OCSP responses.
fn delegated_responder_key(
    cert: &Certificate,
    issuer: &X509,
    issuer_key: &PKey<Public>,
) -> Option<PKey<Public>> {
    let eku = cert.tbs_certificate.get::<ExtendedKeyUsage>().ok()??.1;
    if !eku.0.contains(&OID_KP_OCSP_SIGNING) {
        return None;
    }
    let x509 = X509::from_der(&cert.to_der().ok()?).ok()?;
    if issuer.issued(&x509).is_err() || !x509.verify(issuer_key).ok()? {
        return None;
    }
    x509.public_key().ok()
}

/// Verifies `signature` over `data` with `key` by the algorithm `alg`.
fn verify(
    alg: &ObjectIdentifier,
    key: &PKey<Public>,
    data: &[u8],
    signature: &[u8],
) -> Result<bool, String> {
    let digest = match alg.to_string().as_str() {
        "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1" => Some(MessageDigest::sha1()),
        "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" => Some(MessageDigest::sha256()),
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => Some(MessageDigest::sha384()),
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => Some(MessageDigest::sha512()),
        "1.3.101.112" => None,
        other => return Err(format!("unsupported signature algorithm {other}")),
    };
    let verifier = match digest {
        Some(md) => Verifier::new(md, key),
        None => Verifier::new_without_digest(key),
    };
    // A key of the wrong type for the algorithm fails here or at verify: not a match.
    let Ok(mut verifier) = verifier else {
        return Ok(false);
    };
    Ok(verifier.verify_oneshot(signature, data).unwrap_or(false))
}

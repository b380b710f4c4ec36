//! OCSP responses minted for tests (RFC 6960 basic responses signed by the test CA), so
//! that stapling can be tested with fresh, expired, revoked and mismatched responses.

use std::time::{Duration, SystemTime};

use boring::hash::{hash, MessageDigest};
use boring::pkey::PKey;
use boring::sign::Signer;
use boring::x509::X509;
use der::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspResponse, OcspResponseStatus,
    ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse, Version,
};

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");

/// What an OCSP response says about a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspCertStatus {
    /// Not revoked.
    Good,
    /// Revoked (an hour before `this_update`).
    Revoked,
    /// Unknown to the responder.
    Unknown,
}

/// The content of a minted OCSP response.
#[derive(Debug, Clone, Copy)]
pub struct OcspSpec {
    /// The certificate's status.
    pub status: OcspCertStatus,
    /// When the status was known to be correct.
    pub this_update: SystemTime,
    /// When newer information will be available (the response's expiry).
    pub next_update: Option<SystemTime>,
}

impl OcspSpec {
    /// `good`, from an hour ago until a day from now.
    pub fn fresh() -> OcspSpec {
        let now = SystemTime::now();
        OcspSpec {
            status: OcspCertStatus::Good,
            this_update: now - Duration::from_secs(3600),
            next_update: Some(now + Duration::from_secs(86_400)),
        }
    }

    /// `good`, but its `next_update` was an hour ago.
    pub fn expired() -> OcspSpec {
        let now = SystemTime::now();
        OcspSpec {
            status: OcspCertStatus::Good,
            this_update: now - Duration::from_secs(2 * 86_400),
            next_update: Some(now - Duration::from_secs(3600)),
        }
    }
}

fn pem_to_cert(pem: &str) -> (X509, Certificate) {
    let x509 = X509::from_pem(pem.as_bytes()).unwrap_or_else(|e| panic!("bad PEM: {e}"));
    let der = x509.to_der().unwrap_or_else(|e| panic!("DER: {e}"));
    let parsed = Certificate::from_der(&der).unwrap_or_else(|e| panic!("parse: {e}"));
    (x509, parsed)
}

fn time(t: SystemTime) -> OcspGeneralizedTime {
    let since = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_else(|e| panic!("time before 1970: {e}"));
    // GeneralizedTime has whole seconds in DER.
    let whole = Duration::from_secs(since.as_secs());
    OcspGeneralizedTime(
        GeneralizedTime::from_unix_duration(whole).unwrap_or_else(|e| panic!("time: {e}")),
    )
}

fn sha1(data: &[u8]) -> OctetString {
    let digest = hash(MessageDigest::sha1(), data).unwrap_or_else(|e| panic!("sha1: {e}"));
    OctetString::new(digest.to_vec()).unwrap_or_else(|e| panic!("octets: {e}"))
}

/// A DER OCSP response about `leaf_pem` signed with the CA's key.
pub(crate) fn response(ca_pem: &str, ca_key_pem: &str, leaf_pem: &str, spec: &OcspSpec) -> Vec<u8> {
    let (_, ca) = pem_to_cert(ca_pem);
    let (_, leaf) = pem_to_cert(leaf_pem);
    let ca_key_bits = ca
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let issuer_name = leaf
        .tbs_certificate
        .issuer
        .to_der()
        .unwrap_or_else(|e| panic!("issuer: {e}"));
    let cert_id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: OID_SHA1,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: sha1(&issuer_name),
        issuer_key_hash: sha1(ca_key_bits),
        serial_number: leaf.tbs_certificate.serial_number.clone(),
    };
    let cert_status = match spec.status {
        OcspCertStatus::Good => CertStatus::good(),
        OcspCertStatus::Unknown => CertStatus::unknown(),
        OcspCertStatus::Revoked => CertStatus::revoked(RevokedInfo {
            revocation_time: time(spec.this_update - Duration::from_secs(3600)),
            revocation_reason: None,
        }),
    };
    let data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(sha1(ca_key_bits)),
        produced_at: time(SystemTime::now()),
        responses: vec![SingleResponse {
            cert_id,
            cert_status,
            this_update: time(spec.this_update),
            next_update: spec.next_update.map(time),
            single_extensions: None,
        }],
        response_extensions: None,
    };
    let tbs = data.to_der().unwrap_or_else(|e| panic!("encode: {e}"));
    let key =
        PKey::private_key_from_pem(ca_key_pem.as_bytes()).unwrap_or_else(|e| panic!("CA key: {e}"));
    let mut signer =
        Signer::new(MessageDigest::sha256(), &key).unwrap_or_else(|e| panic!("signer: {e}"));
    let signature = signer
        .sign_oneshot_to_vec(&tbs)
        .unwrap_or_else(|e| panic!("sign: {e}"));
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: OID_ECDSA_SHA256,
            parameters: None,
        },
        signature: BitString::from_bytes(&signature).unwrap_or_else(|e| panic!("bits: {e}")),
        certs: None,
    };
    let basic_der = basic.to_der().unwrap_or_else(|e| panic!("encode: {e}"));
    OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: OID_OCSP_BASIC,
            response: OctetString::new(basic_der).unwrap_or_else(|e| panic!("octets: {e}")),
        }),
    }
    .to_der()
    .unwrap_or_else(|e| panic!("encode: {e}"))
}

//! [`RequestIds`]: one id per request, accepted from a trusted proxy or generated
//! (UUID v7: time-ordered, so ids sort by creation time in logs and indexes).

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName};
use http::HeaderValue;

use super::client_ip::TrustedProxies;

/// The longest incoming id believed; a longer one is replaced.
pub const MAX_ID_LEN: usize = 200;

/// Request ids carried in the header `header`.
#[derive(Debug, Clone)]
pub struct RequestIds {
    header: HeaderName,
    trusted: TrustedProxies,
}

impl RequestIds {
    /// Ids in `header`, believed when they come from `trusted` peers.
    pub fn new(header: HeaderName, trusted: TrustedProxies) -> Self {
        RequestIds { header, trusted }
    }

    /// The header carrying the id.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The id of a request from `peer` (the socket peer) with `headers`: the incoming
    /// one when `peer` is trusted and it is 1 to [`MAX_ID_LEN`] visible characters,
    /// else a new one.
    pub fn resolve(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> HeaderValue {
        if self.trusted.trusts(peer) {
            if let Some(v) = headers.get(&self.header) {
                let ok = !v.is_empty()
                    && v.len() <= MAX_ID_LEN
                    && v.as_bytes().iter().all(|b| b.is_ascii_graphic());
                if ok {
                    return v.clone();
                }
            }
        }
        generate()
    }
}

/// A new id: a UUID v7 in its hyphenated lowercase form.
pub fn generate() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_uuid_v7_and_ordered() {
        let a = generate();
        let b = generate();
        let parsed = uuid::Uuid::parse_str(a.to_str().unwrap()).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert!(a.to_str().unwrap() < b.to_str().unwrap() || a == b);
    }

    #[test]
    fn incoming_ids_only_from_trusted_peers() {
        let ids = RequestIds::new(
            HeaderName::from_static("x-request-id"),
            TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]),
        );
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(
            ids.resolve(Some("10.0.0.1".parse().unwrap()), &h),
            "abc-123"
        );
        assert_ne!(ids.resolve(Some("1.2.3.4".parse().unwrap()), &h), "abc-123");
        h.insert("x-request-id", HeaderValue::from_static("has space"));
        assert_ne!(
            ids.resolve(Some("10.0.0.1".parse().unwrap()), &h),
            "has space"
        );
    }
}

//! Header rules of a proxy: hop-by-hop headers stay on their hop, `X-Forwarded-For` grows.
//!
//! Both run on every proxied request (and the first on every response), so they are
//! written to cost nothing beyond one pass over the header names when there is nothing
//! to do: no hashing of the seven hop-by-hop names, no allocation.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1); a set of
/// them is a bit mask of their positions here (see [`hop_by_hop_bit`]).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("proxy-connection"),
];
const CONNECTION_BIT: u8 = 1;
const UPGRADE_BIT: u8 = 1 << 5;

/// The bit of `name` in a set of [`HOP_BY_HOP`] names; 0 when it is not one of them.
fn hop_by_hop_bit(name: &HeaderName) -> u8 {
    match name.as_str() {
        "connection" => CONNECTION_BIT,
        "keep-alive" => 1 << 1,
        "te" => 1 << 2,
        "trailer" => 1 << 3,
        "transfer-encoding" => 1 << 4,
        "upgrade" => UPGRADE_BIT,
        "proxy-connection" => 1 << 6,
        _ => 0,
    }
}

/// Removes hop-by-hop headers: `Connection` and every header it names, `Keep-Alive`,
/// `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade` and `Proxy-Connection`.
/// With `tunnel`, `Upgrade` is kept and `Connection: upgrade` is set, for a WebSocket-style
/// upgrade that is being passed through.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, tunnel: bool) {
    let present = headers
        .keys()
        .fold(0u8, |set, name| set | hop_by_hop_bit(name));
    if present == 0 {
        return;
    }
    if present & CONNECTION_BIT != 0 {
        if let Some(named) = connection_named_headers(headers) {
            for name in named {
                if !(tunnel && name == header::UPGRADE) {
                    headers.remove(&name);
                }
            }
        }
    }
    let upgrade = if tunnel && present & UPGRADE_BIT != 0 {
        headers.remove(header::UPGRADE)
    } else {
        None
    };
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if let Some(u) = upgrade {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The header names listed in `Connection`, other than the standard tokens.
fn connection_named_headers(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut out: Option<Vec<HeaderName>> = None;
    for v in headers.get_all(header::CONNECTION) {
        let Ok(s) = v.to_str() else { continue };
        for token in s.split(',') {
            let token = token.trim();
            if token.is_empty()
                || token.eq_ignore_ascii_case("close")
                || token.eq_ignore_ascii_case("keep-alive")
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                out.get_or_insert_with(Vec::new).push(name);
            }
        }
    }
    out
}

/// Appends `client` to `X-Forwarded-For`, merging repeated headers into one.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: std::net::IpAddr) {
    append_forwarded_for_value(headers, &forwarded_for_value(client));
}

/// `client` as a header value, for [`append_forwarded_for_value`]: make it once per
/// client connection, clone it (cheaply) for each request.
pub fn forwarded_for_value(client: std::net::IpAddr) -> HeaderValue {
    use std::io::Write;
    // The longest text of an IP address (IPv6 with an embedded IPv4) is 45 bytes.
    let mut text = [0u8; 48];
    let mut w = &mut text[..];
    let _ = write!(w, "{client}");
    let left = w.len();
    let len = text.len() - left;
    HeaderValue::from_bytes(&text[..len]).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Appends `client` (an address made by [`forwarded_for_value`]) to `X-Forwarded-For`,
/// merging repeated headers into one. Without an earlier header it is a clone of
/// `client`: no formatting, no allocation.
pub fn append_forwarded_for_value(headers: &mut HeaderMap, client: &HeaderValue) {
    let mut earlier = headers.get_all(&X_FORWARDED_FOR).iter();
    if earlier.next().is_none() {
        headers.insert(X_FORWARDED_FOR, client.clone());
        return;
    }
    let mut value = Vec::new();
    for v in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(s) = v.to_str() {
            if !value.is_empty() {
                value.extend_from_slice(b", ");
            }
            value.extend_from_slice(s.as_bytes());
        }
    }
    if !value.is_empty() {
        value.extend_from_slice(b", ");
    }
    value.extend_from_slice(client.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&value) {
        headers.insert(X_FORWARDED_FOR, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_hop_by_hop_and_named() {
        let mut h = map(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("host", "example.com"),
            ("x-keep", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["host", "x-keep"]);
    }

    #[test]
    fn tunnel_keeps_upgrade() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("host", "a"),
        ]);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn appends_forwarded_for() {
        let mut h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
        ]);
        append_forwarded_for(&mut h, "10.0.0.1".parse().unwrap());
        assert_eq!(
            h.get("x-forwarded-for").unwrap(),
            "1.1.1.1, 2.2.2.2, 10.0.0.1"
        );
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "::1".parse().unwrap());
        assert_eq!(h.get("x-forwarded-for").unwrap(), "::1");
    }

    #[test]
    fn forwarded_for_value_is_reused_as_is() {
        let longest: std::net::IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap();
        assert_eq!(
            forwarded_for_value(longest),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        let client = forwarded_for_value("10.0.0.1".parse().unwrap());
        let mut h = map(&[("host", "a")]);
        append_forwarded_for_value(&mut h, &client);
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1");
        append_forwarded_for_value(&mut h, &client);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1, 10.0.0.1");
    }

    #[test]
    fn every_hop_by_hop_name_has_its_own_bit() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_bit(name), 1 << i, "{name}");
            let mut h = map(&[(name.as_str(), "x"), ("x-keep", "1")]);
            strip_hop_by_hop(&mut h, false);
            let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
            assert_eq!(left, ["x-keep"], "{name}");
        }
        assert_eq!(hop_by_hop_bit(&header::CONTENT_TYPE), 0);
        let mut h = map(&[("host", "a"), ("x-a", "1")]);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.len(), 2);
    }
}

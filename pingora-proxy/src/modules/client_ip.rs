//! [`TrustedProxies`]: whose `X-Forwarded-For` (and request id) is believed, and so
//! which address is the client's.

use std::net::IpAddr;

use http::header::HeaderMap;
use pingora_config::IpNet;

/// The networks of proxies in front of this one. A request from one of them has its
/// client taken from `X-Forwarded-For`: the rightmost address that is not itself a
/// trusted proxy (all trusted: the leftmost). From anyone else, the socket peer is the
/// client. Empty: nobody is trusted.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trusting the proxies in `nets`.
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies { nets }
    }

    /// Whether nobody is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| self.nets.iter().any(|n| n.contains(ip)))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        // Later headers were added by proxies nearer to us: walk from the right.
        let values = headers.get_all("x-forwarded-for");
        for value in values.iter().rev().filter_map(|v| v.to_str().ok()) {
            for item in value.rsplit(',') {
                let Some(ip) = parse_forwarded_ip(item.trim()) else {
                    // A garbled hop: believe nothing further left.
                    return client;
                };
                client = Some(ip);
                if !self.trusts(Some(ip)) {
                    return client;
                }
            }
        }
        client
    }
}

/// An address as proxies write it in `X-Forwarded-For` (`1.2.3.4`, `::1`, `[::1]`).
fn parse_forwarded_ip(text: &str) -> Option<IpAddr> {
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.split_once(']').map(|(a, _)| a))
        .unwrap_or(text);
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn believes_only_trusted_peers() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 1.2.3.4"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.9"));
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(trusted.client_ip(ip("10.1.1.1"), &h), ip("1.2.3.4"));
        assert_eq!(trusted.client_ip(ip("8.8.8.8"), &h), ip("8.8.8.8"));
        assert_eq!(
            TrustedProxies::default().client_ip(ip("10.1.1.1"), &h),
            ip("10.1.1.1")
        );
        let mut garbled = HeaderMap::new();
        garbled.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1, junk"));
        assert_eq!(trusted.client_ip(ip("10.1.1.1"), &garbled), ip("10.1.1.1"));
    }
}

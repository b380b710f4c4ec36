//! [`AccessList`]: which clients may send requests, by address and, optionally, by TLS
//! client certificate.

use std::net::IpAddr;

use pingora_config::IpNet;
use pingora_core::protocols::tls::ClientCertInfo;

/// Allowed and denied networks: an address in `deny` is refused; otherwise, with an
/// empty `allow` every address may, else only those in `allow`.
///
/// A client without an IP address (a unix-socket peer) is allowed only when `allow`
/// is empty. With [`AccessList::require_client_cert`], a client must also have
/// presented a TLS certificate that verified.
#[derive(Debug, Clone, Default)]
pub struct AccessList {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    client_cert: bool,
}

impl AccessList {
    /// A list allowing `allow` (all when empty) except `deny`.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        AccessList {
            allow,
            deny,
            client_cert: false,
        }
    }

    /// Also requires a verified TLS client certificate (`client_cert: required`).
    pub fn require_client_cert(mut self, required: bool) -> Self {
        self.client_cert = required;
        self
    }

    /// Whether a verified client certificate is required.
    pub fn requires_client_cert(&self) -> bool {
        self.client_cert
    }

    /// Whether the client at `ip`, with the client certificate `cert` (on a listener
    /// that asks for one), may send requests.
    pub fn allows_client(&self, ip: Option<IpAddr>, cert: Option<&ClientCertInfo>) -> bool {
        if self.client_cert && !cert.is_some_and(ClientCertInfo::verified) {
            return false;
        }
        self.allows(ip)
    }

    /// Whether the client at `ip` may send requests.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else {
            return self.allow.is_empty();
        };
        if self.deny.iter().any(|n| n.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn deny_wins_and_no_allow_is_all() {
        let list = AccessList::new(nets(&["10.0.0.0/8", "::1"]), nets(&["10.9.0.0/16"]));
        let ip = |s: &str| Some(s.parse().unwrap());
        assert!(list.allows(ip("10.1.2.3")));
        assert!(!list.allows(ip("10.9.1.1")));
        assert!(list.allows(ip("::1")));
        assert!(list.allows(ip("::ffff:10.0.0.1")));
        assert!(!list.allows(ip("192.168.0.1")));
        assert!(!list.allows(None));
        let deny_only = AccessList::new(vec![], nets(&["127.0.0.1"]));
        assert!(!deny_only.allows(ip("127.0.0.1")));
        assert!(deny_only.allows(ip("127.0.0.2")));
        assert!(deny_only.allows(None));
    }

    #[test]
    fn client_cert_required() {
        use pingora_core::protocols::tls::ClientCertVerify;
        let list = AccessList::new(vec![], vec![]).require_client_cert(true);
        let ip = Some("10.1.2.3".parse().unwrap());
        let ok = ClientCertInfo::new(ClientCertVerify::Success, Some("CN=a".into()));
        let none = ClientCertInfo::new(ClientCertVerify::None, None);
        let bad = ClientCertInfo::new(ClientCertVerify::Failed("x".into()), None);
        assert!(list.allows_client(ip, Some(&ok)));
        assert!(!list.allows_client(ip, Some(&none)));
        assert!(!list.allows_client(ip, Some(&bad)));
        assert!(!list.allows_client(ip, None));
        let open = AccessList::new(vec![], vec![]);
        assert!(open.allows_client(ip, None));
    }
}

//! [`AccessList`]: which client addresses may send requests.

use std::net::IpAddr;

use pingora_config::IpNet;

/// Allowed and denied networks: an address in `deny` is refused; otherwise, with an
/// empty `allow` every address may, else only those in `allow`.
///
/// A client without an IP address (a unix-socket peer) is allowed only when `allow`
/// is empty.
#[derive(Debug, Clone, Default)]
pub struct AccessList {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl AccessList {
    /// A list allowing `allow` (all when empty) except `deny`.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        AccessList { allow, deny }
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
}

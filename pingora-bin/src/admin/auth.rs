//! Who may do what on the admin endpoint: the bearer token of `admin.token_file`,
//! loopback clients, and no cross-site POSTs.

use http::header::{AUTHORIZATION, HOST, ORIGIN};
use http::{Method, StatusCode};
use pingora_core::protocols::http::RequestHeader;
use pingora_core::protocols::ClientAddr;

/// The access rule of the admin endpoint.
pub struct Access {
    /// The bearer token; `None`: no token configured.
    token: Option<String>,
}

/// Why a request is refused, and the status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No or a wrong bearer token (401).
    Token,
    /// A POST from off loopback without a configured token (403).
    NotLoopback,
    /// A POST whose `Origin` is another site than the admin endpoint (403).
    CrossSite,
}

impl Refusal {
    /// The status answered.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Token => StatusCode::UNAUTHORIZED,
            Refusal::NotLoopback | Refusal::CrossSite => StatusCode::FORBIDDEN,
        }
    }

    /// The body answered.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Token => {
                "401 Unauthorized: send Authorization: Bearer <token of admin.token_file>\n"
            }
            Refusal::NotLoopback => {
                "403 Forbidden: without admin.token_file, changes are accepted from loopback only\n"
            }
            Refusal::CrossSite => "403 Forbidden: a request from another site's page\n",
        }
    }
}

/// Whether the client is on this machine: loopback, or a unix-socket client (whom the
/// socket file's permissions already let in).
pub fn is_local(client: &ClientAddr) -> bool {
    match client.ip() {
        None => true,
        Some(std::net::IpAddr::V4(v4)) => v4.is_loopback(),
        Some(std::net::IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl Access {
    /// The rule for `token` (from `admin.token_file`, if set).
    pub fn new(token: Option<String>) -> Self {
        Access { token }
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Checks `req` from `client`: with a token, every POST and every request from off
    /// loopback needs it; without, POSTs only from loopback. A POST is also refused
    /// when it comes from another site's page (its `Origin` names another host), so
    /// that a web page cannot drive the endpoint through an operator's browser.
    pub fn check(&self, req: &RequestHeader, client: &ClientAddr) -> Result<(), Refusal> {
        let changes = req.method != Method::GET && req.method != Method::HEAD;
        if changes && is_cross_site(req) {
            return Err(Refusal::CrossSite);
        }
        match &self.token {
            Some(token) if changes || !is_local(client) => {
                if bearer(req).is_some_and(|given| same_secret(given, token)) {
                    Ok(())
                } else {
                    Err(Refusal::Token)
                }
            }
            Some(_) => Ok(()),
            None if changes && !is_local(client) => Err(Refusal::NotLoopback),
            None => Ok(()),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(req: &RequestHeader) -> Option<&str> {
    let value = req.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares in time independent of where the first difference is.
fn same_secret(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for (i, &t) in b.iter().enumerate() {
        diff |= a.get(i).copied().unwrap_or(0) ^ t;
    }
    diff == 0
}

/// An `Origin` header whose host differs from the `Host` the request was sent to.
fn is_cross_site(req: &RequestHeader) -> bool {
    let Some(origin) = req.headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    let host = req.headers.get(HOST).and_then(|v| v.to_str().ok());
    host.is_none_or(|h| !h.eq_ignore_ascii_case(origin_host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, headers: &[(&'static str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::new(method, http::Uri::from_static("/x"));
        for (k, v) in headers {
            r.headers.insert(*k, v.parse().unwrap());
        }
        r
    }

    const LOCAL: ClientAddr = ClientAddr::Tcp(std::net::SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        5000,
    ));
    const REMOTE: ClientAddr = ClientAddr::Tcp(std::net::SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)),
        5000,
    ));

    #[test]
    fn without_a_token_posts_come_from_loopback_only() {
        let open = Access::new(None);
        assert_eq!(open.check(&req(Method::GET, &[]), &REMOTE), Ok(()));
        assert_eq!(open.check(&req(Method::POST, &[]), &LOCAL), Ok(()));
        assert_eq!(
            open.check(&req(Method::POST, &[]), &ClientAddr::Unix),
            Ok(())
        );
        assert_eq!(
            open.check(&req(Method::POST, &[]), &REMOTE),
            Err(Refusal::NotLoopback)
        );
    }

    #[test]
    fn with_a_token_posts_and_remote_gets_need_it() {
        let locked = Access::new(Some("s3cret".into()));
        let good = [("authorization", "Bearer s3cret")];
        assert_eq!(locked.check(&req(Method::GET, &[]), &LOCAL), Ok(()));
        assert_eq!(
            locked.check(&req(Method::GET, &[]), &REMOTE),
            Err(Refusal::Token)
        );
        assert_eq!(locked.check(&req(Method::GET, &good), &REMOTE), Ok(()));
        assert_eq!(
            locked.check(&req(Method::POST, &[]), &LOCAL),
            Err(Refusal::Token)
        );
        assert_eq!(locked.check(&req(Method::POST, &good), &REMOTE), Ok(()));
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"] {
            let r = req(Method::POST, &[("authorization", wrong)]);
            assert_eq!(locked.check(&r, &LOCAL), Err(Refusal::Token), "{wrong}");
        }
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let open = Access::new(None);
        let same = [
            ("host", "127.0.0.1:9901"),
            ("origin", "http://127.0.0.1:9901"),
        ];
        let other = [
            ("host", "127.0.0.1:9901"),
            ("origin", "https://evil.example"),
        ];
        assert_eq!(open.check(&req(Method::POST, &same), &LOCAL), Ok(()));
        assert_eq!(
            open.check(&req(Method::POST, &other), &LOCAL),
            Err(Refusal::CrossSite)
        );
        assert_eq!(open.check(&req(Method::GET, &other), &LOCAL), Ok(()));
    }
}

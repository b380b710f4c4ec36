//! [`RetryRule`]: which failures of an attempt are retried on another peer, how many
//! times, and how long one attempt may take (the `retry:` of an upstream in the YAML).
//!
//! The proxy applies it with these limits, whatever the rule says (see
//! `docs/proxy-behaviour.md`, "Retries"):
//! - a retry goes to **another peer**: `upstream_peer` is asked again and must name an
//!   address that has not failed during this request;
//! - a request whose body was partly sent, and a request with a non-idempotent method
//!   (anything but GET, HEAD, OPTIONS, TRACE, PUT and DELETE), is retried only after a
//!   connect failure (nothing reached the upstream then);
//! - nothing is retried once the response started towards the client;
//! - the server's `max_retries` caps [`RetryRule::retries`].

use std::time::Duration;

use http::{Method, StatusCode};
use pingora_core::{Error, ErrorKind, Side};

/// One kind of failure a [`RetryRule`] may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// The connection could not be made (refused, unreachable, connect timeout, TLS
    /// handshake). Nothing was sent, so this one is retried for every request.
    ConnectFailure,
    /// The upstream was too slow: a connect, read or write timeout, or the rule's
    /// per-try timeout, before the response head arrived.
    Timeout,
    /// The upstream reset or closed the connection before the response head arrived.
    Reset,
    /// The upstream answered with this status (4xx or 5xx; others are never retried).
    /// The response head is read and dropped; the client sees only the retry's answer,
    /// or this response when there is no retry left or no other peer.
    Status(StatusCode),
}

/// Which failures are retried on another peer, at most how many times, and the time
/// bound of each attempt. `Copy`, no allocation: the statuses are a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRule {
    connect_failure: bool,
    timeout: bool,
    reset: bool,
    /// One bit per status from 400 to 599.
    statuses: [u64; 4],
    retries: usize,
    per_try_timeout: Option<Duration>,
}

/// The first status of [`RetryRule::statuses`].
const FIRST_STATUS: u16 = 400;
/// The last status of [`RetryRule::statuses`].
const LAST_STATUS: u16 = 599;

impl RetryRule {
    /// A rule retrying at most `retries` times, on nothing yet: add failures with
    /// [`RetryRule::on`].
    pub fn new(retries: usize) -> Self {
        RetryRule {
            connect_failure: false,
            timeout: false,
            reset: false,
            statuses: [0; 4],
            retries,
            per_try_timeout: None,
        }
    }

    /// Retries `failure` too. A status outside 400-599 is ignored.
    pub fn on(mut self, failure: RetryOn) -> Self {
        match failure {
            RetryOn::ConnectFailure => self.connect_failure = true,
            RetryOn::Timeout => self.timeout = true,
            RetryOn::Reset => self.reset = true,
            RetryOn::Status(status) => {
                if let Some((word, bit)) = status_bit(status) {
                    self.statuses[word] |= bit;
                }
            }
        }
        self
    }

    /// Bounds each attempt: from asking for a connection until the response head
    /// arrived. An attempt over it fails as a [`RetryOn::Timeout`].
    pub fn per_try_timeout(mut self, timeout: Duration) -> Self {
        self.per_try_timeout = Some(timeout);
        self
    }

    /// The most retries (the server's `max_retries` caps it too).
    pub fn retries(&self) -> usize {
        self.retries
    }

    /// The time bound of one attempt, if any.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.per_try_timeout
    }

    /// Whether the rule lists `failure`.
    pub fn retries_on(&self, failure: RetryOn) -> bool {
        match failure {
            RetryOn::ConnectFailure => self.connect_failure,
            RetryOn::Timeout => self.timeout,
            RetryOn::Reset => self.reset,
            RetryOn::Status(status) => {
                status_bit(status).is_some_and(|(word, bit)| self.statuses[word] & bit != 0)
            }
        }
    }

    /// Whether the rule lists a status at all (then response heads are looked at).
    pub fn has_statuses(&self) -> bool {
        self.statuses.iter().any(|w| *w != 0)
    }

    /// The rule's verdict on a failed connect: listed as a connect failure (or, for a
    /// connect timeout, as a timeout).
    pub fn retries_connect_error(&self, e: &Error) -> bool {
        self.connect_failure || (self.timeout && e.kind == ErrorKind::ConnectTimeout)
    }

    /// The rule's verdict on a failure of an attempt on an established connection:
    /// whether what happened is listed.
    pub fn retries_exchange_error(&self, e: &Error) -> bool {
        if e.side != Side::Upstream {
            return false;
        }
        match e.kind {
            ErrorKind::ReadTimeout | ErrorKind::WriteTimeout | ErrorKind::ConnectTimeout => {
                self.timeout
            }
            ErrorKind::ConnectionReset | ErrorKind::ConnectionClosed => self.reset,
            ErrorKind::HttpStatus(status) => self.retries_on(RetryOn::Status(status)),
            _ => false,
        }
    }
}

/// Whether a request with `method` may be sent twice (RFC 9110, 9.2.2): GET, HEAD,
/// OPTIONS, TRACE, PUT, DELETE.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The word and bit of `status` in [`RetryRule::statuses`].
fn status_bit(status: StatusCode) -> Option<(usize, u64)> {
    let code = status.as_u16();
    if !(FIRST_STATUS..=LAST_STATUS).contains(&code) {
        return None;
    }
    let i = usize::from(code - FIRST_STATUS);
    Some((i / 64, 1u64 << (i % 64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[test]
    fn lists_what_it_was_given() {
        let rule = RetryRule::new(2)
            .on(RetryOn::Reset)
            .on(RetryOn::Status(status(503)))
            .on(RetryOn::Status(status(599)))
            .on(RetryOn::Status(status(400)))
            .on(RetryOn::Status(status(200)));
        assert!(rule.retries_on(RetryOn::Reset));
        assert!(!rule.retries_on(RetryOn::Timeout));
        assert!(!rule.retries_on(RetryOn::ConnectFailure));
        for code in [400, 503, 599] {
            assert!(rule.retries_on(RetryOn::Status(status(code))), "{code}");
        }
        for code in [200, 401, 502, 504] {
            assert!(!rule.retries_on(RetryOn::Status(status(code))), "{code}");
        }
        assert!(rule.has_statuses());
        assert!(!RetryRule::new(1).on(RetryOn::Reset).has_statuses());
        assert_eq!(rule.retries(), 2);
    }

    #[test]
    fn classifies_errors() {
        let up = |kind| Error::new(kind, Side::Upstream, "t");
        let all = RetryRule::new(1)
            .on(RetryOn::Timeout)
            .on(RetryOn::Reset)
            .on(RetryOn::Status(status(503)));
        let cases: &[(Error, bool, &str)] = &[
            (up(ErrorKind::ReadTimeout), true, "read timeout"),
            (up(ErrorKind::WriteTimeout), true, "write timeout"),
            (up(ErrorKind::ConnectionReset), true, "reset"),
            (up(ErrorKind::ConnectionClosed), true, "closed early"),
            (
                up(ErrorKind::HttpStatus(status(503))),
                true,
                "listed status",
            ),
            (
                up(ErrorKind::HttpStatus(status(502))),
                false,
                "other status",
            ),
            (up(ErrorKind::InvalidHead), false, "garbled head"),
            (
                Error::new(ErrorKind::ReadTimeout, Side::Downstream, "t"),
                false,
                "the client's timeout",
            ),
        ];
        for (e, want, name) in cases {
            assert_eq!(all.retries_exchange_error(e), *want, "{name}");
        }
        let none = RetryRule::new(1);
        assert!(!none.retries_exchange_error(&up(ErrorKind::ConnectionReset)));
        assert!(!none.retries_connect_error(&up(ErrorKind::ConnectRefused)));
        let timeout_only = RetryRule::new(1).on(RetryOn::Timeout);
        assert!(timeout_only.retries_connect_error(&up(ErrorKind::ConnectTimeout)));
        assert!(!timeout_only.retries_connect_error(&up(ErrorKind::ConnectRefused)));
        let connect = RetryRule::new(1).on(RetryOn::ConnectFailure);
        assert!(connect.retries_connect_error(&up(ErrorKind::ConnectRefused)));
        assert!(!connect.retries_exchange_error(&up(ErrorKind::ConnectionReset)));
    }

    #[test]
    fn idempotent_methods() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(is_idempotent(&m.parse().unwrap()), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "PURGE"] {
            assert!(!is_idempotent(&m.parse().unwrap()), "{m}");
        }
    }
}

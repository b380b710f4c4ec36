//! The retry policy of one request: after a failed attempt, whether to make another
//! and how. Pure state and decisions (no sockets, no clock), so every rule is checked by
//! the table tests below.
//!
//! The rules (docs/proxy-behaviour.md, "Retries"):
//! - A failed attempt is retried only on **another peer**: the routing
//!   (`upstream_peer`) is asked again, and if it names an address that failed during
//!   this request, there is no other peer and the request ends with its last attempt
//!   (its error, or the response whose status was to be retried). A refused or
//!   unreachable address is never tried again at once: that cannot help, and waiting
//!   would hold the client.
//! - A failure is retried only when its error says so (`Error::retry`: set by the
//!   retry rule or, without one, by the connector for connect failures; then
//!   `fail_to_connect` / `error_while_proxy` may change it).
//! - Whatever the error says, only a connect failure is retried for a request whose
//!   body was partly sent or whose method is not idempotent, and nothing is retried
//!   once the response started towards the client or for a failure that is not the
//!   upstream's.
//! - Resent without counting as a failure of the peer: an HTTP/2 stream the upstream
//!   did not process (GOAWAY, REFUSED_STREAM) if no request body was taken yet (after a
//!   second refusal, on a new connection); a pooled connection found dead (no byte of
//!   the response received, no request body taken), once, on a new connection, without
//!   counting as a retry.
//! - `max_retries`, lowered by the rule's `retries`, caps every retry but the last one.

use pingora_core::{ErrorKind, Side};

/// What to do after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Ask the routing for a peer again and make another attempt.
    Retry,
    /// Stop: the request ends with this attempt.
    GiveUp,
}

/// Whether the peer the routing chose may be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerChoice {
    /// Connect to it.
    Try,
    /// An attempt on the same address failed during this request: the routing has no
    /// other peer to offer.
    NoOtherPeer,
}

/// How an attempt on an established connection failed, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExchangeFailure {
    /// The error's kind.
    pub kind: ErrorKind,
    /// Which side the error came from.
    pub side: Side,
    /// The connection came from the keep-alive pool.
    pub reused: bool,
    /// Some of the response was received on it.
    pub received_any: bool,
    /// Some of the request body was taken from the client (it cannot be sent again).
    pub body_started: bool,
    /// A response head went to the client.
    pub response_started: bool,
    /// The request's method may be sent twice.
    pub idempotent: bool,
    /// The error's verdict (`Error::retry`, after the rule and `error_while_proxy`).
    pub retry: bool,
}

/// The retry state of one request. `A` is the peer address type (compared to tell
/// peers apart).
#[derive(Debug)]
pub(crate) struct RetryPolicy<A> {
    max_retries: usize,
    retries: usize,
    attempts: usize,
    allow_reuse: bool,
    refused_before: bool,
    /// Addresses an attempt failed on during this request (empty unless one failed:
    /// no allocation on the way of a request that succeeds at once).
    failed: Vec<A>,
}

impl<A: PartialEq> RetryPolicy<A> {
    /// A request's policy, with at most `max_retries` retries.
    pub(crate) fn new(max_retries: usize) -> Self {
        RetryPolicy {
            max_retries,
            retries: 0,
            attempts: 0,
            allow_reuse: true,
            refused_before: false,
            failed: Vec::new(),
        }
    }

    /// Lowers the cap to `retries` (the retry rule's), if that is lower.
    pub(crate) fn limit_retries(&mut self, retries: usize) {
        self.max_retries = self.max_retries.min(retries);
    }

    /// The routing chose `peer` for the next attempt: whether to try it. Counts the
    /// attempt when it is made.
    pub(crate) fn on_peer(&mut self, peer: &A) -> PeerChoice {
        if self.failed.contains(peer) {
            return PeerChoice::NoOtherPeer;
        }
        self.attempts += 1;
        PeerChoice::Try
    }

    /// Whether the next attempt may take an idle pooled connection.
    pub(crate) fn allow_reuse(&self) -> bool {
        self.allow_reuse
    }

    /// Attempts made so far (connections asked for, pooled or new).
    pub(crate) fn attempts(&self) -> usize {
        self.attempts
    }

    /// Connecting to `peer` failed; `retryable` is the error's verdict (after the rule
    /// and `fail_to_connect`). Nothing was sent: method and body do not matter.
    pub(crate) fn on_connect_error(&mut self, peer: A, retryable: bool) -> Decision {
        if !retryable || self.retries >= self.max_retries {
            return Decision::GiveUp;
        }
        self.retries += 1;
        self.failed.push(peer);
        Decision::Retry
    }

    /// The attempt failed on its connection as `failure` says: whether the connection
    /// is to blame and the request goes again as it is, before anyone judges the
    /// failure (a refused HTTP/2 stream, a pooled connection found dead).
    pub(crate) fn resend(&mut self, failure: &ExchangeFailure) -> Decision {
        if failure.response_started || failure.body_started {
            return Decision::GiveUp;
        }
        if failure.kind == ErrorKind::H2StreamRefused && self.retries < self.max_retries {
            // Not processed by the upstream: safe to send again. The pool no longer
            // offers a connection that got GOAWAY, but it still offers one that refused
            // a stream, which may refuse every retry: after a second refusal, use a new
            // one.
            self.retries += 1;
            if self.refused_before {
                self.allow_reuse = false;
            }
            self.refused_before = true;
            return Decision::Retry;
        }
        if failure.reused
            && self.allow_reuse
            && failure.side == Side::Upstream
            && !failure.received_any
        {
            // The pooled connection was closed by the upstream while idle.
            self.allow_reuse = false;
            return Decision::Retry;
        }
        Decision::GiveUp
    }

    /// The attempt on `peer` failed as `failure` says, and [`RetryPolicy::resend`]
    /// declined: whether to retry on another peer.
    pub(crate) fn on_failure(&mut self, failure: &ExchangeFailure, peer: A) -> Decision {
        let safe = failure.side == Side::Upstream
            && !failure.response_started
            && !failure.body_started
            && failure.idempotent;
        if !failure.retry || !safe || self.retries >= self.max_retries {
            return Decision::GiveUp;
        }
        self.retries += 1;
        self.failed.push(peer);
        Decision::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Decision::{GiveUp, Retry};
    use PeerChoice::{NoOtherPeer, Try};

    /// One step of a request's life, and what the policy must answer.
    #[derive(Debug)]
    enum Step {
        Peer(&'static str, PeerChoice),
        ConnectError(&'static str, bool, Decision),
        Resend(ExchangeFailure, Decision),
        Failure(&'static str, ExchangeFailure, Decision),
        LimitRetries(usize),
    }

    /// A failure of a GET without body, judged retryable, before any response.
    const GET_FAILED: ExchangeFailure = ExchangeFailure {
        kind: ErrorKind::ConnectionReset,
        side: Side::Upstream,
        reused: false,
        received_any: false,
        body_started: false,
        response_started: false,
        idempotent: true,
        retry: true,
    };

    fn failure(kind: ErrorKind, reused: bool, received_any: bool, body: bool) -> ExchangeFailure {
        ExchangeFailure {
            kind,
            reused,
            received_any,
            body_started: body,
            retry: false,
            ..GET_FAILED
        }
    }

    /// Runs `steps` on a fresh policy; checks each answer, then the attempt count and
    /// whether reuse is still allowed.
    fn check(name: &str, max_retries: usize, steps: &[Step], attempts: usize, reuse: bool) {
        let mut policy = RetryPolicy::<&str>::new(max_retries);
        for (i, step) in steps.iter().enumerate() {
            let (got, want) = match step {
                Step::Peer(addr, want) => {
                    (format!("{:?}", policy.on_peer(addr)), format!("{want:?}"))
                }
                Step::ConnectError(addr, retryable, want) => (
                    format!("{:?}", policy.on_connect_error(addr, *retryable)),
                    format!("{want:?}"),
                ),
                Step::Resend(f, want) => (format!("{:?}", policy.resend(f)), format!("{want:?}")),
                Step::Failure(addr, f, want) => (
                    format!("{:?}", policy.on_failure(f, addr)),
                    format!("{want:?}"),
                ),
                Step::LimitRetries(n) => {
                    policy.limit_retries(*n);
                    continue;
                }
            };
            assert_eq!(got, want, "{name}: step {i} {step:?}");
        }
        assert_eq!(policy.attempts(), attempts, "{name}: attempts");
        assert_eq!(policy.allow_reuse(), reuse, "{name}: reuse allowed");
    }

    /// A named life of a request: max_retries, steps, attempts made, reuse allowed.
    type Case<'a> = (&'a str, usize, &'a [Step], usize, bool);

    fn run(cases: &[Case<'_>]) {
        for (name, max, steps, attempts, reuse) in cases {
            check(name, *max, steps, *attempts, *reuse);
        }
    }

    #[test]
    fn connect_failures() {
        use Step::*;
        run(&[
            (
                "a single dead peer is tried once",
                16,
                &[
                    Peer("a", Try),
                    ConnectError("a", true, Retry),
                    Peer("a", NoOtherPeer),
                ],
                1,
                true,
            ),
            (
                "the retry goes to the other peer, which answers",
                16,
                &[
                    Peer("a", Try),
                    ConnectError("a", true, Retry),
                    Peer("b", Try),
                ],
                2,
                true,
            ),
            (
                "two dead peers: each tried once, then no other peer",
                16,
                &[
                    Peer("a", Try),
                    ConnectError("a", true, Retry),
                    Peer("b", Try),
                    ConnectError("b", true, Retry),
                    Peer("a", NoOtherPeer),
                ],
                2,
                true,
            ),
            (
                "three peers, two dead: the third serves",
                16,
                &[
                    Peer("a", Try),
                    ConnectError("a", true, Retry),
                    Peer("b", Try),
                    ConnectError("b", true, Retry),
                    Peer("c", Try),
                ],
                3,
                true,
            ),
            (
                "an error that says retrying cannot help is final",
                16,
                &[Peer("a", Try), ConnectError("a", false, GiveUp)],
                1,
                true,
            ),
            (
                "max_retries caps the peers tried",
                1,
                &[
                    Peer("a", Try),
                    ConnectError("a", true, Retry),
                    Peer("b", Try),
                    ConnectError("b", true, GiveUp),
                ],
                2,
                true,
            ),
            (
                "max_retries 0: never retried",
                0,
                &[Peer("a", Try), ConnectError("a", true, GiveUp)],
                1,
                true,
            ),
            (
                "the rule's retries lower max_retries",
                16,
                &[
                    LimitRetries(2),
                    Peer("a", Try),
                    ConnectError("a", true, Retry),
                    Peer("b", Try),
                    ConnectError("b", true, Retry),
                    Peer("c", Try),
                    ConnectError("c", true, GiveUp),
                ],
                3,
                true,
            ),
            (
                "but never raise it",
                1,
                &[
                    LimitRetries(5),
                    Peer("a", Try),
                    ConnectError("a", true, Retry),
                    Peer("b", Try),
                    ConnectError("b", true, GiveUp),
                ],
                2,
                true,
            ),
        ]);
    }

    #[test]
    fn resent_on_the_connection_s_fault() {
        use Step::*;
        const REFUSED: ExchangeFailure = ExchangeFailure {
            kind: ErrorKind::H2StreamRefused,
            reused: true,
            retry: false,
            ..GET_FAILED
        };
        const DEAD_POOLED: ExchangeFailure = ExchangeFailure {
            kind: ErrorKind::ConnectionClosed,
            reused: true,
            retry: false,
            ..GET_FAILED
        };
        run(&[
            (
                "a dead pooled connection is resent once, on a new connection",
                16,
                &[
                    Peer("a", Try),
                    Resend(DEAD_POOLED, Retry),
                    Peer("a", Try),
                    Resend(DEAD_POOLED, GiveUp),
                ],
                2,
                false,
            ),
            (
                "not when part of the response came",
                16,
                &[
                    Peer("a", Try),
                    Resend(failure(ErrorKind::ConnectionClosed, true, true, false), GiveUp),
                ],
                1,
                true,
            ),
            (
                "not when the request body was taken",
                16,
                &[
                    Peer("a", Try),
                    Resend(failure(ErrorKind::ConnectionClosed, true, false, true), GiveUp),
                ],
                1,
                true,
            ),
            (
                "not on a new connection",
                16,
                &[
                    Peer("a", Try),
                    Resend(failure(ErrorKind::ConnectionClosed, false, false, false), GiveUp),
                ],
                1,
                true,
            ),
            (
                "not for a client-side failure",
                16,
                &[
                    Peer("a", Try),
                    Resend(
                        ExchangeFailure {
                            side: Side::Downstream,
                            ..DEAD_POOLED
                        },
                        GiveUp,
                    ),
                ],
                1,
                true,
            ),
            (
                "a refused stream is sent again; after a second refusal on a new connection",
                16,
                &[
                    Peer("a", Try),
                    Resend(REFUSED, Retry),
                    Peer("a", Try),
                    Resend(REFUSED, Retry),
                    Peer("a", Try),
                ],
                3,
                false,
            ),
            (
                "a refused stream with its body taken is final",
                16,
                &[
                    Peer("a", Try),
                    Resend(failure(ErrorKind::H2StreamRefused, true, false, true), GiveUp),
                ],
                1,
                true,
            ),
            (
                "a refused stream of a POST is resent (the upstream did not process it)",
                16,
                &[
                    Peer("a", Try),
                    Resend(
                        ExchangeFailure {
                            idempotent: false,
                            ..REFUSED
                        },
                        Retry,
                    ),
                ],
                1,
                true,
            ),
            (
                "refused streams count against max_retries",
                1,
                &[
                    Peer("a", Try),
                    Resend(REFUSED, Retry),
                    Peer("a", Try),
                    Resend(failure(ErrorKind::H2StreamRefused, false, false, false), GiveUp),
                ],
                2,
                true,
            ),
            (
                "a peer that failed to connect is not offered again after a refused stream elsewhere",
                16,
                &[
                    Peer("a", Try),
                    ConnectError("a", true, Retry),
                    Peer("b", Try),
                    Resend(REFUSED, Retry),
                    Peer("a", NoOtherPeer),
                ],
                2,
                true,
            ),
        ]);
    }

    #[test]
    fn failures_judged_retryable() {
        use Step::*;
        const STATUS_503: ExchangeFailure = ExchangeFailure {
            kind: ErrorKind::HttpStatus(http::StatusCode::SERVICE_UNAVAILABLE),
            received_any: true,
            ..GET_FAILED
        };
        const POST: ExchangeFailure = ExchangeFailure {
            idempotent: false,
            ..GET_FAILED
        };
        const BODY_SENT: ExchangeFailure = ExchangeFailure {
            body_started: true,
            ..GET_FAILED
        };
        const STARTED: ExchangeFailure = ExchangeFailure {
            response_started: true,
            ..GET_FAILED
        };
        const NOT_LISTED: ExchangeFailure = ExchangeFailure {
            retry: false,
            ..GET_FAILED
        };
        const CLIENT_SIDE: ExchangeFailure = ExchangeFailure {
            side: Side::Downstream,
            ..GET_FAILED
        };
        run(&[
            (
                "a listed failure of a GET goes to another peer",
                16,
                &[
                    Peer("a", Try),
                    Failure("a", GET_FAILED, Retry),
                    Peer("b", Try),
                ],
                2,
                true,
            ),
            (
                "never to the peer that failed",
                16,
                &[
                    Peer("a", Try),
                    Failure("a", STATUS_503, Retry),
                    Peer("a", NoOtherPeer),
                ],
                1,
                true,
            ),
            (
                "a listed status: each peer once, within the rule's retries",
                16,
                &[
                    LimitRetries(2),
                    Peer("a", Try),
                    Failure("a", STATUS_503, Retry),
                    Peer("b", Try),
                    Failure("b", STATUS_503, Retry),
                    Peer("c", Try),
                    Failure("c", STATUS_503, GiveUp),
                ],
                3,
                true,
            ),
            (
                "a POST is not retried after it reached the upstream",
                16,
                &[Peer("a", Try), Failure("a", POST, GiveUp)],
                1,
                true,
            ),
            (
                "but a POST's connect failure is",
                16,
                &[
                    Peer("a", Try),
                    ConnectError("a", true, Retry),
                    Peer("b", Try),
                    Failure("b", POST, GiveUp),
                ],
                2,
                true,
            ),
            (
                "a partly sent body is not retried",
                16,
                &[Peer("a", Try), Failure("a", BODY_SENT, GiveUp)],
                1,
                true,
            ),
            (
                "nothing is retried once the response started",
                16,
                &[Peer("a", Try), Failure("a", STARTED, GiveUp)],
                1,
                true,
            ),
            (
                "a failure the rule does not list is final",
                16,
                &[Peer("a", Try), Failure("a", NOT_LISTED, GiveUp)],
                1,
                true,
            ),
            (
                "a client-side failure is final whatever the verdict",
                16,
                &[Peer("a", Try), Failure("a", CLIENT_SIDE, GiveUp)],
                1,
                true,
            ),
            (
                "max_retries 0: nothing is retried",
                0,
                &[Peer("a", Try), Failure("a", GET_FAILED, GiveUp)],
                1,
                true,
            ),
            (
                "connect failures and listed failures share the cap",
                16,
                &[
                    LimitRetries(1),
                    Peer("a", Try),
                    ConnectError("a", true, Retry),
                    Peer("b", Try),
                    Failure("b", STATUS_503, GiveUp),
                ],
                2,
                true,
            ),
        ]);
    }
}

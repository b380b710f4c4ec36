//! The retry policy of one request: after a failed attempt, whether to make another
//! and how. Pure state and decisions (no sockets, no clock), so every rule is checked by
//! the table tests below.
//!
//! The rules (docs/proxy-behaviour.md, "Retries"):
//! - A failed connect is retried only on **another peer**: the routing
//!   (`upstream_peer`) is asked again, and if it names an address whose connect already
//!   failed during this request, there is no other peer and the request fails with the
//!   error of its last attempt. A refused or unreachable address is never tried again
//!   at once: that cannot help, and waiting would hold the client.
//! - A connect failure is retried only when the error says a retry may help
//!   (`Error::retry`, which `fail_to_connect` may change).
//! - An HTTP/2 stream the upstream did not process (GOAWAY, REFUSED_STREAM) is sent
//!   again if no request body was taken yet; after a second refusal, on a new
//!   connection.
//! - A pooled connection found dead (no byte of the response received, no request body
//!   taken) is retried once on a new connection, without counting as a retry.
//! - `max_retries` caps the retries of both the first and second rules together.

use pingora_core::{ErrorKind, Side};

/// What to do after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Ask the routing for a peer again and make another attempt.
    Retry,
    /// Stop: the request fails with this attempt's error.
    GiveUp,
}

/// Whether the peer the routing chose may be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerChoice {
    /// Connect to it.
    Try,
    /// A connect to the same address failed during this request: the routing has no
    /// other peer to offer.
    NoOtherPeer,
}

/// How an exchange on an established connection failed, as far as retrying goes.
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
    /// Addresses a connect failed to during this request (empty unless one failed:
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

    /// Connecting to `peer` failed; `retryable` is the error's verdict (after
    /// `fail_to_connect`).
    pub(crate) fn on_connect_error(&mut self, peer: A, retryable: bool) -> Decision {
        if !retryable || self.retries >= self.max_retries {
            return Decision::GiveUp;
        }
        self.retries += 1;
        self.failed.push(peer);
        Decision::Retry
    }

    /// The exchange on an established connection failed as `failure` says.
    pub(crate) fn on_exchange_error(&mut self, failure: &ExchangeFailure) -> Decision {
        if failure.kind == ErrorKind::H2StreamRefused
            && !failure.body_started
            && self.retries < self.max_retries
        {
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
            && !failure.body_started
        {
            // The pooled connection was closed by the upstream while idle.
            self.allow_reuse = false;
            return Decision::Retry;
        }
        Decision::GiveUp
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
        Exchange(ExchangeFailure, Decision),
    }

    fn failure(kind: ErrorKind, reused: bool, received_any: bool, body: bool) -> ExchangeFailure {
        ExchangeFailure {
            kind,
            side: Side::Upstream,
            reused,
            received_any,
            body_started: body,
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
                Step::Exchange(f, want) => (
                    format!("{:?}", policy.on_exchange_error(f)),
                    format!("{want:?}"),
                ),
            };
            assert_eq!(got, want, "{name}: step {i} {step:?}");
        }
        assert_eq!(policy.attempts(), attempts, "{name}: attempts");
        assert_eq!(policy.allow_reuse(), reuse, "{name}: reuse allowed");
    }

    #[test]
    fn connect_failures() {
        use Step::*;
        let cases: &[(&str, usize, &[Step], usize, bool)] = &[
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
        ];
        for (name, max, steps, attempts, reuse) in cases {
            check(name, *max, steps, *attempts, *reuse);
        }
    }

    #[test]
    fn exchange_failures() {
        use Step::*;
        let refused = failure(ErrorKind::H2StreamRefused, true, false, false);
        let dead_pooled = failure(ErrorKind::ConnectionClosed, true, false, false);
        let cases: &[(&str, usize, &[Step], usize, bool)] = &[
            (
                "a dead pooled connection is retried once, on a new connection",
                16,
                &[
                    Peer("a", Try),
                    Exchange(dead_pooled, Retry),
                    Peer("a", Try),
                    Exchange(dead_pooled, GiveUp),
                ],
                2,
                false,
            ),
            (
                "not when part of the response came",
                16,
                &[Peer("a", Try), Exchange(failure(ErrorKind::ConnectionClosed, true, true, false), GiveUp)],
                1,
                true,
            ),
            (
                "not when the request body was taken",
                16,
                &[Peer("a", Try), Exchange(failure(ErrorKind::ConnectionClosed, true, false, true), GiveUp)],
                1,
                true,
            ),
            (
                "not on a new connection",
                16,
                &[Peer("a", Try), Exchange(failure(ErrorKind::ConnectionClosed, false, false, false), GiveUp)],
                1,
                true,
            ),
            (
                "not for a client-side failure",
                16,
                &[
                    Peer("a", Try),
                    Exchange(
                        ExchangeFailure { side: Side::Downstream, ..dead_pooled },
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
                    Exchange(refused, Retry),
                    Peer("a", Try),
                    Exchange(refused, Retry),
                    Peer("a", Try),
                ],
                3,
                false,
            ),
            (
                "a refused stream with its body taken is final",
                16,
                &[Peer("a", Try), Exchange(failure(ErrorKind::H2StreamRefused, true, false, true), GiveUp)],
                1,
                true,
            ),
            (
                "refused streams count against max_retries",
                1,
                &[
                    Peer("a", Try),
                    Exchange(refused, Retry),
                    Peer("a", Try),
                    Exchange(failure(ErrorKind::H2StreamRefused, false, false, false), GiveUp),
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
                    Exchange(refused, Retry),
                    Peer("a", NoOtherPeer),
                ],
                2,
                true,
            ),
        ];
        for (name, max, steps, attempts, reuse) in cases {
            check(name, *max, steps, *attempts, *reuse);
        }
    }
}

//! Reading the PROXY header of an accepted connection: [`ProxyProtocolOptions`], set on
//! a listener, is applied in the connection's own task before anything else (before
//! the TLS handshake on a TLS listener).
//!
//! The header is looked at with `MSG_PEEK` and only its own bytes are then read, so
//! that a connection without one (`optional`) reaches the HTTP or TLS code untouched.
//! While the bytes waiting are a strict prefix of a header, the task sleeps until more
//! arrive (no busy loop), all within [`ProxyProtocolOptions::timeout`].

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{recv, MsgFlags};
use pingora_config::IpNet;
use tokio::io::{AsyncReadExt, Interest};

use super::parse::{parse, HeaderError, Parsed, MAX_HEADER_BYTES, V1_MAX_BYTES};
use super::ProxyHeader;
use crate::protocols::{ClientAddr, Stream};

/// Why a connection was refused by the PROXY protocol step (the `reason` label of the
/// rejects metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// `on`, and the connection started with something else.
    Missing,
    /// A broken header (bad address, overlong line, bad length or family...).
    Malformed,
    /// A header (or, with `on`, any connection) from a peer outside the trusted networks.
    Untrusted,
    /// The header did not arrive whole within the timeout.
    Timeout,
    /// The peer closed the connection (or it failed) in the middle of a header.
    Closed,
}

impl RejectReason {
    /// Every reason, as the metrics list them.
    pub const ALL: [RejectReason; 5] = [
        RejectReason::Missing,
        RejectReason::Malformed,
        RejectReason::Untrusted,
        RejectReason::Timeout,
        RejectReason::Closed,
    ];

    /// The reason's name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Missing => "missing",
            RejectReason::Malformed => "malformed",
            RejectReason::Untrusted => "untrusted",
            RejectReason::Timeout => "timeout",
            RejectReason::Closed => "closed",
        }
    }

    fn index(self) -> usize {
        match self {
            RejectReason::Missing => 0,
            RejectReason::Malformed => 1,
            RejectReason::Untrusted => 2,
            RejectReason::Timeout => 3,
            RejectReason::Closed => 4,
        }
    }
}

/// Connections refused by the PROXY protocol step, by reason: shared by the listeners
/// of a service, read by whoever reports metrics.
#[derive(Debug, Default)]
pub struct ProxyProtocolRejects {
    counts: [AtomicU64; RejectReason::ALL.len()],
}

impl ProxyProtocolRejects {
    /// Connections refused for `reason` so far.
    pub fn get(&self, reason: RejectReason) -> u64 {
        self.counts[reason.index()].load(Ordering::Relaxed)
    }

    fn count(&self, reason: RejectReason) {
        self.counts[reason.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// The PROXY protocol on a listener (`proxy_protocol: on | optional`).
#[derive(Debug, Clone)]
pub struct ProxyProtocolOptions {
    /// `true` (`on`): every connection must start with a valid header, others are
    /// closed. `false` (`optional`): connections with and without one are accepted.
    pub required: bool,
    /// The peers whose header is believed (`None`: any peer's). A header from another
    /// peer is refused, and so is, with `required`, any connection from one.
    pub trusted: Option<Arc<[IpNet]>>,
    /// Most time for the whole header to arrive (the service's header timeout).
    pub timeout: Duration,
    /// Where refusals are counted.
    pub rejects: Arc<ProxyProtocolRejects>,
}

impl ProxyProtocolOptions {
    /// `on` (`required`) or `optional`, from any peer, within 10 seconds.
    pub fn new(required: bool) -> Self {
        ProxyProtocolOptions {
            required,
            trusted: None,
            timeout: Duration::from_secs(10),
            rejects: Arc::default(),
        }
    }

    fn trusts(&self, peer: &ClientAddr) -> bool {
        match &self.trusted {
            None => true,
            // Unix-socket peers have no address, so no network holds them.
            Some(nets) => peer
                .ip()
                .is_some_and(|ip| nets.iter().any(|n| n.contains(ip))),
        }
    }

    /// Reads the PROXY header at the start of `stream`, accepted from `peer` (a plain
    /// TCP or unix stream: TLS comes after). Refusals are counted and logged here.
    pub async fn accept(&self, stream: &mut Stream, peer: &ClientAddr) -> HeaderOutcome {
        let trusted = self.trusts(peer);
        if self.required && !trusted {
            // No header from this peer could be believed: no need to wait for one.
            return self.refuse(peer, RejectReason::Untrusted, "peer not trusted");
        }
        let read = tokio::time::timeout(self.timeout, read_header(stream));
        match read.await {
            Err(_) => self.refuse(peer, RejectReason::Timeout, "no whole header in time"),
            Ok(Err(e)) => self.refuse(peer, RejectReason::Closed, &e.to_string()),
            Ok(Ok(Peeked::Empty)) if self.required => HeaderOutcome::Refused(None),
            Ok(Ok(Peeked::Empty)) => HeaderOutcome::NoHeader,
            Ok(Ok(Peeked::Closed)) => {
                self.refuse(peer, RejectReason::Closed, "closed within the header")
            }
            Ok(Ok(Peeked::Malformed(e))) => {
                self.refuse(peer, RejectReason::Malformed, &e.to_string())
            }
            Ok(Ok(Peeked::NotProxy)) if self.required => {
                self.refuse(peer, RejectReason::Missing, "no PROXY header")
            }
            Ok(Ok(Peeked::NotProxy)) => HeaderOutcome::NoHeader,
            Ok(Ok(Peeked::Header(..))) if !trusted => self.refuse(
                peer,
                RejectReason::Untrusted,
                "header from an untrusted peer",
            ),
            Ok(Ok(Peeked::Header(header, _))) => HeaderOutcome::Header(header),
        }
    }

    fn refuse(&self, peer: &ClientAddr, reason: RejectReason, why: &str) -> HeaderOutcome {
        self.rejects.count(reason);
        match reason {
            // What a misconfigured or hostile sender causes: worth an operator's eye
            // (the error log is rate limited per call site).
            RejectReason::Malformed | RejectReason::Untrusted => {
                log::warn!(
                    "{peer}: PROXY protocol: connection refused ({}): {why}",
                    reason.as_str()
                );
            }
            _ => log::debug!(
                "{peer}: PROXY protocol: connection refused ({}): {why}",
                reason.as_str()
            ),
        }
        HeaderOutcome::Refused(Some(reason))
    }
}

/// What the PROXY protocol step decided about a connection.
#[derive(Debug)]
pub enum HeaderOutcome {
    /// The connection started with this header (its bytes are consumed).
    Header(ProxyHeader),
    /// It did not start with one and may go on without (`optional`; nothing consumed).
    NoHeader,
    /// Close it: refused for this reason (counted and logged), or (`None`) closed by
    /// the peer before it sent anything.
    Refused(Option<RejectReason>),
}

/// What the bytes at the start of the connection turned out to be.
enum Peeked {
    /// A whole header, and its length.
    Header(ProxyHeader, usize),
    NotProxy,
    Malformed(HeaderError),
    /// Closed before sending anything.
    Empty,
    /// Closed within a header.
    Closed,
}

/// Looks at the start of `stream` until it is known to be a header or not; consumes
/// the header's bytes, and nothing else.
async fn read_header(stream: &mut Stream) -> io::Result<Peeked> {
    // Room for any v1 line at first; grown (up to the v2 bound) only for a long v2 header.
    let mut buf = vec![0u8; V1_MAX_BYTES.next_power_of_two()];
    let peeked = loop {
        let attempt = match &*stream {
            Stream::Tcp(s) => {
                let closed = s.ready(Interest::READABLE).await?.is_read_closed();
                s.try_io(Interest::READABLE, || {
                    peek_and_parse(s.as_raw_fd(), &mut buf, closed)
                })
            }
            Stream::Unix(s) => {
                let closed = s.ready(Interest::READABLE).await?.is_read_closed();
                s.try_io(Interest::READABLE, || {
                    peek_and_parse(s.as_raw_fd(), &mut buf, closed)
                })
            }
            #[allow(unreachable_patterns)] // TLS only exists with the `tls` feature
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the PROXY header is read before TLS, on the socket itself",
                ))
            }
        };
        match attempt {
            Ok(peeked) => break peeked,
            // Nothing new to look at yet: readiness was cleared, wait for more bytes.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    if let Peeked::Header(_, len) = peeked {
        // The bytes are in the socket already: this returns at once.
        stream.read_exact(&mut buf[..len]).await?;
    }
    Ok(peeked)
}

/// Peeks at the socket `fd` into `buf` and parses. `WouldBlock` when more bytes are
/// needed and all the waiting ones were seen (the caller then waits for readiness);
/// `read_closed`: the peer has closed its side, so no more will come.
fn peek_and_parse(fd: RawFd, buf: &mut Vec<u8>, read_closed: bool) -> io::Result<Peeked> {
    loop {
        let n = recv(fd, buf, MsgFlags::MSG_PEEK).map_err(io::Error::from)?;
        if n == 0 {
            return Ok(Peeked::Empty);
        }
        let at_least = match parse(&buf[..n]) {
            Ok(Parsed::Header { header, len }) => return Ok(Peeked::Header(header, len)),
            Ok(Parsed::NotProxy) => return Ok(Peeked::NotProxy),
            Err(e) => return Ok(Peeked::Malformed(e)),
            Ok(Parsed::Incomplete { at_least }) => at_least,
        };
        if n < buf.len() {
            if read_closed {
                return Ok(Peeked::Closed);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // The buffer was full: more may be waiting already. (`parse` never asks for
        // more than MAX_HEADER_BYTES; the check keeps this loop finite regardless.)
        let want = at_least.max(buf.len() + 1).min(MAX_HEADER_BYTES);
        if want <= buf.len() {
            return Ok(Peeked::Malformed(HeaderError::V2TooLong));
        }
        buf.resize(want, 0);
    }
}

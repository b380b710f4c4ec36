//! Active health checks: a background task that probes every backend at an interval
//! and marks it healthy or unhealthy after enough consecutive results.

use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use pingora_core::connector::PeerAddress;
use pingora_core::protocols::proxy_protocol::{encode, ProxyVersion};
use pingora_core::protocols::tls::UpstreamTls;
use pingora_core::protocols::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::backend::{Backend, BackendState};
use crate::balancer::{log_health_change, LoadBalancer};

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// A TCP connect succeeds.
    Tcp,
    /// `GET path` (plain HTTP/1.1) answers with a status in `expected_status`.
    Http {
        /// The path to request.
        path: String,
        /// The Host header to send (the backend address when `None`).
        host: Option<String>,
        /// The statuses that pass, like `200..=399` ([`HealthCheckKind::DEFAULT_STATUS`]).
        expected_status: RangeInclusive<u16>,
    },
}

impl HealthCheckKind {
    /// The statuses an HTTP check accepts unless told otherwise: 2xx and 3xx.
    pub const DEFAULT_STATUS: RangeInclusive<u16> = 200..=399;

    /// An HTTP check of `path` with the backend's address as Host, passing on 2xx/3xx.
    pub fn http(path: impl Into<String>) -> Self {
        HealthCheckKind::Http {
            path: path.into(),
            host: None,
            expected_status: Self::DEFAULT_STATUS,
        }
    }
}

/// How many results in a row change a backend's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive successes that make an unhealthy backend healthy.
    pub healthy_after: u32,
    /// Consecutive failures that make a healthy backend unhealthy.
    pub unhealthy_after: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            healthy_after: 2,
            unhealthy_after: 3,
        }
    }
}

/// A health check's settings.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// The probe.
    pub kind: HealthCheckKind,
    /// Time between two rounds of probes.
    pub interval: Duration,
    /// Most time one probe may take.
    pub timeout: Duration,
    /// State change thresholds.
    pub thresholds: Thresholds,
    /// Speak TLS to the backend (with these settings, usually the upstream's own) before
    /// the probe: a TCP check then needs a completed handshake, an HTTP check goes over
    /// TLS. `None`: plain.
    pub tls: Option<Arc<UpstreamTls>>,
    /// Write a PROXY header of this version first (a v2 `LOCAL` / v1 `UNKNOWN` one:
    /// the probe relays no client), for backends that expect one on every connection.
    pub proxy_protocol: Option<ProxyVersion>,
}

impl HealthCheck {
    /// A check of kind `kind` every `interval`, each probe within one second (or the
    /// interval, if shorter), with the default [`Thresholds`], over plain TCP.
    pub fn every(kind: HealthCheckKind, interval: Duration) -> Self {
        HealthCheck {
            kind,
            interval,
            timeout: interval.min(Duration::from_secs(1)),
            thresholds: Thresholds::default(),
            tls: None,
            proxy_protocol: None,
        }
    }
}

/// Most probes of one checker in progress at once.
const MAX_CONCURRENT_PROBES: usize = 64;

/// Probes the backends of one load balancer until told to stop. Each round probes the
/// backends of the set current at that moment, so it follows [`LoadBalancer::update`].
pub struct HealthChecker {
    lb: Arc<LoadBalancer>,
    check: Arc<HealthCheck>,
}

impl HealthChecker {
    /// A checker for `lb`.
    pub fn new(lb: Arc<LoadBalancer>, check: HealthCheck) -> Self {
        HealthChecker {
            lb,
            check: Arc::new(check),
        }
    }

    /// Probes every interval until `stop` completes (a round in progress is abandoned).
    /// Must run inside a tokio runtime with time and I/O enabled.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut ticker = tokio::time::interval(self.check.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = self.round() => {}
            }
        }
    }

    /// Probes every backend of the current set once, a bounded number at a time.
    async fn round(&self) {
        let set = self.lb.snapshot();
        let mut probes = tokio::task::JoinSet::new();
        for (backend, state) in set.backends.iter().zip(&set.states) {
            if probes.len() >= MAX_CONCURRENT_PROBES {
                let _ = probes.join_next().await;
            }
            let check = Arc::clone(&self.check);
            let state = Arc::clone(state);
            let backend = backend.clone();
            probes.spawn(async move {
                let ok = matches!(
                    tokio::time::timeout(check.timeout, probe(&backend.addr, &check)).await,
                    Ok(true)
                );
                apply_result(&backend, &state, ok, check.thresholds);
            });
        }
        while probes.join_next().await.is_some() {}
    }
}

/// Counts one probe result and flips the backend's health once a threshold is reached.
fn apply_result(backend: &Backend, state: &BackendState, ok: bool, t: Thresholds) {
    let streak = state.record_check(ok);
    let threshold = if ok {
        t.healthy_after
    } else {
        t.unhealthy_after
    };
    if state.is_healthy() != ok {
        if streak >= threshold.max(1) && state.set_healthy(ok) {
            log_health_change(backend, ok);
        }
    } else if ok {
        // A healthy backend that answers ends any passive back-off.
        state.clear_backoff();
    }
}

/// One probe of the backend at `addr`: a connection (TCP, or a unix socket for
/// `unix:/path`), a TLS handshake when the check asks for one, and, for HTTP, a status
/// line with an expected status.
async fn probe(addr: &str, check: &HealthCheck) -> bool {
    let (stream, host) = match addr.strip_prefix("unix:") {
        Some(path) => match UnixStream::connect(path).await {
            Ok(s) => (Stream::Unix(s), "localhost"),
            Err(_) => return false,
        },
        None => match TcpStream::connect(addr).await {
            Ok(s) => (Stream::Tcp(s), addr),
            Err(_) => return false,
        },
    };
    let mut stream = stream;
    if let Some(version) = check.proxy_protocol {
        if stream.write_all(&encode(version, None)).await.is_err() {
            return false;
        }
    }
    let stream = match &check.tls {
        None => stream,
        Some(tls) => {
            let name = PeerAddress::parse(addr).and_then(|a| a.host());
            match tls.connect(stream, name.as_deref(), false).await {
                Ok(s) => s,
                Err(e) => {
                    log::debug!("health check of {addr}: {e}");
                    return false;
                }
            }
        }
    };
    probe_on(stream, host, &check.kind).await
}

async fn probe_on<S>(mut stream: S, default_host: &str, kind: &HealthCheckKind) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (path, host, expected) = match kind {
        HealthCheckKind::Tcp => return true,
        HealthCheckKind::Http {
            path,
            host,
            expected_status,
        } => (
            path,
            host.as_deref().unwrap_or(default_host),
            expected_status,
        ),
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pingora-health-check\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    // Only the status line matters: `HTTP/1.x NNN`.
    let mut buf = [0u8; 12];
    let mut len = 0;
    while len < buf.len() {
        match stream.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => len += n,
        }
    }
    status_of(&buf).is_some_and(|status| expected.contains(&status))
}

/// The status of a line starting `HTTP/1.x NNN`.
fn status_of(line: &[u8]) -> Option<u16> {
    let digits = line.strip_prefix(b"HTTP/1.")?.get(1..5)?;
    match digits {
        [b' ', a, b, c] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 200"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 302"), Some(302));
        assert_eq!(status_of(b"HTTP/1.1 503"), Some(503));
        assert_eq!(status_of(b"HTTP/1.1 2xx"), None);
        assert_eq!(status_of(b"HTTP/1.1  20"), None);
        assert_eq!(status_of(b"HTTP/2 200 x"), None);
        assert_eq!(status_of(b"SSH-2.0-Ope"), None);
        assert_eq!(status_of(b"HTTP/1."), None);
    }

    #[test]
    fn thresholds_count_consecutive_results() {
        let b = Backend::new("127.0.0.1:1");
        let s = BackendState::default();
        let t = Thresholds::default();
        for _ in 0..2 {
            apply_result(&b, &s, false, t);
        }
        apply_result(&b, &s, true, t);
        // The success broke the streak: two more failures are not enough.
        for _ in 0..2 {
            apply_result(&b, &s, false, t);
        }
        assert!(s.is_healthy());
        apply_result(&b, &s, false, t);
        assert!(!s.is_healthy());
        apply_result(&b, &s, true, t);
        assert!(!s.is_healthy());
        apply_result(&b, &s, true, t);
        assert!(s.is_healthy());
    }
}

//! Active health checks: a background task that probes every backend at an interval
//! and marks it healthy or unhealthy after enough consecutive results.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::backend::{Backend, BackendState};
use crate::balancer::{log_health_change, LoadBalancer};

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// A TCP connect succeeds.
    Tcp,
    /// `GET path` answers 2xx or 3xx (with `Host: host` when given).
    Http {
        /// The path to request.
        path: String,
        /// The Host header to send (the backend address when `None`).
        host: Option<String>,
    },
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
                    tokio::time::timeout(check.timeout, probe(&backend.addr, &check.kind)).await,
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
/// `unix:/path`) and, for HTTP, a 2xx or 3xx status line.
async fn probe(addr: &str, kind: &HealthCheckKind) -> bool {
    match addr.strip_prefix("unix:") {
        Some(path) => match UnixStream::connect(path).await {
            Ok(stream) => probe_on(stream, "localhost", kind).await,
            Err(_) => false,
        },
        None => match TcpStream::connect(addr).await {
            Ok(stream) => probe_on(stream, addr, kind).await,
            Err(_) => false,
        },
    }
}

async fn probe_on<S>(mut stream: S, default_host: &str, kind: &HealthCheckKind) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (path, host) = match kind {
        HealthCheckKind::Tcp => return true,
        HealthCheckKind::Http { path, host } => (path, host.as_deref().unwrap_or(default_host)),
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
    is_good_status_line(&buf)
}

/// Whether `line` starts `HTTP/1.x 2..` or `HTTP/1.x 3..`.
fn is_good_status_line(line: &[u8]) -> bool {
    line.len() >= 12
        && line.starts_with(b"HTTP/1.")
        && line[8] == b' '
        && matches!(line[9], b'2' | b'3')
        && line[10].is_ascii_digit()
        && line[11].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert!(is_good_status_line(b"HTTP/1.1 200"));
        assert!(is_good_status_line(b"HTTP/1.0 302"));
        assert!(!is_good_status_line(b"HTTP/1.1 500"));
        assert!(!is_good_status_line(b"HTTP/1.1 404"));
        assert!(!is_good_status_line(b"HTTP/1.1 2xx"));
        assert!(!is_good_status_line(b"SSH-2.0-Ope"));
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

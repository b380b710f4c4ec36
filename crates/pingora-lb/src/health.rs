//! Active health checks: a background task that probes every backend at an interval
//! and marks it healthy or unhealthy after enough consecutive results.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::balancer::LoadBalancer;

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

/// Probes the backends of one load balancer until told to stop.
pub struct HealthChecker {
    lb: Arc<LoadBalancer>,
    check: HealthCheck,
}

impl HealthChecker {
    /// A checker for `lb`.
    pub fn new(lb: Arc<LoadBalancer>, check: HealthCheck) -> Self {
        HealthChecker { lb, check }
    }

    /// Probes every interval until `stop` completes.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let n = self.lb.backends().len();
        let mut successes = vec![0u32; n];
        let mut failures = vec![0u32; n];
        let mut ticker = tokio::time::interval(self.check.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticker.tick() => {}
            }
            for i in 0..n {
                let ok = self.probe(i).await;
                let t = self.check.thresholds;
                if ok {
                    failures[i] = 0;
                    successes[i] = successes[i].saturating_add(1);
                    if !self.lb.is_healthy(i) && successes[i] >= t.healthy_after {
                        self.lb.set_healthy(i, true);
                    }
                } else {
                    successes[i] = 0;
                    failures[i] = failures[i].saturating_add(1);
                    if self.lb.is_healthy(i) && failures[i] >= t.unhealthy_after {
                        self.lb.set_healthy(i, false);
                    }
                }
            }
        }
    }

    async fn probe(&self, i: usize) -> bool {
        let addr = self.lb.backends()[i].addr.clone();
        let fut = probe(&addr, &self.check.kind);
        matches!(
            tokio::time::timeout(self.check.timeout, fut).await,
            Ok(true)
        )
    }
}

async fn probe(addr: &str, kind: &HealthCheckKind) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let (path, host) = match kind {
        HealthCheckKind::Tcp => return true,
        HealthCheckKind::Http { path, host } => (path, host.as_deref().unwrap_or(addr)),
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pingora-health-check\r\nConnection: close\r\n\r\n");
    if stream.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    // Only the status line matters.
    let mut buf = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        match stream.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let line = &buf[..len];
    line.len() >= 12 && line.starts_with(b"HTTP/1.") && matches!(line[9], b'2' | b'3')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::Backend;
    use crate::selection::RoundRobin;
    use std::sync::atomic::{AtomicU16, Ordering};

    /// A tiny HTTP server answering every request with the current status.
    async fn status_server(status: Arc<AtomicU16>) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let code = status.load(Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    let _ = s.read(&mut b).await;
                    let r = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                    let _ = s.write_all(r.as_bytes()).await;
                });
            }
        });
        addr
    }

    async fn wait_for(lb: &LoadBalancer, i: usize, healthy: bool) -> bool {
        for _ in 0..200 {
            if lb.is_healthy(i) == healthy {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn http_check_follows_the_endpoint() {
        let status = Arc::new(AtomicU16::new(200));
        let good = status_server(status.clone()).await;
        // A port nobody listens on.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let backends = vec![
            Backend {
                addr: good,
                weight: 1,
            },
            Backend {
                addr: dead,
                weight: 1,
            },
        ];
        let lb = Arc::new(LoadBalancer::new(backends, Box::new(RoundRobin::new(2))));
        let check = HealthCheck {
            kind: HealthCheckKind::Http {
                path: "/health".into(),
                host: None,
            },
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(500),
            thresholds: Thresholds::default(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(HealthChecker::new(lb.clone(), check).run(async {
            let _ = rx.await;
        }));
        assert!(wait_for(&lb, 1, false).await, "closed port still healthy");
        assert!(lb.is_healthy(0));
        status.store(500, Ordering::Relaxed);
        assert!(wait_for(&lb, 0, false).await, "500 still healthy");
        assert!(lb.select(b"").is_none(), "all down selects nothing");
        status.store(200, Ordering::Relaxed);
        assert!(
            wait_for(&lb, 0, true).await,
            "recovered backend still unhealthy"
        );
        let _ = tx.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}

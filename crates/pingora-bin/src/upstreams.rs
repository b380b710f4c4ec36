//! A configured upstream: its peers behind a load balancer, the hash key for
//! consistent hashing, and its health check.

use std::sync::Arc;
use std::time::Duration;

use pingora_config::{HashKey, HealthCheckConf, HealthCheckType, LbAlgorithm, UpstreamConf};
use pingora_core::connector::HttpPeer;
use pingora_lb::{Algorithm, Backend, HealthCheck, HealthCheckKind, LoadBalancer, Thresholds};
use pingora_proxy::Session;

pub use pingora_lb::{HealthChecker, InFlight};

/// Tells whether a backend may be picked now (for metrics).
pub type BackendProbe = Box<dyn Fn() -> bool + Send + Sync>;

/// How long a backend is skipped after a failed connection (unless a health check
/// passes first).
const PASSIVE_BACKOFF: Duration = Duration::from_secs(10);

/// One `upstreams:` entry.
pub struct Upstream {
    /// The name from the config.
    pub name: String,
    peers: Vec<HttpPeer>,
    lb: Arc<LoadBalancer>,
    hash_key: Option<HashKey>,
    health: Option<HealthCheck>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .finish()
    }
}

impl Upstream {
    /// Builds the upstream `name` from its configuration and its resolved `peers`
    /// (same order as `conf.peers`).
    pub fn new(name: String, conf: &UpstreamConf, peers: Vec<HttpPeer>) -> Self {
        let backends: Vec<Backend> = conf
            .peers
            .iter()
            .map(|p| Backend {
                addr: p.addr.clone(),
                weight: p.weight,
            })
            .collect();
        let algorithm = match conf.lb {
            LbAlgorithm::RoundRobin => Algorithm::RoundRobin,
            LbAlgorithm::Weighted => Algorithm::Weighted,
            LbAlgorithm::Random => Algorithm::Random,
            LbAlgorithm::ConsistentHash => Algorithm::ConsistentHash,
            LbAlgorithm::LeastConn => Algorithm::LeastConn,
            LbAlgorithm::P2c => Algorithm::PowerOfTwo,
        };
        let hash_key = (conf.lb == LbAlgorithm::ConsistentHash).then(|| conf.hash_key.clone());
        Upstream {
            name,
            peers,
            lb: Arc::new(LoadBalancer::new(backends, algorithm)),
            hash_key,
            health: conf.health_check.as_ref().map(health_check),
        }
    }

    /// Picks a backend for the request: its index, its peer and an in-flight guard.
    pub fn select(&self, session: &Session) -> Option<(usize, &HttpPeer, InFlight)> {
        let (i, guard) = match &self.hash_key {
            None => self.lb.select(b""),
            Some(HashKey::Uri) => self
                .lb
                .select(session.req_header().path_and_query().as_bytes()),
            Some(HashKey::ClientIp) => match session.client_addr().ip() {
                Some(std::net::IpAddr::V4(ip)) => self.lb.select(&ip.octets()),
                Some(std::net::IpAddr::V6(ip)) => self.lb.select(&ip.octets()),
                None => self.lb.select(b""),
            },
            Some(HashKey::Header(name)) => {
                let value = session.req_header().headers.get(name.as_str());
                self.lb.select(value.map_or(&b""[..], |v| v.as_bytes()))
            }
        }?;
        Some((i, self.peers.get(i)?, guard))
    }

    /// Passive health: a failed connection to backend `i` takes it out for a while,
    /// when another backend could serve instead.
    pub fn connect_failed(&self, i: usize) {
        if self.peers.len() > 1 {
            self.lb.mark_failed(i, PASSIVE_BACKOFF);
        }
    }

    /// Each backend's address with a probe telling whether it may be picked now.
    pub fn backend_health(&self) -> Vec<(String, BackendProbe)> {
        // The set is static (the `peers:` list), so indices stay valid.
        (self.lb.backends().into_iter().enumerate())
            .map(|(i, backend)| {
                let lb = self.lb.clone();
                let probe: BackendProbe = Box::new(move || lb.is_usable(i));
                (backend.addr, probe)
            })
            .collect()
    }

    /// The health checker of this upstream, if it has a `health_check`.
    pub fn health_checker(&self) -> Option<HealthChecker> {
        let check = self.health.clone()?;
        Some(HealthChecker::new(self.lb.clone(), check))
    }
}

fn health_check(conf: &HealthCheckConf) -> HealthCheck {
    let interval = Duration::from_millis(conf.interval_ms);
    HealthCheck {
        kind: match conf.kind {
            HealthCheckType::Tcp => HealthCheckKind::Tcp,
            HealthCheckType::Http => HealthCheckKind::Http {
                path: conf.path.clone(),
                host: None,
            },
        },
        interval,
        timeout: interval.min(Duration::from_secs(2)),
        thresholds: Thresholds::default(),
    }
}

/// Runs every health checker on a thread of its own (a small single-threaded runtime)
/// for the life of the process. Call after any fork.
pub fn spawn_health_checks(checkers: Vec<HealthChecker>) -> std::io::Result<()> {
    if checkers.is_empty() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("health-checks".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for c in checkers {
                    tasks.push(tokio::spawn(c.run(std::future::pending())));
                }
                for t in tasks {
                    let _ = t.await;
                }
            })
        })?;
    Ok(())
}

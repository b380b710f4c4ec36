//! A configured upstream: its peers (listed, or discovered from a file or DNS) behind a
//! load balancer, the hash key for consistent hashing, its health check, and the
//! background work that keeps the peer set and its health up to date.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pingora_config::{
    DiscoveryConf, DiscoveryType, DnsRecordType, HashKey, HealthCheckConf, HealthCheckType,
    LbAlgorithm, UpstreamConf,
};
use pingora_core::connector::{HttpPeer, PeerAddress, PeerOptions};
use pingora_core::protocols::tls::UpstreamTls;
use pingora_core::shutdown::ShutdownWatch;
use pingora_lb::{
    read_backend_file, run_discovery, AddressFamily, Algorithm, Backend, BackendId, Discovery,
    DnsDiscovery, DnsDiscoveryOptions, DnsQuery, FileDiscovery, HealthCheck, HealthCheckKind,
    LoadBalancer, Thresholds,
};
use pingora_proxy::Session;

use crate::error::BinError;

pub use pingora_lb::InFlight;

/// Tells whether a backend may be picked now (for metrics).
pub type BackendProbe = Box<dyn Fn() -> Vec<(String, bool)> + Send + Sync>;

/// The name `wire.rs` and `main.rs` know the background work of an upstream by.
pub type HealthChecker = UpstreamTasks;

/// How long a backend is skipped after a failed connection (unless a health check
/// passes first).
const PASSIVE_BACKOFF: Duration = Duration::from_secs(10);

/// Most time the first DNS resolution may hold up start-up; without an answer by then
/// the upstream starts empty (503) and the background discovery keeps trying.
const FIRST_RESOLUTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection targets of an upstream's backends.
enum Peers {
    /// The `peers:` list, in the order of the (never updated) backend set.
    Listed(Vec<HttpPeer>),
    /// Discovered backends: each selection builds its peer from the backend's address
    /// (an `IP:PORT` parse and a hash: cheaper than any shared map).
    Discovered(PeerOptions),
}

/// Where the backend set of a discovered upstream comes from.
enum Source {
    File { path: PathBuf, interval: Duration },
    Dns(DnsDiscoveryOptions),
}

/// The peer chosen for one request: borrowed from the upstream's list, or built for a
/// discovered backend. Dereferences to the [`HttpPeer`].
pub enum SelectedPeer<'a> {
    /// A listed peer.
    Listed(&'a HttpPeer),
    /// A discovered peer.
    Discovered(HttpPeer),
}

impl Deref for SelectedPeer<'_> {
    type Target = HttpPeer;

    fn deref(&self) -> &HttpPeer {
        match self {
            SelectedPeer::Listed(peer) => peer,
            SelectedPeer::Discovered(peer) => peer,
        }
    }
}

/// One `upstreams:` entry.
pub struct Upstream {
    /// The name from the config.
    pub name: String,
    peers: Peers,
    lb: Arc<LoadBalancer>,
    hash_key: Option<HashKey>,
    health: Option<HealthCheck>,
    source: Option<Source>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .finish()
    }
}

impl Upstream {
    /// Builds the upstream `name` from its configuration, its resolved `peers` (same
    /// order as `conf.peers`; empty with `discovery`, whose first answer is fetched
    /// here, before any request is served) and the `options` discovered peers are built
    /// with (the same as the listed peers have, TLS included).
    pub fn new(
        name: String,
        conf: &UpstreamConf,
        peers: Vec<HttpPeer>,
        options: PeerOptions,
    ) -> Self {
        let algorithm = match conf.lb {
            LbAlgorithm::RoundRobin => Algorithm::RoundRobin,
            LbAlgorithm::Weighted => Algorithm::Weighted,
            LbAlgorithm::Random => Algorithm::Random,
            LbAlgorithm::ConsistentHash => Algorithm::ConsistentHash,
            LbAlgorithm::LeastConn => Algorithm::LeastConn,
            LbAlgorithm::P2c => Algorithm::PowerOfTwo,
        };
        let hash_key = (conf.lb == LbAlgorithm::ConsistentHash).then(|| conf.hash_key.clone());
        // Backends spoken to over TLS are checked over TLS, with the same settings.
        let health = (conf.health_check.as_ref()).map(|h| health_check(h, options.tls.clone()));
        let source = conf.discovery.as_ref().and_then(|d| source(&name, d));
        let (backends, peers) = match &source {
            None => {
                let backends = (conf.peers.iter())
                    .map(|p| Backend::new(p.addr.clone()).with_weight(p.weight))
                    .collect();
                (backends, Peers::Listed(peers))
            }
            Some(source) => (first_backends(&name, source), Peers::Discovered(options)),
        };
        Upstream {
            name,
            peers,
            lb: Arc::new(LoadBalancer::new(backends, algorithm)),
            hash_key,
            health,
            source,
        }
    }

    /// Picks a backend for the request: a number to give back to
    /// [`Upstream::connect_failed`], its peer and an in-flight guard.
    pub fn select(&self, session: &Session) -> Option<(usize, SelectedPeer<'_>, InFlight)> {
        let mut ip = [0u8; 16];
        let key: &[u8] = match &self.hash_key {
            None => b"",
            Some(HashKey::Uri) => session.req_header().path_and_query().as_bytes(),
            Some(HashKey::ClientIp) => match session.client_addr().ip() {
                Some(std::net::IpAddr::V4(v4)) => {
                    ip[..4].copy_from_slice(&v4.octets());
                    &ip[..4]
                }
                Some(std::net::IpAddr::V6(v6)) => {
                    ip = v6.octets();
                    &ip
                }
                None => b"",
            },
            Some(HashKey::Header(name)) => session
                .req_header()
                .headers
                .get(name.as_str())
                .map_or(&b""[..], |v| v.as_bytes()),
        };
        match &self.peers {
            Peers::Listed(peers) => {
                let (i, guard) = self.lb.select(key)?;
                Some((i, SelectedPeer::Listed(peers.get(i)?), guard))
            }
            Peers::Discovered(options) => {
                let (id, peer, guard) = self
                    .lb
                    .select_with(key, |b| discovered_peer(&b.addr, options))?;
                Some((id.get(), SelectedPeer::Discovered(peer?), guard))
            }
        }
    }

    /// Passive health: a failed connection to the backend `selected` (from
    /// [`Upstream::select`]) takes it out for a while, when another backend could serve
    /// instead. After a change of a discovered set, a number from before names nothing.
    pub fn connect_failed(&self, selected: usize) {
        if self.lb.len() <= 1 {
            return;
        }
        match self.peers {
            Peers::Listed(_) => self.lb.mark_failed(selected, PASSIVE_BACKOFF),
            Peers::Discovered(_) => {
                self.lb
                    .mark_failed_id(BackendId::from_raw(selected), PASSIVE_BACKOFF);
            }
        }
    }

    /// A probe listing the backends of the current set (discovery changes it) with
    /// whether each may be picked.
    pub fn backend_health(&self) -> Option<BackendProbe> {
        let lb = self.lb.clone();
        Some(Box::new(move || {
            (lb.backends().into_iter())
                .map(|b| {
                    let usable = lb.is_usable_addr(&b.addr);
                    (b.addr, usable)
                })
                .collect()
        }))
    }

    /// The background work of this upstream (its health checks, its discovery), if it
    /// has any.
    pub fn health_checker(&self) -> Option<UpstreamTasks> {
        let checks = self
            .health
            .clone()
            .map(|check| pingora_lb::HealthChecker::new(self.lb.clone(), check));
        let discovery = match &self.source {
            None => None,
            Some(Source::File { path, interval }) => Some(DiscoveryTask::File {
                discovery: FileDiscovery::new(path),
                interval: *interval,
            }),
            Some(Source::Dns(options)) => match DnsDiscovery::new(options.clone()) {
                Ok(discovery) => Some(DiscoveryTask::Dns(Box::new(discovery))),
                Err(e) => {
                    ::log::error!("upstream {}: no DNS discovery: {e}", self.name);
                    None
                }
            },
        };
        if checks.is_none() && discovery.is_none() {
            return None;
        }
        Some(UpstreamTasks {
            name: self.name.clone(),
            lb: self.lb.clone(),
            checks,
            discovery,
        })
    }
}

/// The peer of a discovered backend (`None` for an address that is not one, which
/// discovery never yields).
fn discovered_peer(addr: &str, options: &PeerOptions) -> Option<HttpPeer> {
    Some(HttpPeer::new(PeerAddress::parse(addr)?, options.clone()))
}

/// The discovery settings of upstream `name`, or `None` (logged) when they cannot be
/// used: validation refuses such configurations, so this is only a safety net.
fn source(name: &str, d: &DiscoveryConf) -> Option<Source> {
    match d.kind {
        DiscoveryType::File => Some(Source::File {
            path: d.path.clone()?,
            interval: Duration::from_millis(d.interval_ms()),
        }),
        DiscoveryType::Dns => {
            let query = match (d.record(), d.port) {
                (DnsRecordType::Srv, _) => DnsQuery::Srv,
                (record, Some(port)) => DnsQuery::Addresses {
                    port,
                    family: match record {
                        DnsRecordType::A => AddressFamily::V4,
                        DnsRecordType::Aaaa => AddressFamily::V6,
                        _ => AddressFamily::Both,
                    },
                },
                (_, None) => return None,
            };
            let nameserver = match d.resolver_addr() {
                Ok(server) => server,
                Err(e) => {
                    ::log::error!("upstream {name}: bad discovery resolver: {e}");
                    return None;
                }
            };
            let mut options = DnsDiscoveryOptions::new(d.name.clone()?, query);
            options.nameserver = nameserver;
            options.refresh_min = Duration::from_millis(d.refresh_min_ms());
            options.refresh_max = Duration::from_millis(d.refresh_max_ms());
            Some(Source::Dns(options))
        }
    }
}

/// The backends a discovered upstream starts with: the file as it is now, or a first
/// DNS resolution (bounded by [`FIRST_RESOLUTION_TIMEOUT`]). On failure the upstream
/// starts empty, and the background discovery fills it when it can.
fn first_backends(name: &str, source: &Source) -> Vec<Backend> {
    let found = match source {
        Source::File { path, .. } => read_backend_file(path).map_err(BinError::from),
        Source::Dns(options) => first_resolution(options),
    };
    match found {
        Ok(backends) if !backends.is_empty() => backends,
        Ok(_) => {
            ::log::warn!(
                "upstream {name}: discovery found no peer yet; answering 503 until it does"
            );
            Vec::new()
        }
        Err(e) => {
            ::log::warn!("upstream {name}: {e}; answering 503 until discovery finds peers");
            Vec::new()
        }
    }
}

/// One DNS resolution on a runtime of its own (start-up runs before any runtime),
/// with a resolver of its own (a resolver's connections belong to one runtime).
fn first_resolution(options: &DnsDiscoveryOptions) -> Result<Vec<Backend>, BinError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(BinError::ResolveInsideRuntime);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BinError::ResolverRuntime)?;
    let discovery = DnsDiscovery::new(options.clone())?;
    rt.block_on(async {
        match tokio::time::timeout(FIRST_RESOLUTION_TIMEOUT, discovery.discover()).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(BinError::ResolveTimeout {
                name: options.name.clone(),
                seconds: FIRST_RESOLUTION_TIMEOUT.as_secs(),
            }),
        }
    })
}

fn health_check(conf: &HealthCheckConf, tls: Option<Arc<UpstreamTls>>) -> HealthCheck {
    let expected = conf.expected_status();
    HealthCheck {
        kind: match conf.kind {
            HealthCheckType::Tcp => HealthCheckKind::Tcp,
            HealthCheckType::Http => HealthCheckKind::Http {
                path: conf.path.clone(),
                host: conf.host.clone(),
                expected_status: expected.min..=expected.max,
            },
        },
        interval: Duration::from_millis(conf.interval_ms),
        timeout: Duration::from_millis(conf.timeout_ms()),
        thresholds: Thresholds {
            healthy_after: conf.healthy_threshold,
            unhealthy_after: conf.unhealthy_threshold,
        },
        tls,
    }
}

/// How an upstream's backend set is kept up to date.
enum DiscoveryTask {
    File {
        discovery: FileDiscovery,
        interval: Duration,
    },
    Dns(Box<DnsDiscovery>),
}

/// The background work of one upstream: its health checks and the discovery of its
/// backends (each new set is swapped in while requests are served; the checks probe
/// whatever set is current).
pub struct UpstreamTasks {
    name: String,
    lb: Arc<LoadBalancer>,
    checks: Option<pingora_lb::HealthChecker>,
    discovery: Option<DiscoveryTask>,
}

impl UpstreamTasks {
    /// Spawns the tasks on the current runtime; they run for the life of the process.
    fn spawn(self, tasks: &mut tokio::task::JoinSet<()>) {
        if let Some(checks) = self.checks {
            tasks.spawn(checks.run(std::future::pending()));
        }
        match self.discovery {
            None => {}
            Some(DiscoveryTask::File {
                discovery,
                interval,
            }) => {
                tasks.spawn(follow(self.name, self.lb, discovery, interval));
            }
            Some(DiscoveryTask::Dns(discovery)) => {
                // The interval is unused: DNS answers say when to ask again.
                let interval = Duration::from_secs(1);
                tasks.spawn(follow(self.name, self.lb, *discovery, interval));
            }
        }
    }
}

/// Runs `discovery` into `lb` for the life of the process.
async fn follow(name: String, lb: Arc<LoadBalancer>, discovery: impl Discovery, every: Duration) {
    ::log::info!("upstream {name}: following {}", discovery.describe());
    run_discovery(lb, discovery, every, std::future::pending()).await;
}

/// Runs the background work of every upstream (health checks, discovery) until the
/// server stops: the server's background service `health-checks`, on a single-threaded
/// runtime of its own (probes and DNS queries wait on the network, not the CPU). It
/// goes on through a drain, so that backends are still judged while connections finish.
pub async fn run_background(checkers: Vec<UpstreamTasks>, _shutdown: ShutdownWatch) {
    let mut tasks = tokio::task::JoinSet::new();
    for c in checkers {
        c.spawn(&mut tasks);
    }
    while tasks.join_next().await.is_some() {}
}

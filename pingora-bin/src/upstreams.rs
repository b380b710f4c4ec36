//! A configured upstream: its peers (listed, or discovered from a file or DNS) behind a
//! [`pingora_lb::Upstream`], the hash key for consistent hashing, and the health check
//! and discovery built from the YAML. Selection, passive marking, draining and the
//! background work are pingora-lb's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pingora_config::{
    DiscoveryConf, DiscoveryType, DnsRecordType, HashKey, HealthCheckConf, HealthCheckType,
    LbAlgorithm, UpstreamConf,
};
use pingora_core::connector::{HttpPeer, PeerAddress, PeerOptions};
use pingora_core::protocols::proxy_protocol::ProxyVersion;
use pingora_core::protocols::tls::UpstreamTls;
use pingora_lb::{
    read_backend_file, AddressFamily, Algorithm, Backend, Discovery, DnsDiscovery,
    DnsDiscoveryOptions, DnsQuery, FileDiscovery, HealthCheck, HealthCheckKind, Thresholds,
};
use pingora_proxy::{RetryRule, Session};

use crate::error::BinError;

pub use pingora_lb::{BackendStatus, InFlight, UpstreamTasks as HealthChecker};

/// Most time the first DNS resolution may hold up start-up; without an answer by then
/// the upstream starts empty (503) and the background discovery keeps trying.
const FIRST_RESOLUTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the backend set of a discovered upstream comes from.
enum Source {
    File { path: PathBuf, interval: Duration },
    Dns(DnsDiscoveryOptions),
}

/// One `upstreams:` entry.
pub struct Upstream {
    /// The name from the config.
    pub name: String,
    inner: pingora_lb::Upstream,
    algorithm: LbAlgorithm,
    hash_key: Option<HashKey>,
    retry: Option<RetryRule>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .finish()
    }
}

impl Upstream {
    /// Builds the upstream `name` from its configuration; peers are built with
    /// `options` (TLS included). With `discovery`, the first answer is fetched here,
    /// before any request is served.
    pub fn new(name: String, conf: &UpstreamConf, options: PeerOptions) -> Result<Self, BinError> {
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
        let health = (conf.health_check.as_ref())
            .map(|h| health_check(h, options.tls.clone(), options.proxy_protocol));
        let source = conf.discovery.as_ref().and_then(|d| source(&name, d));
        let backends = match &source {
            None => {
                let mut backends = Vec::with_capacity(conf.peers.len());
                for p in &conf.peers {
                    PeerAddress::parse(&p.addr)
                        .ok_or_else(|| BinError::PeerAddress(p.addr.clone()).in_upstream(&name))?;
                    backends.push(Backend::new(p.addr.clone()).with_weight(p.weight));
                }
                backends
            }
            Some(source) => first_backends(&name, source),
        };
        let mut inner =
            pingora_lb::Upstream::new(name.clone(), backends, algorithm).peer_options(options);
        if let Some(check) = health {
            inner = inner.health_check(check);
        }
        match source {
            None => {}
            Some(Source::File { path, interval }) => {
                inner = inner.discovery(FileDiscovery::new(path), interval);
            }
            Some(Source::Dns(options)) => match DnsDiscovery::new(options) {
                // The interval is unused: DNS answers say when to ask again.
                Ok(dns) => inner = inner.discovery(dns, Duration::from_secs(1)),
                Err(e) => ::log::error!("upstream {name}: no DNS discovery: {e}"),
            },
        }
        Ok(Upstream {
            name,
            inner,
            algorithm: conf.lb,
            hash_key,
            retry: conf.retry.as_ref().map(crate::retry::rule),
        })
    }

    /// The `retry:` rule, if the upstream has one.
    pub fn retry_rule(&self) -> Option<RetryRule> {
        self.retry
    }

    /// Picks a backend for the request from `client_ip` (the client after the PROXY
    /// header and trusted `X-Forwarded-For`, which `hash_key: client_ip` hashes): a
    /// number to give back to [`Upstream::connect_failed`] (and to tell picks apart),
    /// its peer and an in-flight guard. `salt` (0 on a first pick) varies the hash of a
    /// hashing algorithm, so that a pick for a retry can land on another backend.
    pub fn select(
        &self,
        session: &Session,
        client_ip: Option<std::net::IpAddr>,
        salt: u8,
    ) -> Option<(usize, HttpPeer, InFlight)> {
        let mut ip = [0u8; 16];
        let key: &[u8] = match &self.hash_key {
            None => b"",
            Some(HashKey::Uri) => session.req_header().path_and_query().as_bytes(),
            Some(HashKey::ClientIp) => match client_ip {
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
        let picked = if salt == 0 || self.hash_key.is_none() {
            self.inner.select(key)?
        } else {
            // A retry only: the key with the salt after it.
            let mut salted = Vec::with_capacity(key.len() + 1);
            salted.extend_from_slice(key);
            salted.push(salt);
            self.inner.select(&salted)?
        };
        Some((picked.backend.get(), picked.peer, picked.in_flight))
    }

    /// Passive health: a connection to the backend of `in_flight` (from
    /// [`Upstream::select`]) failed: counted, and the backend is taken out for a
    /// while when another could serve instead.
    pub fn connect_failed(&self, in_flight: &InFlight) {
        self.inner.connect_failed(in_flight);
    }

    /// The backends of the current set (discovery changes it) with their health, load
    /// and counters.
    pub fn statuses(&self) -> Vec<BackendStatus> {
        self.inner.statuses()
    }

    /// Takes the backend at `addr` out of rotation (`drain: true`: no new requests,
    /// those in flight finish) or puts it back; whether it changed, `None` when the
    /// upstream has no such backend.
    pub fn set_draining(&self, addr: &str, drain: bool) -> Option<bool> {
        let changed = if drain {
            self.inner.drain(addr)
        } else {
            self.inner.enable(addr)
        };
        changed.ok()
    }

    /// The `lb:` algorithm, as written in the file.
    pub fn algorithm(&self) -> &'static str {
        match self.algorithm {
            LbAlgorithm::RoundRobin => "round_robin",
            LbAlgorithm::Weighted => "weighted",
            LbAlgorithm::Random => "random",
            LbAlgorithm::ConsistentHash => "consistent_hash",
            LbAlgorithm::LeastConn => "least_conn",
            LbAlgorithm::P2c => "p2c",
        }
    }

    /// The background work of this upstream (its health checks, its discovery), if it
    /// has any.
    pub fn health_checker(&self) -> Option<HealthChecker> {
        self.inner.has_background().then(|| self.inner.background())
    }
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

/// The health check of an upstream; its probes start with a PROXY header (a `LOCAL`
/// one) when the upstream's connections do, since such backends expect one first.
fn health_check(
    conf: &HealthCheckConf,
    tls: Option<Arc<UpstreamTls>>,
    proxy_protocol: Option<ProxyVersion>,
) -> HealthCheck {
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
        proxy_protocol,
    }
}

/// Runs the background work of every upstream (health checks, discovery) until the
/// server stops: the server's background service `health-checks`, on a single-threaded
/// runtime of its own (probes and DNS queries wait on the network, not the CPU). It
/// goes on through a drain, so that backends are still judged while connections finish.
pub fn background(checkers: Vec<HealthChecker>) -> HealthChecker {
    let mut all = HealthChecker::new();
    for c in checkers {
        all.add(c);
    }
    all
}

//! [`Upstream`]: a load balancer that hands out [`HttpPeer`]s, the glue between a
//! [`LoadBalancer`] and a proxy's `upstream_peer`: passive failure marking, in-flight
//! and per-backend counts, draining at runtime, and the health checks and discovery
//! run as a background service of the server ([`UpstreamTasks`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingora_core::connector::{HttpPeer, PeerAddress, PeerOptions};
use pingora_core::service::BackgroundService;
use pingora_core::shutdown::ShutdownWatch;
use pingora_core::{Error, ErrorKind, Side};

use crate::backend::{Backend, BackendStatus, InFlight};
use crate::balancer::{BackendId, LoadBalancer, SelectorBuilder};
use crate::discovery::{run_discovery, Discovery};
use crate::error::LbError;
use crate::health::{HealthCheck, HealthChecker};

/// How long a backend is skipped after a failed connection unless told otherwise
/// ([`Upstream::passive_backoff`]); a passing health check ends it early.
pub const DEFAULT_PASSIVE_BACKOFF: Duration = Duration::from_secs(10);

/// A task of the background service, made before any runtime runs.
type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The discovery of an upstream, waiting for its background service to run it.
type DiscoveryJob = Box<dyn FnOnce(Arc<LoadBalancer>) -> Job + Send>;

/// A named group of backends behind a [`LoadBalancer`], handing out [`HttpPeer`]s.
///
/// ```
/// use pingora_core::connector::PeerOptions;
/// use pingora_lb::{Algorithm, Backend, HealthCheck, HealthCheckKind, Upstream};
///
/// let api = Upstream::new(
///     "api",
///     vec![Backend::new("127.0.0.1:9001"), Backend::new("127.0.0.1:9002")],
///     Algorithm::RoundRobin,
/// )
/// .peer_options(PeerOptions::default())
/// .health_check(HealthCheck::every(
///     HealthCheckKind::http("/health"),
///     std::time::Duration::from_secs(1),
/// ));
/// let picked = api.select(b"").expect("a backend");
/// assert_eq!(picked.peer.address.to_string(), "127.0.0.1:9001");
/// // In a server: server.add_background("api-health", api.background());
/// ```
pub struct Upstream {
    name: String,
    lb: Arc<LoadBalancer>,
    options: PeerOptions,
    passive_backoff: Duration,
    health: Option<HealthCheck>,
    discovery: Mutex<Option<DiscoveryJob>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("backends", &self.lb.backends())
            .finish_non_exhaustive()
    }
}

/// One pick of [`Upstream::select`]: the peer to connect to, which backend it is,
/// and the guard counting the request in flight on it (keep it for the whole request,
/// for example in the proxy's per-request context).
#[derive(Debug)]
pub struct Selected {
    /// Where to send the request.
    pub peer: HttpPeer,
    /// Which backend of which version of the set (compare picks; stale ids name
    /// nothing after an update of the set).
    pub backend: BackendId,
    /// Counts the request until dropped; reports failures of this pick.
    pub in_flight: InFlight,
}

impl Upstream {
    /// An upstream `name` over `backends`, picking with `algorithm`; peers are built
    /// with [`PeerOptions::default`] until [`Upstream::peer_options`] says otherwise.
    pub fn new(
        name: impl Into<String>,
        backends: Vec<Backend>,
        algorithm: impl SelectorBuilder + 'static,
    ) -> Self {
        Upstream {
            name: name.into(),
            lb: Arc::new(LoadBalancer::new(backends, algorithm)),
            options: PeerOptions::default(),
            passive_backoff: DEFAULT_PASSIVE_BACKOFF,
            health: None,
            discovery: Mutex::new(None),
        }
    }

    /// The timeouts, TLS and HTTP/2 settings every peer of this upstream is built with.
    pub fn peer_options(mut self, options: PeerOptions) -> Self {
        self.options = options;
        self
    }

    /// Probes every backend with `check` (in the background service).
    pub fn health_check(mut self, check: HealthCheck) -> Self {
        self.health = Some(check);
        self
    }

    /// Follows `discovery` (in the background service): each new set replaces the
    /// current one while requests are served. `interval` is the wait between rounds
    /// unless the discovery says otherwise (DNS follows the TTLs).
    pub fn discovery(self, discovery: impl Discovery + 'static, interval: Duration) -> Self {
        let name = self.name.clone();
        let job: DiscoveryJob = Box::new(move |lb| {
            Box::pin(async move {
                log::info!("upstream {name}: following {}", discovery.describe());
                run_discovery(lb, discovery, interval, std::future::pending()).await;
            })
        });
        *self.discovery.lock().unwrap_or_else(|p| p.into_inner()) = Some(job);
        self
    }

    /// How long a backend is skipped after a failed connection
    /// ([`DEFAULT_PASSIVE_BACKOFF`] unless set).
    pub fn passive_backoff(mut self, backoff: Duration) -> Self {
        self.passive_backoff = backoff;
        self
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The load balancer underneath (to update the set by hand, read health...).
    pub fn balancer(&self) -> &Arc<LoadBalancer> {
        &self.lb
    }

    /// Picks a usable backend (healthy, not backed off, not draining) for a request
    /// with hash key `key` (ignored unless the algorithm hashes), with its peer.
    /// `None` when there is none. Builds a backend's peer once, on its first pick;
    /// after that a pick takes no lock and allocates only to clone the peer.
    pub fn select(&self, key: &[u8]) -> Option<Selected> {
        let (backend, peer, in_flight) = self.lb.select_state_with(key, |b, state| {
            state
                .peer
                .get_or_init(|| build_peer(&b.addr, &self.options))
                .clone()
        })?;
        Some(Selected {
            peer: peer?,
            backend,
            in_flight,
        })
    }

    /// [`Upstream::select`], or the error a proxy answers `503` for
    /// ([`ErrorKind::NoUpstream`]) naming the upstream.
    pub fn select_or_error(&self, key: &[u8]) -> pingora_core::Result<Selected> {
        self.select(key).ok_or_else(|| {
            Error::new(
                ErrorKind::NoUpstream,
                Side::Internal,
                format!("no healthy backend in upstream {}", self.name),
            )
        })
    }

    /// Passive health: a connection to the backend of `in_flight` failed. Counts an
    /// error on it and skips it for the passive back-off, unless it is the only
    /// backend (then there is nothing better to send requests to).
    pub fn connect_failed(&self, in_flight: &InFlight) {
        in_flight.record_error();
        if self.lb.len() > 1 {
            in_flight.mark_failed(self.passive_backoff);
        }
    }

    /// Takes the backend at `addr` out of rotation: it gets no new requests, those in
    /// flight finish. Returns whether it was in rotation.
    pub fn drain(&self, addr: &str) -> Result<bool, LbError> {
        self.set_draining(addr, true)
    }

    /// Puts a drained backend back into rotation. Returns whether it was drained.
    pub fn enable(&self, addr: &str) -> Result<bool, LbError> {
        self.set_draining(addr, false)
    }

    fn set_draining(&self, addr: &str, draining: bool) -> Result<bool, LbError> {
        self.lb
            .set_draining(addr, draining)
            .ok_or_else(|| LbError::UnknownBackend {
                upstream: self.name.clone(),
                addr: addr.to_string(),
            })
    }

    /// Health, load and counters of every backend, in order.
    pub fn statuses(&self) -> Vec<BackendStatus> {
        self.lb.statuses()
    }

    /// Whether this upstream has background work (health checks or discovery).
    pub fn has_background(&self) -> bool {
        self.health.is_some()
            || self
                .discovery
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
    }

    /// The background work of this upstream: its health checks, and its discovery
    /// (given to the first call only: a set has one source). Add it to the server
    /// with `server.add_background(name, tasks)`, or gather the work of several
    /// upstreams into one service with [`UpstreamTasks::add`].
    pub fn background(&self) -> UpstreamTasks {
        let mut jobs: Vec<Job> = Vec::new();
        if let Some(check) = &self.health {
            let checker = HealthChecker::new(self.lb.clone(), check.clone());
            jobs.push(Box::pin(checker.run(std::future::pending())));
        }
        let discovery = self
            .discovery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(job) = discovery {
            jobs.push(job(self.lb.clone()));
        }
        UpstreamTasks { jobs }
    }
}

/// The peer of a backend address (`None` for one no peer can be made of: listed
/// backends are checked by their users, discovery yields `IP:PORT` only).
fn build_peer(addr: &str, options: &PeerOptions) -> Option<HttpPeer> {
    let peer = PeerAddress::parse(addr).map(|a| HttpPeer::new(a, options.clone()));
    if peer.is_none() {
        log::error!("backend `{addr}` is not an address to connect to; it is never picked");
    }
    peer
}

/// The background work of one or more upstreams (health checks, discovery): a
/// [`BackgroundService`] for `Server::add_background`. It runs on the service's own
/// runtime until the server stops, through a drain, so that backends are still judged
/// while connections finish.
#[derive(Default)]
pub struct UpstreamTasks {
    jobs: Vec<Job>,
}

impl std::fmt::Debug for UpstreamTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTasks")
            .field("jobs", &self.jobs.len())
            .finish()
    }
}

impl UpstreamTasks {
    /// No work yet.
    pub fn new() -> Self {
        UpstreamTasks::default()
    }

    /// Adds the work of `other` (for one service running every upstream's checks).
    pub fn add(&mut self, other: UpstreamTasks) {
        self.jobs.extend(other.jobs);
    }

    /// Whether there is no work.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Runs every task until they all end (they do not, unless dropped). Must run
    /// inside a tokio runtime with time and I/O enabled.
    pub async fn run(self) {
        let mut tasks = tokio::task::JoinSet::new();
        for job in self.jobs {
            tasks.spawn(job);
        }
        while tasks.join_next().await.is_some() {}
    }
}

impl BackgroundService for UpstreamTasks {
    fn run(self, _shutdown: ShutdownWatch) -> impl Future<Output = ()> + Send + 'static {
        UpstreamTasks::run(self)
    }
}

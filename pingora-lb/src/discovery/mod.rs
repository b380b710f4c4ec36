//! Where the backend set comes from (a fixed list, a watched file, DNS), and the task
//! that keeps a load balancer's set up to date.

mod dns;
mod file;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
use crate::balancer::LoadBalancer;
use crate::error::LbError;

pub use dns::{AddressFamily, DnsDiscovery, DnsDiscoveryOptions, DnsQuery};
pub use file::{parse_backend_list, read_backend_file, FileDiscovery};

/// A source of backends. Implement it to feed a [`LoadBalancer`] from elsewhere (a
/// service registry, an API) and run it with [`run_discovery`].
pub trait Discovery: Send + Sync {
    /// The backends as of now.
    fn discover(&self) -> impl Future<Output = Result<Vec<Backend>, LbError>> + Send;

    /// How long to wait after a [`Discovery::discover`] before the next one;
    /// `interval` is the one given to [`run_discovery`]. Sources whose answers say how
    /// long they stay valid (DNS TTLs) override it.
    fn refresh_after(&self, interval: Duration) -> Duration {
        interval
    }

    /// What this source is, for log lines (like `file /etc/backends.txt`).
    fn describe(&self) -> String {
        "backend discovery".to_string()
    }
}

/// A fixed list (the `peers:` of the configuration).
#[derive(Debug, Clone)]
pub struct StaticDiscovery {
    backends: Vec<Backend>,
}

impl StaticDiscovery {
    /// Always answers `backends`.
    pub fn new(backends: Vec<Backend>) -> Self {
        StaticDiscovery { backends }
    }
}

impl Discovery for StaticDiscovery {
    async fn discover(&self) -> Result<Vec<Backend>, LbError> {
        Ok(self.backends.clone())
    }

    fn describe(&self) -> String {
        "static backend list".to_string()
    }
}

/// What the last discovery gave, so that a lasting failure is logged once rather than
/// at every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A non-empty set (published).
    Found,
    /// An empty answer (ignored).
    Empty,
    /// An error (ignored).
    Failed,
}

/// Asks `discovery` for backends and publishes what it finds into `lb` (which keeps
/// serving from the previous set meanwhile), until `stop` completes. The first
/// discovery runs at once; each next one after [`Discovery::refresh_after`] (which is
/// `interval` unless the source says otherwise).
///
/// A failed or empty discovery keeps the current set: a source that is briefly
/// unreachable or answers nothing does not take every backend away. Such a failure is
/// logged when it starts (and when its kind changes), and the recovery when it ends,
/// not at every attempt.
pub async fn run_discovery(
    lb: Arc<LoadBalancer>,
    discovery: impl Discovery,
    interval: Duration,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let what = discovery.describe();
    let mut last = Outcome::Found;
    loop {
        let result = tokio::select! {
            _ = &mut stop => return,
            result = discovery.discover() => result,
        };
        let outcome = match result {
            Ok(backends) if backends.is_empty() => {
                if last != Outcome::Empty {
                    log::warn!(
                        "{what}: no backend found; keeping the {} current backend(s)",
                        lb.len()
                    );
                }
                Outcome::Empty
            }
            Ok(backends) => {
                if last != Outcome::Found {
                    log::warn!("{what}: {} backend(s) found again", backends.len());
                }
                lb.update(backends);
                Outcome::Found
            }
            Err(e) => {
                if last != Outcome::Failed {
                    log::warn!(
                        "{what}: {e}; keeping the {} current backend(s) until it works again",
                        lb.len()
                    );
                } else {
                    log::debug!("{what}: still failing: {e}");
                }
                Outcome::Failed
            }
        };
        last = outcome;
        let wait = discovery.refresh_after(interval);
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

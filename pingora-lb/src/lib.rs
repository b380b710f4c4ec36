#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod balancer;
mod discovery;
mod error;
mod health;
mod selection;
mod upstream;

pub use backend::{Backend, BackendStatus, CheckResult, InFlight};
pub use balancer::{Algorithm, BackendId, LoadBalancer, SelectorBuilder};
pub use discovery::{
    parse_backend_list, read_backend_file, run_discovery, AddressFamily, Discovery, DnsDiscovery,
    DnsDiscoveryOptions, DnsQuery, FileDiscovery, StaticDiscovery,
};
pub use error::LbError;
pub use health::{HealthCheck, HealthCheckKind, HealthChecker, Thresholds};
pub use selection::{
    ConsistentHash, LeastConn, PowerOfTwo, Random, RoundRobin, Selector, Weighted,
};
pub use upstream::{Selected, Upstream, UpstreamTasks, DEFAULT_PASSIVE_BACKOFF};

#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod balancer;
mod health;
mod selection;

pub use balancer::{Backend, InFlight, LoadBalancer};
pub use health::{HealthCheck, HealthCheckKind, HealthChecker, Thresholds};
pub use selection::{
    ConsistentHash, LeastConn, PowerOfTwo, Random, RoundRobin, Selector, Weighted,
};

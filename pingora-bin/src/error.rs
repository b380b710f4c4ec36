//! The binary's errors: what failed, with its context and its cause.

use std::net::AddrParseError;
use std::path::PathBuf;

use pingora_core::process::{BootstrapError, EXIT_FAILURE};

/// Everything that can stop the binary, and the messages an operator reads.
#[derive(Debug, thiserror::Error)]
pub enum BinError {
    /// The process could not start or run; it carries its own exit code.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// A failure of pingora-core, such as a TLS certificate that does not load.
    #[error(transparent)]
    Core(#[from] pingora_core::Error),
    /// A failure of pingora-lb, such as a discovery that cannot be set up.
    #[cfg(feature = "lb")]
    #[error(transparent)]
    Lb(#[from] pingora_lb::LbError),
    /// `error_log` cannot be opened.
    #[error("cannot open error_log {}: {source}", path.display())]
    ErrorLog {
        /// The file (`stderr` when none is configured).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `access_log` cannot be opened.
    #[error("cannot open access_log {}: {source}", path.display())]
    AccessLog {
        /// The file (`-` for stdout).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `admin.token_file` cannot be read.
    #[error("cannot read admin.token_file {}: {source}", path.display())]
    AdminToken {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The access log's writer thread cannot be started.
    #[error("cannot start the access_log writer: {0}")]
    AccessLogWriter(#[source] std::io::Error),
    /// A metric cannot be created.
    #[error("cannot create metric: {0}")]
    MetricCreate(#[source] prometheus::Error),
    /// A metric cannot be registered.
    #[error("cannot register metric: {0}")]
    MetricRegister(#[source] prometheus::Error),
    /// A TLS section of the configuration does not load (`key` is its key path).
    #[error("{key}: {source}")]
    Tls {
        /// Where in the configuration, e.g. `services[0].listeners[1].tls`.
        key: String,
        /// What is wrong with it.
        #[source]
        source: Box<BinError>,
    },
    /// Something about one upstream.
    #[error("upstream {upstream}: {source}")]
    Upstream {
        /// The upstream's name.
        upstream: String,
        /// What is wrong with it.
        #[source]
        source: Box<BinError>,
    },
    /// A peer address that does not parse.
    #[error("bad peer address {0}")]
    PeerAddress(String),
    /// A `respond` status that is not an HTTP status.
    #[error("bad respond status {0}")]
    RespondStatus(u16),
    /// A policy key that the validated configuration let through but that does not build
    /// (a bug: validation should have refused it).
    #[error("{key}: {message}")]
    Policy {
        /// Where in the configuration, e.g. `services[0].routes[1].match.path_regex`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A service's cache directory (`cache.disk.path`) cannot be opened.
    #[cfg(feature = "cache")]
    #[error("service {service}: cannot open the cache directory {}: {source}", path.display())]
    CacheDisk {
        /// The service.
        service: String,
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A route names an upstream that does not exist.
    #[error("route to undefined upstream {0}")]
    UndefinedUpstream(String),
    /// A `client_bind_to_ipv4`/`ipv6` entry that is not an IP address.
    #[error("bad client bind address {addr}: {source}")]
    ClientBindAddress {
        /// The entry.
        addr: String,
        /// Why it does not parse.
        #[source]
        source: AddrParseError,
    },
    /// The first DNS resolution of an upstream cannot run.
    #[cfg(feature = "lb")]
    #[error("cannot resolve at start-up: {0}")]
    ResolverRuntime(#[source] std::io::Error),
    /// The first DNS resolution was asked for inside a runtime, where it cannot block.
    #[cfg(feature = "lb")]
    #[error("first resolution skipped inside a runtime")]
    ResolveInsideRuntime,
    /// The first DNS resolution got no answer in time.
    #[cfg(feature = "lb")]
    #[error("no DNS answer for {name} within {seconds} s")]
    ResolveTimeout {
        /// The name asked for.
        name: String,
        /// The time allowed.
        seconds: u64,
    },
}

impl BinError {
    /// The process's exit code for this error (see `main`).
    pub fn exit_code(&self) -> u8 {
        match self {
            BinError::Bootstrap(e) => e.exit_code(),
            _ => EXIT_FAILURE,
        }
    }

    /// `self` about the upstream `name`.
    pub fn in_upstream(self, name: &str) -> BinError {
        BinError::Upstream {
            upstream: name.to_string(),
            source: Box::new(self),
        }
    }
}

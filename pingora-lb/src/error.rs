//! The error type of this crate.

use std::path::PathBuf;

/// What went wrong while discovering backends.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// A backend list could not be read.
    #[error("cannot read backend list {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line of a backend list is not `ADDR [WEIGHT]`.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Discovery found no backend (the current set is kept rather than emptied).
    #[error("{source_name}: no backend found")]
    Empty {
        /// Where the list came from.
        source_name: String,
    },
    /// A DNS resolution failed (no answer, a server failure, a bad name).
    #[error("cannot resolve {name}: {source}")]
    Resolve {
        /// The name that was being resolved.
        name: String,
        /// The resolver's error.
        #[source]
        source: Box<hickory_resolver::ResolveError>,
    },
    /// The system's resolver configuration (`/etc/resolv.conf`) cannot be read.
    #[error("cannot read the system's DNS configuration: {source}")]
    ResolverConfig {
        /// The resolver's error.
        #[source]
        source: Box<hickory_resolver::ResolveError>,
    },
    /// No backend of the upstream has this address (drain, enable).
    #[error("upstream {upstream} has no backend {addr}")]
    UnknownBackend {
        /// The upstream's name.
        upstream: String,
        /// The address asked for.
        addr: String,
    },
}

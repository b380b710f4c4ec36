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
    #[error("{source_name}: no backend listed")]
    Empty {
        /// Where the list came from.
        source_name: String,
    },
}

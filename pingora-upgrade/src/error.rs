//! The crate's single error type.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while handing listening sockets over.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// A listening process already answers at the socket path.
    #[error("another instance is already waiting for an upgrade at {}", path.display())]
    AlreadyWaiting {
        /// The upgrade socket path.
        path: PathBuf,
    },

    /// The path exists but is not a unix socket, so it is left alone.
    #[error("{} exists and is not a unix socket; refusing to replace it", path.display())]
    NotASocket {
        /// The upgrade socket path.
        path: PathBuf,
    },

    /// Nothing completed within the allotted time.
    #[error("timed out after {waited:?} {during} at {}", path.display())]
    Timeout {
        /// The upgrade socket path.
        path: PathBuf,
        /// How long was waited in total.
        waited: Duration,
        /// What was being waited for (and the last problem seen, if any).
        during: String,
    },

    /// The other side explicitly refused the hand-over.
    #[error("the peer at {} refused the hand-over: {reason}", path.display())]
    Refused {
        /// The upgrade socket path.
        path: PathBuf,
        /// The reason the peer gave.
        reason: String,
    },

    /// The peer broke the wire protocol (bad magic, version, sizes, early close...).
    #[error("protocol error: {detail}")]
    Protocol {
        /// What exactly was wrong.
        detail: String,
    },

    /// The peer runs as a user that is neither ours nor root.
    #[error("peer runs as uid {uid}, but only uid {own} or root may take part in the hand-over")]
    PeerUid {
        /// The peer's uid (from SO_PEERCRED).
        uid: u32,
        /// Our own effective uid.
        own: u32,
    },

    /// The caller asked to send something the protocol cannot carry.
    #[error("cannot hand over listener {addr:?}: {reason}")]
    InvalidListener {
        /// The listener address as given by the caller.
        addr: String,
        /// Why it cannot be sent.
        reason: String,
    },

    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, including the path involved.
        context: String,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
}

impl UpgradeError {
    /// Builds an [`UpgradeError::Io`] from a context and a cause.
    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        UpgradeError::Io {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Builds an [`UpgradeError::Protocol`].
    pub(crate) fn protocol(detail: impl Into<String>) -> Self {
        UpgradeError::Protocol {
            detail: detail.into(),
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = UpgradeError> = std::result::Result<T, E>;

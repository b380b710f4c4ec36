#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod channel;
mod error;
mod peer;
pub mod protocol;
mod receiver;
mod sender;

pub use error::{Result, UpgradeError};
pub use peer::peer_uid_allowed;
pub use receiver::{HandedListener, UpgradeReceiver, DEFAULT_PEER_IO_TIMEOUT};
pub use sender::{send_listeners, SendOptions, MAX_CONNECT_BACKOFF};

//! HTTP message types, the HTTP/1.x codec and the version-neutral sessions.

pub mod client_session;
pub mod detached;
pub mod header;
pub mod server_session;
pub mod v1;
pub mod v2;
#[cfg(feature = "http3")]
pub mod v3;

pub use client_session::{ClientSession, UpstreamTunnel};
pub use header::{RequestHeader, ResponseHeader};
pub use server_session::ServerSession;

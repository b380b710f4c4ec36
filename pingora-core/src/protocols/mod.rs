//! Wire protocols spoken by the proxy, and the stream they run on.

mod connection_info;
pub mod http;
pub mod proxy_protocol;
pub mod stream;
pub mod tls;

pub use connection_info::ConnectionInfo;
pub use stream::{ClientAddr, Stream};

//! Wire protocols spoken by the proxy, and the stream they run on.

pub mod http;
pub mod stream;
pub mod tls;

pub use stream::{ClientAddr, Stream};

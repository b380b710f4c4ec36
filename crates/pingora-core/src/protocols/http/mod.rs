//! HTTP message types and the HTTP/1.x codec.

pub mod header;
pub mod v1;

pub use header::{RequestHeader, ResponseHeader};

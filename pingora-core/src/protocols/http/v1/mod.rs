//! HTTP/1.x: a strict codec (heads, body framing) and the client and server sessions.
//!
//! One stage a file: [`parse`] reads heads, [`framing`] decides how bodies are
//! delimited, [`body`] decodes and encodes bodies, [`serialize`] writes heads;
//! [`server`] and [`client`] drive them over a stream.

pub mod body;
pub mod client;
pub mod framing;
mod idle;
mod io;
pub mod parse;
pub mod serialize;
pub mod server;

pub use body::{BodyDecoder, BodyEncoder, BodyEvent, DataFrame};
pub use framing::{
    connection_has_token, expects_continue, is_upgrade_request, request_framing, response_framing,
    set_request_framing_headers, upgrade_protocol, wants_keepalive, BodyFraming,
};
pub use idle::H1IdleConnection;
pub use parse::{parse_request, parse_response, HeadLimits};
pub use serialize::{write_request_head, write_response_head};

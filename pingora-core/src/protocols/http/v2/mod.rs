//! HTTP/2 on the `h2` crate: the downstream connection and its request streams
//! ([`server`]), the upstream connection and its exchange streams ([`client`]), and the
//! conversion of heads to and from the HTTP/1-shaped types the proxy uses ([`convert`]).
//! The pool of shared upstream connections is in [`crate::connector::h2`].
//!
//! # h2c with prior knowledge
//!
//! A client that knows a plain listener speaks HTTP/2 opens with the 24-byte
//! connection preface ([`H2C_PREFACE`]). Whoever reads the first bytes of a plain
//! connection checks them with [`could_be_h2c_preface`] while fewer than 24 arrived
//! and [`is_h2c_preface`] after (or lets [`read_h2c_preface`] do the reading), then
//! hands the stream and every byte it already read to
//! [`server::H2ServerConnection::handshake`] as its `prefix`; the bytes are replayed
//! to `h2` before the rest of the stream.

pub mod body_writer;
pub mod client;
pub mod convert;
mod flow;
pub mod io;
pub mod keepalive;
pub mod server;

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;

use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::Stream;

pub use body_writer::H2BodyWriter;
pub use client::{H2ClientConnection, H2ClientOptions, H2ClientStream};
pub use keepalive::KeepalivePing;
pub use server::{H2ServerConnection, H2ServerOptions, H2ServerStream};

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
pub const H2C_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `buf` starts with the whole HTTP/2 connection preface.
pub fn is_h2c_preface(buf: &[u8]) -> bool {
    buf.starts_with(H2C_PREFACE)
}

/// Whether `buf` may still turn out to be the HTTP/2 preface: it matches the
/// preface as far as it goes (an empty `buf` does). Once false, the connection speaks
/// something else (an HTTP/1 request).
pub fn could_be_h2c_preface(buf: &[u8]) -> bool {
    let n = buf.len().min(H2C_PREFACE.len());
    buf[..n] == H2C_PREFACE[..n]
}

/// Reads from `stream` until its first bytes decide between HTTP/2 with prior
/// knowledge (true: the whole preface arrived) and anything else (false, usually after
/// one or two bytes of an HTTP/1 request line). Returns every byte read, which the
/// chosen session must replay. Fails on a read error, or when `timeout` passes first;
/// a connection closed before deciding gives false with what was read.
pub async fn read_h2c_preface(stream: &mut Stream, timeout: Duration) -> Result<(bool, BytesMut)> {
    let mut buf = BytesMut::with_capacity(1024);
    let read = async {
        loop {
            if is_h2c_preface(&buf) {
                return Ok(true);
            }
            if !could_be_h2c_preface(&buf) {
                return Ok(false);
            }
            let n = stream.read_buf(&mut buf).await.map_err(|e| {
                Error::from_io(
                    Side::Downstream,
                    "reading the first bytes of a connection",
                    e,
                )
            })?;
            if n == 0 {
                return Ok(false);
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(is_h2)) => Ok((is_h2, buf)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::new(
            ErrorKind::ReadTimeout,
            Side::Downstream,
            "the first bytes of the connection did not arrive in time",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preface_checks() {
        assert!(could_be_h2c_preface(b""));
        assert!(could_be_h2c_preface(b"PRI * HT"));
        assert!(!could_be_h2c_preface(b"POST / HTTP/1.1"));
        assert!(!could_be_h2c_preface(b"GET"));
        assert!(!is_h2c_preface(b"PRI * HTTP/2.0\r\n"));
        let mut full = H2C_PREFACE.to_vec();
        assert!(is_h2c_preface(&full) && could_be_h2c_preface(&full));
        full.extend_from_slice(b"\x00\x00\x00\x04");
        assert!(is_h2c_preface(&full) && could_be_h2c_preface(&full));
        assert!(!could_be_h2c_preface(b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n"));
    }
}

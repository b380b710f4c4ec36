//! HTTP/2 on the `h2` crate: the downstream connection and its request streams
//! ([`server`]), the upstream connection and its exchange streams ([`client`]), and the
//! conversion of heads to and from the HTTP/1-shaped types the proxy uses ([`convert`]).
//! The pool of shared upstream connections is in [`crate::connector::h2`].
//!
//! # h2c with prior knowledge
//!
//! A client that knows a plain listener speaks HTTP/2 opens with the 24-byte
//! connection preface ([`H2C_PREFACE`]). Whoever reads the first bytes of a plain
//! connection asks [`sniff_h2c_preface`] what they are (the HTTP/1 server session does,
//! when [`ServerSessionOptions::h2c_prior_knowledge`] is set, and reports
//! [`NextRequest::Http2`]), then hands the stream and every byte it already read to
//! [`server::H2ServerConnection::handshake`] as its `prefix`; the bytes are replayed
//! to `h2` before the rest of the stream.
//!
//! [`ServerSessionOptions::h2c_prior_knowledge`]: crate::protocols::http::v1::server::ServerSessionOptions::h2c_prior_knowledge
//! [`NextRequest::Http2`]: crate::protocols::http::v1::server::NextRequest::Http2

pub mod body_writer;
pub mod client;
pub mod convert;
mod flow;
pub mod io;
pub mod keepalive;
pub mod server;
pub mod tunnel;

pub use body_writer::H2BodyWriter;
pub use client::{H2ClientConnection, H2ClientOptions, H2ClientStream};
pub use keepalive::KeepalivePing;
pub use server::{H2ServerConnection, H2ServerOptions, H2ServerStream};
pub use tunnel::H2Tunnel;

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
pub const H2C_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How far the first bytes of a connection match the HTTP/2 preface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2cPreface {
    /// The whole preface is there: the client speaks HTTP/2 (with prior knowledge).
    Complete,
    /// What arrived so far is a start of the preface (nothing arrived counts): read more.
    Partial,
    /// Not the preface: the client speaks something else (an HTTP/1 request).
    Absent,
}

/// Tells from the first bytes of a plain connection whether it opens with the HTTP/2
/// preface. The one place the preface is recognised.
pub fn sniff_h2c_preface(buf: &[u8]) -> H2cPreface {
    let n = buf.len().min(H2C_PREFACE.len());
    if buf[..n] != H2C_PREFACE[..n] {
        H2cPreface::Absent
    } else if n == H2C_PREFACE.len() {
        H2cPreface::Complete
    } else {
        H2cPreface::Partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_preface_whole_and_in_part() {
        assert_eq!(sniff_h2c_preface(H2C_PREFACE), H2cPreface::Complete);
        let mut more = H2C_PREFACE.to_vec();
        more.extend_from_slice(b"\x00\x00\x12\x04");
        assert_eq!(sniff_h2c_preface(&more), H2cPreface::Complete);
        assert_eq!(sniff_h2c_preface(b""), H2cPreface::Partial);
        assert_eq!(sniff_h2c_preface(b"P"), H2cPreface::Partial);
        assert_eq!(sniff_h2c_preface(b"PRI * HT"), H2cPreface::Partial);
        assert_eq!(sniff_h2c_preface(b"GET"), H2cPreface::Absent);
        assert_eq!(
            sniff_h2c_preface(b"POST / HTTP/1.1\r\n"),
            H2cPreface::Absent
        );
        assert_eq!(
            sniff_h2c_preface(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"),
            H2cPreface::Absent
        );
        assert_eq!(
            sniff_h2c_preface(b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n"),
            H2cPreface::Absent
        );
    }
}

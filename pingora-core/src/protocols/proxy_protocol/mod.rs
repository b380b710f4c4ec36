//! The PROXY protocol (versions 1 and 2): the header an L4 balancer (HAProxy, a cloud
//! network load balancer, another instance of this proxy) writes first on a connection
//! to pass on the real client's address.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`ProxyHeader`], [`ProxyVersion`], [`ProxyAddresses`], TLVs ([`Tlv`], [`tlv_type`]) |
//! | `parse.rs` | [`parse`]: sans-IO parsing of a header at the start of a buffer |
//! | `encode.rs` | [`encode`]: a header to write first on an upstream connection |
//! | `accept.rs` | [`ProxyProtocolOptions`]: reading the header on a listener, before anything else |
//!
//! The parser does no I/O: it looks at the bytes it is given and says whether they hold a
//! whole header (and how long it is), need more bytes, are no PROXY header at all, or
//! are a broken one. It never reads past the header, never allocates unless the header
//! carries TLVs, and is bounded: a v1 header is at most [`V1_MAX_BYTES`], a v2 header at
//! most [`MAX_HEADER_BYTES`].

mod accept;
mod encode;
mod parse;

use std::net::SocketAddr;

use bytes::Bytes;

pub use accept::{HeaderOutcome, ProxyProtocolOptions, ProxyProtocolRejects, RejectReason};
pub use encode::encode;
pub use parse::{parse, HeaderError, Parsed, MAX_HEADER_BYTES, V1_MAX_BYTES};

/// The 12 bytes every version 2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The 6 bytes every version 1 header starts with.
pub const V1_PREFIX: &[u8; 6] = b"PROXY ";

/// Which version of the PROXY protocol a header is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyVersion {
    /// The human-readable version: one text line ending in CRLF.
    V1,
    /// The binary version, with optional TLVs.
    V2,
}

impl ProxyVersion {
    /// `v1` or `v2`, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyVersion::V1 => "v1",
            ProxyVersion::V2 => "v2",
        }
    }
}

/// The two ends of the relayed connection: the client (`source`) and the address it
/// connected to (`destination`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProxyAddresses {
    /// The client's address and port.
    pub source: SocketAddr,
    /// The address and port the client connected to.
    pub destination: SocketAddr,
}

/// A PROXY header as received.
///
/// Without addresses (a v2 `LOCAL` command, a v1 `UNKNOWN` line, or a family other than
/// TCP over IPv4 or IPv6) the connection's own endpoints stand: the sender made it for
/// itself (a health check) or could not say who the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    version: ProxyVersion,
    local: bool,
    addresses: Option<ProxyAddresses>,
    /// The TLV area of a v2 header, checked to be well formed (empty otherwise).
    tlvs: Bytes,
}

impl ProxyHeader {
    /// The version the header was written in.
    pub fn version(&self) -> ProxyVersion {
        self.version
    }

    /// Whether it is a v2 `LOCAL` command: a connection the sender made on its own
    /// behalf (typically a health check), relaying nobody.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The relayed connection's ends, when the header names them.
    pub fn addresses(&self) -> Option<ProxyAddresses> {
        self.addresses
    }

    /// The client's address, when the header names one.
    pub fn source(&self) -> Option<SocketAddr> {
        self.addresses.map(|a| a.source)
    }

    /// The address the client connected to, when the header names one.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.addresses.map(|a| a.destination)
    }

    /// Every TLV of a v2 header, in order (none for v1).
    pub fn tlvs(&self) -> Tlvs<'_> {
        Tlvs { rest: &self.tlvs }
    }

    /// The value of the first TLV of type `kind` (see [`tlv_type`]).
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs().find(|t| t.kind == kind).map(|t| t.value)
    }

    /// The `PP2_TYPE_AUTHORITY` TLV: the host name the client asked for (TLS SNI).
    pub fn authority(&self) -> Option<&str> {
        self.tlv(tlv_type::AUTHORITY)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The `PP2_TYPE_ALPN` TLV: the application protocol the client chose.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.tlv(tlv_type::ALPN)
    }

    /// The `PP2_TYPE_UNIQUE_ID` TLV: an opaque id of the connection given by the sender.
    pub fn unique_id(&self) -> Option<&[u8]> {
        self.tlv(tlv_type::UNIQUE_ID)
    }
}

/// The TLV types the PROXY protocol specification names (values of [`Tlv::kind`]).
pub mod tlv_type {
    /// The application protocol negotiated with the client (ALPN).
    pub const ALPN: u8 = 0x01;
    /// The host name the client asked for (TLS SNI or `Host`).
    pub const AUTHORITY: u8 = 0x02;
    /// A CRC32C checksum of the header.
    pub const CRC32C: u8 = 0x03;
    /// Padding, to be ignored.
    pub const NOOP: u8 = 0x04;
    /// An opaque unique id of the connection.
    pub const UNIQUE_ID: u8 = 0x05;
    /// What TLS the client used (with sub-TLVs of its own).
    pub const SSL: u8 = 0x20;
    /// The network namespace the connection was accepted in.
    pub const NETNS: u8 = 0x30;
}

/// One type-length-value record of a v2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The type (see [`tlv_type`]; 0xE0..=0xEF are for applications, such as a cloud
    /// provider's endpoint ids).
    pub kind: u8,
    /// The value.
    pub value: &'a [u8],
}

/// The TLVs of a header, in order: see [`ProxyHeader::tlvs`].
#[derive(Debug, Clone)]
pub struct Tlvs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Tlv<'a>;

    fn next(&mut self) -> Option<Tlv<'a>> {
        let (tlv, rest) = split_tlv(self.rest)?;
        self.rest = rest;
        Some(tlv)
    }
}

/// The first TLV of `area` and what follows it; `None` when `area` is empty or does
/// not start with a whole TLV.
fn split_tlv(area: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&kind, rest) = area.split_first()?;
    let len_bytes: [u8; 2] = rest.get(..2)?.try_into().ok()?;
    let len = usize::from(u16::from_be_bytes(len_bytes));
    let value = rest.get(2..2 + len)?;
    Some((Tlv { kind, value }, &rest[2 + len..]))
}

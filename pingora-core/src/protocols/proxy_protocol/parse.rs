//! [`parse`]: a PROXY header (v1 or v2) at the start of a buffer, without I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;

use super::{split_tlv, ProxyAddresses, ProxyHeader, ProxyVersion, V1_PREFIX, V2_SIGNATURE};

/// Longest v1 header, CRLF included (the specification's bound: `PROXY TCP6` with two
/// full IPv6 addresses and ports).
pub const V1_MAX_BYTES: usize = 107;

/// Longest v2 header accepted, the 16 fixed bytes included. The format allows 64 KiB of
/// addresses and TLVs; what senders write (addresses, an authority, TLS details, a
/// cloud endpoint id) fits in a few hundred bytes, and a longer one is refused.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Bytes of the fixed part of a v2 header (signature, version and command, family,
/// length).
const V2_FIXED_BYTES: usize = 16;

/// What the start of a buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header, `len` bytes long: the connection's own data starts after it.
    Header {
        /// The header.
        header: ProxyHeader,
        /// Its length in bytes.
        len: usize,
    },
    /// The beginning of a header (or bytes that may still become one): at least
    /// `at_least` bytes in all are needed to say more.
    Incomplete {
        /// How many bytes (from the start) are needed at least.
        at_least: usize,
    },
    /// Not a PROXY header: the connection starts with something else.
    NotProxy,
}

/// Why a header is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// A v1 line with no CRLF within [`V1_MAX_BYTES`].
    #[error("PROXY v1 line longer than {V1_MAX_BYTES} bytes")]
    V1TooLong,
    /// A v1 line with a byte that is not printable ASCII, or a CR not followed by LF.
    #[error("PROXY v1 line with a byte that is not printable ASCII")]
    V1BadByte,
    /// A v1 protocol other than `TCP4`, `TCP6` or `UNKNOWN`.
    #[error("PROXY v1 line with an unknown protocol")]
    V1BadProtocol,
    /// A v1 line without exactly four single-space-separated fields after the protocol.
    #[error("PROXY v1 line with missing, extra or badly separated fields")]
    V1BadFields,
    /// A v1 address that is not one of the protocol's family.
    #[error("PROXY v1 line with a bad address")]
    V1BadAddress,
    /// A v1 port that is not a number from 0 to 65535 (written without leading zeros).
    #[error("PROXY v1 line with a bad port")]
    V1BadPort,
    /// A v2 version other than 2, or a command other than `LOCAL` or `PROXY`.
    #[error("PROXY v2 header with an unknown version or command")]
    V2BadVersionOrCommand,
    /// A v2 address family or transport the specification does not define, or a
    /// datagram transport on this stream connection.
    #[error("PROXY v2 header with an unknown or unusable address family or transport")]
    V2BadFamily,
    /// A v2 header whose length is too short for its addresses.
    #[error("PROXY v2 header too short for its address family")]
    V2ShortAddresses,
    /// A v2 header longer than [`MAX_HEADER_BYTES`].
    #[error("PROXY v2 header longer than {MAX_HEADER_BYTES} bytes")]
    V2TooLong,
    /// A v2 TLV area that does not split into whole TLVs.
    #[error("PROXY v2 header with a truncated TLV")]
    V2BadTlv,
}

/// Looks for a PROXY header at the start of `buf`.
///
/// Returns [`Parsed::NotProxy`] as soon as the first bytes rule both versions out (an
/// HTTP request or a TLS ClientHello does so within its first byte or two), and
/// [`Parsed::Incomplete`] while `buf` is a strict prefix of something that may still
/// be a header. Never panics, whatever the bytes; looks at no more than
/// [`MAX_HEADER_BYTES`] of them.
pub fn parse(buf: &[u8]) -> Result<Parsed, HeaderError> {
    if starts_like(buf, &V2_SIGNATURE) {
        if buf.len() < V2_FIXED_BYTES {
            return Ok(Parsed::Incomplete {
                at_least: V2_FIXED_BYTES,
            });
        }
        return parse_v2(buf);
    }
    if starts_like(buf, V1_PREFIX) {
        if buf.len() < V1_PREFIX.len() {
            return Ok(Parsed::Incomplete {
                at_least: V1_PREFIX.len(),
            });
        }
        return parse_v1(buf);
    }
    if buf.is_empty() {
        return Ok(Parsed::Incomplete { at_least: 1 });
    }
    Ok(Parsed::NotProxy)
}

/// Whether `buf` and `prefix` agree on their common length (an empty `buf` does not).
fn starts_like(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    n > 0 && buf[..n] == prefix[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, HeaderError> {
    let window = &buf[..buf.len().min(V1_MAX_BYTES)];
    let mut end = None;
    for (i, &b) in window.iter().enumerate().skip(V1_PREFIX.len()) {
        match b {
            b'\r' => match window.get(i + 1) {
                Some(b'\n') => {
                    end = Some(i);
                    break;
                }
                Some(_) => return Err(HeaderError::V1BadByte),
                None => {}
            },
            0x20..=0x7e => {}
            _ => return Err(HeaderError::V1BadByte),
        }
    }
    let Some(end) = end else {
        if window.len() >= V1_MAX_BYTES {
            return Err(HeaderError::V1TooLong);
        }
        return Ok(Parsed::Incomplete {
            at_least: buf.len() + 1,
        });
    };
    let line = &buf[V1_PREFIX.len()..end];
    let header = |addresses| ProxyHeader {
        version: ProxyVersion::V1,
        local: false,
        addresses,
        tlvs: Bytes::new(),
    };
    let len = end + 2;
    let mut fields = line.split(|&b| b == b' ');
    let protocol = fields.next().unwrap_or_default();
    let v6 = match protocol {
        // The rest of an UNKNOWN line is to be ignored, whatever it says.
        b"UNKNOWN" => {
            return Ok(Parsed::Header {
                header: header(None),
                len,
            })
        }
        b"TCP4" => false,
        b"TCP6" => true,
        _ => return Err(HeaderError::V1BadProtocol),
    };
    let mut next = || fields.next().ok_or(HeaderError::V1BadFields);
    let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
    if fields.next().is_some() {
        return Err(HeaderError::V1BadFields);
    }
    let source = SocketAddr::new(v1_ip(src, v6)?, v1_port(sport)?);
    let destination = SocketAddr::new(v1_ip(dst, v6)?, v1_port(dport)?);
    Ok(Parsed::Header {
        header: header(Some(ProxyAddresses {
            source,
            destination,
        })),
        len,
    })
}

fn v1_ip(field: &[u8], v6: bool) -> Result<IpAddr, HeaderError> {
    let text = std::str::from_utf8(field).map_err(|_| HeaderError::V1BadAddress)?;
    let ip = if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    ip.map_err(|_| HeaderError::V1BadAddress)
}

fn v1_port(field: &[u8]) -> Result<u16, HeaderError> {
    let digits = !field.is_empty() && field.len() <= 5 && field.iter().all(u8::is_ascii_digit);
    if !digits || (field.len() > 1 && field[0] == b'0') {
        return Err(HeaderError::V1BadPort);
    }
    let value = field.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    u16::try_from(value).map_err(|_| HeaderError::V1BadPort)
}

/// Address family (high nibble of byte 13) of a v2 header.
const AF_UNSPEC: u8 = 0x0;
const AF_INET: u8 = 0x1;
const AF_INET6: u8 = 0x2;
const AF_UNIX: u8 = 0x3;
/// Transport (low nibble of byte 13).
const TRANSPORT_UNSPEC: u8 = 0x0;
const TRANSPORT_STREAM: u8 = 0x1;
const TRANSPORT_DGRAM: u8 = 0x2;

fn parse_v2(buf: &[u8]) -> Result<Parsed, HeaderError> {
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    let local = match (version, command) {
        (2, 0) => true,
        (2, 1) => false,
        _ => return Err(HeaderError::V2BadVersionOrCommand),
    };
    let (family, transport) = (buf[13] >> 4, buf[13] & 0x0f);
    let address_bytes = match family {
        AF_UNSPEC => 0,
        AF_INET => 12,
        AF_INET6 => 36,
        AF_UNIX => 216,
        _ => return Err(HeaderError::V2BadFamily),
    };
    if !matches!(
        transport,
        TRANSPORT_UNSPEC | TRANSPORT_STREAM | TRANSPORT_DGRAM
    ) {
        return Err(HeaderError::V2BadFamily);
    }
    let rest = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = V2_FIXED_BYTES + rest;
    if len > MAX_HEADER_BYTES {
        return Err(HeaderError::V2TooLong);
    }
    if rest < address_bytes {
        return Err(HeaderError::V2ShortAddresses);
    }
    if buf.len() < len {
        return Ok(Parsed::Incomplete { at_least: len });
    }
    let body = &buf[V2_FIXED_BYTES..len];
    let (addr_area, tlv_area) = body.split_at(address_bytes);
    let mut check = tlv_area;
    while !check.is_empty() {
        check = split_tlv(check).ok_or(HeaderError::V2BadTlv)?.1;
    }
    // A LOCAL command's addresses are ignored; so are those of families without IP.
    let addresses = match family {
        _ if local => None,
        AF_INET | AF_INET6 if transport != TRANSPORT_STREAM => {
            return Err(HeaderError::V2BadFamily)
        }
        AF_INET => {
            let ip = |at: usize| {
                Ipv4Addr::from([
                    addr_area[at],
                    addr_area[at + 1],
                    addr_area[at + 2],
                    addr_area[at + 3],
                ])
            };
            let port = |at: usize| u16::from_be_bytes([addr_area[at], addr_area[at + 1]]);
            Some(ProxyAddresses {
                source: SocketAddr::new(IpAddr::V4(ip(0)), port(8)),
                destination: SocketAddr::new(IpAddr::V4(ip(4)), port(10)),
            })
        }
        AF_INET6 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&addr_area[at..at + 16]);
                Ipv6Addr::from(octets)
            };
            let port = |at: usize| u16::from_be_bytes([addr_area[at], addr_area[at + 1]]);
            Some(ProxyAddresses {
                source: SocketAddr::new(IpAddr::V6(ip(0)), port(32)),
                destination: SocketAddr::new(IpAddr::V6(ip(16)), port(34)),
            })
        }
        _ => None,
    };
    Ok(Parsed::Header {
        header: ProxyHeader {
            version: ProxyVersion::V2,
            local,
            addresses,
            tlvs: Bytes::copy_from_slice(tlv_area),
        },
        len,
    })
}

//! The PROXY protocol as the tests' own clients and origins speak it, written here
//! independently of pingora-core's implementation (so that the two check each other):
//! headers to send ([`v1_header`], [`v2_header`]) and a reader for origins
//! ([`read_proxy_header`], used by [`crate::OriginBuilder::expect_proxy_header`]).

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::wire::{invalid, WireReader};

/// The 12 bytes a v2 header starts with.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A PROXY header an origin received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// A v2 `LOCAL` command or a v1 `UNKNOWN` line: the sender relays nobody.
    pub local: bool,
    /// The client named, if any.
    pub source: Option<SocketAddr>,
    /// The address the client connected to, if named.
    pub destination: Option<SocketAddr>,
    /// The v2 TLVs (type, value), in order.
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

/// A v1 header (`PROXY TCP4 ...` or `TCP6`, by the family of `source`).
pub fn v1_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

/// A v2 `PROXY` header over TCP with `tlvs` (type, value); both addresses of one family.
pub fn v2_header(source: SocketAddr, destination: SocketAddr, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    let family = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
            0x11
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
            0x21
        }
        _ => panic!("v2_header needs two addresses of one family"),
    };
    body.extend_from_slice(&source.port().to_be_bytes());
    body.extend_from_slice(&destination.port().to_be_bytes());
    for (kind, value) in tlvs {
        body.push(*kind);
        body.extend_from_slice(&(value.len() as u16).to_be_bytes());
        body.extend_from_slice(value);
    }
    let mut out = V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[0x21, family]);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads the PROXY header (v1 or v2) a connection must start with.
pub fn read_proxy_header<R: Read>(reader: &mut WireReader<R>) -> io::Result<SeenProxyHeader> {
    while reader.buffered().is_empty() {
        if reader.fill_more()? == 0 {
            return Err(invalid("closed before a PROXY header"));
        }
    }
    if reader.buffered()[0] == b'P' {
        let line = reader.read_line()?;
        return parse_v1(&line);
    }
    let fixed = take(reader, 16)?;
    if &fixed[..12] != V2_SIGNATURE || fixed[12] >> 4 != 2 {
        return Err(invalid(format!("no PROXY header: {fixed:?}")));
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let body = take(reader, len)?;
    let local = fixed[12] & 0x0f == 0;
    let (ends, tlv_at) = match fixed[13] {
        0x11 if body.len() >= 12 => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[at],
                    body[at + 1],
                    body[at + 2],
                    body[at + 3],
                ))
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            (
                Some((
                    SocketAddr::new(ip(0), port(8)),
                    SocketAddr::new(ip(4), port(10)),
                )),
                12,
            )
        }
        0x21 if body.len() >= 36 => {
            let ip = |at: usize| {
                let octets: [u8; 16] = body[at..at + 16].try_into().expect("16 bytes");
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            (
                Some((
                    SocketAddr::new(ip(0), port(32)),
                    SocketAddr::new(ip(16), port(34)),
                )),
                36,
            )
        }
        0x00 => (None, 0),
        other => return Err(invalid(format!("PROXY v2 family {other:#x} not expected"))),
    };
    let mut tlvs = Vec::new();
    let mut rest = &body[tlv_at..];
    while rest.len() >= 3 {
        let n = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let value = rest.get(3..3 + n).ok_or_else(|| invalid("truncated TLV"))?;
        tlvs.push((rest[0], value.to_vec()));
        rest = &rest[3 + n..];
    }
    let ends = if local { None } else { ends };
    Ok(SeenProxyHeader {
        version: 2,
        local,
        source: ends.map(|e| e.0),
        destination: ends.map(|e| e.1),
        tlvs,
    })
}

fn take<R: Read>(reader: &mut WireReader<R>, n: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    reader.read_exact_to(n as u64, &mut |d| {
        out.extend_from_slice(d);
        Ok(())
    })?;
    Ok(out)
}

fn parse_v1(line: &[u8]) -> io::Result<SeenProxyHeader> {
    let text = std::str::from_utf8(line).map_err(|_| invalid("PROXY v1 line not UTF-8"))?;
    let fields: Vec<&str> = text.split(' ').collect();
    let bad = || invalid(format!("bad PROXY v1 line {text:?}"));
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(SeenProxyHeader {
            version: 1,
            local: true,
            source: None,
            destination: None,
            tlvs: Vec::new(),
        }),
        ["PROXY", "TCP4" | "TCP6", src, dst, sport, dport] => {
            let addr = |ip: &str, port: &str| -> io::Result<SocketAddr> {
                Ok(SocketAddr::new(
                    ip.parse().map_err(|_| bad())?,
                    port.parse().map_err(|_| bad())?,
                ))
            };
            Ok(SeenProxyHeader {
                version: 1,
                local: false,
                source: Some(addr(src, sport)?),
                destination: Some(addr(dst, dport)?),
                tlvs: Vec::new(),
            })
        }
        _ => Err(bad()),
    }
}

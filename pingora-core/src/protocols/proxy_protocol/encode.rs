//! [`encode`]: the PROXY header written first on an upstream connection.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::{ProxyAddresses, ProxyVersion, V1_PREFIX, V2_SIGNATURE};

/// The header telling a PROXY-protocol-aware upstream who the client is.
///
/// With `addresses`, it relays that connection (a v1 `TCP4`/`TCP6` line, a v2 `PROXY`
/// command over TCP); the two ends are written in one family, an IPv4 address being
/// written IPv4-mapped when the other end is IPv6. Without, it says the connection is
/// the sender's own (v1 `UNKNOWN`, v2 `LOCAL`): health checks, or a client without an
/// IP address (a unix socket), for which the receiver uses the connection's own ends.
pub fn encode(version: ProxyVersion, addresses: Option<ProxyAddresses>) -> Vec<u8> {
    let ends = addresses.map(|a| same_family(a.source, a.destination));
    match version {
        ProxyVersion::V1 => encode_v1(ends),
        ProxyVersion::V2 => encode_v2(ends),
    }
}

/// Both ends in one family: IPv4 ones stay IPv4 unless the other end is IPv6.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |s: SocketAddr| match s.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), s.port()),
        IpAddr::V6(_) => s,
    };
    match (a.ip(), b.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (a, b),
        _ => (v6(a), v6(b)),
    }
}

fn encode_v1(ends: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(super::V1_MAX_BYTES);
    out.extend_from_slice(V1_PREFIX);
    // Writing to a Vec cannot fail.
    let _ = match ends {
        None => write!(out, "UNKNOWN\r\n"),
        Some((src, dst)) => {
            let protocol = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            write!(
                out,
                "{protocol} {} {} {} {}\r\n",
                src.ip(),
                dst.ip(),
                src.port(),
                dst.port()
            )
        }
    };
    out
}

fn encode_v2(ends: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    let Some((src, dst)) = ends else {
        // Version 2, LOCAL; family and transport unspecified; nothing follows.
        out.extend_from_slice(&[0x20, 0x00, 0, 0]);
        return out;
    };
    // Version 2, PROXY; then the family over a stream transport, and the length.
    out.push(0x21);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V6(v6) => v6.octets(),
                IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s));
            out.extend_from_slice(&v6(d));
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

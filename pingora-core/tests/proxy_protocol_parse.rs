//! The PROXY protocol parser and encoder: the specification's examples, every kind of
//! broken header refused with its reason, and properties over arbitrary input (no
//! panic, bounded, a strict prefix of a header always asks for more, what is written
//! reads back the same).

use std::net::SocketAddr;

use pingora_core::protocols::proxy_protocol::{
    encode, parse, tlv_type, HeaderError, Parsed, ProxyAddresses, ProxyVersion, MAX_HEADER_BYTES,
    V1_MAX_BYTES, V2_SIGNATURE,
};
use proptest::prelude::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The header at the start of `bytes` and its length (panics otherwise).
fn header(bytes: &[u8]) -> (pingora_core::protocols::proxy_protocol::ProxyHeader, usize) {
    match parse(bytes) {
        Ok(Parsed::Header { header, len }) => (header, len),
        other => panic!("expected a header in {bytes:?}, got {other:?}"),
    }
}

/// A v2 header: version/command byte, family byte, then `body` (addresses and TLVs).
fn v2(ver_cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(ver_cmd);
    out.push(family);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    out.extend_from_slice(value);
    out
}

#[test]
fn v1_tcp4_and_tcp6_and_what_follows() {
    let wire = b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nGET / HTTP/1.1\r\n";
    let (h, len) = header(wire);
    assert_eq!(len, 45);
    assert_eq!(&wire[len..], b"GET / HTTP/1.1\r\n");
    assert_eq!(h.version(), ProxyVersion::V1);
    assert_eq!(h.source(), Some(addr("192.0.2.1:56324")));
    assert_eq!(h.destination(), Some(addr("198.51.100.7:443")));
    assert!(!h.is_local());
    assert_eq!(h.tlvs().count(), 0);

    let (h, _) = header(b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n");
    assert_eq!(h.source(), Some(addr("[2001:db8::1]:65535")));
    assert_eq!(h.destination(), Some(addr("[::1]:0")));
}

#[test]
fn v1_unknown_keeps_the_socket_addresses() {
    for line in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
        b"PROXY UNKNOWN whatever is here\r\n",
    ] {
        let (h, len) = header(line);
        assert_eq!(len, line.len());
        assert_eq!(h.addresses(), None);
    }
}

#[test]
fn v1_broken_lines_are_refused_with_their_reason() {
    let cases: [(&[u8], HeaderError); 16] = [
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            HeaderError::V1BadFields,
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            HeaderError::V1BadFields,
        ),
        (
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            HeaderError::V1BadFields,
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            HeaderError::V1BadFields,
        ),
        (
            b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
            HeaderError::V1BadAddress,
        ),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", HeaderError::V1BadAddress),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", HeaderError::V1BadAddress),
        (
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            HeaderError::V1BadAddress,
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            HeaderError::V1BadPort,
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",
            HeaderError::V1BadPort,
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            HeaderError::V1BadPort,
        ),
        (
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            HeaderError::V1BadProtocol,
        ),
        (
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            HeaderError::V1BadProtocol,
        ),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", HeaderError::V1BadByte),
        (
            b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",
            HeaderError::V1BadByte,
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xff\r\n",
            HeaderError::V1BadByte,
        ),
    ];
    for (line, want) in cases {
        assert_eq!(
            parse(line),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn v1_overlong_line_is_refused_at_the_bound_not_later() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(V1_MAX_BYTES - 1, b'x');
    // 106 bytes, no CRLF yet: it may still end at 107.
    assert_eq!(
        parse(&line),
        Ok(Parsed::Incomplete {
            at_least: V1_MAX_BYTES
        })
    );
    line.push(b'x');
    assert_eq!(parse(&line), Err(HeaderError::V1TooLong));
    line.extend_from_slice(&[b'x'; 4000]);
    assert_eq!(parse(&line), Err(HeaderError::V1TooLong));
    // The longest legal line fits.
    let longest = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(longest.len(), V1_MAX_BYTES - 3);
    header(longest);
}

#[test]
fn other_protocols_are_told_apart_at_once() {
    for start in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"POST",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01",
        b"\r\n\r\n\x00\r\nQUIX\n",
        b"X",
    ] {
        assert_eq!(parse(start), Ok(Parsed::NotProxy), "{start:?}");
    }
    // "PR" may still become "PROXY " (or "PRI * HTTP/2.0"): wait.
    assert_eq!(parse(b"PR"), Ok(Parsed::Incomplete { at_least: 6 }));
    assert_eq!(parse(b"PRI"), Ok(Parsed::NotProxy));
    assert_eq!(parse(b""), Ok(Parsed::Incomplete { at_least: 1 }));
    assert_eq!(parse(b"\r\n"), Ok(Parsed::Incomplete { at_least: 16 }));
}

#[test]
fn v2_inet_with_tlvs() {
    let mut body = vec![192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x01, 0xbb];
    body.extend(tlv(tlv_type::AUTHORITY, b"example.com"));
    body.extend(tlv(tlv_type::ALPN, b"h2"));
    body.extend(tlv(0xea, b"\x01vpce-123"));
    body.extend(tlv(tlv_type::NOOP, b""));
    let mut wire = v2(0x21, 0x11, &body);
    let len = wire.len();
    wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let (h, parsed_len) = header(&wire);
    assert_eq!(parsed_len, len);
    assert_eq!(h.version(), ProxyVersion::V2);
    assert_eq!(h.source(), Some(addr("192.0.2.1:56324")));
    assert_eq!(h.destination(), Some(addr("198.51.100.7:443")));
    assert_eq!(h.authority(), Some("example.com"));
    assert_eq!(h.alpn(), Some(&b"h2"[..]));
    assert_eq!(h.tlv(0xea), Some(&b"\x01vpce-123"[..]));
    assert_eq!(h.unique_id(), None);
    let kinds: Vec<u8> = h.tlvs().map(|t| t.kind).collect();
    assert_eq!(kinds, [0x02, 0x01, 0xea, 0x04]);
}

#[test]
fn v2_inet6_local_unspec_and_unix() {
    let mut body = Vec::new();
    body.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    body.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    body.extend_from_slice(&[0, 80, 1, 187]);
    let (h, _) = header(&v2(0x21, 0x21, &body));
    assert_eq!(h.source(), Some(addr("[2001:db8::1]:80")));
    assert_eq!(h.destination(), Some(addr("[2001:db8::2]:443")));

    // LOCAL: the addresses (if any) are ignored.
    let (h, _) = header(&v2(0x20, 0x11, &[1; 12]));
    assert!(h.is_local());
    assert_eq!(h.addresses(), None);
    let (h, len) = header(&v2(0x20, 0x00, &[]));
    assert!(h.is_local());
    assert_eq!(len, 16);
    // PROXY over UNSPEC or AF_UNIX: no IP address to take.
    assert_eq!(header(&v2(0x21, 0x00, &[])).0.addresses(), None);
    assert_eq!(header(&v2(0x21, 0x31, &[0; 216])).0.addresses(), None);
}

#[test]
fn v2_broken_headers_are_refused_with_their_reason() {
    let inet = [127, 0, 0, 1, 127, 0, 0, 2, 0, 1, 0, 2];
    let mut truncated_tlv = inet.to_vec();
    truncated_tlv.extend_from_slice(&[0x02, 0x00, 0x09, b'a']);
    let mut stray_byte = inet.to_vec();
    stray_byte.push(0x04);
    let cases: [(Vec<u8>, HeaderError); 9] = [
        (v2(0x11, 0x11, &inet), HeaderError::V2BadVersionOrCommand),
        (v2(0x22, 0x11, &inet), HeaderError::V2BadVersionOrCommand),
        (v2(0x21, 0x41, &inet), HeaderError::V2BadFamily),
        (v2(0x21, 0x13, &inet), HeaderError::V2BadFamily),
        (v2(0x21, 0x12, &inet), HeaderError::V2BadFamily),
        (v2(0x21, 0x11, &inet[..11]), HeaderError::V2ShortAddresses),
        (v2(0x21, 0x21, &inet), HeaderError::V2ShortAddresses),
        (v2(0x21, 0x11, &truncated_tlv), HeaderError::V2BadTlv),
        (v2(0x21, 0x11, &stray_byte), HeaderError::V2BadTlv),
    ];
    for (wire, want) in cases {
        assert_eq!(parse(&wire), Err(want), "{wire:?}");
    }
    // A length past the bound is refused from the fixed part alone, without waiting
    // for the rest.
    let mut huge = V2_SIGNATURE.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    assert_eq!(parse(&huge), Err(HeaderError::V2TooLong));
}

#[test]
fn encoded_headers_read_back() {
    let a = ProxyAddresses {
        source: addr("203.0.113.9:40000"),
        destination: addr("10.0.0.1:8080"),
    };
    assert_eq!(
        encode(ProxyVersion::V1, Some(a)),
        b"PROXY TCP4 203.0.113.9 10.0.0.1 40000 8080\r\n"
    );
    assert_eq!(encode(ProxyVersion::V1, None), b"PROXY UNKNOWN\r\n");
    let local = encode(ProxyVersion::V2, None);
    assert_eq!(local.len(), 16);
    assert!(header(&local).0.is_local());
    // Mixed families are written as IPv6, the IPv4 end mapped.
    let mixed = ProxyAddresses {
        source: addr("203.0.113.9:40000"),
        destination: addr("[2001:db8::1]:443"),
    };
    let (h, _) = header(&encode(ProxyVersion::V2, Some(mixed)));
    assert_eq!(h.source(), Some(addr("[::ffff:203.0.113.9]:40000")));
    let (h, _) = header(&encode(ProxyVersion::V1, Some(mixed)));
    assert_eq!(h.destination(), Some(addr("[2001:db8::1]:443")));
}

fn any_socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

fn any_header() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(ProxyVersion::V1), Just(ProxyVersion::V2)],
        proptest::option::of((any_socket_addr(), any_socket_addr())),
    )
        .prop_map(|(version, ends)| {
            let addresses = ends.map(|(source, destination)| ProxyAddresses {
                source,
                destination,
            });
            encode(version, addresses)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the bytes: no panic, and an answer within the bounds.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        match parse(&bytes) {
            Ok(Parsed::Header { len, .. }) => {
                prop_assert!(len <= bytes.len());
                prop_assert!(len <= MAX_HEADER_BYTES);
            }
            Ok(Parsed::Incomplete { at_least }) => {
                prop_assert!(at_least > bytes.len());
                prop_assert!(at_least <= MAX_HEADER_BYTES);
            }
            Ok(Parsed::NotProxy) | Err(_) => {}
        }
    }

    /// Arbitrary bytes after either signature (where the parser does its real work).
    #[test]
    fn arbitrary_bodies_never_panic(
        v2_sig in any::<bool>(),
        rest in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = if v2_sig { V2_SIGNATURE.to_vec() } else { b"PROXY ".to_vec() };
        bytes.extend_from_slice(&rest);
        if let Ok(Parsed::Header { len, .. }) = parse(&bytes) {
            prop_assert!(len <= bytes.len());
        }
    }

    /// A valid header with anything after it is found, and only its bytes are claimed;
    /// every strict prefix of it asks for more bytes (so a truncated header is only
    /// ever waited for, within the listener's timeout, never mistaken or refused).
    #[test]
    fn headers_are_delimited_and_prefixes_wait(
        wire in any_header(),
        after in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = wire.clone();
        bytes.extend_from_slice(&after);
        let (_, len) = header(&bytes);
        prop_assert_eq!(len, wire.len());
        for cut in 0..wire.len() {
            let incomplete = matches!(parse(&wire[..cut]), Ok(Parsed::Incomplete { at_least }) if at_least > cut);
            prop_assert!(incomplete, "prefix of {} bytes: {:?}", cut, parse(&wire[..cut]));
        }
    }

    /// What `encode` writes, `parse` reads back: the same two ends (IPv4 ends of a
    /// mixed pair come back IPv4-mapped).
    #[test]
    fn encode_then_parse(
        v2 in any::<bool>(),
        source in any_socket_addr(),
        destination in any_socket_addr(),
    ) {
        let version = if v2 { ProxyVersion::V2 } else { ProxyVersion::V1 };
        let a = ProxyAddresses { source, destination };
        let (h, _) = header(&encode(version, Some(a)));
        prop_assert_eq!(h.version(), version);
        let mapped = |s: SocketAddr| match s {
            SocketAddr::V4(v4) if source.is_ipv4() != destination.is_ipv4() => {
                SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port()))
            }
            other => other,
        };
        prop_assert_eq!(h.source(), Some(mapped(source)));
        prop_assert_eq!(h.destination(), Some(mapped(destination)));
    }

    /// A header damaged anywhere: no panic, and never a header longer than the bytes.
    #[test]
    fn damaged_headers_never_panic(
        wire in any_header(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = wire;
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(Parsed::Header { len, .. }) = parse(&bytes) {
            prop_assert!(len <= bytes.len());
        }
    }
}

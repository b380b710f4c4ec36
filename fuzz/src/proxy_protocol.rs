//! The PROXY protocol parser (v1 text, v2 binary): never a panic, a header is
//! self-delimited (the same bytes alone parse to the same header, and every strict
//! prefix is incomplete), and what the proxy itself would send for the parsed
//! addresses parses back to them.

use pingora_core::protocols::proxy_protocol::{encode, parse, Parsed, MAX_HEADER_BYTES};

/// Input: the first bytes of a connection.
pub fn proxy_protocol(data: &[u8]) {
    let Ok(parsed) = parse(data) else { return };
    match parsed {
        Parsed::NotProxy => {}
        Parsed::Incomplete { at_least } => {
            assert!(
                at_least > data.len(),
                "incomplete, yet {at_least} bytes are there"
            );
        }
        Parsed::Header { header, len } => {
            assert!(len <= data.len() && len <= MAX_HEADER_BYTES);
            match parse(&data[..len]) {
                Ok(Parsed::Header {
                    header: again,
                    len: l,
                }) => {
                    assert_eq!((&again, l), (&header, len), "not self-delimited");
                }
                other => panic!("the header alone parses as {other:?}"),
            }
            for cut in [len - 1, len / 2] {
                match parse(&data[..cut]) {
                    Ok(Parsed::Incomplete { at_least }) => assert!(at_least > cut),
                    other => panic!("a strict prefix of {cut} bytes parses as {other:?}"),
                }
            }
            let wire = encode(header.version(), header.addresses());
            match parse(&wire) {
                Ok(Parsed::Header { header: sent, len }) => {
                    assert_eq!(len, wire.len());
                    assert_eq!(sent.addresses(), header.addresses(), "addresses changed");
                }
                other => panic!("the proxy's own header parses as {other:?}"),
            }
        }
    }
}

//! Wire protocol constants and the pure encode/decode helpers.
//!
//! All integers are big-endian. See the crate documentation for the full
//! message sequence.

use crate::error::{Result, UpgradeError};

/// Magic bytes that open both the sender's hello and the receiver's ack.
pub const MAGIC: [u8; 4] = *b"PGUP";

/// Version of the wire protocol spoken by this crate.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest number of listeners one hand-over may carry.
pub const MAX_LISTENERS: usize = 4096;

/// Largest listener address, in bytes of UTF-8.
pub const MAX_ADDR_LEN: usize = 1024;

/// Most descriptors sent in one `sendmsg` (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// Largest error text carried by an ack, in bytes.
pub const MAX_ACK_TEXT_LEN: usize = 1024;

/// Ack status: the receiver took every listener.
pub const ACK_ACCEPTED: u8 = 0;

/// Ack status: the receiver refused the hand-over; the text says why.
pub const ACK_REFUSED: u8 = 1;

/// Length of the fixed part of the hello: magic and version.
pub(crate) const HELLO_PREFIX_LEN: usize = 6;

/// Length of the fixed part of an ack: magic, status and text length.
pub(crate) const ACK_HEADER_LEN: usize = 7;

/// Checks a listener address against the protocol's limits.
pub(crate) fn check_addr(addr: &str) -> std::result::Result<(), String> {
    if addr.is_empty() {
        return Err("the address is empty".to_string());
    }
    if addr.len() > MAX_ADDR_LEN {
        return Err(format!(
            "the address is {} bytes long, more than the limit of {MAX_ADDR_LEN}",
            addr.len()
        ));
    }
    Ok(())
}

/// Encodes the hello: magic, version, listener count, then every address.
pub(crate) fn encode_hello(addrs: &[&str]) -> Result<Vec<u8>> {
    if addrs.len() > MAX_LISTENERS {
        return Err(UpgradeError::InvalidListener {
            addr: addrs
                .get(MAX_LISTENERS)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            reason: format!(
                "{} listeners exceed the limit of {MAX_LISTENERS} per hand-over",
                addrs.len()
            ),
        });
    }
    let body: usize = addrs.iter().map(|a| 2 + a.len()).sum();
    let mut out = Vec::with_capacity(HELLO_PREFIX_LEN + 4 + body);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    // Bounded by MAX_LISTENERS above, so the cast cannot truncate.
    out.extend_from_slice(&(addrs.len() as u32).to_be_bytes());
    for addr in addrs {
        check_addr(addr).map_err(|reason| UpgradeError::InvalidListener {
            addr: addr.to_string(),
            reason,
        })?;
        // Bounded by MAX_ADDR_LEN, so the cast cannot truncate.
        out.extend_from_slice(&(addr.len() as u16).to_be_bytes());
        out.extend_from_slice(addr.as_bytes());
    }
    Ok(out)
}

/// Validates the hello's magic and version.
pub(crate) fn check_hello_prefix(prefix: [u8; HELLO_PREFIX_LEN]) -> Result<()> {
    if prefix[..4] != MAGIC {
        return Err(UpgradeError::protocol(format!(
            "bad magic {:?} (expected {:?}): the peer does not speak the upgrade protocol",
            String::from_utf8_lossy(&prefix[..4]),
            String::from_utf8_lossy(&MAGIC)
        )));
    }
    let version = u16::from_be_bytes([prefix[4], prefix[5]]);
    if version != PROTOCOL_VERSION {
        return Err(UpgradeError::protocol(format!(
            "unsupported protocol version {version} (this instance speaks {PROTOCOL_VERSION})"
        )));
    }
    Ok(())
}

/// Decodes and bounds the listener count.
pub(crate) fn decode_count(raw: [u8; 4]) -> Result<usize> {
    let count = u32::from_be_bytes(raw) as usize;
    if count > MAX_LISTENERS {
        return Err(UpgradeError::protocol(format!(
            "listener count {count} exceeds the limit of {MAX_LISTENERS}"
        )));
    }
    Ok(count)
}

/// Decodes and bounds an address length.
pub(crate) fn decode_addr_len(raw: [u8; 2]) -> Result<usize> {
    let len = u16::from_be_bytes(raw) as usize;
    if len == 0 || len > MAX_ADDR_LEN {
        return Err(UpgradeError::protocol(format!(
            "address length {len} is outside 1..={MAX_ADDR_LEN}"
        )));
    }
    Ok(len)
}

/// Decodes an address, which must be UTF-8.
pub(crate) fn decode_addr(raw: Vec<u8>) -> Result<String> {
    String::from_utf8(raw)
        .map_err(|e| UpgradeError::protocol(format!("listener address is not UTF-8: {e}")))
}

/// Encodes an ack; the text is cut (on a char boundary) to the protocol's limit.
pub(crate) fn encode_ack(status: u8, text: &str) -> Vec<u8> {
    let mut end = text.len().min(MAX_ACK_TEXT_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text.as_bytes()[..end];
    let mut out = Vec::with_capacity(ACK_HEADER_LEN + text.len());
    out.extend_from_slice(&MAGIC);
    out.push(status);
    // Bounded by MAX_ACK_TEXT_LEN, so the cast cannot truncate.
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text);
    out
}

/// Decodes the fixed part of an ack into its status and text length.
pub(crate) fn decode_ack_header(raw: [u8; ACK_HEADER_LEN]) -> Result<(u8, usize)> {
    if raw[..4] != MAGIC {
        return Err(UpgradeError::protocol(
            "the acknowledgement does not start with the protocol magic",
        ));
    }
    let status = raw[4];
    if status != ACK_ACCEPTED && status != ACK_REFUSED {
        return Err(UpgradeError::protocol(format!(
            "unknown acknowledgement status {status}"
        )));
    }
    let len = u16::from_be_bytes([raw[5], raw[6]]) as usize;
    if len > MAX_ACK_TEXT_LEN {
        return Err(UpgradeError::protocol(format!(
            "acknowledgement text of {len} bytes exceeds the limit of {MAX_ACK_TEXT_LEN}"
        )));
    }
    Ok((status, len))
}

/// Where the handshake messages are read from: the upgrade socket (which also collects
/// descriptors), or a byte slice (tests and the fuzz targets read the same code path).
pub trait MessageSource {
    /// Fills `buf` exactly; an end of input before that is an error naming `during`.
    fn recv_exact(&mut self, buf: &mut [u8], during: &str) -> Result<()>;
}

impl MessageSource for &[u8] {
    fn recv_exact(&mut self, buf: &mut [u8], during: &str) -> Result<()> {
        if self.len() < buf.len() {
            return Err(UpgradeError::protocol(format!(
                "{during}: the message ended {} bytes early",
                buf.len() - self.len()
            )));
        }
        let (head, rest) = self.split_at(buf.len());
        buf.copy_from_slice(head);
        *self = rest;
        Ok(())
    }
}

/// Reads and checks the sender's hello: magic, version, count, then every address
/// (each within the protocol's limits and UTF-8). Memory is bounded by the limits
/// whatever the peer announces.
pub fn read_hello(src: &mut impl MessageSource) -> Result<Vec<String>> {
    let mut prefix = [0u8; HELLO_PREFIX_LEN];
    src.recv_exact(&mut prefix, "reading the hello")?;
    check_hello_prefix(prefix)?;
    let mut raw_count = [0u8; 4];
    src.recv_exact(&mut raw_count, "reading the listener count")?;
    let count = decode_count(raw_count)?;

    let mut addrs = Vec::with_capacity(count);
    for _ in 0..count {
        let mut raw_len = [0u8; 2];
        src.recv_exact(&mut raw_len, "reading an address length")?;
        let mut raw_addr = vec![0u8; decode_addr_len(raw_len)?];
        src.recv_exact(&mut raw_addr, "reading an address")?;
        addrs.push(decode_addr(raw_addr)?);
    }
    Ok(addrs)
}

/// Reads and checks the receiver's acknowledgement: its status ([`ACK_ACCEPTED`] or
/// [`ACK_REFUSED`]) and its text (lossily decoded; at most [`MAX_ACK_TEXT_LEN`] bytes).
pub fn read_ack(src: &mut impl MessageSource) -> Result<(u8, String)> {
    let during = "waiting for the acknowledgement";
    let mut header = [0u8; ACK_HEADER_LEN];
    src.recv_exact(&mut header, during)?;
    let (status, len) = decode_ack_header(header)?;
    let mut text = vec![0u8; len];
    src.recv_exact(&mut text, during)?;
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_and_ack_read_back_from_bytes_and_short_input_is_an_error() {
        let hello = encode_hello(&["a:1", "unix:/x"]).unwrap();
        assert_eq!(
            read_hello(&mut hello.as_slice()).unwrap(),
            ["a:1", "unix:/x"]
        );
        let err = read_hello(&mut &hello[..hello.len() - 1]).unwrap_err();
        assert!(err.to_string().contains("1 bytes early"), "{err}");
        let ack = encode_ack(ACK_REFUSED, "no");
        assert_eq!(
            read_ack(&mut ack.as_slice()).unwrap(),
            (ACK_REFUSED, "no".into())
        );
        assert!(read_ack(&mut &ack[..3]).is_err());
    }

    #[test]
    fn hello_layout_is_magic_version_count_then_prefixed_addresses() {
        let hello = encode_hello(&["a:1", "unix:/x"]).unwrap();
        let mut expected = b"PGUP\x00\x01\x00\x00\x00\x02".to_vec();
        expected.extend_from_slice(b"\x00\x03a:1\x00\x07unix:/x");
        assert_eq!(hello, expected);
    }

    #[test]
    fn hello_rejects_empty_and_oversized_addresses_and_too_many_listeners() {
        assert!(matches!(
            encode_hello(&[""]),
            Err(UpgradeError::InvalidListener { .. })
        ));
        let long = "x".repeat(MAX_ADDR_LEN + 1);
        assert!(matches!(
            encode_hello(&[long.as_str()]),
            Err(UpgradeError::InvalidListener { .. })
        ));
        let many = vec!["a:1"; MAX_LISTENERS + 1];
        assert!(matches!(
            encode_hello(&many),
            Err(UpgradeError::InvalidListener { .. })
        ));
        let max = "x".repeat(MAX_ADDR_LEN);
        assert!(encode_hello(&[max.as_str()]).is_ok());
    }

    #[test]
    fn prefix_checks_magic_and_version() {
        assert!(check_hello_prefix(*b"PGUP\x00\x01").is_ok());
        let bad_magic = check_hello_prefix(*b"GET /\x01").unwrap_err();
        assert!(bad_magic.to_string().contains("bad magic"), "{bad_magic}");
        let bad_version = check_hello_prefix(*b"PGUP\x00\x02").unwrap_err();
        assert!(
            bad_version.to_string().contains("version 2"),
            "{bad_version}"
        );
    }

    #[test]
    fn sizes_are_bounded() {
        assert_eq!(decode_count(4096u32.to_be_bytes()).unwrap(), 4096);
        assert!(decode_count(4097u32.to_be_bytes()).is_err());
        assert!(decode_count(u32::MAX.to_be_bytes()).is_err());
        assert!(decode_addr_len([0, 0]).is_err());
        assert_eq!(decode_addr_len([0, 1]).unwrap(), 1);
        assert!(decode_addr_len(1025u16.to_be_bytes()).is_err());
        assert!(decode_addr(vec![0xff, 0xfe]).is_err());
    }

    #[test]
    fn ack_round_trips_and_cuts_long_text_on_a_char_boundary() {
        let ack = encode_ack(ACK_REFUSED, "nope");
        let header: [u8; ACK_HEADER_LEN] = ack[..ACK_HEADER_LEN].try_into().unwrap();
        assert_eq!(decode_ack_header(header).unwrap(), (ACK_REFUSED, 4));
        assert_eq!(&ack[ACK_HEADER_LEN..], b"nope");

        let long = "é".repeat(MAX_ACK_TEXT_LEN);
        let ack = encode_ack(ACK_REFUSED, &long);
        let text = std::str::from_utf8(&ack[ACK_HEADER_LEN..]).unwrap();
        assert!(text.len() <= MAX_ACK_TEXT_LEN);
        assert!(!text.is_empty());

        assert!(decode_ack_header(*b"PGUP\x07\x00\x00").is_err());
        assert!(decode_ack_header(*b"XXXX\x00\x00\x00").is_err());
        assert!(decode_ack_header(*b"PGUP\x00\xff\xff").is_err());
    }
}

//! Connection IDs that name the instance (process) that issued them.
//!
//! After an upgrade two instances share a listener's UDP socket. Every connection ID this
//! instance hands to clients starts with its [`InstanceId`], so the instance that reads a
//! datagram can tell from the destination connection ID whose connection it belongs to
//! and pass it on (see the `routing` module).

use std::sync::OnceLock;
use std::time::Duration;

use quinn::{ConnectionId, ConnectionIdGenerator};

/// Bytes of the instance id at the start of each connection ID.
const INSTANCE_LEN: usize = 4;
/// Random bytes after it (64 bits: the same entropy as quinn's default IDs).
const RANDOM_LEN: usize = 8;
/// Length of every connection ID this server issues.
pub(crate) const CID_LEN: usize = INSTANCE_LEN + RANDOM_LEN;

/// A random id of this process, the first bytes of the connection IDs it issues.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstanceId([u8; INSTANCE_LEN]);

impl InstanceId {
    /// This process's id, drawn on first use and kept for the process's life.
    pub fn current() -> InstanceId {
        static CURRENT: OnceLock<InstanceId> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let mut id = [0u8; INSTANCE_LEN];
            fill_random(&mut id);
            InstanceId(id)
        })
    }

    /// The instance whose connection ID `packet` (a QUIC datagram) is addressed to, or
    /// None when its destination connection ID is not one of ours in form (a client's
    /// first Initial, whose ID the client chose, or not QUIC at all).
    pub(crate) fn of_packet(packet: &[u8]) -> Option<InstanceId> {
        let first = *packet.first()?;
        let dcid = if first & 0x80 == 0 {
            // Short header: the ID follows the first byte; its length is ours to know.
            packet.get(1..1 + CID_LEN)?
        } else {
            // Long header: flags, 4 bytes of version, the ID's length, the ID.
            if usize::from(*packet.get(5)?) != CID_LEN {
                return None;
            }
            packet.get(6..6 + CID_LEN)?
        };
        let mut id = [0u8; INSTANCE_LEN];
        id.copy_from_slice(&dcid[..INSTANCE_LEN]);
        Some(InstanceId(id))
    }

    /// The id as a number (for names and logs).
    pub fn as_u32(self) -> u32 {
        u32::from_be_bytes(self.0)
    }
}

impl std::fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.as_u32())
    }
}

/// Issues connection IDs made of this instance's id and random bytes.
pub(crate) struct InstanceCidGenerator {
    instance: InstanceId,
}

impl InstanceCidGenerator {
    /// A generator for this process's connection IDs.
    pub(crate) fn new() -> Self {
        InstanceCidGenerator {
            instance: InstanceId::current(),
        }
    }
}

impl ConnectionIdGenerator for InstanceCidGenerator {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut id = [0u8; CID_LEN];
        id[..INSTANCE_LEN].copy_from_slice(&self.instance.0);
        fill_random(&mut id[INSTANCE_LEN..]);
        ConnectionId::new(&id)
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// Fills `buf` from BoringSSL's CSPRNG; should that ever fail, from the standard
/// library's randomly keyed hasher (still unpredictable to clients).
fn fill_random(buf: &mut [u8]) {
    if boring::rand::rand_bytes(buf).is_ok() {
        return;
    }
    use std::hash::{BuildHasher, Hasher};
    for chunk in buf.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(chunk.as_ptr() as usize);
        let bytes = h.finish().to_ne_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_ids_carry_the_instance_and_differ() {
        let mut g = InstanceCidGenerator::new();
        let a = g.generate_cid();
        let b = g.generate_cid();
        assert_eq!(a.len(), CID_LEN);
        assert_ne!(&a[..], &b[..]);
        assert_eq!(&a[..INSTANCE_LEN], &InstanceId::current().0);
    }

    #[test]
    fn the_instance_is_read_from_short_and_long_headers() {
        let mut g = InstanceCidGenerator::new();
        let cid = g.generate_cid();
        let mut short = vec![0x40];
        short.extend_from_slice(&cid);
        short.extend_from_slice(&[0; 20]);
        assert_eq!(InstanceId::of_packet(&short), Some(InstanceId::current()));

        let mut long = vec![0xe0, 0, 0, 0, 1, CID_LEN as u8];
        long.extend_from_slice(&cid);
        long.extend_from_slice(&[0; 20]);
        assert_eq!(InstanceId::of_packet(&long), Some(InstanceId::current()));

        // A client's first Initial: an ID of the client's own length.
        let mut initial = vec![0xc0, 0, 0, 0, 1, 8];
        initial.extend_from_slice(&[7; 8 + 20]);
        assert_eq!(InstanceId::of_packet(&initial), None);
        // Too short to hold an ID.
        assert_eq!(InstanceId::of_packet(&[0x40, 1, 2]), None);
        assert_eq!(InstanceId::of_packet(&[]), None);
    }
}

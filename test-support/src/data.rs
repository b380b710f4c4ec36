//! Deterministic test payloads and a streaming checksum to compare them cheaply.

use std::io::{self, Write};
use std::thread::JoinHandle;

/// Seed used by [`crate::Reply::LargeStream`] for its payload.
pub const LARGE_STREAM_SEED: u64 = 0x5eed_0f1a_46e5_u64;

/// An endless, reproducible pseudo-random byte stream (xorshift64*).
///
/// The bytes produced do not depend on how the output is split across calls, so a
/// payload generated in pieces equals one generated at once.
#[derive(Debug, Clone)]
pub struct ByteStream {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl ByteStream {
    /// A stream determined entirely by `seed`.
    pub fn new(seed: u64) -> Self {
        // xorshift must never hold 0; mix the seed so nearby seeds differ early.
        let state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03;
        ByteStream {
            state: if state == 0 { 1 } else { state },
            word: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes()
    }

    /// Fills `out` with the next bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut i = 0;
        while i < out.len() && self.used < 8 {
            out[i] = self.word[self.used];
            self.used += 1;
            i += 1;
        }
        let mut words = out[i..].chunks_exact_mut(8);
        for slot in &mut words {
            slot.copy_from_slice(&self.next_word());
        }
        let rest = words.into_remainder();
        if !rest.is_empty() {
            self.word = self.next_word();
            let n = rest.len();
            rest.copy_from_slice(&self.word[..n]);
            self.used = n;
        }
    }
}

/// `len` reproducible pseudo-random bytes determined by `seed`.
pub fn deterministic_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0; len];
    ByteStream::new(seed).fill(&mut out);
    out
}

/// A streaming 64-bit checksum (not cryptographic) of a byte sequence.
///
/// Feeding the same bytes in any split gives the same value; the length is mixed in,
/// so sequences that differ only by trailing zero bytes differ.
#[derive(Debug, Clone)]
pub struct Checksum {
    hash: u64,
    carry: [u8; 8],
    carried: usize,
    len: u64,
}

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

impl Checksum {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// An empty checksum.
    pub fn new() -> Self {
        Checksum {
            hash: 0xcbf2_9ce4_8422_2325,
            carry: [0; 8],
            carried: 0,
            len: 0,
        }
    }

    fn mix(&mut self, word: u64) {
        self.hash = (self.hash ^ word).wrapping_mul(Self::PRIME).rotate_left(23);
    }

    /// Adds `data` to the checksum.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        while self.carried > 0 && !data.is_empty() {
            self.carry[self.carried] = data[0];
            self.carried = (self.carried + 1) % 8;
            data = &data[1..];
            if self.carried == 0 {
                self.mix(u64::from_le_bytes(self.carry));
            }
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.mix(u64::from_le_bytes(b));
        }
        for &b in words.remainder() {
            self.carry[self.carried] = b;
            self.carried += 1;
        }
    }

    /// Number of bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no byte was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The checksum of everything fed so far.
    pub fn value(&self) -> u64 {
        let mut h = self.hash;
        let mut tail = [0u8; 8];
        tail[..self.carried].copy_from_slice(&self.carry[..self.carried]);
        h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(Self::PRIME);
        (h ^ self.len).wrapping_mul(Self::PRIME)
    }
}

/// The [`Checksum`] value of `data`.
pub fn checksum(data: &[u8]) -> u64 {
    let mut c = Checksum::new();
    c.update(data);
    c.value()
}

/// The checksum of the first `len` bytes of the [`ByteStream`] seeded with `seed`,
/// computed without holding them all in memory.
pub fn deterministic_checksum(len: u64, seed: u64) -> u64 {
    let mut stream = ByteStream::new(seed);
    let mut c = Checksum::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        stream.fill(&mut buf[..n]);
        c.update(&buf[..n]);
        left -= n as u64;
    }
    c.value()
}

/// One mebibyte, for body sizes.
pub const MIB: u64 = 1024 * 1024;

/// Seed of the request bodies tests send (responses use [`LARGE_STREAM_SEED`]), so
/// a body echoed back is told apart from one the origin made up.
pub const REQUEST_BODY_SEED: u64 = 0x2f2f_4832;

/// Writes the first `len` bytes of the [`ByteStream`] seeded with `seed` to `w` on a
/// new thread, raw or (when `chunked`) as 64 KiB chunks and a last chunk.
pub fn spawn_pattern_writer<W>(
    mut w: W,
    len: u64,
    seed: u64,
    chunked: bool,
) -> JoinHandle<io::Result<()>>
where
    W: Write + Send + 'static,
{
    std::thread::spawn(move || {
        let mut gen = ByteStream::new(seed);
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            gen.fill(&mut buf[..n]);
            if chunked {
                w.write_all(format!("{n:x}\r\n").as_bytes())?;
                w.write_all(&buf[..n])?;
                w.write_all(b"\r\n")?;
            } else {
                w.write_all(&buf[..n])?;
            }
            left -= n as u64;
        }
        if chunked {
            w.write_all(b"0\r\n\r\n")?;
        }
        w.flush()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_split_independent() {
        let whole = deterministic_bytes(1000, 7);
        let mut s = ByteStream::new(7);
        let mut parts = vec![0u8; 1000];
        let (a, rest) = parts.split_at_mut(3);
        s.fill(a);
        let (b, c) = rest.split_at_mut(500);
        s.fill(b);
        s.fill(c);
        assert_eq!(whole, parts);
        assert_ne!(whole, deterministic_bytes(1000, 8));
    }

    #[test]
    fn checksum_is_split_independent_and_length_sensitive() {
        let data = deterministic_bytes(1003, 1);
        let mut c = Checksum::new();
        for piece in data.chunks(7) {
            c.update(piece);
        }
        assert_eq!(c.value(), checksum(&data));
        assert_eq!(c.len(), 1003);
        assert_eq!(deterministic_checksum(1003, 1), checksum(&data));
        assert_ne!(checksum(&[0]), checksum(&[0, 0]));
        assert_ne!(checksum(&data[..1002]), checksum(&data));
    }
}

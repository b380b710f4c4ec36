//! Just enough of WebSocket framing (RFC 6455, section 5.2) for a tunnel to end a
//! connection properly: where frames begin in each direction, and the close frame.

/// Follows the frames of one direction of a WebSocket connection, so that a control
/// frame can be put between two of them.
#[derive(Debug, Default)]
pub(crate) struct FrameBoundary {
    /// The head of the frame being read, while it is incomplete.
    head: [u8; MAX_HEAD],
    head_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
}

/// Longest frame head: 2 bytes, an 8-byte extended length, a 4-byte mask key.
const MAX_HEAD: usize = 14;

impl FrameBoundary {
    /// Accounts for `bytes` passed on in this direction.
    pub(crate) fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.payload_left -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let needed = self.head_needed();
            let n = (needed - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
            self.head_len += n;
            bytes = &bytes[n..];
            // The head's length is known from its first two bytes: read on if it grew.
            if self.head_len == needed && self.head_needed() == needed {
                self.payload_left = self.payload_len();
                self.head_len = 0;
            }
        }
    }

    /// Whether the bytes passed on so far end with a whole frame (or none yet).
    pub(crate) fn at_boundary(&self) -> bool {
        self.head_len == 0 && self.payload_left == 0
    }

    /// Bytes still needed to end the current frame, as far as known (the head's rest
    /// counts as at least one).
    pub(crate) fn left_in_frame(&self) -> u64 {
        if self.head_len > 0 {
            (self.head_needed() - self.head_len) as u64
        } else {
            self.payload_left
        }
    }

    /// Length of the current head, as far as its first two bytes tell.
    fn head_needed(&self) -> usize {
        if self.head_len < 2 {
            return 2;
        }
        let masked = self.head[1] & 0x80 != 0;
        let extended = match self.head[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + extended + if masked { 4 } else { 0 }
    }

    fn payload_len(&self) -> u64 {
        match self.head[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.head[2..10]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        }
    }
}

/// Status code of a close frame sent because the server goes away (RFC 6455, 7.4.1).
pub(crate) const GOING_AWAY: u16 = 1001;

/// A close frame with `code` and a short `reason`: masked (with `mask`) towards a
/// server, unmasked towards a client, as RFC 6455 requires.
pub(crate) fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    // A control frame's payload is at most 125 bytes: the code and up to 123 of reason.
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason);
    let mut frame = Vec::with_capacity(6 + payload.len());
    frame.push(0x88); // FIN + opcode 8 (close)
    let len = payload.len() as u8;
    match mask {
        Some(key) => {
            frame.push(0x80 | len);
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => {
            frame.push(len);
            frame.extend_from_slice(&payload);
        }
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload_len: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![0x82];
        let m = if masked { 0x80 } else { 0 };
        if payload_len < 126 {
            f.push(m | payload_len as u8);
        } else if payload_len <= 0xffff {
            f.push(m | 126);
            f.extend_from_slice(&(payload_len as u16).to_be_bytes());
        } else {
            f.push(m | 127);
            f.extend_from_slice(&(payload_len as u64).to_be_bytes());
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(7, payload_len));
        f
    }

    #[test]
    fn boundaries_are_found_however_the_bytes_are_cut() {
        let mut stream = Vec::new();
        for (len, masked) in [
            (0, false),
            (5, true),
            (125, false),
            (126, true),
            (70_000, false),
        ] {
            stream.extend(frame(len, masked));
        }
        let ends: Vec<usize> = {
            let mut at = 0;
            [
                (0, false),
                (5, true),
                (125, false),
                (126, true),
                (70_000, false),
            ]
            .iter()
            .map(|&(len, masked)| {
                at += frame(len, masked).len();
                at
            })
            .collect()
        };
        for piece in [1, 2, 3, 7, 1000, stream.len()] {
            let mut b = FrameBoundary::default();
            let mut done = 0;
            for chunk in stream.chunks(piece) {
                b.advance(chunk);
                done += chunk.len();
                assert_eq!(
                    b.at_boundary(),
                    ends.contains(&done),
                    "pieces of {piece}, after {done} bytes"
                );
                if !b.at_boundary() {
                    assert!(b.left_in_frame() > 0);
                }
            }
            assert!(b.at_boundary());
        }
    }

    #[test]
    fn close_frames_are_well_formed() {
        let plain = close_frame(GOING_AWAY, "bye", None);
        assert_eq!(plain, [0x88, 5, 0x03, 0xe9, b'b', b'y', b'e']);
        let masked = close_frame(GOING_AWAY, "bye", Some([1, 2, 3, 4]));
        assert_eq!(&masked[..6], &[0x88, 0x85, 1, 2, 3, 4]);
        let unmasked: Vec<u8> = masked[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4])
            .collect();
        assert_eq!(unmasked, [0x03, 0xe9, b'b', b'y', b'e']);
        let long = close_frame(GOING_AWAY, &"x".repeat(300), None);
        assert_eq!(long.len(), 2 + 125);
        let mut b = FrameBoundary::default();
        b.advance(&plain);
        b.advance(&masked);
        assert!(b.at_boundary());
    }
}

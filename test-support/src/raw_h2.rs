//! A raw HTTP/2 client (prior knowledge, cleartext) that sends exactly the frames it
//! is told: header names and values go out as given (uppercase names, pseudo-headers
//! in odd places, connection-specific fields), which a conforming client library
//! refuses to send. For tests of what a proxy does with malformed HTTP/2.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;
const ACK: u8 = 1;

/// What the server did with a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H2Outcome {
    /// A response head with this status.
    Response(u16),
    /// `RST_STREAM` with this error code.
    Reset(u32),
    /// `GOAWAY` with this error code.
    GoAway(u32),
    /// The connection closed without either.
    Closed,
}

/// The raw client.
pub struct RawH2 {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawH2 {
    /// Connects, sends the preface and an empty SETTINGS frame.
    pub fn connect(addr: SocketAddr) -> io::Result<RawH2> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        let mut c = RawH2 {
            stream,
            buf: Vec::new(),
        };
        c.stream.write_all(PREFACE)?;
        c.frame(SETTINGS, 0, 0, &[])?;
        Ok(c)
    }

    fn frame(&mut self, kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> io::Result<()> {
        let len = payload.len() as u32;
        let mut out = Vec::with_capacity(9 + payload.len());
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(payload);
        self.stream.write_all(&out)
    }

    /// Sends one HEADERS frame with `fields` in this order, each a literal without
    /// indexing and without Huffman coding (bytes exactly as given).
    pub fn headers(
        &mut self,
        stream_id: u32,
        fields: &[(Vec<u8>, Vec<u8>)],
        end_stream: bool,
    ) -> io::Result<()> {
        let mut block = Vec::new();
        for (name, value) in fields {
            block.push(0x00);
            hpack_int(&mut block, 0, 7, name.len());
            block.extend_from_slice(name);
            hpack_int(&mut block, 0, 7, value.len());
            block.extend_from_slice(value);
        }
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.frame(HEADERS, flags, stream_id, &block)
    }

    /// Sends one DATA frame.
    pub fn data(&mut self, stream_id: u32, data: &[u8], end_stream: bool) -> io::Result<()> {
        self.frame(
            DATA,
            if end_stream { END_STREAM } else { 0 },
            stream_id,
            data,
        )
    }

    /// Reads frames until the server answers `stream_id` (response head or reset), sends
    /// GOAWAY, or closes; `wait` bounds the whole read.
    pub fn outcome(&mut self, stream_id: u32, wait: Duration) -> io::Result<H2Outcome> {
        let deadline = Instant::now() + wait;
        loop {
            while let Some((kind, flags, id, payload)) = self.take_frame() {
                match kind {
                    SETTINGS if flags & ACK == 0 => self.frame(SETTINGS, ACK, 0, &[])?,
                    PING if flags & ACK == 0 => self.frame(PING, ACK, 0, &payload)?,
                    HEADERS if id == stream_id => {
                        return Ok(H2Outcome::Response(status_of(&payload).unwrap_or(0)))
                    }
                    RST_STREAM if id == stream_id => {
                        return Ok(H2Outcome::Reset(be32(&payload)));
                    }
                    GOAWAY => return Ok(H2Outcome::GoAway(be32(payload.get(4..).unwrap_or(&[])))),
                    _ => {}
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no answer on the stream",
                ));
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(H2Outcome::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok(H2Outcome::Closed)
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// After the response head of `stream_id` (see [`RawH2::outcome`]), reads its body
    /// until the stream ends: returns the DATA bytes received and how it ended
    /// (`Response(0)` for END_STREAM, `Reset(code)`, `GoAway(code)` or `Closed`).
    pub fn finish(&mut self, stream_id: u32, wait: Duration) -> io::Result<(usize, H2Outcome)> {
        let deadline = Instant::now() + wait;
        let mut received = 0;
        loop {
            while let Some((kind, flags, id, payload)) = self.take_frame() {
                match kind {
                    SETTINGS if flags & ACK == 0 => self.frame(SETTINGS, ACK, 0, &[])?,
                    PING if flags & ACK == 0 => self.frame(PING, ACK, 0, &payload)?,
                    DATA | HEADERS if id == stream_id => {
                        if kind == DATA {
                            received += payload.len();
                        }
                        if flags & END_STREAM != 0 {
                            return Ok((received, H2Outcome::Response(0)));
                        }
                    }
                    RST_STREAM if id == stream_id => {
                        return Ok((received, H2Outcome::Reset(be32(&payload))))
                    }
                    GOAWAY => {
                        let code = be32(payload.get(4..).unwrap_or(&[]));
                        return Ok((received, H2Outcome::GoAway(code)));
                    }
                    _ => {}
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the stream did not end",
                ));
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok((received, H2Outcome::Closed)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok((received, H2Outcome::Closed))
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn take_frame(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        if self.buf.len() < 9 {
            return None;
        }
        let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
        if self.buf.len() < 9 + len {
            return None;
        }
        let kind = self.buf[3];
        let flags = self.buf[4];
        let id = be32(&self.buf[5..9]) & 0x7fff_ffff;
        let payload = self.buf[9..9 + len].to_vec();
        self.buf.drain(..9 + len);
        Some((kind, flags, id, payload))
    }
}

fn be32(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); `first` holds the high bits.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

fn read_int(block: &[u8], at: &mut usize, n: u32) -> Option<usize> {
    let max = (1usize << n) - 1;
    let mut value = usize::from(*block.get(*at)?) & max;
    *at += 1;
    if value < max {
        return Some(value);
    }
    let mut shift = 0;
    loop {
        let b = *block.get(*at)?;
        *at += 1;
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 || shift > 28 {
            return Some(value);
        }
    }
}

/// The `:status` of a response header block: the first field (after any table size
/// update), from the static table or a literal (plain or Huffman-coded digits).
fn status_of(block: &[u8]) -> Option<u16> {
    let mut at = 0;
    while block.get(at)? & 0xe0 == 0x20 {
        read_int(block, &mut at, 5)?;
    }
    let b = *block.get(at)?;
    if b & 0x80 != 0 {
        let idx = read_int(block, &mut at, 7)?;
        return [200, 204, 206, 304, 400, 404, 500]
            .get(idx.checked_sub(8)?)
            .copied();
    }
    let prefix = if b & 0x40 != 0 { 6 } else { 4 };
    if read_int(block, &mut at, prefix)? != 8 {
        return None;
    }
    let huffman = block.get(at)? & 0x80 != 0;
    let len = read_int(block, &mut at, 7)?;
    let raw = block.get(at..at + len)?;
    let text = if huffman {
        huffman_digits(raw)?
    } else {
        String::from_utf8(raw.to_vec()).ok()?
    };
    text.parse().ok()
}

/// Decodes a Huffman-coded string of decimal digits (RFC 7541 Appendix B: `0`-`2` are
/// 5-bit codes 0-2, `3`-`9` are 6-bit codes 0x19-0x1f).
fn huffman_digits(raw: &[u8]) -> Option<String> {
    let bits: Vec<u8> = raw
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let mut out = String::new();
    let mut at = 0;
    while at + 5 <= bits.len() {
        let five = bits[at..at + 5].iter().fold(0u8, |v, b| v << 1 | b);
        if five <= 2 {
            out.push(char::from(b'0' + five));
            at += 5;
        } else if at + 6 <= bits.len() {
            let six = five << 1 | bits[at + 5];
            if !(0x19..=0x1f).contains(&six) {
                break;
            }
            out.push(char::from(b'3' + (six - 0x19)));
            at += 6;
        } else {
            break;
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_from_static_and_huffman_literals() {
        assert_eq!(status_of(&[0x88]), Some(200));
        assert_eq!(status_of(&[0x8c]), Some(400));
        // "502" Huffman-coded: 011011 00000 00010 + padding.
        assert_eq!(status_of(&[0x48, 0x82, 0x6c, 0x02]), Some(502));
        assert_eq!(status_of(&[0x48, 0x03, b'4', b'1', b'3']), Some(413));
        let mut v = Vec::new();
        hpack_int(&mut v, 0, 7, 300);
        assert_eq!(read_int(&v, &mut 0, 7), Some(300));
    }
}

//! Body framing as explicit state machines: decoding what arrives, encoding what leaves.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::framing::BodyFraming;
use crate::error::{Error, ErrorKind, Result, Side};

/// Longest chunk-size line accepted, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;
/// Most trailer fields accepted.
const MAX_TRAILER_FIELDS: usize = 64;

/// Something decoded from a body.
#[derive(Debug)]
pub enum BodyEvent {
    /// A piece of the body.
    Data(Bytes),
    /// Trailer fields of a chunked body (before `End`).
    Trailers(HeaderMap),
    /// The body is complete.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodeState {
    Done,
    Length { remaining: u64 },
    UntilClose,
    ChunkSize,
    ChunkData { remaining: u64 },
    ChunkDataEnd,
    Trailers,
}

/// Incremental decoder of one message body.
#[derive(Debug)]
pub struct BodyDecoder {
    state: DecodeState,
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: BodyFraming) -> Self {
        let state = match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => DecodeState::Done,
            BodyFraming::Length(n) => DecodeState::Length { remaining: n },
            BodyFraming::Chunked => DecodeState::ChunkSize,
            BodyFraming::UntilClose => DecodeState::UntilClose,
        };
        BodyDecoder { state }
    }

    /// Whether the body has been read to its end.
    pub fn is_done(&self) -> bool {
        self.state == DecodeState::Done
    }

    /// Decodes the next event from `buf`, consuming what it uses; `Ok(None)` means more
    /// bytes are needed. Data is handed out without copying, as soon as any is there.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BodyEvent>> {
        loop {
            match self.state {
                DecodeState::Done => return Ok(Some(BodyEvent::End)),
                DecodeState::Length { remaining } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = take_len(remaining, buf.len());
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        DecodeState::Done
                    } else {
                        DecodeState::Length { remaining: left }
                    };
                    return Ok(Some(BodyEvent::Data(buf.split_to(n).freeze())));
                }
                DecodeState::UntilClose => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(BodyEvent::Data(buf.split().freeze())));
                }
                DecodeState::ChunkSize => match parse_chunk_size(buf)? {
                    None => return Ok(None),
                    Some(0) => self.state = DecodeState::Trailers,
                    Some(size) => self.state = DecodeState::ChunkData { remaining: size },
                },
                DecodeState::ChunkData { remaining } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = take_len(remaining, buf.len());
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        DecodeState::ChunkDataEnd
                    } else {
                        DecodeState::ChunkData { remaining: left }
                    };
                    return Ok(Some(BodyEvent::Data(buf.split_to(n).freeze())));
                }
                DecodeState::ChunkDataEnd => {
                    if buf.len() < 2 {
                        if buf.first().is_some_and(|&b| b != b'\r') {
                            return Err(bad_chunk("chunk data not followed by CRLF"));
                        }
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(bad_chunk("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = DecodeState::ChunkSize;
                }
                DecodeState::Trailers => {
                    return match parse_trailers(buf)? {
                        None => Ok(None),
                        Some(t) => {
                            self.state = DecodeState::Done;
                            Ok(Some(if t.is_empty() {
                                BodyEvent::End
                            } else {
                                BodyEvent::Trailers(t)
                            }))
                        }
                    };
                }
            }
        }
    }

    /// Called when the peer closed the connection: the end of a close-delimited body,
    /// an error (`ConnectionClosed`) for a body cut short, nothing when already done.
    pub fn on_eof(&mut self) -> Result<Option<BodyEvent>> {
        match self.state {
            DecodeState::Done => Ok(None),
            DecodeState::UntilClose => {
                self.state = DecodeState::Done;
                Ok(Some(BodyEvent::End))
            }
            _ => Err(Error::new(
                ErrorKind::ConnectionClosed,
                Side::Internal,
                "connection closed before the end of the body",
            )),
        }
    }
}

fn take_len(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

/// Parses `HEX [BWS ; ext] CRLF`; None when the line is incomplete.
fn parse_chunk_size(buf: &mut BytesMut) -> Result<Option<u64>> {
    let Some(lf) = buf.iter().take(MAX_CHUNK_LINE).position(|&b| b == b'\n') else {
        if buf.len() >= MAX_CHUNK_LINE {
            return Err(bad_chunk("chunk size line too long"));
        }
        return Ok(None);
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(bad_chunk("chunk size line not ended by CRLF"));
    }
    let line = &buf[..lf - 1];
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(bad_chunk("invalid chunk size"));
    }
    let rest = &line[digits..];
    let rest = rest.trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err(bad_chunk("invalid chunk size"));
    }
    if rest.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(bad_chunk("control character in chunk extension"));
    }
    let size = line[..digits]
        .iter()
        .try_fold(0u64, |acc, &b| {
            let d = (b as char).to_digit(16)? as u64;
            acc.checked_mul(16)?.checked_add(d)
        })
        .ok_or_else(|| bad_chunk("chunk size overflows"))?;
    buf.advance(lf + 1);
    Ok(Some(size))
}

/// Parses the trailer section after the last chunk; None when incomplete.
fn parse_trailers(buf: &mut BytesMut) -> Result<Option<HeaderMap>> {
    if buf.starts_with(b"\r\n") {
        buf.advance(2);
        return Ok(Some(HeaderMap::new()));
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
    match httparse::parse_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete((len, fields))) => {
            let mut map = HeaderMap::with_capacity(fields.len());
            for f in fields.iter() {
                let name = HeaderName::from_bytes(f.name.as_bytes())
                    .map_err(|_| bad_chunk("invalid trailer name"))?;
                let value = HeaderValue::from_bytes(f.value)
                    .map_err(|_| bad_chunk("invalid trailer value"))?;
                map.append(name, value);
            }
            buf.advance(len);
            Ok(Some(map))
        }
        Ok(httparse::Status::Partial) if buf.len() <= MAX_TRAILERS => Ok(None),
        Ok(httparse::Status::Partial) => Err(bad_chunk("trailers too large")),
        Err(e) => Err(bad_chunk(&format!("malformed trailers: {e}"))),
    }
}

fn bad_chunk(msg: &str) -> Error {
    Error::new(ErrorKind::InvalidBody, Side::Internal, msg)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EncodeState {
    Done,
    Length { remaining: u64 },
    Chunked,
    UntilClose,
}

/// Frames outgoing body data for one message.
#[derive(Debug)]
pub struct BodyEncoder {
    state: EncodeState,
}

/// The framing bytes around one data chunk, held inline (no allocation).
#[derive(Debug, Clone, Copy)]
pub struct DataFrame {
    prefix: [u8; 18],
    prefix_len: u8,
    suffix: &'static [u8],
}

impl DataFrame {
    /// Bytes to write before the data.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix[..usize::from(self.prefix_len)]
    }

    /// Bytes to write after the data.
    pub fn suffix(&self) -> &'static [u8] {
        self.suffix
    }

    const NONE: DataFrame = DataFrame {
        prefix: [0; 18],
        prefix_len: 0,
        suffix: b"",
    };
}

impl BodyEncoder {
    /// An encoder for a body framed as `framing`.
    pub fn new(framing: BodyFraming) -> Self {
        let state = match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => EncodeState::Done,
            BodyFraming::Length(n) => EncodeState::Length { remaining: n },
            BodyFraming::Chunked => EncodeState::Chunked,
            BodyFraming::UntilClose => EncodeState::UntilClose,
        };
        BodyEncoder { state }
    }

    /// Whether nothing more may be written (a length-framed body is complete, or the
    /// body ended).
    pub fn is_done(&self) -> bool {
        self.state == EncodeState::Done
    }

    /// The framing around a data chunk of `len` bytes. Writing past a `Content-Length`
    /// or after the end is an error.
    pub fn frame_data(&mut self, len: usize) -> Result<DataFrame> {
        if len == 0 {
            return Ok(DataFrame::NONE);
        }
        match self.state {
            EncodeState::Done => Err(over("body data after the end of the body")),
            EncodeState::Length { remaining } => {
                let left = remaining
                    .checked_sub(len as u64)
                    .ok_or_else(|| over("body longer than its Content-Length"))?;
                self.state = if left == 0 {
                    EncodeState::Done
                } else {
                    EncodeState::Length { remaining: left }
                };
                Ok(DataFrame::NONE)
            }
            EncodeState::UntilClose => Ok(DataFrame::NONE),
            EncodeState::Chunked => {
                let mut frame = DataFrame {
                    suffix: b"\r\n",
                    ..DataFrame::NONE
                };
                let mut n = len;
                let mut digits = [0u8; 16];
                let mut i = digits.len();
                while n > 0 {
                    i -= 1;
                    digits[i] = b"0123456789abcdef"[n % 16];
                    n /= 16;
                }
                let hex = &digits[i..];
                frame.prefix[..hex.len()].copy_from_slice(hex);
                frame.prefix[hex.len()..hex.len() + 2].copy_from_slice(b"\r\n");
                frame.prefix_len = (hex.len() + 2) as u8;
                Ok(frame)
            }
        }
    }

    /// Ends the body: for chunked, appends the last chunk and `trailers` to `out`.
    /// A length-framed body that is short is an error.
    pub fn finish(&mut self, trailers: Option<&HeaderMap>, out: &mut BytesMut) -> Result<()> {
        match self.state {
            EncodeState::Chunked => {
                out.extend_from_slice(b"0\r\n");
                if let Some(t) = trailers {
                    for (name, value) in t {
                        out.extend_from_slice(name.as_str().as_bytes());
                        out.extend_from_slice(b": ");
                        out.extend_from_slice(value.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                }
                out.extend_from_slice(b"\r\n");
            }
            EncodeState::Length { remaining } => {
                return Err(Error::new(
                    ErrorKind::InvalidBody,
                    Side::Internal,
                    format!("body ended {remaining} bytes short of its Content-Length"),
                ));
            }
            EncodeState::UntilClose | EncodeState::Done => {}
        }
        self.state = EncodeState::Done;
        Ok(())
    }
}

fn over(msg: &str) -> Error {
    Error::new(ErrorKind::InvalidBody, Side::Internal, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and collects the body and trailers.
    fn decode_all(
        framing: BodyFraming,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Option<HeaderMap>, BytesMut)> {
        let mut d = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut trailers = None;
        let mut fed = 0;
        loop {
            match d.decode(&mut buf)? {
                Some(BodyEvent::Data(b)) => body.extend_from_slice(&b),
                Some(BodyEvent::Trailers(t)) => trailers = Some(t),
                Some(BodyEvent::End) => return Ok((body, trailers, buf)),
                None => {
                    if fed >= input.len() {
                        return match d.on_eof()? {
                            Some(BodyEvent::End) | None => Ok((body, trailers, buf)),
                            Some(other) => panic!("unexpected {other:?}"),
                        };
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
            if d.is_done() && trailers.is_some() {
                return Ok((body, trailers, buf));
            }
        }
    }

    #[test]
    fn chunked_with_extensions_and_trailers_at_every_split() {
        let input = b"5;name=val\r\nhello\r\nB\r\n world, hi!\r\n0\r\nX-Sum: 42\r\n\r\nNEXT";
        for step in 1..input.len() {
            let (body, trailers, rest) = decode_all(BodyFraming::Chunked, input, step).unwrap();
            assert_eq!(body, b"hello world, hi!", "step {step}");
            assert_eq!(trailers.unwrap().get("x-sum").unwrap(), "42");
            // Whatever was fed past the body stays for the next message.
            assert!(b"NEXT".starts_with(&rest), "step {step}");
        }
    }

    #[test]
    fn bad_chunks() {
        for bad in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"11111111111111111\r\n",
            b"-5\r\nhello\r\n",
            b"5 x\r\nhello\r\n",
        ] {
            let err = decode_all(BodyFraming::Chunked, bad, 64).unwrap_err();
            assert_eq!(
                err.kind,
                ErrorKind::InvalidBody,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn length_leaves_the_rest_and_detects_short_bodies() {
        let (body, _, rest) = decode_all(BodyFraming::Length(5), b"helloGET /", 3).unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(&rest[..], b"GET /"[..rest.len()].as_ref());
        let err = decode_all(BodyFraming::Length(10), b"short", 64).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConnectionClosed);
        let err = decode_all(BodyFraming::Chunked, b"5\r\nhel", 64).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConnectionClosed);
    }

    #[test]
    fn until_close_ends_at_eof() {
        let (body, _, _) = decode_all(BodyFraming::UntilClose, b"all of it", 4).unwrap();
        assert_eq!(body, b"all of it");
    }

    #[test]
    fn encoder_frames() {
        let mut e = BodyEncoder::new(BodyFraming::Chunked);
        let f = e.frame_data(300).unwrap();
        assert_eq!(f.prefix(), b"12c\r\n");
        assert_eq!(f.suffix(), b"\r\n");
        assert!(e.frame_data(0).unwrap().prefix().is_empty());
        let mut t = HeaderMap::new();
        t.insert("x-sum", "1".parse().unwrap());
        let mut out = BytesMut::new();
        e.finish(Some(&t), &mut out).unwrap();
        assert_eq!(&out[..], b"0\r\nx-sum: 1\r\n\r\n");

        let mut e = BodyEncoder::new(BodyFraming::Length(4));
        e.frame_data(3).unwrap();
        assert!(e.frame_data(2).is_err());
        assert!(e.finish(None, &mut out).is_err());
        e.frame_data(1).unwrap();
        assert!(e.is_done());
    }
}

//! Body framing as explicit state machines: [`BodyDecoder`] for what arrives,
//! [`BodyEncoder`] for what leaves.
//!
//! Chunked decoding is strict (RFC 9112 §7.1): a chunk-size line is 1 to 16 hex digits,
//! then optionally extensions (`;...`, whitespace allowed only before a `;`, no control
//! characters but HTAB), then CRLF, all within [`MAX_CHUNK_LINE`] bytes. A bare LF (or
//! a bare CR) anywhere in the framing is rejected rather than taken as a line end, so we
//! never split a body differently from a strict peer. Extensions are skipped.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::framing::BodyFraming;
use super::parse::find_bare_lf;
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::http::header::is_forbidden_trailer;

/// Longest chunk-size line accepted, extensions included, CRLF excluded.
pub const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section accepted, in bytes.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Most trailer fields accepted.
pub const MAX_TRAILER_FIELDS: usize = 64;
/// Most hex digits in a chunk size (leading zeros included): no u64 overflow.
const MAX_CHUNK_SIZE_DIGITS: usize = 16;

/// Something decoded from a body.
#[derive(Debug)]
pub enum BodyEvent {
    /// A piece of the body.
    Data(Bytes),
    /// Trailer fields of a chunked body; comes just before the end when there are any.
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
    side: Side,
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`. Its errors name side `Internal` unless
    /// [`BodyDecoder::with_side`] says who sends the body.
    pub fn new(framing: BodyFraming) -> Self {
        let state = match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => DecodeState::Done,
            BodyFraming::Length(n) => DecodeState::Length { remaining: n },
            BodyFraming::Chunked => DecodeState::ChunkSize,
            BodyFraming::UntilClose => DecodeState::UntilClose,
        };
        BodyDecoder {
            state,
            side: Side::Internal,
        }
    }

    /// Sets the side whose body this is (`Downstream` for requests, `Upstream` for
    /// responses), used in errors.
    pub fn with_side(mut self, side: Side) -> Self {
        self.side = side;
        self
    }

    /// Whether the body has been read to its end.
    pub fn is_done(&self) -> bool {
        self.state == DecodeState::Done
    }

    /// Decodes the next event from `buf`, consuming what it uses; `Ok(None)` means more
    /// bytes are needed. Data is handed out without copying, as soon as any of it is
    /// there, and never past the end of the body (what follows stays in `buf`). Once
    /// done, every call returns `End`. Errors are `InvalidBody`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BodyEvent>> {
        loop {
            match self.state {
                DecodeState::Done => return Ok(Some(BodyEvent::End)),
                DecodeState::Length { remaining } => {
                    let Some(data) = take_data(buf, remaining) else {
                        return Ok(None);
                    };
                    let left = remaining - data.len() as u64;
                    self.state = if left == 0 {
                        DecodeState::Done
                    } else {
                        DecodeState::Length { remaining: left }
                    };
                    return Ok(Some(BodyEvent::Data(data)));
                }
                DecodeState::UntilClose => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(BodyEvent::Data(buf.split().freeze())));
                }
                DecodeState::ChunkSize => match parse_chunk_size(buf) {
                    Err(msg) => return Err(self.error(msg)),
                    Ok(None) => return Ok(None),
                    Ok(Some((size, line_len))) => {
                        buf.advance(line_len);
                        self.state = if size == 0 {
                            DecodeState::Trailers
                        } else {
                            DecodeState::ChunkData { remaining: size }
                        };
                    }
                },
                DecodeState::ChunkData { remaining } => {
                    let Some(data) = take_data(buf, remaining) else {
                        return Ok(None);
                    };
                    let left = remaining - data.len() as u64;
                    self.state = if left == 0 {
                        DecodeState::ChunkDataEnd
                    } else {
                        DecodeState::ChunkData { remaining: left }
                    };
                    return Ok(Some(BodyEvent::Data(data)));
                }
                DecodeState::ChunkDataEnd => match buf.get(..2) {
                    Some(b"\r\n") => {
                        buf.advance(2);
                        self.state = DecodeState::ChunkSize;
                    }
                    None if buf.first().is_none_or(|&b| b == b'\r') => return Ok(None),
                    _ => return Err(self.error("chunk data not followed by CRLF")),
                },
                DecodeState::Trailers => {
                    let trailers = parse_trailers(buf).map_err(|msg| self.error(msg))?;
                    return Ok(trailers.map(|t| {
                        self.state = DecodeState::Done;
                        if t.is_empty() {
                            BodyEvent::End
                        } else {
                            BodyEvent::Trailers(t)
                        }
                    }));
                }
            }
        }
    }

    /// Called when the peer closed the connection: `End` (once) for a close-delimited
    /// body, `None` when the body was already complete, and a `ConnectionClosed` error
    /// for a length-framed or chunked body cut short.
    pub fn on_eof(&mut self) -> Result<Option<BodyEvent>> {
        match self.state {
            DecodeState::Done => Ok(None),
            DecodeState::UntilClose => {
                self.state = DecodeState::Done;
                Ok(Some(BodyEvent::End))
            }
            _ => Err(Error::new(
                ErrorKind::ConnectionClosed,
                self.side,
                "connection closed before the end of the body",
            )),
        }
    }

    fn error(&self, msg: &str) -> Error {
        Error::new(ErrorKind::InvalidBody, self.side, msg)
    }
}

/// Up to `remaining` bytes from the front of `buf`, without copying; None if empty.
fn take_data(buf: &mut BytesMut, remaining: u64) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let n = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
    Some(buf.split_to(n).freeze())
}

/// Reads `HEXDIG+ [ BWS ";" ext ] CRLF` from the front of `line` (see the module doc).
/// `Ok(Some((size, length of the line with its CRLF)))`, `Ok(None)` when incomplete, or
/// what is wrong. Rejects as soon as a byte cannot fit, without waiting for the line end.
fn parse_chunk_size(line: &[u8]) -> std::result::Result<Option<(u64, usize)>, &'static str> {
    let mut size = 0u64;
    let mut i = 0;
    while let Some(digit) = line.get(i).and_then(|&b| (b as char).to_digit(16)) {
        if i == MAX_CHUNK_SIZE_DIGITS {
            return Err("chunk size has too many digits");
        }
        size = size << 4 | u64::from(digit);
        i += 1;
    }
    if i == line.len() {
        return Ok(None);
    }
    if i == 0 {
        return Err("chunk size is not hexadecimal");
    }
    let (mut in_ext, mut whitespace) = (false, false);
    while let Some(&b) = line.get(i) {
        match b {
            b'\r' => {
                return match line.get(i + 1) {
                    Some(b'\n') if whitespace && !in_ext => Err("whitespace after chunk size"),
                    Some(b'\n') => Ok(Some((size, i + 2))),
                    Some(_) => Err("bare CR in chunk size line"),
                    None => Ok(None),
                };
            }
            b';' => in_ext = true,
            b' ' | b'\t' => whitespace = true,
            b'\n' => return Err("chunk size line ended by a bare LF"),
            _ if !in_ext => return Err("invalid character after chunk size"),
            0..=0x1f | 0x7f => return Err("control character in chunk extension"),
            _ => {}
        }
        i += 1;
        if i > MAX_CHUNK_LINE {
            return Err("chunk size line too long");
        }
    }
    Ok(None)
}

/// Parses the trailer section after the last chunk, up to its empty line, into fields
/// that share `buf`'s memory; None when incomplete.
fn parse_trailers(buf: &mut BytesMut) -> std::result::Result<Option<HeaderMap>, &'static str> {
    match buf.first() {
        None => return Ok(None),
        Some(b'\r') => match buf.get(1) {
            None => return Ok(None),
            Some(b'\n') => {
                buf.advance(2);
                return Ok(Some(HeaderMap::new()));
            }
            Some(_) => return Err("bare CR in trailers"),
        },
        _ => {}
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
    let (len, fields) = match httparse::parse_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(found)) => found,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_TRAILER_BYTES => return Ok(None),
        Ok(httparse::Status::Partial) => return Err("trailers too large"),
        Err(httparse::Error::TooManyHeaders) => return Err("too many trailer fields"),
        Err(_) => return Err("malformed trailers"),
    };
    if len > MAX_TRAILER_BYTES {
        return Err("trailers too large");
    }
    if find_bare_lf(&buf[..len]) {
        return Err("bare LF in trailers");
    }
    // Names are parsed (and copied if not well known) now; values are located and cut
    // from the frozen section once httparse no longer borrows the buffer.
    let base = buf.as_ptr() as usize;
    let mut names = Vec::with_capacity(fields.len());
    let mut values = [(0usize, 0usize); MAX_TRAILER_FIELDS];
    for (field, value) in fields.iter().zip(values.iter_mut()) {
        names.push(
            HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| "invalid trailer name")?,
        );
        let start = field.value.as_ptr() as usize - base;
        *value = (start, start + field.value.len());
    }
    let section = buf.split_to(len).freeze();
    let mut map = HeaderMap::with_capacity(names.len());
    for (name, &(start, end)) in names.into_iter().zip(values.iter()) {
        let value = HeaderValue::from_maybe_shared(section.slice(start..end))
            .map_err(|_| "invalid trailer value")?;
        map.append(name, value);
    }
    Ok(Some(map))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EncodeState {
    Done,
    Length { remaining: u64 },
    Chunked,
    UntilClose,
}

/// Frames outgoing body data for one message. Its errors (side `Internal`) are misuse
/// by the caller: more or less data than the `Content-Length`, data after the end.
#[derive(Debug)]
pub struct BodyEncoder {
    state: EncodeState,
}

/// Longest chunk-size prefix: 16 hex digits and CRLF.
const MAX_PREFIX: usize = 18;

/// The framing bytes around one data chunk, held inline (no allocation).
#[derive(Debug, Clone, Copy)]
pub struct DataFrame {
    prefix: [u8; MAX_PREFIX],
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

    /// No framing at all: the data goes out as it is.
    const NONE: DataFrame = DataFrame {
        prefix: [0; MAX_PREFIX],
        prefix_len: 0,
        suffix: b"",
    };

    /// `HEX(len) CRLF` before and CRLF after: one chunk.
    fn chunk(len: usize) -> DataFrame {
        let mut frame = DataFrame {
            suffix: b"\r\n",
            ..DataFrame::NONE
        };
        let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
        for (i, slot) in frame.prefix[..digits].iter_mut().enumerate() {
            let shift = 4 * (digits - 1 - i);
            *slot = b"0123456789abcdef"[(len >> shift) & 0xf];
        }
        frame.prefix[digits..digits + 2].copy_from_slice(b"\r\n");
        frame.prefix_len = (digits + 2) as u8;
        frame
    }
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

    /// Whether nothing more may be written: a length-framed body is complete, or
    /// [`BodyEncoder::finish`] was called.
    pub fn is_done(&self) -> bool {
        self.state == EncodeState::Done
    }

    /// The framing around a data chunk of `len` bytes: a size line and CRLF for
    /// chunked, nothing otherwise. `len` 0 is a no-op (never the last chunk). Data past
    /// the `Content-Length` or after the end is an `InvalidBody` error.
    pub fn frame_data(&mut self, len: usize) -> Result<DataFrame> {
        if len == 0 {
            return Ok(DataFrame::NONE);
        }
        match self.state {
            EncodeState::Done => Err(misuse("body data after the end of the body")),
            EncodeState::Length { remaining } => {
                let left = remaining
                    .checked_sub(len as u64)
                    .ok_or_else(|| misuse("body longer than its Content-Length"))?;
                self.state = if left == 0 {
                    EncodeState::Done
                } else {
                    EncodeState::Length { remaining: left }
                };
                Ok(DataFrame::NONE)
            }
            EncodeState::UntilClose => Ok(DataFrame::NONE),
            EncodeState::Chunked => Ok(DataFrame::chunk(len)),
        }
    }

    /// Ends the body: for chunked, appends the last chunk, `trailers` (less the fields
    /// that may not be trailers, see [`is_forbidden_trailer`]) and the final CRLF to
    /// `out`; other framings write nothing and ignore `trailers`. A length-framed body
    /// that is short is an `InvalidBody` error. Calling it again does nothing.
    pub fn finish(&mut self, trailers: Option<&HeaderMap>, out: &mut BytesMut) -> Result<()> {
        match self.state {
            EncodeState::Chunked => {
                out.extend_from_slice(b"0\r\n");
                let allowed = trailers
                    .into_iter()
                    .flatten()
                    .filter(|(name, _)| !is_forbidden_trailer(name));
                for (name, value) in allowed {
                    out.extend_from_slice(name.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"\r\n");
            }
            EncodeState::Length { remaining } => {
                return Err(misuse(&format!(
                    "body ended {remaining} bytes short of its Content-Length"
                )));
            }
            EncodeState::UntilClose | EncodeState::Done => {}
        }
        self.state = EncodeState::Done;
        Ok(())
    }
}

fn misuse(msg: &str) -> Error {
    Error::new(ErrorKind::InvalidBody, Side::Internal, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes until the end of the body (or EOF) and
    /// returns the body, the trailers and what is left in the buffer.
    fn decode_steps(
        framing: BodyFraming,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Option<HeaderMap>, BytesMut)> {
        let mut d = BodyDecoder::new(framing).with_side(Side::Upstream);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut trailers = None;
        let mut fed = 0;
        loop {
            match d.decode(&mut buf)? {
                Some(BodyEvent::Data(b)) => {
                    assert!(!b.is_empty());
                    body.extend_from_slice(&b);
                }
                Some(BodyEvent::Trailers(t)) => {
                    assert!(trailers.is_none() && d.is_done());
                    trailers = Some(t);
                }
                Some(BodyEvent::End) => return Ok((body, trailers, buf)),
                None if fed == input.len() => {
                    return match d.on_eof()? {
                        Some(BodyEvent::End) | None => Ok((body, trailers, buf)),
                        Some(other) => panic!("unexpected {other:?}"),
                    };
                }
                None => {
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    fn decode_err(framing: BodyFraming, input: &[u8]) -> Error {
        match decode_steps(framing, input, input.len().max(1)) {
            Err(e) => e,
            Ok(r) => panic!("accepted {:?}: {r:?}", String::from_utf8_lossy(input)),
        }
    }

    const CHUNKED: &[u8] =
        b"5;name=val\r\nhello\r\nB \t; a=\"q\"\r\n world, hi!\r\n0\r\nX-Sum: 42\r\nX-B: c\r\n\r\nNEXT";

    #[test]
    fn chunked_with_extensions_and_trailers_at_every_step() {
        for step in 1..=CHUNKED.len() {
            let (body, trailers, rest) = decode_steps(BodyFraming::Chunked, CHUNKED, step).unwrap();
            assert_eq!(body, b"hello world, hi!", "step {step}");
            let trailers = trailers.unwrap();
            assert_eq!(trailers.get("x-sum").unwrap(), "42");
            assert_eq!(trailers.get("x-b").unwrap(), "c");
            assert!(b"NEXT".starts_with(&rest), "step {step}");
        }
    }

    #[test]
    fn chunked_split_at_every_byte_boundary() {
        for cut in 0..=CHUNKED.len() {
            let mut d = BodyDecoder::new(BodyFraming::Chunked);
            let mut buf = BytesMut::from(&CHUNKED[..cut]);
            let mut body = Vec::new();
            let mut fed_rest = false;
            let trailers = loop {
                match d.decode(&mut buf).unwrap() {
                    Some(BodyEvent::Data(b)) => body.extend_from_slice(&b),
                    Some(BodyEvent::Trailers(t)) => break t,
                    Some(BodyEvent::End) => panic!("end before trailers"),
                    None => {
                        assert!(!fed_rest, "cut {cut}");
                        buf.extend_from_slice(&CHUNKED[cut..]);
                        fed_rest = true;
                    }
                }
            };
            assert_eq!(body, b"hello world, hi!", "cut {cut}");
            assert_eq!(trailers.len(), 2);
            assert!(matches!(d.decode(&mut buf).unwrap(), Some(BodyEvent::End)));
            if !fed_rest {
                buf.extend_from_slice(&CHUNKED[cut..]);
            }
            assert_eq!(&buf[..], b"NEXT", "cut {cut}");
        }
    }

    #[test]
    fn chunk_bytes_are_handed_out_before_the_chunk_is_complete() {
        let mut d = BodyDecoder::new(BodyFraming::Chunked);
        let mut buf = BytesMut::from(&b"a\r\nhel"[..]);
        let range = buf.as_ptr_range();
        match d.decode(&mut buf).unwrap() {
            Some(BodyEvent::Data(b)) => {
                assert_eq!(&b[..], b"hel");
                assert!(range.contains(&b.as_ptr()), "data was copied");
            }
            other => panic!("{other:?}"),
        }
        assert!(d.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"lo worl");
        match d.decode(&mut buf).unwrap() {
            Some(BodyEvent::Data(b)) => assert_eq!(&b[..], b"lo worl"),
            other => panic!("{other:?}"),
        }
        assert!(d.decode(&mut buf).unwrap().is_none());
        let err = d.on_eof().unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConnectionClosed);
    }

    #[test]
    fn empty_chunked_body_and_big_sizes() {
        let (body, trailers, rest) = decode_steps(BodyFraming::Chunked, b"0\r\n\r\nX", 6).unwrap();
        assert!(body.is_empty() && trailers.is_none());
        assert_eq!(&rest[..], b"X");
        // 16 digits (leading zeros count) is the most; the largest size is u64::MAX.
        let (body, _, _) = decode_steps(
            BodyFraming::Chunked,
            b"0000000000000003\r\nabc\r\n0\r\n\r\n",
            5,
        )
        .unwrap();
        assert_eq!(body, b"abc");
        let mut d = BodyDecoder::new(BodyFraming::Chunked);
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
        assert!(matches!(d.decode(&mut buf), Ok(Some(BodyEvent::Data(_)))));
        assert_eq!(
            d.state,
            DecodeState::ChunkData {
                remaining: u64::MAX - 2
            }
        );
    }

    #[test]
    fn bad_chunks() {
        let bad: &[(&str, &[u8])] = &[
            ("not hex", b"zz\r\nhello\r\n0\r\n\r\n"),
            ("no digits", b"\r\nhello\r\n0\r\n\r\n"),
            ("bare LF after size", b"5\nhello\r\n0\r\n\r\n"),
            ("bare CR after size", b"5\rhello\r\n0\r\n\r\n"),
            ("bare LF after ext", b"5;a=b\nhello\r\n0\r\n\r\n"),
            ("no CRLF after data", b"5\r\nhelloXX0\r\n\r\n"),
            ("bare LF after data", b"5\r\nhello\n0\r\n\r\n"),
            ("bare CR after data", b"5\r\nhello\r0\r\n\r\n"),
            ("17 digits", b"11111111111111111\r\n"),
            (
                "17 digits, leading zeros",
                b"00000000000000005\r\nhello\r\n",
            ),
            ("negative", b"-5\r\nhello\r\n"),
            ("hex prefix", b"0x5\r\nhello\r\n"),
            ("junk after size", b"5 x\r\nhello\r\n"),
            ("trailing whitespace", b"5 \r\nhello\r\n0\r\n\r\n"),
            ("NUL in ext", b"5;a\0\r\nhello\r\n0\r\n\r\n"),
            ("DEL in ext", b"5;a\x7f\r\nhello\r\n0\r\n\r\n"),
            ("obs-fold trailer", b"0\r\nX: a\r\n b\r\n\r\n"),
            ("bare LF trailers", b"0\r\nX: a\n\n"),
            ("bare LF ending", b"0\r\n\n"),
            ("bare CR ending", b"0\r\n\rX"),
            ("bad trailer", b"0\r\nX y: a\r\n\r\n"),
            ("NUL trailer", b"0\r\nX: a\0\r\n\r\n"),
        ];
        for (what, raw) in bad {
            let err = decode_err(BodyFraming::Chunked, raw);
            assert_eq!(
                (err.kind, err.side),
                (ErrorKind::InvalidBody, Side::Upstream),
                "{what}"
            );
        }
    }

    #[test]
    fn bounded_chunk_lines_and_trailers() {
        let mut long = b"5;".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE));
        // Rejected before the line end arrives.
        assert_eq!(
            decode_err(BodyFraming::Chunked, &long).kind,
            ErrorKind::InvalidBody
        );
        let mut ok = b"5;".to_vec();
        ok.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE - 3));
        ok.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_eq!(
            decode_steps(BodyFraming::Chunked, &ok, 100).unwrap().0,
            b"hello"
        );

        let mut big = b"0\r\n".to_vec();
        while big.len() <= MAX_TRAILER_BYTES + 10 {
            big.extend_from_slice(b"X-Filler: 0123456789abcdef0123456789abcdef\r\n");
        }
        assert_eq!(
            decode_err(BodyFraming::Chunked, &big).kind,
            ErrorKind::InvalidBody
        );
        big.extend_from_slice(b"\r\n");
        assert_eq!(
            decode_err(BodyFraming::Chunked, &big).kind,
            ErrorKind::InvalidBody
        );

        let mut many = b"0\r\n".to_vec();
        for i in 0..=MAX_TRAILER_FIELDS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            decode_err(BodyFraming::Chunked, &many).kind,
            ErrorKind::InvalidBody
        );
    }

    #[test]
    fn length_leaves_the_rest_for_the_next_message() {
        for step in 1..12 {
            let (body, _, rest) =
                decode_steps(BodyFraming::Length(5), b"helloGET /", step).unwrap();
            assert_eq!(body, b"hello");
            assert!(b"GET /".starts_with(&rest), "step {step}");
        }
        let mut d = BodyDecoder::new(BodyFraming::Length(3));
        let mut buf = BytesMut::from(&b"abcdef"[..]);
        assert!(matches!(d.decode(&mut buf).unwrap(), Some(BodyEvent::Data(b)) if b == "abc"));
        assert!(d.is_done());
        assert!(matches!(d.decode(&mut buf).unwrap(), Some(BodyEvent::End)));
        assert_eq!(&buf[..], b"def");
        assert!(d.on_eof().unwrap().is_none());
    }

    #[test]
    fn empty_bodies_consume_nothing() {
        for framing in [BodyFraming::Empty, BodyFraming::Length(0)] {
            let mut d = BodyDecoder::new(framing);
            assert!(d.is_done());
            let mut buf = BytesMut::from(&b"GET"[..]);
            assert!(matches!(d.decode(&mut buf).unwrap(), Some(BodyEvent::End)));
            assert_eq!(&buf[..], b"GET");
            assert!(d.on_eof().unwrap().is_none());
        }
    }

    #[test]
    fn short_bodies_at_eof() {
        let err = decode_steps(BodyFraming::Length(10), b"short", 64).unwrap_err();
        assert_eq!(
            (err.kind, err.side),
            (ErrorKind::ConnectionClosed, Side::Upstream)
        );
        for cut in [
            b"5\r\nhel".as_slice(),
            b"5\r\nhello",
            b"5\r\nhello\r\n",
            b"0\r\n",
            b"5;x",
        ] {
            let err = decode_steps(BodyFraming::Chunked, cut, 64).unwrap_err();
            assert_eq!(err.kind, ErrorKind::ConnectionClosed);
        }
    }

    #[test]
    fn until_close_ends_at_eof_once() {
        let (body, _, _) = decode_steps(BodyFraming::UntilClose, b"all of it", 4).unwrap();
        assert_eq!(body, b"all of it");
        let mut d = BodyDecoder::new(BodyFraming::UntilClose);
        assert!(d.decode(&mut BytesMut::new()).unwrap().is_none());
        assert!(matches!(d.on_eof().unwrap(), Some(BodyEvent::End)));
        assert!(d.is_done());
        assert!(d.on_eof().unwrap().is_none());
    }

    #[test]
    fn chunk_prefixes() {
        let mut e = BodyEncoder::new(BodyFraming::Chunked);
        for (len, want) in [
            (1, &b"1\r\n"[..]),
            (15, b"f\r\n"),
            (16, b"10\r\n"),
            (300, b"12c\r\n"),
            (0x10_0000, b"100000\r\n"),
        ] {
            let f = e.frame_data(len).unwrap();
            assert_eq!(f.prefix(), want);
            assert_eq!(f.suffix(), b"\r\n");
        }
        let f = e.frame_data(usize::MAX).unwrap();
        assert_eq!(f.prefix().len(), 2 * std::mem::size_of::<usize>() + 2);
        let f = e.frame_data(0).unwrap();
        assert!(f.prefix().is_empty() && f.suffix().is_empty());
        assert!(!e.is_done());
    }

    #[test]
    fn finishing_bodies() {
        let mut t = HeaderMap::new();
        t.insert("x-sum", "1".parse().unwrap());
        let mut e = BodyEncoder::new(BodyFraming::Chunked);
        let mut out = BytesMut::new();
        e.finish(Some(&t), &mut out).unwrap();
        assert_eq!(&out[..], b"0\r\nx-sum: 1\r\n\r\n");
        assert!(e.is_done());
        assert!(e.frame_data(1).is_err());
        out.clear();
        e.finish(None, &mut out).unwrap();
        assert!(out.is_empty());
        let mut e = BodyEncoder::new(BodyFraming::Chunked);
        e.finish(None, &mut out).unwrap();
        assert_eq!(&out[..], b"0\r\n\r\n");

        // Fields that may not be trailers are never sent as trailers (the smuggling
        // corpus's trailer-content-length, trailer-host, trailer-transfer-encoding).
        let mut t = HeaderMap::new();
        for (n, v) in [("content-length", "50"), ("x-sum", "1"), ("host", "evil")] {
            t.append(HeaderName::from_static(n), v.parse().unwrap());
        }
        t.append(http::header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        let mut e = BodyEncoder::new(BodyFraming::Chunked);
        out.clear();
        e.finish(Some(&t), &mut out).unwrap();
        assert_eq!(&out[..], b"0\r\nx-sum: 1\r\n\r\n");

        let mut e = BodyEncoder::new(BodyFraming::UntilClose);
        assert!(e.frame_data(10).unwrap().prefix().is_empty());
        out.clear();
        e.finish(Some(&t), &mut out).unwrap();
        assert!(out.is_empty() && e.is_done());
    }

    #[test]
    fn length_encoder_enforces_the_length() {
        let mut out = BytesMut::new();
        let mut e = BodyEncoder::new(BodyFraming::Length(4));
        let f = e.frame_data(3).unwrap();
        assert!(f.prefix().is_empty() && f.suffix().is_empty());
        let err = e.frame_data(2).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidBody);
        assert!(e.finish(None, &mut out).is_err());
        e.frame_data(1).unwrap();
        assert!(e.is_done());
        assert!(e.frame_data(1).is_err());
        e.finish(None, &mut out).unwrap();
        assert!(out.is_empty());
        assert!(BodyEncoder::new(BodyFraming::Empty).frame_data(1).is_err());
    }

    #[test]
    fn encoded_chunks_decode_back() {
        let pieces: [&[u8]; 4] = [b"a", &[b'x'; 4097], b"", b"tail"];
        let mut e = BodyEncoder::new(BodyFraming::Chunked);
        let mut wire = BytesMut::new();
        for p in pieces {
            let f = e.frame_data(p.len()).unwrap();
            wire.extend_from_slice(f.prefix());
            wire.extend_from_slice(p);
            wire.extend_from_slice(f.suffix());
        }
        let mut t = HeaderMap::new();
        t.insert("x-t", "v".parse().unwrap());
        e.finish(Some(&t), &mut wire).unwrap();
        let (body, trailers, rest) = decode_steps(BodyFraming::Chunked, &wire, 1000).unwrap();
        assert_eq!(body, pieces.concat());
        assert_eq!(trailers.unwrap(), t);
        assert!(rest.is_empty());
    }
}

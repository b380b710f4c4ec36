//! Buffered reading of HTTP/1 messages from a byte stream: heads, and bodies framed by
//! Content-Length, chunked encoding (with trailers) or end of stream.

use std::io::{self, Read};

/// A header list: lowercased names with their values, in wire order.
pub type Headers = Vec<(String, String)>;

/// Largest head (request/response line plus headers) the helpers accept.
pub const MAX_HEAD_BYTES: usize = 1024 * 1024;

/// How a message body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (HEAD, 1xx, 204, 304, or a request without length).
    None,
    /// `Content-Length: n`.
    ContentLength(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Delimited by the sender closing the connection.
    Close,
}

/// The first value of header `name` (case-insensitive) in `headers`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every value of header `name` (case-insensitive) in `headers`, in order.
pub fn header_all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// True when a comma-separated header (e.g. `Connection`) lists `token`.
pub fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    header_all(headers, name)
        .iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Converts httparse headers into owned, lowercased-name pairs.
pub(crate) fn owned_headers(raw: &[httparse::Header<'_>]) -> Headers {
    raw.iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// Body framing that `headers` announce (ignoring message-type rules such as HEAD/204).
///
/// `default` is what applies when neither Transfer-Encoding nor Content-Length is present.
pub(crate) fn framing_from_headers(
    headers: &[(String, String)],
    default: Framing,
) -> io::Result<Framing> {
    if let Some(te) = header_all(headers, "transfer-encoding").last() {
        let last = te.rsplit(',').next().unwrap_or("").trim();
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    match header(headers, "content-length") {
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Framing::ContentLength)
            .map_err(|_| invalid(format!("bad content-length {v:?}"))),
        None => Ok(default),
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A buffered reader that understands HTTP/1 message boundaries.
#[derive(Debug)]
pub struct WireReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: Read> WireReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        WireReader {
            inner,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Bytes already read from the stream but not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks every buffered byte as consumed.
    pub fn clear_buffer(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Reads more bytes into the buffer; returns how many (0 at end of stream).
    pub fn fill_more(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Reads one head (up to and including the blank line), skipping leading empty lines.
    ///
    /// Returns `Ok(None)` when the stream ends before any byte of a head.
    pub fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut scanned: usize = 0;
        loop {
            // Leading CRLFs between messages are tolerated (RFC 9112 section 2.2).
            while scanned == 0
                && self.start < self.end
                && matches!(self.buf[self.start], b'\r' | b'\n')
            {
                self.start += 1;
            }
            let data = &self.buf[self.start..self.end];
            let from = scanned.saturating_sub(3);
            if let Some(pos) = data[from..].windows(4).position(|w| w == b"\r\n\r\n") {
                let len = from + pos + 4;
                let head = data[..len].to_vec();
                self.consume(len);
                return Ok(Some(head));
            }
            scanned = data.len();
            if scanned > MAX_HEAD_BYTES {
                return Err(invalid("head too large"));
            }
            if self.fill_more()? == 0 {
                return if self.start == self.end {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "stream ended inside a head: {:?}",
                            String::from_utf8_lossy(self.buffered())
                        ),
                    ))
                };
            }
        }
    }

    /// Reads one CRLF- (or LF-) terminated line, without its terminator.
    pub fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            let data = &self.buf[self.start..self.end];
            if let Some(pos) = data.iter().position(|&b| b == b'\n') {
                let mut line = data[..pos].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.consume(pos + 1);
                return Ok(line);
            }
            if data.len() > MAX_HEAD_BYTES {
                return Err(invalid("line too long"));
            }
            if self.fill_more()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended inside a line",
                ));
            }
        }
    }

    /// Passes exactly `len` bytes to `sink`, in pieces as they arrive.
    pub fn read_exact_to(
        &mut self,
        mut len: u64,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        while len > 0 {
            if self.start == self.end && self.fill_more()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("stream ended with {len} body bytes missing"),
                ));
            }
            let n = ((self.end - self.start) as u64).min(len) as usize;
            let (s, e) = (self.start, self.start + n);
            self.consume(n);
            sink(&self.buf[s..e])?;
            len -= n as u64;
        }
        Ok(())
    }

    /// Passes every byte until end of stream to `sink`.
    pub fn read_to_eof(&mut self, sink: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        loop {
            if self.start < self.end {
                let (s, e) = (self.start, self.end);
                self.consume(e - s);
                sink(&self.buf[s..e])?;
            }
            if self.fill_more()? == 0 {
                return Ok(());
            }
        }
    }

    /// Decodes a chunked body, passing the data to `sink`; returns the trailer fields.
    pub fn read_chunked(
        &mut self,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<Headers> {
        loop {
            let line = self.read_line()?;
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("bad chunk size line {text:?}")))?;
            if size == 0 {
                break;
            }
            self.read_exact_to(size, sink)?;
            let end = self.read_line()?;
            if !end.is_empty() {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        }
        let mut trailers = Headers::new();
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return Ok(trailers);
            }
            let text = String::from_utf8_lossy(&line);
            let (name, value) = text
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad trailer line {text:?}")))?;
            trailers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }

    /// Reads a body with the given framing into `sink`; returns trailers (chunked only).
    pub fn read_body(
        &mut self,
        framing: Framing,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<Headers> {
        match framing {
            Framing::None => Ok(Headers::new()),
            Framing::ContentLength(n) => self.read_exact_to(n, sink).map(|_| Headers::new()),
            Framing::Chunked => self.read_chunked(sink),
            Framing::Close => self.read_to_eof(sink).map(|_| Headers::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pipelined_heads_and_chunked_body_with_trailers() {
        let wire = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\n\r\n5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nX-Sum: 9\r\n\r\nrest";
        let mut r = WireReader::new(&wire[..]);
        let h1 = r.read_head().unwrap().unwrap();
        assert!(h1.starts_with(b"GET / HTTP/1.1"));
        let h2 = r.read_head().unwrap().unwrap();
        assert!(h2.starts_with(b"POST /x"));
        let mut body = Vec::new();
        let trailers = r
            .read_chunked(&mut |d| {
                body.extend_from_slice(d);
                Ok(())
            })
            .unwrap();
        assert_eq!(body, b"hello!");
        assert_eq!(trailers, vec![("x-sum".to_string(), "9".to_string())]);
        assert_eq!(r.buffered(), b"rest");
    }

    #[test]
    fn eof_inside_body_is_an_error() {
        let mut r = WireReader::new(&b"abc"[..]);
        let err = r.read_exact_to(5, &mut |_| Ok(())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(r.read_head().unwrap().is_none());
    }

    #[test]
    fn framing_prefers_transfer_encoding() {
        let h = vec![
            ("content-length".to_string(), "3".to_string()),
            ("transfer-encoding".to_string(), "gzip, chunked".to_string()),
        ];
        assert_eq!(
            framing_from_headers(&h, Framing::None).unwrap(),
            Framing::Chunked
        );
        assert!(has_token(&h, "Transfer-Encoding", "GZIP"));
    }
}

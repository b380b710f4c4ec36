//! What a test origin answers, and how each kind of answer is written to the socket.

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::data::{ByteStream, LARGE_STREAM_SEED};
use crate::wire::{header, Headers};

/// One answer of an [`crate::Origin`] to one request.
///
/// Headers given by the handler are written as given. The origin adds the framing
/// header (`Content-Length` / `Transfer-Encoding: chunked`) unless the handler already
/// supplied one of them, so a test can also send deliberately odd framing.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A response with a `Content-Length` body (no body bytes for HEAD, 1xx, 204, 304).
    Full {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Headers,
        /// The body.
        body: Vec<u8>,
    },
    /// A chunked response: one chunk per entry, then the trailers.
    Chunked {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Headers,
        /// The chunks, each sent as one chunk (empty entries are skipped).
        chunks: Vec<Vec<u8>>,
        /// Trailer fields sent after the last chunk.
        trailers: Headers,
    },
    /// A response without length whose body ends when the origin closes the connection.
    CloseDelimited {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Headers,
        /// The body.
        body: Vec<u8>,
    },
    /// Waits, then answers with the inner reply.
    Delay(Duration, Box<Reply>),
    /// A `Content-Length` response whose body stops after `split` bytes until the test
    /// opens `gate` (or [`GATE_TIMEOUT`] passes), then goes on: a fill caught half-way.
    Gated {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Headers,
        /// The whole body.
        body: Vec<u8>,
        /// Bytes sent before waiting.
        split: usize,
        /// What the rest waits for.
        gate: Gate,
    },
    /// Writes these bytes, then resets the connection (RST via SO_LINGER 0).
    ResetAfter {
        /// Bytes written before the reset (may be empty: reset before any response).
        head_and_partial_body: Vec<u8>,
    },
    /// Writes these bytes verbatim, then closes the connection.
    Raw(Vec<u8>),
    /// Closes the connection without answering.
    CloseWithoutResponse,
    /// Sends one interim head per status (e.g. 103, with a `Link` header), then the reply.
    Interim(Vec<u16>, Box<Reply>),
    /// Answers `101 Switching Protocols` (`Upgrade: websocket`) and then echoes every
    /// byte received until the peer closes.
    WebSocketEcho,
    /// 200 whose body is the request body, with `Content-Length`.
    Echo,
    /// 200 chunked whose body is the request body, written as it is read (full duplex):
    /// the request body is never held whole.
    StreamEcho,
    /// 200 chunked body of `len` bytes of the [`ByteStream`] seeded with
    /// [`LARGE_STREAM_SEED`], in chunks of `chunk` bytes.
    LargeStream {
        /// Total body length.
        len: u64,
        /// Size of each chunk (the last may be shorter).
        chunk: usize,
    },
}

impl Reply {
    /// A 200 with `body` and no extra headers.
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::Full {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A response with `status`, extra `headers` and `body` (Content-Length framed).
    pub fn full(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Reply {
        Reply::Full {
            status,
            headers: owned(headers),
            body: body.into(),
        }
    }

    /// True when the origin must close the connection after writing this reply.
    pub(crate) fn closes_connection(&self) -> bool {
        match self {
            Reply::Full { headers, .. } | Reply::Chunked { headers, .. } => {
                crate::wire::has_token(headers, "connection", "close")
            }
            Reply::Delay(_, inner) | Reply::Interim(_, inner) => inner.closes_connection(),
            Reply::Echo | Reply::StreamEcho | Reply::LargeStream { .. } | Reply::Gated { .. } => {
                false
            }
            Reply::CloseDelimited { .. }
            | Reply::ResetAfter { .. }
            | Reply::Raw(_)
            | Reply::CloseWithoutResponse
            | Reply::WebSocketEcho => true,
        }
    }
}

/// How long a [`Reply::Gated`] waits for its gate at most.
pub const GATE_TIMEOUT: Duration = Duration::from_secs(10);

/// A gate a test opens to let a [`Reply::Gated`] body finish. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Opens it: every waiter goes on.
    pub fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        changed.notify_all();
    }

    /// Waits until it is open or `timeout` passes; true when open.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (open, changed) = &*self.0;
        let guard = open.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = changed
            .wait_timeout_while(guard, timeout, |open| !*open)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

/// Converts borrowed header pairs into a [`Headers`] list (names lowercased).
pub fn owned(headers: &[(&str, &str)]) -> Headers {
    headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect()
}

/// Standard reason phrase for the codes tests use.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Bytes of a status line and headers, ending with the blank line.
pub(crate) fn head_bytes(
    status: u16,
    headers: &[(String, String)],
    extra: &[(&str, String)],
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    for (n, v) in extra {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// True for statuses whose responses never carry a body.
pub(crate) fn status_has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

fn has_framing(headers: &[(String, String)]) -> bool {
    header(headers, "content-length").is_some() || header(headers, "transfer-encoding").is_some()
}

/// Writes an interim (1xx) head; a 103 carries a `Link` header.
pub(crate) fn write_interim(w: &mut impl Write, code: u16) -> io::Result<()> {
    let extra = if code == 103 {
        vec![("link", "</style.css>; rel=preload; as=style".to_string())]
    } else {
        Vec::new()
    };
    w.write_all(&head_bytes(code, &[], &extra))
}

/// Writes one chunk of a chunked body (nothing for empty data).
pub(crate) fn write_chunk(w: &mut impl Write, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    w.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
    w.write_all(data)?;
    w.write_all(b"\r\n")
}

/// Writes the last chunk and trailers.
pub(crate) fn write_last_chunk(
    w: &mut impl Write,
    trailers: &[(String, String)],
) -> io::Result<()> {
    let mut out = b"0\r\n".to_vec();
    for (n, v) in trailers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    w.write_all(&out)
}

/// Writes a reply that needs nothing from the request (everything except the echo kinds
/// and WebSocket, which the connection loop handles). `head_only` is true for HEAD requests.
pub(crate) fn write_simple(
    stream: &mut TcpStream,
    reply: &Reply,
    head_only: bool,
) -> io::Result<()> {
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let no_body = head_only || status_has_no_body(*status);
            let mut extra = Vec::new();
            if !has_framing(headers) && !status_has_no_body(*status) {
                extra.push(("content-length", body.len().to_string()));
            }
            let mut out = head_bytes(*status, headers, &extra);
            if !no_body {
                out.extend_from_slice(body);
            }
            stream.write_all(&out)
        }
        Reply::Chunked {
            status,
            headers,
            chunks,
            trailers,
        } => {
            let mut extra = Vec::new();
            if !has_framing(headers) {
                extra.push(("transfer-encoding", "chunked".to_string()));
            }
            if !trailers.is_empty() && header(headers, "trailer").is_none() {
                let names: Vec<&str> = trailers.iter().map(|(n, _)| n.as_str()).collect();
                extra.push(("trailer", names.join(", ")));
            }
            let mut out = head_bytes(*status, headers, &extra);
            if !head_only && !status_has_no_body(*status) {
                for c in chunks {
                    write_chunk(&mut out, c)?;
                }
                write_last_chunk(&mut out, trailers)?;
            }
            stream.write_all(&out)
        }
        Reply::CloseDelimited {
            status,
            headers,
            body,
        } => {
            let mut out = head_bytes(*status, headers, &[]);
            if !head_only {
                out.extend_from_slice(body);
            }
            stream.write_all(&out)
        }
        Reply::Delay(wait, inner) => {
            std::thread::sleep(*wait);
            write_simple(stream, inner, head_only)
        }
        Reply::Gated {
            status,
            headers,
            body,
            split,
            gate,
        } => {
            let extra = [("content-length", body.len().to_string())];
            stream.write_all(&head_bytes(*status, headers, &extra))?;
            if head_only {
                return Ok(());
            }
            let split = (*split).min(body.len());
            stream.write_all(&body[..split])?;
            stream.flush()?;
            gate.wait(GATE_TIMEOUT);
            stream.write_all(&body[split..])
        }
        Reply::ResetAfter {
            head_and_partial_body,
        } => {
            stream.write_all(head_and_partial_body)?;
            stream.flush()?;
            // Give the peer a moment to read what was sent: with SO_LINGER 0 the close
            // discards unread data on some paths, and the test wants it delivered first.
            if !head_and_partial_body.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
            socket2::SockRef::from(&*stream).set_linger(Some(Duration::ZERO))?;
            Ok(())
        }
        Reply::Raw(bytes) => stream.write_all(bytes),
        Reply::CloseWithoutResponse => Ok(()),
        Reply::Interim(codes, inner) => {
            for code in codes {
                write_interim(stream, *code)?;
            }
            write_simple(stream, inner, head_only)
        }
        Reply::LargeStream { len, chunk } => {
            let head = head_bytes(200, &[], &[("transfer-encoding", "chunked".to_string())]);
            stream.write_all(&head)?;
            if head_only {
                return Ok(());
            }
            let mut gen = ByteStream::new(LARGE_STREAM_SEED);
            let mut buf = vec![0u8; (*chunk).max(1)];
            let mut left = *len;
            let mut writer = io::BufWriter::with_capacity(128 * 1024, &mut *stream);
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                gen.fill(&mut buf[..n]);
                write_chunk(&mut writer, &buf[..n])?;
                left -= n as u64;
            }
            write_last_chunk(&mut writer, &[])?;
            writer.flush()
        }
        Reply::Echo | Reply::StreamEcho | Reply::WebSocketEcho => Err(io::Error::other(
            "echo replies are written by the connection loop",
        )),
    }
}

//! A raw, blocking HTTP/1 client over TCP or a unix socket: writes exactly the bytes a
//! test gives and parses responses strictly, so tests see precisely what the proxy sent.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use crate::data::Checksum;
use crate::reply::status_has_no_body;
use crate::stream::{ClientStream, Target};
use crate::wire::{
    self, framing_from_headers, invalid, owned_headers, Framing, Headers, WireReader,
};

/// Read timeout a [`RawClient`] made by [`RawClient::connect`] starts with.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Protocol version, e.g. `HTTP/1.1`.
    pub version: String,
    /// Header fields in wire order, names lowercased.
    pub headers: Headers,
    /// The body (empty when read with [`RawClient::read_response_digest`]).
    pub body: Vec<u8>,
    /// Length of the body.
    pub body_len: u64,
    /// [`crate::checksum`] of the body.
    pub body_checksum: u64,
    /// Trailer fields of a chunked body.
    pub trailers: Headers,
    /// How the body was delimited.
    pub framing: Framing,
    /// Statuses of interim (1xx) responses skipped before this one, in order.
    pub interim: Vec<u16>,
}

impl Response {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }

    /// True when the response says `Connection: close`.
    pub fn closes(&self) -> bool {
        self.has_token("connection", "close")
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        wire::header_all(&self.headers, name)
    }

    /// True when the comma-separated header `name` lists `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        wire::has_token(&self.headers, name, token)
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a response body is consumed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyMode {
    Store,
    DigestOnly,
}

/// A blocking client on one connection (TCP or unix socket).
#[derive(Debug)]
pub struct RawClient {
    reader: WireReader<ClientStream>,
    writer: ClientStream,
}

impl RawClient {
    /// Connects to `addr` over TCP (5 s connect timeout, 10 s read and write timeouts,
    /// no Nagle delay).
    pub fn connect(addr: SocketAddr) -> io::Result<RawClient> {
        Self::connect_to(
            &Target::Tcp(addr),
            Duration::from_secs(5),
            DEFAULT_READ_TIMEOUT,
        )
    }

    /// Connects to `addr` over TCP from the local address `source` (any port), e.g.
    /// `127.0.0.2`, so that the proxy sees a client other than 127.0.0.1. Timeouts as
    /// [`RawClient::connect`].
    pub fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> io::Result<RawClient> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.bind(&SocketAddr::new(source, 0).into())?;
        socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
        let stream: std::net::TcpStream = socket.into();
        stream.set_nodelay(true)?;
        let stream = ClientStream::Tcp(stream);
        stream.set_read_timeout(Some(DEFAULT_READ_TIMEOUT))?;
        stream.set_write_timeout(Some(DEFAULT_READ_TIMEOUT))?;
        let writer = stream.try_clone()?;
        Ok(RawClient {
            reader: WireReader::new(stream),
            writer,
        })
    }

    /// Connects to `target` (TCP or unix socket) within `connect_timeout` (TCP only);
    /// reads and writes time out after `io_timeout`.
    pub fn connect_to(
        target: &Target,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> io::Result<RawClient> {
        let stream = ClientStream::connect(target, connect_timeout)?;
        stream.set_read_timeout(Some(io_timeout))?;
        stream.set_write_timeout(Some(io_timeout))?;
        let writer = stream.try_clone()?;
        Ok(RawClient {
            reader: WireReader::new(stream),
            writer,
        })
    }

    /// Changes the read timeout.
    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(Some(timeout))
    }

    /// The local address of a TCP connection (an error on a unix socket).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.writer.local_addr()
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// Writes `bytes` one at a time with `pause` in between (slow-client tests). Stops at
    /// the first write error and returns it.
    pub fn send_slowly(&mut self, bytes: &[u8], pause: Duration) -> io::Result<()> {
        for b in bytes {
            self.writer.write_all(std::slice::from_ref(b))?;
            std::thread::sleep(pause);
        }
        Ok(())
    }

    /// Sends `GET path HTTP/1.1` with `Host: test` (and `Connection: close` when
    /// `close`), without waiting for the answer.
    pub fn send_get(&mut self, path: &str, close: bool) -> io::Result<()> {
        let conn = if close { "Connection: close\r\n" } else { "" };
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n{conn}\r\n").as_bytes())
    }

    /// [`RawClient::send_get`], then reads the final response.
    pub fn get(&mut self, path: &str, close: bool) -> io::Result<Response> {
        self.send_get(path, close)?;
        self.read_final_response()
    }

    /// A second handle on the socket for writing, e.g. from another thread.
    pub fn writer_clone(&self) -> io::Result<ClientStream> {
        self.writer.try_clone()
    }

    /// Closes the sending side (the peer reads end of stream).
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.writer.shutdown(Shutdown::Write)
    }

    /// Reads the next response, which may be an interim 1xx one.
    pub fn read_response(&mut self) -> io::Result<Response> {
        self.read_one(false, BodyMode::Store)
    }

    /// Reads the next response to a HEAD request (no body whatever the headers say).
    pub fn read_response_for_head(&mut self) -> io::Result<Response> {
        self.read_final(true, BodyMode::Store)
    }

    /// Reads responses until a final (non-1xx) one; skipped statuses are in `interim`.
    pub fn read_final_response(&mut self) -> io::Result<Response> {
        self.read_final(false, BodyMode::Store)
    }

    /// Like [`RawClient::read_final_response`] but keeps only the body's length and
    /// checksum, for large bodies.
    pub fn read_response_digest(&mut self) -> io::Result<Response> {
        self.read_final(false, BodyMode::DigestOnly)
    }

    /// Every byte until the peer closes (or the read timeout passes: an error).
    pub fn read_to_end_raw(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader.read_to_eof(&mut |d| {
            out.extend_from_slice(d);
            Ok(())
        })?;
        Ok(out)
    }

    /// Reads whatever arrives within `wait` (at most one read after buffered bytes).
    pub fn read_available(&mut self, wait: Duration) -> io::Result<Vec<u8>> {
        let mut out = self.reader.buffered().to_vec();
        self.reader.clear_buffer();
        if !out.is_empty() {
            return Ok(out);
        }
        let old = self.reader.get_ref().read_timeout()?;
        self.reader.get_ref().set_read_timeout(Some(wait))?;
        let mut buf = vec![0u8; 64 * 1024];
        let res = self.reader.get_ref().read(&mut buf);
        self.reader.get_ref().set_read_timeout(old)?;
        match res {
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
        Ok(out)
    }

    /// Reads exactly `n` bytes (e.g. tunnelled data after a 101).
    pub fn read_exact_raw(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n);
        self.reader.read_exact_to(n as u64, &mut |d| {
            out.extend_from_slice(d);
            Ok(())
        })?;
        Ok(out)
    }

    /// True when the peer closes (end of stream or reset) within `wait` and nothing
    /// else arrives first. Unread buffered bytes count as "not closed".
    pub fn is_closed_by_peer(&mut self, wait: Duration) -> bool {
        if !self.reader.buffered().is_empty() {
            return false;
        }
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || self.reader.get_ref().set_read_timeout(Some(left)).is_err() {
                return false;
            }
            match self.reader.fill_more() {
                Ok(0) => return true,
                Ok(_) => return false,
                Err(e) if is_timeout(&e) => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            }
        }
    }

    fn read_final(&mut self, head_request: bool, mode: BodyMode) -> io::Result<Response> {
        let mut interim = Vec::new();
        loop {
            let mut resp = self.read_one(head_request, mode)?;
            if (100..200).contains(&resp.status) && resp.status != 101 {
                interim.push(resp.status);
                continue;
            }
            resp.interim = interim;
            return Ok(resp);
        }
    }

    fn read_one(&mut self, head_request: bool, mode: BodyMode) -> io::Result<Response> {
        let head = self.reader.read_head()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        })?;
        let mut raw = [httparse::EMPTY_HEADER; 256];
        let mut parsed = httparse::Response::new(&mut raw);
        match parsed.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            other => {
                return Err(invalid(format!(
                    "unparsable response head ({other:?}): {:?}",
                    String::from_utf8_lossy(&head)
                )))
            }
        }
        let status = parsed.code.unwrap_or(0);
        let headers = owned_headers(parsed.headers);
        let framing = if head_request || status_has_no_body(status) {
            Framing::None
        } else {
            framing_from_headers(&headers, Framing::Close)?
        };
        let mut body = Vec::new();
        let mut sum = Checksum::new();
        let trailers = self.reader.read_body(framing, &mut |d| {
            sum.update(d);
            if mode == BodyMode::Store {
                body.extend_from_slice(d);
            }
            Ok(())
        })?;
        Ok(Response {
            status,
            reason: parsed.reason.unwrap_or("").to_string(),
            version: format!("HTTP/1.{}", parsed.version.unwrap_or(1)),
            headers,
            body,
            body_len: sum.len(),
            body_checksum: sum.value(),
            trailers,
            framing,
            interim: Vec::new(),
        })
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Builds the bytes of a request: request line, `headers` as given, a `Content-Length`
/// for a non-empty `body` unless the headers already frame it, then the body.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    let framed = headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if !framed && !body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// One request on a fresh connection; returns the final response.
///
/// A `Host: <addr>` header is added unless `headers` has one.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let host = addr.to_string();
    let mut all: Vec<(&str, &str)> = Vec::new();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        all.push(("Host", &host));
    }
    all.extend_from_slice(headers);
    let mut client = RawClient::connect(addr)?;
    client.send(&request_bytes(method, path, &all, body))?;
    if method.eq_ignore_ascii_case("HEAD") {
        client.read_response_for_head()
    } else {
        client.read_final_response()
    }
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    request(addr, "GET", path, &[], b"")
}

/// Encodes `chunks` as a chunked body followed by `trailers`.
pub fn chunked_body(chunks: &[&[u8]], trailers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks.iter().filter(|c| !c.is_empty()) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    for (n, v) in trailers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

//! An HTTP/1.1 origin for desync tests: it records every byte it receives and frames
//! requests with its own strict reader (independent of the proxy's codec). Every byte
//! must belong to a well-formed request that the reader can frame unambiguously;
//! anything else is recorded as a violation (a byte the proxy did not frame itself)
//! and the connection is closed. Each request it frames gets `200` with body `ok`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Longest head the strict reader takes.
const MAX_HEAD: usize = 64 * 1024;

/// A request the recording origin framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedRequest {
    /// Method as sent.
    pub method: String,
    /// Request target as sent.
    pub target: String,
    /// Header fields in wire order (names as sent).
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
    /// Index (from 0) of the origin connection it came on.
    pub connection: usize,
}

impl FramedRequest {
    /// Every value of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<FramedRequest>>,
    violations: Mutex<Vec<String>>,
    bytes: AtomicUsize,
    truncated: AtomicUsize,
    connections: AtomicUsize,
    stopping: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The recording origin; stops when dropped.
pub struct RecordingOrigin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl RecordingOrigin {
    /// Starts on a free port of 127.0.0.1.
    pub fn start() -> RecordingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the recording origin");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("origin address");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let acceptor = thread::spawn(move || {
            while !s.stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let n = s.connections.fetch_add(1, Ordering::SeqCst);
                        let s = s.clone();
                        thread::spawn(move || serve(stream, n, &s));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RecordingOrigin {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests framed so far, in order of arrival.
    pub fn requests(&self) -> Vec<FramedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Everything received that was not a well-formed request.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.shared.violations).clone()
    }

    /// Connections closed by the proxy inside a request (not counted as requests).
    pub fn truncated(&self) -> usize {
        self.shared.truncated.load(Ordering::SeqCst)
    }

    /// Bytes received in all.
    pub fn bytes_received(&self) -> usize {
        self.shared.bytes.load(Ordering::SeqCst)
    }
}

impl Drop for RecordingOrigin {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn serve(mut stream: TcpStream, connection: usize, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        loop {
            match frame_request(&buf) {
                Ok(Some((mut req, used))) => {
                    buf.drain(..used);
                    req.connection = connection;
                    let head = req.method == "HEAD";
                    lock(&shared.requests).push(req);
                    let reply: &[u8] = if head {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    };
                    if stream.write_all(reply).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(why) => {
                    lock(&shared.violations).push(format!(
                        "connection {connection}: {why}; bytes: {:?}",
                        String::from_utf8_lossy(&buf[..buf.len().min(600)])
                    ));
                    return;
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                // A request cut short by a close is no desync: what came so far was
                // well-formed (else it was refused above) and is not counted.
                if !buf.is_empty() {
                    shared.truncated.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
            Ok(n) => {
                shared.bytes.fetch_add(n, Ordering::SeqCst);
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Frames one request from the front of `buf`: `Ok(None)` when more bytes are needed,
/// `Err` when the bytes are not a request this strict reader can frame.
pub fn frame_request(buf: &[u8]) -> Result<Option<(FramedRequest, usize)>, String> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        check_head_bytes(buf)?;
        return if buf.len() > MAX_HEAD {
            Err("head too long".into())
        } else {
            Ok(None)
        };
    };
    let head = &buf[..head_end + 2];
    check_head_bytes(head)?;
    let text = std::str::from_utf8(head).map_err(|_| "head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("request line {request_line:?} is not three words"));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(format!("method {method:?}"));
    }
    let target_ok = target.starts_with('/')
        || (target == "*" && method == "OPTIONS")
        || (method == "CONNECT" && target.contains(':') && !target.contains('/'));
    if !target_ok || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("request target {target:?}"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!("version {version:?}"));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        headers.push(field_line(line)?);
    }
    let count = |name: &str| {
        headers
            .iter()
            .filter(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(name))
            .count()
    };
    if version == "HTTP/1.1" && count("host") != 1 {
        return Err(format!("{} Host fields", count("host")));
    }
    let cl: Vec<&String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v)
        .collect();
    let te: Vec<&String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(_, v)| v)
        .collect();
    let mut req = FramedRequest {
        method: method.to_string(),
        target: target.to_string(),
        headers: headers.clone(),
        body: Vec::new(),
        connection: 0,
    };
    let body_start = head_end + 4;
    let used = match (cl.as_slice(), te.as_slice()) {
        ([], []) => body_start,
        ([len], []) => {
            if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 15 {
                return Err(format!("Content-Length {len:?}"));
            }
            let n: usize = len.parse().map_err(|_| format!("Content-Length {len:?}"))?;
            if buf.len() < body_start + n {
                return Ok(None);
            }
            req.body = buf[body_start..body_start + n].to_vec();
            body_start + n
        }
        ([], [coding]) if coding.eq_ignore_ascii_case("chunked") => {
            match dechunk(&buf[body_start..], &mut req.body)? {
                Some(n) => body_start + n,
                None => return Ok(None),
            }
        }
        _ => {
            return Err(format!(
                "framing fields: Content-Length {cl:?}, Transfer-Encoding {te:?}"
            ))
        }
    };
    Ok(Some((req, used)))
}

/// Bytes allowed in a head: printable ASCII, SP, HTAB, obs-text, and CR only before LF.
fn check_head_bytes(head: &[u8]) -> Result<(), String> {
    for (i, &b) in head.iter().enumerate() {
        let ok = match b {
            b'\r' => head.get(i + 1).is_none_or(|&n| n == b'\n'),
            b'\n' => i > 0 && head[i - 1] == b'\r',
            b'\t' | b' ' => true,
            0x21..=0x7e | 0x80..=0xff => true,
            _ => false,
        };
        if !ok {
            return Err(format!("byte 0x{b:02x} at offset {i} of the head"));
        }
    }
    Ok(())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `name: value` with a token name, no space before the colon, no obs-fold.
fn field_line(line: &str) -> Result<(String, String), String> {
    if line.starts_with([' ', '\t']) {
        return Err(format!("obs-fold line {line:?}"));
    }
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| format!("field line without a colon {line:?}"))?;
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!("field name {name:?}"));
    }
    Ok((
        name.to_string(),
        value.trim_matches([' ', '\t']).to_string(),
    ))
}

/// Strict chunked body: `HEX CRLF data CRLF`, no extensions, `0 CRLF`, field lines,
/// CRLF. Returns the bytes used, or `None` when incomplete.
fn dechunk(buf: &[u8], body: &mut Vec<u8>) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return if buf.len() - at > 32 {
                Err("chunk-size line too long".into())
            } else {
                Ok(None)
            };
        };
        let size_text = &buf[at..at + eol];
        if size_text.is_empty()
            || size_text.len() > 15
            || !size_text.iter().all(u8::is_ascii_hexdigit)
        {
            return Err(format!(
                "chunk-size line {:?}",
                String::from_utf8_lossy(size_text)
            ));
        }
        let size = usize::from_str_radix(std::str::from_utf8(size_text).unwrap_or("0"), 16)
            .map_err(|e| e.to_string())?;
        at += eol + 2;
        if size == 0 {
            loop {
                let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                let line = &buf[at..at + eol];
                at += eol + 2;
                if line.is_empty() {
                    return Ok(Some(at));
                }
                check_head_bytes(line)?;
                let line = std::str::from_utf8(line).map_err(|_| "trailer not UTF-8")?;
                let (name, _) = field_line(line)?;
                if ["content-length", "transfer-encoding", "host"]
                    .iter()
                    .any(|f| name.eq_ignore_ascii_case(f))
                {
                    return Err(format!("forbidden trailer field {name}"));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        at += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_strictly() {
        let ok = b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx: 1\r\n\r\nGET";
        let (req, used) = frame_request(ok).unwrap().unwrap();
        assert_eq!((req.body.as_slice(), used), (&b"abc"[..], ok.len() - 3));
        assert!(frame_request(b"GET / HTTP/1.1\r\nHost: h\r\n\r")
            .unwrap()
            .is_none());
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"[..],
            b"GET / HTTP/1.1\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\n\r\n",
            b"GET ?x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
        ] {
            assert!(frame_request(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

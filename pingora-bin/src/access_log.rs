//! The access log (`access_log:`): one line per request, `text` or `json`, written by a
//! dedicated thread fed through a bounded queue, so a slow disk never blocks a runtime
//! thread (when the queue is full the line is dropped and counted). The file is reopened
//! on SIGUSR1.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use pingora_config::{AccessLogConf, AccessLogFormat};
use pingora_core::protocols::ClientAddr;
use pingora_proxy::Session;

use crate::metrics::{Finished, RouteSlot};

/// Lines that may wait for the writer thread before new ones are dropped.
const QUEUE_LINES: usize = 16_384;

/// Where lines go.
enum Target {
    Stderr,
    File(PathBuf),
}

/// What the writer thread is asked to do.
enum Msg {
    Line(String),
    /// Look at the reopen flag now.
    Wake,
    /// Flush, acknowledge and stop.
    Finish(mpsc::Sender<()>),
}

/// The process's access log: cheap to clone, shared by every service.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Shared>,
}

struct Shared {
    format: AccessLogFormat,
    target: Target,
    /// The file opened by [`init`], until the writer thread takes it.
    opened: Mutex<Option<File>>,
    queue: OnceLock<SyncSender<Msg>>,
    dropped: AtomicU64,
    reopen: AtomicBool,
}

static ACCESS_LOG: OnceLock<AccessLog> = OnceLock::new();

/// Opens the access log `conf` asks for (nothing when it has no `path`). Call before
/// daemonizing and dropping privileges; lines are written once [`start`] ran.
pub fn init(conf: &AccessLogConf) -> io::Result<()> {
    let Some(path) = &conf.path else {
        return Ok(());
    };
    let (target, file) = if conf.is_stderr() {
        (Target::Stderr, None)
    } else {
        // Absolute, so that a reopen after the daemon's chdir finds the same file.
        let path = std::path::absolute(path)?;
        let file = open_append(&path)?;
        (Target::File(path), Some(file))
    };
    let log = AccessLog {
        inner: Arc::new(Shared {
            format: conf.format,
            target,
            opened: Mutex::new(file),
            queue: OnceLock::new(),
            dropped: AtomicU64::new(0),
            reopen: AtomicBool::new(false),
        }),
    };
    // A second init (there is none in the binary) keeps the first log.
    let _ = ACCESS_LOG.set(log);
    Ok(())
}

/// Starts the writer thread (after daemonizing: threads do not survive a fork).
pub fn start() -> io::Result<()> {
    let Some(log) = ACCESS_LOG.get() else {
        return Ok(());
    };
    let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
    let file = log
        .inner
        .opened
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let shared = log.inner.clone();
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || write_loop(&shared, file, &rx))?;
    let _ = log.inner.queue.set(tx);
    Ok(())
}

/// The access log, when one is configured.
pub fn get() -> Option<AccessLog> {
    ACCESS_LOG.get().cloned()
}

/// Asks the writer to reopen the file (SIGUSR1, after logrotate renamed it).
pub fn reopen() {
    if let Some(log) = ACCESS_LOG.get() {
        log.inner.reopen.store(true, Ordering::Release);
        if let Some(tx) = log.inner.queue.get() {
            // When the queue is full the writer is busy and sees the flag after its next line.
            let _ = tx.try_send(Msg::Wake);
        }
    }
}

/// Lines dropped so far because the writer fell behind.
pub fn dropped() -> u64 {
    ACCESS_LOG
        .get()
        .map_or(0, |l| l.inner.dropped.load(Ordering::Relaxed))
}

/// Writes out what is queued and stops the writer, waiting at most `timeout`.
pub fn finish(timeout: Duration) {
    let Some(tx) = ACCESS_LOG.get().and_then(|l| l.inner.queue.get()) else {
        return;
    };
    let deadline = Instant::now() + timeout;
    let (ack_tx, ack_rx) = mpsc::channel();
    let mut msg = Msg::Finish(ack_tx);
    loop {
        match tx.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if let Err(RecvTimeoutError::Timeout) = ack_rx.recv_timeout(left) {
        log::warn!("access log: writer did not finish within {timeout:?}");
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The writer thread: writes queued lines, flushes whenever the queue is empty.
fn write_loop(shared: &Shared, file: Option<File>, rx: &Receiver<Msg>) {
    let mut out = Output::new(&shared.target, file);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            if shared.reopen.swap(false, Ordering::AcqRel) {
                out.reopen(&shared.target);
            }
            match msg {
                Msg::Line(line) => out.write(line.as_bytes()),
                Msg::Wake => {}
                Msg::Finish(ack) => {
                    out.flush();
                    let _ = ack.send(());
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        out.flush();
    }
    out.flush();
}

/// The open destination of the writer thread.
enum Output {
    Stderr,
    File(BufWriter<File>),
    /// The file could not be (re)opened: lines are lost until the next reopen.
    Broken,
}

impl Output {
    fn new(target: &Target, file: Option<File>) -> Output {
        match (target, file) {
            (Target::Stderr, _) => Output::Stderr,
            (Target::File(_), Some(f)) => Output::File(BufWriter::with_capacity(64 * 1024, f)),
            (Target::File(path), None) => Output::open(path),
        }
    }

    fn open(path: &Path) -> Output {
        match open_append(path) {
            Ok(f) => Output::File(BufWriter::with_capacity(64 * 1024, f)),
            Err(e) => {
                log::error!("cannot open access_log {}: {e}", path.display());
                Output::Broken
            }
        }
    }

    fn reopen(&mut self, target: &Target) {
        self.flush();
        if let Target::File(path) = target {
            *self = Output::open(path);
        }
    }

    fn write(&mut self, line: &[u8]) {
        let written = match self {
            Output::Stderr => io::stderr().lock().write_all(line),
            Output::File(f) => f.write_all(line),
            Output::Broken => Ok(()),
        };
        if let Err(e) = written {
            log::error!("cannot write access_log: {e}");
        }
    }

    fn flush(&mut self) {
        if let Output::File(f) = self {
            if let Err(e) = f.flush() {
                log::error!("cannot write access_log: {e}");
            }
        }
    }
}

/// One service's view of the access log.
#[derive(Clone)]
pub struct ServiceAccessLog {
    log: AccessLog,
    service: Arc<str>,
}

impl ServiceAccessLog {
    /// Lines of service `service` into `log`.
    pub fn new(log: AccessLog, service: &str) -> Self {
        ServiceAccessLog {
            log,
            service: service.into(),
        }
    }

    /// Queues the line of the request `session` just finished, with its request id when
    /// the service has them; drops it (counted) when the writer is too far behind.
    pub fn write(&self, session: &Session, done: &Finished, request_id: Option<&[u8]>) {
        let Some(tx) = self.log.inner.queue.get() else {
            return;
        };
        let mut fields = Fields::new(session, done);
        fields.request_id = request_id;
        self.send(tx, &fields, done);
    }

    /// Queues the line of a request rejected from `client` before it could be read
    /// (method, path and version are `-`).
    pub fn write_rejected(&self, client: &ClientAddr, done: &Finished) {
        let Some(tx) = self.log.inner.queue.get() else {
            return;
        };
        self.send(tx, &Fields::rejected(client), done);
    }

    fn send(&self, tx: &SyncSender<Msg>, fields: &Fields<'_>, done: &Finished) {
        let line = match self.log.inner.format {
            AccessLogFormat::Text => text_line(&self.service, fields, done),
            AccessLogFormat::Json => json_line(&self.service, fields, done),
        };
        if tx.try_send(Msg::Line(line)).is_err() {
            self.log.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The fields of a line, read once from the session.
struct Fields<'a> {
    time: String,
    client: String,
    method: &'a str,
    path: &'a str,
    version: &'static str,
    referer: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    upstream: Option<&'a str>,
    upstream_status: Option<u16>,
    route: String,
    request_id: Option<&'a [u8]>,
    /// `$ssl_client_verify` and `$ssl_client_s_dn`, on listeners with `client_auth`.
    client_verify: Option<&'a str>,
    client_dn: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn new(session: &'a Session, done: &Finished) -> Fields<'a> {
        let req = session.req_header();
        let header = |name: http::header::HeaderName| req.headers.get(name).map(|v| v.as_bytes());
        Fields {
            time: crate::log::utc_timestamp(SystemTime::now()),
            client: session.client_addr().to_string(),
            method: req.method.as_str(),
            path: req.path_and_query(),
            version: version_str(req.version),
            referer: header(http::header::REFERER),
            user_agent: header(http::header::USER_AGENT),
            upstream: session.upstream_addr(),
            upstream_status: session.upstream_status().map(|s| s.as_u16()),
            route: route_label(done.route),
            request_id: None,
            client_verify: session.client_cert().map(|c| c.verify_text()),
            client_dn: session.client_cert().and_then(|c| c.subject()),
        }
    }

    fn rejected(client: &ClientAddr) -> Fields<'static> {
        Fields {
            time: crate::log::utc_timestamp(SystemTime::now()),
            client: client.to_string(),
            method: "-",
            path: "-",
            version: "-",
            referer: None,
            user_agent: None,
            upstream: None,
            upstream_status: None,
            route: route_label(RouteSlot::Rejected),
            request_id: None,
            client_verify: None,
            client_dn: None,
        }
    }
}

fn version_str(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn route_label(route: RouteSlot) -> String {
    match route {
        RouteSlot::Route(i) => i.to_string(),
        RouteSlot::Health => "health_path".to_string(),
        RouteSlot::Unmatched => "unmatched".to_string(),
        RouteSlot::Rejected => "rejected".to_string(),
    }
}

fn error_label(done: &Finished) -> Option<&'static str> {
    done.error.map(|(kind, _)| kind.as_str())
}

/// `CLIENT - - [TIME] "METHOD PATH VERSION" STATUS BYTES_OUT "REFERER" "USER_AGENT"`
/// followed by `key=value` fields.
fn text_line(service: &str, f: &Fields<'_>, done: &Finished) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(s, "{} - - [{}] \"", f.client, f.time);
    escape_text(&mut s, f.method.as_bytes());
    s.push(' ');
    escape_text(&mut s, f.path.as_bytes());
    let _ = write!(s, " {}\" ", f.version);
    match done.status {
        Some(st) => {
            let _ = write!(s, "{st}");
        }
        None => s.push('-'),
    }
    let _ = write!(s, " {} \"", done.bytes_out);
    escape_text(&mut s, f.referer.unwrap_or(b"-"));
    s.push_str("\" \"");
    escape_text(&mut s, f.user_agent.unwrap_or(b"-"));
    let _ = write!(
        s,
        "\" in={} service={} route={} upstream={} upstream_status=",
        done.bytes_in,
        service,
        f.route,
        f.upstream.unwrap_or("-")
    );
    match f.upstream_status {
        Some(st) => {
            let _ = write!(s, "{st}");
        }
        None => s.push('-'),
    }
    s.push_str(" upstream_time=");
    match done.upstream {
        Some(t) => {
            let _ = write!(s, "{:.6}", t.as_secs_f64());
        }
        None => s.push('-'),
    }
    let _ = write!(
        s,
        " time={:.6} error={}",
        done.total.as_secs_f64(),
        error_label(done).unwrap_or("-")
    );
    if let Some(id) = f.request_id {
        s.push_str(" request_id=");
        escape_text(&mut s, id);
    }
    if let Some(verify) = f.client_verify {
        s.push_str(" ssl_client_verify=\"");
        escape_text(&mut s, verify.as_bytes());
        s.push_str("\" ssl_client_s_dn=\"");
        escape_text(&mut s, f.client_dn.unwrap_or("-").as_bytes());
        s.push('"');
    }
    s.push('\n');
    s
}

/// One JSON object; absent values are `null`.
fn json_line(service: &str, f: &Fields<'_>, done: &Finished) -> String {
    let mut s = String::with_capacity(320);
    let str_field = |s: &mut String, key: &str, value: Option<&[u8]>| {
        let _ = write!(s, "\"{key}\":");
        match value {
            Some(v) => {
                s.push('"');
                escape_json(s, v);
                s.push('"');
            }
            None => s.push_str("null"),
        }
        s.push(',');
    };
    s.push('{');
    str_field(&mut s, "time", Some(f.time.as_bytes()));
    str_field(&mut s, "client", Some(f.client.as_bytes()));
    str_field(&mut s, "service", Some(service.as_bytes()));
    str_field(&mut s, "route", Some(f.route.as_bytes()));
    str_field(&mut s, "method", Some(f.method.as_bytes()));
    str_field(&mut s, "path", Some(f.path.as_bytes()));
    str_field(&mut s, "version", Some(f.version.as_bytes()));
    let _ = write!(
        s,
        "\"status\":{},\"bytes_in\":{},\"bytes_out\":{},",
        opt_num(done.status),
        done.bytes_in,
        done.bytes_out
    );
    str_field(&mut s, "upstream_addr", f.upstream.map(str::as_bytes));
    let _ = write!(
        s,
        "\"upstream_status\":{},\"upstream_time\":{},\"time\":{:.6},",
        opt_num(f.upstream_status),
        done.upstream
            .map_or("null".to_string(), |t| format!("{:.6}", t.as_secs_f64())),
        done.total.as_secs_f64()
    );
    str_field(&mut s, "referer", f.referer);
    str_field(&mut s, "user_agent", f.user_agent);
    str_field(&mut s, "error", error_label(done).map(str::as_bytes));
    str_field(&mut s, "request_id", f.request_id);
    str_field(
        &mut s,
        "ssl_client_verify",
        f.client_verify.map(str::as_bytes),
    );
    str_field(&mut s, "ssl_client_s_dn", f.client_dn.map(str::as_bytes));
    s.pop(); // the last comma
    s.push_str("}\n");
    s
}

fn opt_num(n: Option<u16>) -> String {
    n.map_or("null".to_string(), |n| n.to_string())
}

/// Appends `bytes` for a quoted text field: `"` and `\` backslash-escaped, control and
/// non-ASCII bytes as `\xHH`, so a line stays one line of printable ASCII.
fn escape_text(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02X}");
            }
        }
    }
}

/// Appends `bytes` as the inside of a JSON string (invalid UTF-8 replaced by U+FFFD).
fn escape_json(out: &mut String, bytes: &[u8]) {
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escaping_keeps_one_printable_line() {
        let mut s = String::new();
        escape_text(&mut s, b"a\"b\\c\n\xff d");
        assert_eq!(s, r#"a\"b\\c\x0A\xFF d"#);
    }

    #[test]
    fn json_escaping() {
        let mut s = String::new();
        escape_json(&mut s, "q\"b\\\n\u{1}é".as_bytes());
        assert_eq!(s, r#"q\"b\\\n\u0001é"#);
        let mut s = String::new();
        escape_json(&mut s, b"\xff");
        assert_eq!(s, "\u{fffd}");
    }
}

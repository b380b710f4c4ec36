//! Helpers of the process-lifecycle tests (upgrade, reload, signals, daemon): a YAML
//! builder whose files live in a per-test directory, a guard around each started
//! `pingora` process (killed on drop), a reaper for processes the binary started
//! itself (reloads, daemons), a small HTTP/1 client over TCP or unix sockets and a
//! multi-threaded load generator that counts every failed or refused request.

#![allow(dead_code)] // each test file uses a different part of this module

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use test_support::{has_token, header, wait_until, Framing, Headers, WireReader};

/// The `pingora` binary built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pingora"))
}

/// How long a process may take to start serving before the test fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Time any single request may take before it counts as hung.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// `graceful_shutdown_timeout_seconds` of the configs written by [`Conf`].
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 3;

/// Extra time, beyond the shutdown timeout, that a draining process may take to exit.
pub const EXIT_MARGIN: Duration = Duration::from_secs(3);

static HEAVY: Mutex<()> = Mutex::new(());

/// Serializes the tests that put load on the machine (the test harness runs tests of
/// one file in parallel; two load tests at once on two cores would measure the box,
/// not the binary).
pub fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

/// A YAML config with one service `web`: `/who` answered by the proxy itself with
/// the configured marker (which tells instances apart), optional extra routes, and
/// everything else proxied to `origin`. Its files (pid_file, upgrade_sock) live in
/// the test's directory.
#[derive(Debug, Clone)]
pub struct Conf {
    dir: PathBuf,
    listeners: Vec<String>,
    origin: SocketAddr,
    marker: String,
    top: Vec<(String, String)>,
    routes: Vec<String>,
    upstreams: Vec<String>,
}

impl Conf {
    /// A config listening on `listen` (`IP:PORT` or `unix:/path`) in front of `origin`.
    pub fn new(dir: &Path, listen: impl ToString, origin: SocketAddr) -> Conf {
        let d = dir.display();
        let top = [
            ("version", "1".to_string()),
            ("threads", "2".to_string()),
            ("pid_file", format!("{d}/pingora.pid")),
            ("upgrade_sock", format!("{d}/upgrade.sock")),
            ("grace_period_seconds", "0".to_string()),
            (
                "graceful_shutdown_timeout_seconds",
                SHUTDOWN_TIMEOUT_SECS.to_string(),
            ),
            ("upgrade_sock_connect_accept_max_retries", "5".to_string()),
        ];
        Conf {
            dir: dir.to_path_buf(),
            listeners: vec![listen.to_string()],
            origin,
            marker: "first".to_string(),
            top: top.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            routes: Vec::new(),
            upstreams: Vec::new(),
        }
    }

    /// Adds another listening address to the service.
    pub fn listener(mut self, listen: impl ToString) -> Conf {
        self.listeners.push(listen.to_string());
        self
    }

    /// Sets (or adds) a top-level `key: value`.
    pub fn set(mut self, key: &str, value: &str) -> Conf {
        match self.top.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.top.push((key.to_string(), value.to_string())),
        }
        self
    }

    /// The body `/who` answers with.
    pub fn marker(mut self, marker: &str) -> Conf {
        self.marker = marker.to_string();
        self
    }

    /// Adds a route answered by the proxy: `path_prefix` -> 200 `body`.
    pub fn respond_route(mut self, path_prefix: &str, body: &str) -> Conf {
        self.routes.push(format!(
            "{{ match: {{ path_prefix: {path_prefix} }}, respond: {{ status: 200, body: \"{body}\" }} }}"
        ));
        self
    }

    /// Adds an upstream `name` with one peer and a route `path_prefix` to it.
    pub fn upstream_route(mut self, path_prefix: &str, name: &str, peer: SocketAddr) -> Conf {
        self.routes.push(format!(
            "{{ match: {{ path_prefix: {path_prefix} }}, upstream: {name} }}"
        ));
        self.upstreams.push(format!(
            "{name}: {{ peers: [\"{peer}\"], connect_timeout_ms: 500, read_timeout_ms: 2000 }}"
        ));
        self
    }

    /// The pid_file.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("pingora.pid")
    }

    /// The upgrade_sock.
    pub fn upgrade_sock(&self) -> PathBuf {
        self.dir.join("upgrade.sock")
    }

    /// The YAML text.
    pub fn yaml(&self) -> String {
        let mut y = String::new();
        for (k, v) in &self.top {
            y.push_str(&format!("{k}: {v}\n"));
        }
        y.push_str("services:\n  - name: web\n    listeners:\n");
        for l in &self.listeners {
            y.push_str(&format!("      - {{ addr: \"{l}\" }}\n"));
        }
        y.push_str("    routes:\n");
        y.push_str(&format!(
            "      - {{ match: {{ path_prefix: /who }}, respond: {{ status: 200, body: \"{}\" }} }}\n",
            self.marker
        ));
        for r in &self.routes {
            y.push_str(&format!("      - {r}\n"));
        }
        y.push_str("      - { upstream: origin }\n    upstreams:\n");
        y.push_str(&format!(
            "      origin: {{ peers: [\"{}\"], connect_timeout_ms: 1000, read_timeout_ms: 5000 }}\n",
            self.origin
        ));
        for u in &self.upstreams {
            y.push_str(&format!("      {u}\n"));
        }
        y
    }

    /// Writes the YAML to `name` in the test directory (atomically: a process reading
    /// it at that moment sees the old or the new file) and returns the path.
    pub fn write(&self, name: &str) -> PathBuf {
        write_atomically(&self.dir.join(name), &self.yaml())
    }
}

/// Replaces `path` by `text` through a temporary file and a rename.
pub fn write_atomically(path: &Path, text: &str) -> PathBuf {
    let tmp = path.with_extension("tmp-write");
    fs::write(&tmp, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("cannot rename to {}: {e}", path.display()));
    path.to_path_buf()
}

/// The pid the pid file names, if it exists and parses.
pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Waits until the pid file names a pid for which `accept` holds; that pid.
pub fn wait_pid_file(path: &Path, timeout: Duration, accept: impl Fn(u32) -> bool) -> Option<u32> {
    let mut found = None;
    wait_until(timeout, || {
        found = read_pid(path).filter(|p| accept(*p));
        found.is_some()
    });
    found
}

/// Whether `pid` is a live (not zombie) process.
pub fn is_running(pid: u32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let state = status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .map(str::trim)
        .unwrap_or("");
    !(state.starts_with('Z') || state.starts_with('X'))
}

/// Waits until `pid` is gone (or a zombie); true if it is.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    wait_until(timeout, || !is_running(pid))
}

/// Whether `pid` is a live `pingora` process (guards against killing a reused pid).
pub fn is_pingora(pid: u32) -> bool {
    is_running(pid)
        && fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("pingora"))
            .unwrap_or(false)
}

/// Sends signal `sig` (a name such as `QUIT`) to `pid` the way an operator does, with
/// `kill(1)`.
pub fn send_signal(pid: u32, sig: &str) -> io::Result<()> {
    let out = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "kill -s {sig} {pid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Processes the binary started itself (a reloaded instance, a daemon): SIGKILLed on
/// drop if they still run, so a failing test leaves nothing behind.
#[derive(Debug, Default)]
pub struct Strays {
    pids: Mutex<Vec<u32>>,
}

impl Strays {
    /// Adds a pid to kill at the end.
    pub fn add(&self, pid: u32) {
        self.pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pid);
    }
}

impl Drop for Strays {
    fn drop(&mut self) {
        for pid in self
            .pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            if is_pingora(pid) {
                let _ = send_signal(pid, "KILL");
            }
        }
    }
}

/// A `pingora` process this test started: stdout and stderr go to
/// `<dir>/<name>.log`; SIGKILLed on drop if still running (its log printed when the
/// test is failing).
#[derive(Debug)]
pub struct Instance {
    name: String,
    child: Child,
    status: Option<ExitStatus>,
    log_path: PathBuf,
}

impl Instance {
    /// Starts `pingora -c conf extra...` with `env` added to (and `NOTIFY_SOCKET`
    /// removed from) the environment. Does not wait for anything.
    pub fn spawn(
        dir: &Path,
        name: &str,
        conf: &Path,
        extra: &[&str],
        env: &[(&str, &OsStr)],
    ) -> Instance {
        let log_path = dir.join(format!("{name}.log"));
        let log = fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let out = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone a file handle: {e}"));
        let mut cmd = Command::new(bin());
        cmd.arg("-c")
            .arg(conf)
            .args(extra)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin().display()));
        Instance {
            name: name.to_string(),
            child,
            status: None,
            log_path,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends signal `sig` (e.g. `TERM`).
    pub fn signal(&self, sig: &str) {
        send_signal(self.pid(), sig)
            .unwrap_or_else(|e| panic!("cannot signal {}: {e}\n{}", self.name, self.log()));
    }

    /// The exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for the exit; the status, or None if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_until(timeout, || self.exited().is_some());
        self.status
    }

    /// Everything the process (and the processes it started, which inherit its
    /// output) logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits up to `timeout` for the log to contain `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(needle))
    }

    /// Waits until `target` answers `GET /who` with 200 and the pid file names this
    /// process; panics with the log otherwise (or if the process exits).
    pub fn wait_serving(&mut self, target: &Target, pid_file: &Path) {
        let pid = self.pid();
        let ok = wait_until(START_TIMEOUT, || {
            self.exited().is_none()
                && read_pid(pid_file) == Some(pid)
                && target.get("/who").is_ok_and(|r| r.status == 200)
        });
        assert!(
            ok,
            "{} (pid {pid}) not serving on {target:?} with its pid in {} after {START_TIMEOUT:?} (exit: {:?}); log:\n{}",
            self.name,
            pid_file.display(),
            self.status,
            self.log()
        );
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- {} (pid {}) log ---\n{}--- end ---",
                self.name,
                self.child.id(),
                self.log()
            );
        }
    }
}

/// Where a client connects.
#[derive(Debug, Clone)]
pub enum Target {
    /// A TCP listener.
    Tcp(SocketAddr),
    /// A unix-socket listener.
    Unix(PathBuf),
}

impl Target {
    /// A new connection (timeouts set).
    pub fn connect(&self) -> io::Result<Conn> {
        let stream = match self {
            Target::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, IO_TIMEOUT)?;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
            Target::Unix(p) => Stream::Unix(UnixStream::connect(p)?),
        };
        stream.set_timeouts(IO_TIMEOUT)?;
        let writer = stream.try_clone()?;
        Ok(Conn {
            reader: WireReader::new(stream),
            writer,
        })
    }

    /// `GET path` on a fresh connection (`Connection: close`).
    pub fn get(&self, path: &str) -> io::Result<Resp> {
        self.connect()?.request(path, true)
    }
}

/// A TCP or unix stream.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix.
    Unix(UnixStream),
}

impl Stream {
    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
            Stream::Unix(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// A response as the lifecycle tests need it.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Body as text.
    pub body: String,
    /// Whether the server said `Connection: close`.
    pub close: bool,
}

/// One client connection.
#[derive(Debug)]
pub struct Conn {
    reader: WireReader<Stream>,
    writer: Stream,
}

impl Conn {
    /// Sends `GET path` (with `Connection: close` when `close`) and reads the response.
    pub fn request(&mut self, path: &str, close: bool) -> io::Result<Resp> {
        self.send_get(path, close)?;
        self.read_response()
    }

    /// Sends `GET path` without waiting for the answer.
    pub fn send_get(&mut self, path: &str, close: bool) -> io::Result<()> {
        let conn = if close { "Connection: close\r\n" } else { "" };
        self.writer
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n{conn}\r\n").as_bytes())?;
        self.writer.flush()
    }

    /// Changes the read timeout.
    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match &self.writer {
            Stream::Tcp(s) => s.set_read_timeout(Some(t)),
            Stream::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }

    /// Reads one final response.
    pub fn read_response(&mut self) -> io::Result<Resp> {
        let head = self.reader.read_head()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        })?;
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad head {text:?}"))
            })?;
        let headers: Headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let framing = if has_token(&headers, "transfer-encoding", "chunked") {
            Framing::Chunked
        } else if let Some(len) = header(&headers, "content-length") {
            Framing::ContentLength(len.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad length in {text:?}"),
                )
            })?)
        } else if status == 204 || status == 304 {
            Framing::None
        } else {
            Framing::Close
        };
        let mut body = Vec::new();
        self.reader.read_body(framing, &mut |d| {
            body.extend_from_slice(d);
            Ok(())
        })?;
        Ok(Resp {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            close: has_token(&headers, "connection", "close"),
        })
    }
}

/// What a [`Load`] saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Requests answered 200 with the expected body.
    pub ok: u64,
    /// Requests that failed (error, wrong status or body, connection lost).
    pub failed: u64,
    /// Connections refused.
    pub refused: u64,
    /// Keep-alive connections re-opened after a `Connection: close` response.
    pub reconnects: u64,
    /// The first few failures, with when and on what kind of connection.
    pub errors: Vec<String>,
    /// Clients that did not report back in time (stuck).
    pub stuck_clients: usize,
}

impl LoadReport {
    fn merge(&mut self, other: LoadReport) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.refused += other.refused;
        self.reconnects += other.reconnects;
        for e in other.errors {
            if self.errors.len() < 20 {
                self.errors.push(e);
            }
        }
    }

    /// Panics unless every request succeeded and at least `min_ok` were made.
    pub fn assert_clean(&self, min_ok: u64, context: &str) {
        eprintln!(
            "load: {} ok, {} failed, {} refused, {} keep-alive reconnects",
            self.ok, self.failed, self.refused, self.reconnects
        );
        assert!(
            self.failed == 0 && self.refused == 0 && self.stuck_clients == 0 && self.ok >= min_ok,
            "load: {} ok, {} failed, {} refused, {} stuck clients, {} reconnects (wanted >= {min_ok} ok, no failure); first errors:\n{}\n{context}",
            self.ok,
            self.failed,
            self.refused,
            self.stuck_clients,
            self.reconnects,
            self.errors.join("\n")
        );
    }
}

/// Client threads sending `GET path` one after the other: even-numbered ones reuse one
/// keep-alive connection (re-opening it when a response says `Connection: close`),
/// odd-numbered ones open a new connection per request. Half of the keep-alive
/// clients think for a while between requests, so that at any moment some
/// keep-alive connections are idle: those are the ones a careless drain closes
/// under a client that is just sending its next request.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    rx: mpsc::Receiver<LoadReport>,
    clients: usize,
    started: Instant,
}

/// Pause between two requests of one client, to keep the load bounded.
const LOAD_PAUSE: Duration = Duration::from_millis(1);

/// Pause between two requests of a "thinking" keep-alive client.
const THINK_PAUSE: Duration = Duration::from_millis(10);

impl Load {
    /// Starts `clients` threads against `target`, each expecting 200 and `expect_body`.
    pub fn start(target: Target, clients: usize, path: &str, expect_body: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        for i in 0..clients {
            let (stop, ok, tx) = (stop.clone(), ok.clone(), tx.clone());
            let client = Client {
                target: target.clone(),
                path: path.to_string(),
                expect: expect_body.to_string(),
                keepalive: i % 2 == 0,
                pause: if i % 4 == 2 { THINK_PAUSE } else { LOAD_PAUSE },
            };
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || {
                    let report = client.run(&stop, &ok, started);
                    let _ = tx.send(report);
                })
                .unwrap_or_else(|e| panic!("cannot spawn a load thread: {e}"));
        }
        Load {
            stop,
            ok,
            rx,
            clients,
            started,
        }
    }

    /// Successful requests so far.
    pub fn ok_so_far(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until `more` further requests succeeded; false on timeout.
    pub fn wait_progress(&self, more: u64, timeout: Duration) -> bool {
        let target = self.ok_so_far() + more;
        wait_until(timeout, || self.ok_so_far() >= target)
    }

    /// How long the load has been running.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops every client and sums up what they saw.
    pub fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + IO_TIMEOUT + Duration::from_secs(2);
        let mut total = LoadReport::default();
        for _ in 0..self.clients {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(r) => total.merge(r),
                Err(_) => total.stuck_clients += 1,
            }
        }
        total
    }
}

/// One client thread of a [`Load`].
struct Client {
    target: Target,
    path: String,
    expect: String,
    keepalive: bool,
    pause: Duration,
}

impl Client {
    fn run(self, stop: &AtomicBool, ok: &AtomicU64, started: Instant) -> LoadReport {
        let Client {
            target,
            path,
            expect,
            keepalive,
            pause,
        } = self;
        let (target, path, expect) = (&target, path.as_str(), expect.as_str());
        let mut report = LoadReport::default();
        let mut conn: Option<(Conn, u64)> = None;
        let kind = if keepalive { "keep-alive" } else { "new-conn" };
        let note = |report: &mut LoadReport, what: String| {
            if report.errors.len() < 5 {
                report
                    .errors
                    .push(format!("[{:?} {kind}] {what}", started.elapsed()));
            }
        };
        while !stop.load(Ordering::Relaxed) {
            if conn.is_none() {
                match target.connect() {
                    Ok(c) => conn = Some((c, 0)),
                    Err(e) => {
                        if e.kind() == io::ErrorKind::ConnectionRefused {
                            report.refused += 1;
                        } else {
                            report.failed += 1;
                        }
                        note(&mut report, format!("connect: {e}"));
                        std::thread::sleep(LOAD_PAUSE);
                        continue;
                    }
                }
            }
            let Some((c, used)) = conn.as_mut() else {
                continue;
            };
            let result = c.request(path, !keepalive);
            let nth = *used;
            *used += 1;
            match result {
                Ok(r) if r.status == 200 && r.body == expect => {
                    report.ok += 1;
                    ok.fetch_add(1, Ordering::Relaxed);
                    if !keepalive || r.close {
                        if keepalive {
                            report.reconnects += 1;
                        }
                        conn = None;
                    }
                }
                Ok(r) => {
                    report.failed += 1;
                    note(
                        &mut report,
                        format!(
                            "request #{nth} on its connection: {} {:?}",
                            r.status, r.body
                        ),
                    );
                    conn = None;
                }
                Err(e) => {
                    report.failed += 1;
                    note(
                        &mut report,
                        format!("request #{nth} on its connection: {e}"),
                    );
                    conn = None;
                }
            }
            std::thread::sleep(pause);
        }
        report
    }
}

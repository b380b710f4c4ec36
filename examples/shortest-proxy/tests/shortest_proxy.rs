//! The shortest proxy (`src/main.rs`) run as a user runs it: `-t`, a daemon with its pid
//! file, and a graceful upgrade under keep-alive load against a real origin.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use test_support::{
    free_addr, get, request_bytes, run_command, wait_for_port, wait_until, Origin, RawClient,
    Reply, TestDir,
};

const BIN: &str = env!("CARGO_BIN_EXE_shortest-proxy");
const TIMEOUT: Duration = Duration::from_secs(20);
const CLIENTS: usize = 32;

/// A copy of the proxy, killed if the test ends without stopping it.
struct Proxy {
    child: Child,
}

impl Proxy {
    fn start(
        dir: &Path,
        conf: &Path,
        extra: &[&str],
        listen: SocketAddr,
        origin: SocketAddr,
    ) -> Proxy {
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let child = command(conf, extra, listen, origin)
            .stdout(std::fs::File::create(dir.join(format!("out.{n}"))).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("err.{n}"))).unwrap())
            .spawn()
            .expect("start the example");
        Proxy { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).expect("signal the proxy");
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(conf: &Path, extra: &[&str], listen: SocketAddr, origin: SocketAddr) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("-c")
        .arg(conf)
        .args(extra)
        .env("LISTEN", listen.to_string())
        .env("ORIGIN", origin.to_string())
        .stdin(Stdio::null());
    cmd
}

/// The server keys the example reads: everything it writes goes under `dir`.
fn write_conf(dir: &TestDir, extra: &str) -> PathBuf {
    let d = dir.path().display();
    let yaml = format!(
        "version: 1\npid_file: {d}/proxy.pid\nupgrade_sock: {d}/upgrade.sock\nupgrade_sock_connect_accept_max_retries: 10\ngraceful_shutdown_timeout_seconds: 10\n{extra}"
    );
    dir.write("proxy.yaml", &yaml).expect("write config")
}

fn pid_in(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn origin() -> Origin {
    Origin::start(|req| Reply::ok(format!("origin:{}", req.path)))
}

#[test]
fn test_flag_checks_the_file_and_bad_usage_exits_two() {
    let dir = TestDir::new().unwrap();
    let good = write_conf(&dir, "");
    let out = run_command(
        Path::new(BIN),
        &["-t", "-c", &good.display().to_string()],
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(out.stdout.contains("is valid"), "stdout: {}", out.stdout);

    let bad = dir.write("bad.yaml", "version: 1\nthreds: 2\n").unwrap();
    let out = run_command(
        Path::new(BIN),
        &["-t", "-c", &bad.display().to_string()],
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(out.code(), Some(2), "stderr: {}", out.stderr);
    let where_ = format!("{}:2", bad.display());
    assert!(
        out.stderr.contains(&where_) && out.stderr.contains("threads"),
        "stderr: {}",
        out.stderr
    );

    let out = run_command(Path::new(BIN), &["--no-such-flag"], TIMEOUT).unwrap();
    assert_eq!(out.code(), Some(2), "stderr: {}", out.stderr);
    let out = run_command(Path::new(BIN), &["--version"], TIMEOUT).unwrap();
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("pingora-core"),
        "stdout: {}",
        out.stdout
    );
}

#[test]
fn port_in_use_exits_one() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = held.local_addr().unwrap();
    let dir = TestDir::new().unwrap();
    let conf = write_conf(&dir, "");
    let mut proxy = Proxy::start(dir.path(), &conf, &[], listen, free_addr());
    let status = proxy.wait_exit(TIMEOUT).expect("the proxy exits");
    assert_eq!(status.code(), Some(1));
    assert!(!dir.join("proxy.pid").exists(), "a pid file was written");
}

#[test]
fn daemon_reports_ready_writes_its_pid_and_drains_on_sigterm() {
    let origin = origin();
    let listen = free_addr();
    let dir = TestDir::new().unwrap();
    let conf = write_conf(&dir, "daemon_wait_for_ready: true\n");
    let pid_file = dir.join("proxy.pid");
    let mut parent = Proxy::start(dir.path(), &conf, &["-d"], listen, origin.addr());
    // With daemon_wait_for_ready the foreground part exits 0 only once the daemon serves.
    let status = parent
        .wait_exit(TIMEOUT)
        .expect("the foreground part exits");
    assert!(status.success(), "foreground part: {status}");
    let pid = pid_in(&pid_file).expect("the daemon wrote its pid");
    assert_ne!(pid, parent.pid(), "the pid file names the foreground part");
    let resp = get(listen, "/daemon").expect("the daemon serves");
    assert_eq!(
        (resp.status, resp.text()),
        (200, "origin:/daemon".to_string())
    );

    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    assert!(
        wait_until(TIMEOUT, || !pid_file.exists()),
        "the daemon did not remove its pid file after SIGTERM"
    );
    assert!(
        wait_until(TIMEOUT, || get(listen, "/").is_err()),
        "still serving after SIGTERM"
    );
}

/// Keep-alive clients that count every request that did not get its answer.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|i| {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                std::thread::spawn(move || client_loop(addr, i, &stop, &ok, &failures))
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            threads,
        }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    /// Waits until `more` further requests succeeded.
    fn wait_progress(&self, more: usize) -> bool {
        let target = self.ok() + more;
        wait_until(TIMEOUT, || self.ok() >= target)
    }

    fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("client thread");
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.ok.load(Ordering::SeqCst), failures)
    }
}

/// One keep-alive client: a request, its response, again; a new connection only when
/// the proxy said `Connection: close`. Every error is a failed request.
fn client_loop(
    addr: SocketAddr,
    i: usize,
    stop: &AtomicBool,
    ok: &AtomicUsize,
    failures: &Mutex<Vec<String>>,
) {
    let host = addr.to_string();
    let path = format!("/c{i}");
    let request = request_bytes("GET", &path, &[("Host", &host)], b"");
    let expected = format!("origin:{path}");
    let mut conn: Option<RawClient> = None;
    let fail = |what: String| failures.lock().unwrap().push(what);
    while !stop.load(Ordering::SeqCst) {
        let client = match conn.as_mut() {
            Some(c) => c,
            None => match RawClient::connect(addr) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    fail(format!("client {i}: connect: {e}"));
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            },
        };
        let answer = client.send(&request).and_then(|()| client.read_response());
        match answer {
            Ok(resp) if resp.status == 200 && resp.text() == expected => {
                ok.fetch_add(1, Ordering::SeqCst);
                if resp.has_token("connection", "close") {
                    conn = None;
                }
            }
            Ok(resp) => {
                fail(format!("client {i}: {} {:?}", resp.status, resp.text()));
                conn = None;
            }
            Err(e) => {
                fail(format!("client {i}: {e}"));
                conn = None;
            }
        }
    }
}

#[test]
fn graceful_upgrade_under_keepalive_load_fails_no_request() {
    let origin = origin();
    let listen = free_addr();
    let dir = TestDir::new().unwrap();
    let conf = write_conf(&dir, "");
    let pid_file = dir.join("proxy.pid");
    let mut first = Proxy::start(dir.path(), &conf, &[], listen, origin.addr());
    assert!(
        wait_for_port(listen, TIMEOUT),
        "the first copy does not listen"
    );
    assert!(wait_until(TIMEOUT, || pid_in(&pid_file) == Some(first.pid())));

    let load = Load::start(listen, CLIENTS);
    assert!(load.wait_progress(200), "no traffic through the first copy");

    // The new copy waits on upgrade_sock; SIGQUIT makes the old one hand over and drain.
    let mut second = Proxy::start(dir.path(), &conf, &["-u"], listen, origin.addr());
    first.signal(Signal::SIGQUIT);
    let status = first
        .wait_exit(TIMEOUT)
        .expect("the first copy exits after the hand-over");
    assert!(status.success(), "first copy: {status}");
    assert_eq!(
        pid_in(&pid_file),
        Some(second.pid()),
        "the pid file names the new copy"
    );
    assert!(
        load.wait_progress(200),
        "no traffic through the second copy"
    );

    let (ok, failures) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(10)]
    );

    second.signal(Signal::SIGTERM);
    let status = second
        .wait_exit(TIMEOUT)
        .expect("the second copy exits on SIGTERM");
    assert!(status.success(), "second copy: {status}");
    assert!(!pid_file.exists(), "the pid file is left behind");
}

#[test]
fn sighup_starts_a_new_copy_that_takes_over() {
    let origin = origin();
    let listen = free_addr();
    let dir = TestDir::new().unwrap();
    let conf = write_conf(&dir, "");
    let pid_file = dir.join("proxy.pid");
    let mut first = Proxy::start(dir.path(), &conf, &[], listen, origin.addr());
    assert!(
        wait_for_port(listen, TIMEOUT),
        "the first copy does not listen"
    );
    assert!(wait_until(TIMEOUT, || pid_in(&pid_file) == Some(first.pid())));

    let load = Load::start(listen, 4);
    assert!(load.wait_progress(50), "no traffic through the first copy");
    // The process re-reads its file and starts `<itself> -c FILE -u`, then hands over.
    first.signal(Signal::SIGHUP);
    let status = first
        .wait_exit(TIMEOUT)
        .expect("the first copy exits after the reload");
    assert!(status.success(), "first copy: {status}");
    let new_pid = pid_in(&pid_file).expect("the new copy wrote its pid");
    assert_ne!(new_pid, first.pid());
    assert!(load.wait_progress(50), "no traffic through the new copy");
    let (_, failures) = load.stop();
    assert!(failures.is_empty(), "failed requests: {failures:?}");

    kill(Pid::from_raw(new_pid as i32), Signal::SIGTERM).unwrap();
    assert!(
        wait_until(TIMEOUT, || !pid_file.exists()),
        "the new copy did not stop on SIGTERM"
    );
}

#[test]
fn sighup_with_an_invalid_file_keeps_serving() {
    let origin = origin();
    let listen = free_addr();
    let dir = TestDir::new().unwrap();
    let conf = write_conf(&dir, "");
    let pid_file = dir.join("proxy.pid");
    let mut proxy = Proxy::start(dir.path(), &conf, &[], listen, origin.addr());
    assert!(wait_until(TIMEOUT, || pid_in(&pid_file) == Some(proxy.pid())));
    std::fs::write(&conf, "version: 1\nno_such_key: 1\n").unwrap();
    proxy.signal(Signal::SIGHUP);
    // Refused: the same process goes on serving and answers the next signal.
    let resp = get(listen, "/still").expect("still serving after the refused reload");
    assert_eq!(resp.status, 200);
    assert_eq!(pid_in(&pid_file), Some(proxy.pid()));
    proxy.signal(Signal::SIGTERM);
    let status = proxy.wait_exit(TIMEOUT).expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
}

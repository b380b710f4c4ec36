//! The shortest proxy (`src/main.rs`) run as a user runs it: `-t`, a daemon with its pid
//! file, and a graceful upgrade under keep-alive load against a real origin.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use test_support::{
    free_addr, get, read_pid, run_command, send_signal, wait_for_port, wait_until, Load, Origin,
    ProxyProcess, Reply, Signal, Target, TestDir,
};

const BIN: &str = env!("CARGO_BIN_EXE_shortest-proxy");
const TIMEOUT: Duration = Duration::from_secs(20);
const CLIENTS: usize = 32;

/// Starts a copy of the example as `name` (its log at `<dir>/<name>.log`): `-c conf`
/// and `extra`, listening on `listen` in front of `origin`.
fn start(
    dir: &TestDir,
    name: &str,
    conf: &Path,
    extra: &[&str],
    listen: SocketAddr,
    origin: SocketAddr,
) -> ProxyProcess {
    let (listen, origin) = (listen.to_string(), origin.to_string());
    ProxyProcess::spawn_with_env(
        Path::new(BIN),
        dir.path(),
        name,
        conf,
        extra,
        &[
            ("LISTEN", OsStr::new(&listen)),
            ("ORIGIN", OsStr::new(&origin)),
        ],
    )
}

/// The server keys the example reads: everything it writes goes under `dir`.
fn write_conf(dir: &TestDir, extra: &str) -> PathBuf {
    let d = dir.path().display();
    let yaml = format!(
        "version: 1\npid_file: {d}/proxy.pid\nupgrade_sock: {d}/upgrade.sock\nupgrade_sock_connect_accept_max_retries: 10\ngraceful_shutdown_timeout_seconds: 10\n{extra}"
    );
    dir.write("proxy.yaml", &yaml).expect("write config")
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
    let mut proxy = start(&dir, "proxy", &conf, &[], listen, free_addr());
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
    let mut parent = start(&dir, "parent", &conf, &["-d"], listen, origin.addr());
    // With daemon_wait_for_ready the foreground part exits 0 only once the daemon serves.
    let status = parent
        .wait_exit(TIMEOUT)
        .expect("the foreground part exits");
    assert!(status.success(), "foreground part: {status}");
    let pid = read_pid(&pid_file).expect("the daemon wrote its pid");
    assert_ne!(pid, parent.pid(), "the pid file names the foreground part");
    let resp = get(listen, "/daemon").expect("the daemon serves");
    assert_eq!(
        (resp.status, resp.text()),
        (200, "origin:/daemon".to_string())
    );

    send_signal(pid, Signal::SIGTERM).unwrap();
    assert!(
        wait_until(TIMEOUT, || !pid_file.exists()),
        "the daemon did not remove its pid file after SIGTERM"
    );
    assert!(
        wait_until(TIMEOUT, || get(listen, "/").is_err()),
        "still serving after SIGTERM"
    );
}

#[test]
fn graceful_upgrade_under_keepalive_load_fails_no_request() {
    let origin = origin();
    let listen = free_addr();
    let dir = TestDir::new().unwrap();
    let conf = write_conf(&dir, "");
    let pid_file = dir.join("proxy.pid");
    let mut first = start(&dir, "first", &conf, &[], listen, origin.addr());
    assert!(
        wait_for_port(listen, TIMEOUT),
        "the first copy does not listen"
    );
    assert!(wait_until(TIMEOUT, || read_pid(&pid_file) == Some(first.pid())));

    let load = Load::start(Target::Tcp(listen), CLIENTS, "/load", "origin:/load");
    assert!(
        load.wait_progress(200, TIMEOUT),
        "no traffic through the first copy"
    );

    // The new copy waits on upgrade_sock; SIGQUIT makes the old one hand over and drain.
    let mut second = start(&dir, "second", &conf, &["-u"], listen, origin.addr());
    first.signal(Signal::SIGQUIT);
    let status = first
        .wait_exit(TIMEOUT)
        .expect("the first copy exits after the hand-over");
    assert!(status.success(), "first copy: {status}");
    assert_eq!(
        read_pid(&pid_file),
        Some(second.pid()),
        "the pid file names the new copy"
    );
    assert!(
        load.wait_progress(200, TIMEOUT),
        "no traffic through the second copy"
    );

    load.stop().assert_clean(
        400,
        &format!(
            "first copy:\n{}\nsecond copy:\n{}",
            first.log(),
            second.log()
        ),
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
    let mut first = start(&dir, "first", &conf, &[], listen, origin.addr());
    assert!(
        wait_for_port(listen, TIMEOUT),
        "the first copy does not listen"
    );
    assert!(wait_until(TIMEOUT, || read_pid(&pid_file) == Some(first.pid())));

    let load = Load::start(Target::Tcp(listen), 4, "/load", "origin:/load");
    assert!(
        load.wait_progress(50, TIMEOUT),
        "no traffic through the first copy"
    );
    // The process re-reads its file and starts `<itself> -c FILE -u`, then hands over.
    first.signal(Signal::SIGHUP);
    let status = first
        .wait_exit(TIMEOUT)
        .expect("the first copy exits after the reload");
    assert!(status.success(), "first copy: {status}");
    let new_pid = read_pid(&pid_file).expect("the new copy wrote its pid");
    assert_ne!(new_pid, first.pid());
    assert!(
        load.wait_progress(50, TIMEOUT),
        "no traffic through the new copy"
    );
    load.stop()
        .assert_clean(100, &format!("log:\n{}", first.log()));

    send_signal(new_pid, Signal::SIGTERM).unwrap();
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
    let mut proxy = start(&dir, "proxy", &conf, &[], listen, origin.addr());
    assert!(wait_until(TIMEOUT, || read_pid(&pid_file) == Some(proxy.pid())));
    std::fs::write(&conf, "version: 1\nno_such_key: 1\n").unwrap();
    proxy.signal(Signal::SIGHUP);
    // Refused: the same process goes on serving and answers the next signal.
    let resp = get(listen, "/still").expect("still serving after the refused reload");
    assert_eq!(resp.status, 200);
    assert_eq!(read_pid(&pid_file), Some(proxy.pid()));
    proxy.signal(Signal::SIGTERM);
    let status = proxy.wait_exit(TIMEOUT).expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
}

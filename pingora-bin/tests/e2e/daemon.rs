//! The `pingora` process as a service manager sees it: daemon mode with readiness,
//! stop signals (SIGTERM drains, SIGINT is prompt), log reopening on SIGUSR1,
//! privilege drop, and systemd's notify protocol across a reload.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use test_support::{
    free_addr, heavy, is_pingora, is_running, read_pid, run_command, send_signal, wait_gone,
    wait_pid_file, wait_until, Load, Origin, ProxyConfig, ProxyProcess, Reply, Signal, Strays,
    Target, TestDir, DRAIN_EXIT_DEADLINE, SETTLE_TIMEOUT,
};

use crate::bin;

fn slow_origin(delay: Duration) -> Origin {
    Origin::start(move |req| {
        if req.path == "/slow" {
            Reply::Delay(delay, Box::new(Reply::ok("slow-done")))
        } else {
            Reply::ok(format!("origin:{}", req.path))
        }
    })
}

/// What a connection attempt to a stopping server got.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Refused,
    /// Connected and was answered or closed promptly (caught the listener closing).
    Handled,
    /// Connected and then nothing happened: the bug this test is about.
    Hung,
}

fn attempt(addr: SocketAddr) -> Attempt {
    let conn = Target::Tcp(addr).connect().and_then(|c| {
        c.set_read_timeout(Duration::from_secs(2))?;
        Ok(c)
    });
    match conn {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Attempt::Refused,
        Err(_) => Attempt::Hung,
        Ok(mut c) => match c.get("/hello", true) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Attempt::Hung
            }
            _ => Attempt::Handled,
        },
    }
}

#[test]
fn sigterm_finishes_the_request_in_flight_refuses_new_connections_and_exits_zero() {
    // Long enough that the refusals below are checked while it is in flight, even on a
    // loaded machine; the drain allows more.
    const IN_FLIGHT: Duration = Duration::from_millis(2500);
    let origin = slow_origin(IN_FLIGHT);
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr())
        .set("graceful_shutdown_timeout_seconds", "10");
    let path = conf.write("pingora.yaml");
    let pid_file = conf.pid_file();
    let mut proc = ProxyProcess::spawn(bin(), dir.path(), "proxy", &path, &[]);
    proc.wait_serving(&target, &pid_file);

    let mut slow = target.connect().unwrap();
    slow.send_get("/slow", false).unwrap();
    assert!(wait_until(Duration::from_secs(3), || origin.requests() >= 1));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(slow.read_response());
    });
    proc.signal(Signal::SIGTERM);
    let signalled = Instant::now();

    let mut hung = 0;
    let refused = wait_until(Duration::from_secs(1), || match attempt(listen) {
        Attempt::Refused => true,
        Attempt::Hung => {
            hung += 1;
            false
        }
        Attempt::Handled => false,
    });
    assert!(
        refused && hung == 0,
        "after SIGTERM: refused {refused}, {hung} connection(s) hung; log:\n{}",
        proc.log()
    );
    for _ in 0..5 {
        assert_eq!(
            attempt(listen),
            Attempt::Refused,
            "a new connection after SIGTERM"
        );
    }
    assert!(
        proc.exited().is_none() && signalled.elapsed() < IN_FLIGHT - Duration::from_millis(100),
        "the slow request should still be in flight here"
    );
    let r = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the slow response did not finish")
        .unwrap_or_else(|e| panic!("the in-flight request failed: {e}; log:\n{}", proc.log()));
    assert_eq!((r.status, r.text().as_str()), (200, "slow-done"));
    let status = proc.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "log:\n{}",
        proc.log()
    );
    assert!(!pid_file.exists(), "pid_file left behind");
}

#[test]
fn sigint_exits_promptly_even_with_a_request_in_flight() {
    let origin = slow_origin(Duration::from_secs(5));
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr())
        .set("graceful_shutdown_timeout_seconds", "30");
    let path = conf.write("pingora.yaml");
    let mut proc = ProxyProcess::spawn(bin(), dir.path(), "proxy", &path, &[]);
    proc.wait_serving(&target, &conf.pid_file());
    let mut slow = target.connect().unwrap();
    slow.send_get("/slow", false).unwrap();
    assert!(wait_until(Duration::from_secs(3), || origin.requests() >= 1));

    let started = Instant::now();
    proc.signal(Signal::SIGINT);
    let status = proc.wait_exit(Duration::from_secs(2));
    assert!(
        status.is_some(),
        "still running {:?} after SIGINT; log:\n{}",
        started.elapsed(),
        proc.log()
    );
}

#[test]
fn daemon_with_wait_for_ready_returns_only_once_it_serves() {
    let origin = slow_origin(Duration::ZERO);
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let error_log = dir.join("error.log");
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr())
        .marker("daemon")
        .set("daemon_wait_for_ready", "true")
        .set("daemon_ready_timeout_seconds", "10")
        .set("error_log", &error_log.display().to_string());
    let path = conf.write("pingora.yaml");
    let pid_file = conf.pid_file();
    let strays = Strays::default();

    let out = run_command(
        bin(),
        &["-c", &path.display().to_string(), "-d"],
        Duration::from_secs(15),
    )
    .unwrap();
    // Read everything right away, before any polling: the foreground process must
    // return only once the daemon serves. (A request alone would not show it: the
    // listener is bound before the fork, so the kernel queues an early connection.)
    let pid = read_pid(&pid_file);
    let log = || std::fs::read_to_string(&error_log).unwrap_or_default();
    let log_at_return = log();
    // Whatever happens next, do not leave the daemon behind.
    if let Some(p) = pid {
        strays.add(p);
    }
    assert_eq!(
        out.code(),
        Some(0),
        "pingora -d: {out:?}\nerror_log:\n{}",
        log()
    );
    let pid = pid.unwrap_or_else(|| panic!("no pid_file when -d returned; error_log:\n{}", log()));
    assert!(
        log_at_return.contains(&format!("ready: every listener accepts (pid {pid})")),
        "-d returned before the daemon {pid} (named by pid_file) was ready; error_log then:\n{log_at_return}"
    );
    let r = target
        .get("/hello")
        .unwrap_or_else(|e| panic!("not serving right after -d returned: {e}\n{}", log()));
    assert_eq!((r.status, r.text().as_str()), (200, "daemon"));
    assert!(
        is_pingora(pid),
        "pid_file names {pid}, which is not a running pingora"
    );
    let session = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Field 6 is the session id: the daemon has its own session.
    let sid = |stat: &str| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(3).map(str::to_string))
    };
    assert_ne!(sid(&session), sid(&own), "the daemon did not detach");

    send_signal(pid, Signal::SIGTERM).unwrap();
    assert!(
        wait_until(DRAIN_EXIT_DEADLINE, || !pid_file.exists()),
        "pid_file still there after SIGTERM to the daemon; error_log:\n{}",
        log()
    );
    assert!(
        wait_gone(pid, DRAIN_EXIT_DEADLINE),
        "daemon {pid} still running"
    );
}

#[test]
fn daemon_start_on_a_port_in_use_fails_with_a_message() {
    let blocker = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = blocker.local_addr().unwrap();
    let dir = TestDir::new().unwrap();
    let error_log = dir.join("error.log");
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, free_addr())
        .set("daemon_wait_for_ready", "true")
        .set("daemon_ready_timeout_seconds", "5")
        .set("error_log", &error_log.display().to_string());
    let path = conf.write("pingora.yaml");
    let strays = Strays::default();
    let out = run_command(
        bin(),
        &["-c", &path.display().to_string(), "-d"],
        Duration::from_secs(15),
    )
    .unwrap();
    if let Some(p) = read_pid(&conf.pid_file()) {
        strays.add(p);
    }
    let log = std::fs::read_to_string(&error_log).unwrap_or_default();
    assert!(
        out.code().is_some_and(|c| c != 0),
        "pingora -d on a port in use: {out:?}"
    );
    let needle = format!("cannot listen on {listen}");
    assert!(
        out.stderr.contains(&needle) && out.stderr.lines().count() == 1,
        "stderr should be one line naming the address: {:?}",
        out.stderr
    );
    assert!(log.contains(&needle), "error_log does not say why: {log:?}");
    assert!(
        !conf.pid_file().exists(),
        "pid_file written by a failed start"
    );
}

#[test]
fn sigusr1_reopens_error_log_after_rotation() {
    let origin = slow_origin(Duration::ZERO);
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let error_log = dir.join("error.log");
    let rotated = dir.join("error.log.1");
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr())
        .set("error_log", &error_log.display().to_string())
        .upstream_route("/dead", "dead", free_addr());
    let path = conf.write("pingora.yaml");
    let mut proc = ProxyProcess::spawn(bin(), dir.path(), "proxy", &path, &[]);
    proc.wait_serving(&target, &conf.pid_file());
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(3), || read(&error_log)
            .contains("started")),
        "nothing in error_log: {:?}",
        read(&error_log)
    );

    std::fs::rename(&error_log, &rotated).unwrap();
    proc.signal(Signal::SIGUSR1);
    assert!(
        wait_until(Duration::from_secs(3), || error_log.exists()),
        "no new error_log after SIGUSR1; rotated file:\n{}",
        read(&rotated)
    );
    let r = target.get("/dead/after-rotation").unwrap();
    assert_eq!(r.status, 502, "an upstream that refuses");
    assert!(
        wait_until(Duration::from_secs(3), || read(&error_log)
            .contains("/dead/after-rotation")),
        "the failed request was not logged to the new file:\nnew:\n{}\nrotated:\n{}",
        read(&error_log),
        read(&rotated)
    );
    assert!(
        !read(&rotated).contains("/dead/after-rotation"),
        "still writing to the rotated file"
    );
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(DRAIN_EXIT_DEADLINE).is_some());
}

/// One `Uid:`/`Gid:` line of /proc/<pid>/status: real, effective, saved, filesystem.
fn ids(pid: u32, field: &str) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root: starts as root and drops to nobody:nogroup (scripts/test-as-root)"]
fn privileges_are_dropped_to_the_configured_user() {
    assert_eq!(
        ids(std::process::id(), "Uid:").first(),
        Some(&0),
        "needs root; run it through scripts/test-as-root"
    );
    let origin = slow_origin(Duration::ZERO);
    let dir = TestDir::new().unwrap();
    // The process writes pid_file after dropping privileges.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let listen = free_addr();
    assert!(listen.port() > 1024);
    let target = Target::Tcp(listen);
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr())
        .set("user", "nobody")
        .set("group", "nogroup");
    let path = conf.write("pingora.yaml");
    let mut proc = ProxyProcess::spawn(bin(), dir.path(), "proxy", &path, &[]);
    proc.wait_serving(&target, &conf.pid_file());
    let pid = proc.pid();
    let (uid, gid) = (65534, 65534); // nobody, nogroup (Debian)
    assert_eq!(ids(pid, "Uid:"), vec![uid; 4], "uids of the running server");
    assert_eq!(ids(pid, "Gid:"), vec![gid; 4], "gids of the running server");
    assert_eq!(ids(pid, "Groups:"), vec![gid], "supplementary groups");
    let r = target.get("/proxied").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "origin:/proxied"));

    // A reload from the unprivileged process: the new instance (started by it, so
    // as nobody) creates upgrade_sock and pid_file and takes the listeners.
    let strays = Strays::default();
    proc.signal(Signal::SIGHUP);
    let new_pid = wait_pid_file(&conf.pid_file(), SETTLE_TIMEOUT, |p| p != pid)
        .unwrap_or_else(|| panic!("no reload as nobody; log:\n{}", proc.log()));
    strays.add(new_pid);
    let status = proc.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "log:\n{}",
        proc.log()
    );
    assert_eq!(
        ids(new_pid, "Uid:"),
        vec![uid; 4],
        "uids of the reloaded server"
    );
    let r = target.get("/proxied").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "origin:/proxied"));
    send_signal(new_pid, Signal::SIGTERM).unwrap();
    assert!(wait_gone(new_pid, DRAIN_EXIT_DEADLINE));
    assert!(
        wait_until(Duration::from_secs(1), || !conf.pid_file().exists()),
        "pid_file left behind by the unprivileged server"
    );
}

/// Datagrams received on a notify socket, each as text.
fn receive_until(sock: &UnixDatagram, seen: &mut Vec<String>, done: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut buf = [0u8; 4096];
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "notify messages so far: {seen:?}");
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => seen.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) => panic!("no more notify messages ({e}); so far: {seen:?}"),
        }
    }
}

#[test]
fn systemd_notify_ready_and_reload_with_mainpid() {
    let origin = slow_origin(Duration::ZERO);
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr());
    let path = conf.write("pingora.yaml");
    let pid_file = conf.pid_file();
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let strays = Strays::default();
    let mut first = ProxyProcess::spawn_with_env(
        bin(),
        dir.path(),
        "first",
        &path,
        &[],
        &[("NOTIFY_SOCKET", notify_path.as_os_str())],
    );
    let mut seen = Vec::new();
    receive_until(&notify, &mut seen, |s| s.iter().any(|m| m == "READY=1"));
    // READY=1 means serving.
    let r = target.get("/hello").unwrap();
    assert_eq!(r.status, 200);
    first.wait_serving(&target, &pid_file);

    seen.clear();
    first.signal(Signal::SIGHUP);
    let new_pid = wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p != first.pid())
        .unwrap_or_else(|| panic!("no reload; log:\n{}", first.log()));
    strays.add(new_pid);
    let main_pid = format!("MAINPID={new_pid}");
    receive_until(&notify, &mut seen, |s| {
        s.iter().any(|m| m.lines().any(|l| l == main_pid))
    });
    let reloading = seen
        .iter()
        .position(|m| m.lines().any(|l| l == "RELOADING=1"));
    let handed = seen
        .iter()
        .position(|m| m.lines().any(|l| l == main_pid))
        .unwrap_or(usize::MAX);
    assert!(
        reloading.is_some_and(|i| i < handed),
        "RELOADING=1 must come before the new instance's MAINPID: {seen:?}"
    );
    assert!(
        seen[handed].lines().any(|l| l == "READY=1"),
        "the new instance sends MAINPID with READY=1: {seen:?}"
    );
    let status = first.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "log:\n{}",
        first.log()
    );
    // The retiring instance must not say STOPPING=1: with NotifyAccess=all systemd
    // would take it for the service stopping, and stop the new main process.
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while let Ok(n) = notify.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        !seen.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "STOPPING=1 sent during a reload: {seen:?}"
    );
    assert!(is_running(new_pid));
    seen.clear();
    send_signal(new_pid, Signal::SIGTERM).unwrap();
    receive_until(&notify, &mut seen, |s| {
        s.iter().any(|m| m.lines().any(|l| l == "STOPPING=1"))
    });
    assert!(wait_gone(new_pid, DRAIN_EXIT_DEADLINE));
}

#[test]
fn daemon_upgrade_and_reload_lose_no_request() {
    let _heavy = heavy();
    let origin = slow_origin(Duration::ZERO);
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let error_log = dir.join("error.log");
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr())
        .set("daemon_wait_for_ready", "true")
        .set("daemon_ready_timeout_seconds", "10")
        .set("error_log", &error_log.display().to_string());
    let path = conf.write("pingora.yaml");
    let path_arg = path.display().to_string();
    let pid_file = conf.pid_file();
    let strays = Strays::default();
    let log = || std::fs::read_to_string(&error_log).unwrap_or_default();

    let out = run_command(bin(), &["-c", &path_arg, "-d"], Duration::from_secs(15)).unwrap();
    let old = read_pid(&pid_file);
    if let Some(p) = old {
        strays.add(p);
    }
    assert_eq!(out.code(), Some(0), "{out:?}\nerror_log:\n{}", log());
    let old = old.expect("pid_file after -d");
    let load = Load::start(target.clone(), 16, "/load", "origin:/load");
    assert!(load.wait_progress(100, Duration::from_secs(5)));

    // As in the docs: kill -QUIT $(cat pid) && pingora -c conf -d -u
    send_signal(old, Signal::SIGQUIT).unwrap();
    let out = run_command(
        bin(),
        &["-c", &path_arg, "-d", "-u"],
        Duration::from_secs(15),
    )
    .unwrap();
    let new = read_pid(&pid_file);
    if let Some(p) = new {
        strays.add(p);
    }
    assert_eq!(out.code(), Some(0), "-d -u: {out:?}\nerror_log:\n{}", log());
    let new = new.expect("pid_file after -d -u");
    assert_ne!(
        new, old,
        "pid_file still names the old daemon when -d -u returned"
    );
    assert!(is_pingora(new));
    assert!(
        wait_gone(old, DRAIN_EXIT_DEADLINE),
        "old daemon still running; error_log:\n{}",
        log()
    );
    assert!(load.wait_progress(100, Duration::from_secs(5)));

    // And a SIGHUP reload of the daemon: it starts `pingora -c FILE -u -d` itself.
    send_signal(new, Signal::SIGHUP).unwrap();
    let newer = wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p != new)
        .unwrap_or_else(|| panic!("no reload of the daemon; error_log:\n{}", log()));
    strays.add(newer);
    assert!(
        wait_gone(new, DRAIN_EXIT_DEADLINE),
        "reloaded daemon still running; error_log:\n{}",
        log()
    );
    assert!(is_pingora(newer));
    assert!(load.wait_progress(100, Duration::from_secs(5)));
    load.stop()
        .assert_clean(300, &format!("error_log:\n{}", log()));
    assert_eq!(read_pid(&pid_file), Some(newer));
    send_signal(newer, Signal::SIGTERM).unwrap();
    assert!(wait_gone(newer, DRAIN_EXIT_DEADLINE));
    assert!(!pid_file.exists(), "pid_file left behind");
}

//! Graceful upgrade and reload of the `pingora` binary, as an operator does them:
//! SIGQUIT + `-u` in both orders, SIGHUP reloads (repeated, with a changed config and
//! with an invalid one), a stray peer on the upgrade socket, a slow response across
//! the hand-over, and a unix-socket listener. Every request made during them must
//! succeed.

use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use test_support::{
    free_addr, heavy, is_running, read_pid, send_signal, wait_gone, wait_pid_file, wait_until,
    write_atomically, Load, Origin, ProxyConfig, ProxyProcess, Reply, Signal, Strays, Target,
    TestDir, DRAIN_EXIT_DEADLINE, SETTLE_TIMEOUT,
};

use crate::bin;

fn origin() -> Origin {
    Origin::start(|req| Reply::ok(format!("origin:{}", req.path)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    SigquitThenNew,
    NewThenSigquit,
}

fn upgrade_under_load(order: Order) {
    let _heavy = heavy();
    let origin = origin();
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr());
    let path = conf.write("pingora.yaml");
    let pid_file = conf.pid_file();

    let mut old = ProxyProcess::spawn(bin(), dir.path(), "old", &path, &[]);
    old.wait_serving(&target, &pid_file);
    let load = Load::start(target.clone(), 32, "/load", "origin:/load");
    assert!(
        load.wait_progress(200, Duration::from_secs(5)),
        "load made no progress before the upgrade; log:\n{}",
        old.log()
    );

    let new = match order {
        Order::SigquitThenNew => {
            old.signal(Signal::SIGQUIT);
            assert!(
                old.wait_for_log("SIGQUIT", Duration::from_secs(3)),
                "old instance did not log SIGQUIT; log:\n{}",
                old.log()
            );
            ProxyProcess::spawn(bin(), dir.path(), "new", &path, &["-u"])
        }
        Order::NewThenSigquit => {
            let new = ProxyProcess::spawn(bin(), dir.path(), "new", &path, &["-u"]);
            assert!(
                wait_until(Duration::from_secs(3), || conf.upgrade_sock().exists()),
                "the new instance did not create upgrade_sock; log:\n{}",
                new.log()
            );
            old.signal(Signal::SIGQUIT);
            new
        }
    };
    let new_pid = new.pid();
    let serving = wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p == new_pid);
    assert!(
        serving.is_some(),
        "pid_file does not name the new instance {new_pid} (it names {:?});\nold log:\n{}\nnew log:\n{}",
        read_pid(&pid_file),
        old.log(),
        new.log()
    );
    let status = old.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "old instance did not exit 0 within {:?} (status {status:?}); log:\n{}",
        DRAIN_EXIT_DEADLINE,
        old.log()
    );
    // Keep the load on the new instance alone for a while, ~4 s in all.
    assert!(load.wait_progress(200, Duration::from_secs(5)));
    wait_until(Duration::from_secs(4), || {
        load.elapsed() >= Duration::from_secs(4)
    });
    let report = load.stop();
    report.assert_clean(
        1000,
        &format!("old log:\n{}\nnew log:\n{}", old.log(), new.log()),
    );
    assert_eq!(
        read_pid(&pid_file),
        Some(new_pid),
        "pid_file after the old instance exited"
    );
    assert!(
        is_running(new_pid),
        "new instance died; log:\n{}",
        new.log()
    );
    assert_eq!(target.get("/hello").unwrap().status, 200);
}

#[test]
fn sigquit_then_start_new_loses_no_request() {
    upgrade_under_load(Order::SigquitThenNew);
}

#[test]
fn start_new_then_sigquit_loses_no_request() {
    upgrade_under_load(Order::NewThenSigquit);
}

/// Sends SIGHUP to the instance the pid file names and waits until a new one serves
/// and the old one is gone; returns the new pid.
fn reload_once(conf: &ProxyConfig, strays: &Strays, first: &mut ProxyProcess) -> u32 {
    let pid_file = conf.pid_file();
    let old_pid = read_pid(&pid_file).expect("pid_file names the serving instance");
    send_signal(old_pid, Signal::SIGHUP).unwrap();
    let new_pid = wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p != old_pid);
    let Some(new_pid) = new_pid else {
        panic!(
            "no new instance in pid_file after SIGHUP to {old_pid}; log:\n{}",
            first.log()
        );
    };
    strays.add(new_pid);
    let gone = if old_pid == first.pid() {
        let status = first.wait_exit(DRAIN_EXIT_DEADLINE);
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "first instance after SIGHUP; log:\n{}",
            first.log()
        );
        true
    } else {
        wait_gone(old_pid, DRAIN_EXIT_DEADLINE)
    };
    assert!(
        gone,
        "old instance {old_pid} still running {:?} after the reload; log:\n{}",
        DRAIN_EXIT_DEADLINE,
        first.log()
    );
    assert!(
        first
            .log()
            .contains(&format!("[{old_pid}] pingora exiting")),
        "old instance {old_pid} did not exit cleanly; log:\n{}",
        first.log()
    );
    new_pid
}

#[test]
fn ten_sighup_reloads_in_a_row_lose_no_request() {
    let _heavy = heavy();
    let origin = origin();
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr());
    let path = conf.write("pingora.yaml");
    let strays = Strays::default();
    let mut first = ProxyProcess::spawn(bin(), dir.path(), "first", &path, &[]);
    first.wait_serving(&target, &conf.pid_file());
    let load = Load::start(target.clone(), 32, "/load", "origin:/load");
    assert!(load.wait_progress(100, Duration::from_secs(5)));

    let mut pids = vec![first.pid()];
    for i in 0..10 {
        let new_pid = reload_once(&conf, &strays, &mut first);
        assert!(
            load.wait_progress(50, Duration::from_secs(5)),
            "no progress after reload {i}; log:\n{}",
            first.log()
        );
        pids.push(new_pid);
    }
    let report = load.stop();
    report.assert_clean(1000, &format!("log:\n{}", first.log()));
    let last = *pids.last().unwrap();
    for p in &pids[..pids.len() - 1] {
        assert!(!is_running(*p), "instance {p} still running");
    }
    assert!(is_running(last));
    send_signal(last, Signal::SIGTERM).unwrap();
    assert!(wait_gone(last, DRAIN_EXIT_DEADLINE));
}

#[test]
fn sighup_applies_an_edited_config_and_refuses_an_invalid_one() {
    let _heavy = heavy();
    let origin = origin();
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr());
    let path = conf.write("pingora.yaml");
    let pid_file = conf.pid_file();
    let strays = Strays::default();
    let mut first = ProxyProcess::spawn(bin(), dir.path(), "first", &path, &[]);
    first.wait_serving(&target, &pid_file);

    let before = target.get("/feature").unwrap();
    assert_eq!(
        (before.status, before.text().as_str()),
        (200, "origin:/feature")
    );

    let load = Load::start(target.clone(), 16, "/load", "origin:/load");
    assert!(load.wait_progress(100, Duration::from_secs(5)));
    let edited = conf.clone().respond_route("/feature", "feature-on");
    edited.write("pingora.yaml");
    let new_pid = reload_once(&conf, &strays, &mut first);
    let after = target.get("/feature").unwrap();
    assert_eq!(
        (after.status, after.text().as_str()),
        (200, "feature-on"),
        "the reloaded instance does not serve the new route; log:\n{}",
        first.log()
    );
    assert!(load.wait_progress(100, Duration::from_secs(5)));
    load.stop()
        .assert_clean(200, &format!("log:\n{}", first.log()));

    // Now an invalid edit: an unknown top-level key.
    write_atomically(&path, &format!("{}no_such_server_key: 1\n", edited.yaml()));
    send_signal(new_pid, Signal::SIGHUP).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || first
            .log()
            .contains("reload refused")),
        "no refusal logged after SIGHUP with an invalid config; log:\n{}",
        first.log()
    );
    let log = first.log();
    let refusal = log
        .lines()
        .find(|l| l.contains("reload refused"))
        .unwrap_or_default();
    assert!(
        refusal.contains("no_such_server_key") && refusal.contains(&format!("[{new_pid}]")),
        "the refusal does not say which key is wrong: {refusal}"
    );
    assert_eq!(
        log.matches("started new instance").count(),
        1,
        "an instance was started for the invalid config; log:\n{log}"
    );
    assert!(
        is_running(new_pid),
        "the serving instance died; log:\n{log}"
    );
    assert_eq!(read_pid(&pid_file), Some(new_pid));
    let still = target.get("/feature").unwrap();
    assert_eq!((still.status, still.text().as_str()), (200, "feature-on"));
    assert_eq!(target.get("/load").unwrap().text(), "origin:/load");
    send_signal(new_pid, Signal::SIGTERM).unwrap();
    assert!(wait_gone(new_pid, DRAIN_EXIT_DEADLINE));
}

#[test]
fn a_stray_peer_on_upgrade_sock_is_refused_and_the_real_hand_over_still_works() {
    let origin = origin();
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr()).marker("first");
    let path = conf.write("pingora.yaml");
    let new_conf = conf.clone().marker("second").write("second.yaml");
    let pid_file = conf.pid_file();
    let mut old = ProxyProcess::spawn(bin(), dir.path(), "old", &path, &[]);
    old.wait_serving(&target, &pid_file);

    let mut new = ProxyProcess::spawn(bin(), dir.path(), "new", &new_conf, &["-u"]);
    assert!(
        wait_until(Duration::from_secs(3), || conf.upgrade_sock().exists()),
        "no upgrade_sock; log:\n{}",
        new.log()
    );
    // A stray peer: connects and sends something that is not a hand-over.
    let mut stray = UnixStream::connect(conf.upgrade_sock()).unwrap();
    stray
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stray
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nthis is not a hand-over")
        .unwrap();
    let mut answer = Vec::new();
    // The receiver answers with a refusal (or nothing) and closes.
    let _ = stray.read_to_end(&mut answer);
    assert!(
        new.wait_for_log("refused a peer", Duration::from_secs(3)),
        "the stray peer was not refused; log:\n{}",
        new.log()
    );
    assert!(
        new.exited().is_none(),
        "the waiting instance gave up; log:\n{}",
        new.log()
    );
    let r = target.get("/hello").unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "first"),
        "the running instance was harmed"
    );
    assert_eq!(read_pid(&pid_file), Some(old.pid()));

    old.signal(Signal::SIGQUIT);
    let new_pid = new.pid();
    assert!(
        wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p == new_pid).is_some(),
        "no hand-over after the stray peer;\nold log:\n{}\nnew log:\n{}",
        old.log(),
        new.log()
    );
    let status = old.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "old log:\n{}",
        old.log()
    );
    let r = target.get("/hello").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "second"));
}

/// With nothing to drain, the old instance exits while the new one is still writing
/// its pid file: the old one must leave the file alone (it once read "its" pid, then
/// deleted the file the new instance had written in between).
#[test]
fn quick_hand_overs_leave_the_pid_file_to_the_new_instance() {
    let origin = origin();
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr());
    let path = conf.write("pingora.yaml");
    let pid_file = conf.pid_file();
    let mut current = ProxyProcess::spawn(bin(), dir.path(), "gen0", &path, &[]);
    current.wait_serving(&target, &pid_file);
    for generation in 1..=50 {
        let mut next = ProxyProcess::spawn(
            bin(),
            dir.path(),
            &format!("gen{generation}"),
            &path,
            &["-u"],
        );
        assert!(
            wait_until(Duration::from_secs(3), || conf.upgrade_sock().exists()),
            "no upgrade_sock; log:\n{}",
            next.log()
        );
        current.signal(Signal::SIGQUIT);
        let status = current.wait_exit(DRAIN_EXIT_DEADLINE);
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "log:\n{}",
            current.log()
        );
        next.wait_serving(&target, &pid_file);
        assert_eq!(
            read_pid(&pid_file),
            Some(next.pid()),
            "generation {generation}: pid_file lost after the old instance exited"
        );
        current = next;
    }
}

#[test]
fn a_slow_response_started_before_the_upgrade_completes_through_the_old_instance() {
    let origin = Origin::start(|req| {
        if req.path == "/slow" {
            Reply::Delay(Duration::from_secs(2), Box::new(Reply::ok("slow-done")))
        } else {
            Reply::ok(format!("origin:{}", req.path))
        }
    });
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr()).marker("old");
    let path = conf.write("old.yaml");
    let new_conf = conf.clone().marker("new").write("new.yaml");
    let pid_file = conf.pid_file();
    let mut old = ProxyProcess::spawn(bin(), dir.path(), "old", &path, &[]);
    old.wait_serving(&target, &pid_file);

    let mut slow = target.connect().unwrap();
    slow.send_get("/slow", false).unwrap();
    assert!(wait_until(Duration::from_secs(3), || origin.requests() >= 1));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = slow.read_response();
        let _ = tx.send((Instant::now(), r));
    });

    let new = ProxyProcess::spawn(bin(), dir.path(), "new", &new_conf, &["-u"]);
    old.signal(Signal::SIGQUIT);
    let new_pid = new.pid();
    assert!(
        wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p == new_pid).is_some(),
        "no hand-over;\nold log:\n{}\nnew log:\n{}",
        old.log(),
        new.log()
    );
    // New connections reach the new instance while the slow response is pending.
    let reached_new = wait_until(Duration::from_secs(3), || {
        target.get("/hello").is_ok_and(|r| r.text() == "new")
    });
    let new_seen = Instant::now();
    assert!(
        reached_new,
        "new connections never reached the new instance"
    );
    assert!(
        old.exited().is_none(),
        "old instance exited with a response in flight; log:\n{}",
        old.log()
    );
    for _ in 0..20 {
        let r = target.get("/hello").unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "new"),
            "a new connection reached the draining instance"
        );
    }
    let (done, slow_result) = rx
        .recv_timeout(Duration::from_secs(6))
        .expect("the slow response did not finish");
    let r = slow_result.unwrap_or_else(|e| panic!("slow request failed: {e}; log:\n{}", old.log()));
    assert_eq!((r.status, r.text().as_str()), (200, "slow-done"));
    assert!(
        done > new_seen,
        "the slow response finished before the new instance served"
    );
    assert!(
        r.closes(),
        "the draining instance kept the connection alive"
    );
    let status = old.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "old log:\n{}",
        old.log()
    );
}

#[test]
fn a_unix_socket_listener_keeps_working_across_an_upgrade() {
    let _heavy = heavy();
    let origin = origin();
    let dir = TestDir::new().unwrap();
    let sock = dir.join("web.sock");
    let target = Target::Unix(sock.clone());
    let conf = ProxyConfig::lifecycle_at(dir.path(), Target::Unix(sock.clone()), origin.addr());
    let path = conf.write("old.yaml");
    let new_conf = conf.clone().marker("new").write("new.yaml");
    let pid_file = conf.pid_file();
    let mut old = ProxyProcess::spawn(bin(), dir.path(), "old", &path, &[]);
    old.wait_serving(&target, &pid_file);

    let load = Load::start(target.clone(), 8, "/load", "origin:/load");
    assert!(load.wait_progress(100, Duration::from_secs(5)));
    old.signal(Signal::SIGQUIT);
    let new = ProxyProcess::spawn(bin(), dir.path(), "new", &new_conf, &["-u"]);
    let new_pid = new.pid();
    assert!(
        wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p == new_pid).is_some(),
        "no hand-over;\nold log:\n{}\nnew log:\n{}",
        old.log(),
        new.log()
    );
    let status = old.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "old log:\n{}",
        old.log()
    );
    assert!(load.wait_progress(100, Duration::from_secs(5)));
    load.stop().assert_clean(
        200,
        &format!("old log:\n{}\nnew log:\n{}", old.log(), new.log()),
    );
    let meta = std::fs::symlink_metadata(&sock)
        .unwrap_or_else(|e| panic!("the socket file is gone after the old instance exited: {e}"));
    assert!(meta.file_type().is_socket());
    let r = target.get("/hello").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "new"));
}

#[test]
fn a_hand_over_nobody_takes_keeps_the_old_instance_serving() {
    let origin = origin();
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr())
        .marker("first")
        .set("upgrade_sock_connect_accept_max_retries", "1");
    let path = conf.write("pingora.yaml");
    let pid_file = conf.pid_file();
    let mut old = ProxyProcess::spawn(bin(), dir.path(), "old", &path, &[]);
    old.wait_serving(&target, &pid_file);

    old.signal(Signal::SIGQUIT);
    assert!(
        old.wait_for_log("still serving", Duration::from_secs(5)),
        "no failed hand-over logged; log:\n{}",
        old.log()
    );
    assert!(
        old.exited().is_none(),
        "a failed upgrade took the service down"
    );
    assert_eq!(read_pid(&pid_file), Some(old.pid()));
    let r = target.get("/hello").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "first"));

    // A later upgrade still works.
    let new = ProxyProcess::spawn(bin(), dir.path(), "new", &path, &["-u"]);
    assert!(wait_until(Duration::from_secs(3), || conf
        .upgrade_sock()
        .exists()));
    old.signal(Signal::SIGQUIT);
    let new_pid = new.pid();
    assert!(
        wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p == new_pid).is_some(),
        "second upgrade failed;\nold log:\n{}\nnew log:\n{}",
        old.log(),
        new.log()
    );
    let status = old.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "log:\n{}",
        old.log()
    );
}

#[test]
fn an_upgrade_target_nobody_hands_over_to_exits_1() {
    let dir = TestDir::new().unwrap();
    let conf = ProxyConfig::lifecycle_at(dir.path(), free_addr(), free_addr())
        .set("upgrade_sock_connect_accept_max_retries", "1");
    let path = conf.write("pingora.yaml");
    let mut new = ProxyProcess::spawn(bin(), dir.path(), "new", &path, &["-u"]);
    let status = new.wait_exit(Duration::from_secs(5));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "-u without a running instance; log:\n{}",
        new.log()
    );
    assert!(
        new.log()
            .contains(&conf.upgrade_sock().display().to_string()),
        "the message does not name upgrade_sock: {}",
        new.log()
    );
    assert!(
        !conf.pid_file().exists(),
        "pid_file written by a failed start"
    );
    assert!(!conf.upgrade_sock().exists(), "upgrade_sock left behind");
}

#[test]
fn the_new_config_may_add_and_drop_listeners() {
    let origin = origin();
    let dir = TestDir::new().unwrap();
    let (kept, dropped, added) = (free_addr(), free_addr(), free_addr());
    let old_conf = ProxyConfig::lifecycle_at(dir.path(), kept, origin.addr())
        .also_listen(dropped)
        .marker("old");
    let new_conf = ProxyConfig::lifecycle_at(dir.path(), kept, origin.addr())
        .also_listen(added)
        .marker("new");
    let old_path = old_conf.write("old.yaml");
    let new_path = new_conf.write("new.yaml");
    let pid_file = old_conf.pid_file();
    let mut old = ProxyProcess::spawn(bin(), dir.path(), "old", &old_path, &[]);
    old.wait_serving(&Target::Tcp(dropped), &pid_file);

    let new = ProxyProcess::spawn(bin(), dir.path(), "new", &new_path, &["-u"]);
    old.signal(Signal::SIGQUIT);
    let new_pid = new.pid();
    assert!(
        wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p == new_pid).is_some(),
        "no hand-over;\nold log:\n{}\nnew log:\n{}",
        old.log(),
        new.log()
    );
    let status = old.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "log:\n{}",
        old.log()
    );
    for addr in [kept, added] {
        let r = Target::Tcp(addr).get("/hello").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "new"), "on {addr}");
    }
    let err = Target::Tcp(dropped)
        .get("/hello")
        .expect_err("the listener the new config dropped still answers");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn a_new_instance_that_takes_the_listeners_but_fails_to_start_leaves_the_old_serving() {
    let origin = origin();
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    // The new configuration adds a listener on a port somebody else holds: the new
    // instance receives the sockets, then cannot bind it and exits 1.
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = blocker.local_addr().unwrap();
    let old_conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr())
        .marker("old")
        .set("daemon_ready_timeout_seconds", "3");
    let new_conf = ProxyConfig::lifecycle_at(dir.path(), listen, origin.addr())
        .also_listen(busy)
        .marker("new");
    let old_path = old_conf.write("old.yaml");
    let new_path = new_conf.write("new.yaml");
    let pid_file = old_conf.pid_file();
    let target = Target::Tcp(listen);
    let mut old = ProxyProcess::spawn(bin(), dir.path(), "old", &old_path, &[]);
    old.wait_serving(&target, &pid_file);

    let mut new = ProxyProcess::spawn(bin(), dir.path(), "new", &new_path, &["-u"]);
    old.signal(Signal::SIGQUIT);
    let status = new.wait_exit(SETTLE_TIMEOUT);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "new log:\n{}",
        new.log()
    );
    assert!(
        old.wait_for_log("did not start serving", Duration::from_secs(10)),
        "old log:\n{}",
        old.log()
    );
    assert!(old.exited().is_none(), "old log:\n{}", old.log());
    for _ in 0..10 {
        let r = target.get("/hello").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "old"));
    }
    assert_eq!(read_pid(&pid_file), Some(old.pid()));
}

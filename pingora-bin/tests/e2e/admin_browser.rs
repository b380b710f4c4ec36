//! The status page in a real headless browser (Debian's chromium driven by
//! playwright-core, both installed by `scripts/setup --browser`): it shows a backend
//! going down within seconds of its origin stopping, without being reloaded; its Drain
//! button takes a backend out of rotation (no request reaches that origin afterwards)
//! and the change is listed; the page fetches nothing from outside. A screenshot is
//! kept under target/tmp/. Also, without a browser: the page as served (no script run)
//! already shows every backend and its state.
//!
//! The browser test is ignored in a plain `cargo test` (it needs the browser);
//! `.ci/run` runs it with `--ignored` after `scripts/setup --browser`, and says it is
//! skipped, with the reason, when that setup fails.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use test_support::{free_addr, request, Origin, ProxyProcess, Reply};

/// Most time one step of the browser script may take to report.
const STEP_TIMEOUT: Duration = Duration::from_secs(40);
const CHROMIUM: &str = "/usr/bin/chromium";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Service `web` over upstream `api` (`peers`), HTTP health checks every 300 ms.
fn start(listen: SocketAddr, admin: SocketAddr, peers: [SocketAddr; 2]) -> ProxyProcess {
    let yaml = format!(
        "pid_file: {{dir}}/pingora.pid
upgrade_sock: {{dir}}/upgrade.sock
services:
  - name: web
    listeners: [{{addr: \"{listen}\"}}]
    routes: [{{upstream: api}}]
    upstreams:
      api:
        peers: [\"{}\", \"{}\"]
        health_check: {{type: http, path: /health, interval_ms: 300}}
admin:
  addr: \"{admin}\"
",
        peers[0], peers[1]
    );
    ProxyProcess::start(
        &PathBuf::from(env!("CARGO_BIN_EXE_pingora")),
        &yaml,
        &[listen, admin],
    )
    .expect("pingora starts")
}

#[test]
#[cfg_attr(not(feature = "lb"), ignore = "needs the `lb` feature (health checks)")]
fn the_page_is_complete_without_script() {
    let (a, b) = (
        Origin::start(|_| Reply::ok("a")),
        Origin::start(|_| Reply::ok("b")),
    );
    let (listen, admin) = (free_addr(), free_addr());
    let _proxy = start(listen, admin, [a.addr(), b.addr()]);
    let r = request(admin, "GET", "/", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = r.text();
    for backend in [a.addr(), b.addr()] {
        assert!(
            html.contains(&format!(
                "<tr data-backend=\"{backend}\" data-state=\"up\">"
            )),
            "{backend} in\n{html}"
        );
    }
    for needle in ["Service web", "Upstream api", "<svg", "requests/s", "pid "] {
        assert!(html.contains(needle), "{needle} in\n{html}");
    }
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external asset"
    );
}

/// Runs the browser script; lines it prints arrive on the returned channel.
fn browser(args: &[String]) -> (std::process::Child, mpsc::Receiver<String>) {
    let modules = repo().join("tools/browser/node_modules/playwright-core");
    assert!(
        Path::new(CHROMIUM).exists() && modules.exists(),
        "cannot run: needs {CHROMIUM} and {} (run scripts/setup --browser)",
        modules.display()
    );
    let mut child = Command::new("node")
        .arg(repo().join("pingora-bin/tests/e2e/browser/admin_page.mjs"))
        .args(args)
        .env("PLAYWRIGHT_DIR", repo().join("tools/browser"))
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs (scripts/setup --browser)");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

fn expect_line(rx: &mpsc::Receiver<String>, prefix: &str) -> String {
    let line = rx
        .recv_timeout(STEP_TIMEOUT)
        .unwrap_or_else(|e| panic!("browser script said nothing ({e}) while waiting for {prefix}"));
    assert!(
        line.starts_with(prefix),
        "browser script: {line} (wanted {prefix})"
    );
    line
}

#[test]
#[cfg_attr(not(feature = "lb"), ignore = "needs the `lb` feature (health checks)")]
#[cfg_attr(
    feature = "lb",
    ignore = "needs chromium and playwright-core: scripts/setup --browser, then cargo test --test admin_browser -- --ignored"
)]
fn the_page_shows_a_backend_going_down_and_its_drain_button_works() {
    let a = Origin::start(|_| Reply::ok("a"));
    let b = Origin::start(|_| Reply::ok("b"));
    let (a_addr, b_addr) = (a.addr(), b.addr());
    let (listen, admin) = (free_addr(), free_addr());
    let _proxy = start(listen, admin, [a_addr, b_addr]);
    // A little steady traffic for the charts, until the test ends.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = request(listen, "GET", "/", &[], b"");
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin-status-page.png");
    let (mut child, rx) = browser(&[
        format!("http://{admin}/"),
        a_addr.to_string(),
        b_addr.to_string(),
        screenshot.display().to_string(),
    ]);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        expect_line(&rx, "READY");
        drop(b);
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "STOPPED").expect("tell the browser script");
        let down = expect_line(&rx, "DOWN ");
        eprintln!(
            "the page showed {b_addr} down {} ms after its origin stopped",
            &down[5..]
        );
        expect_line(&rx, "DRAINED");
        // Traffic moved: `b` is down and `a` drained, so nothing reaches `a` any more.
        stop.store(true, Ordering::Relaxed);
        // The load's last request may have been routed before the drain (in-flight
        // requests finish): count from when it is done.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !load.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the load thread did not stop"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let before = a.requests();
        for _ in 0..5 {
            assert_eq!(request(listen, "GET", "/", &[], b"").unwrap().status, 503);
        }
        assert_eq!(a.requests(), before, "a drained backend gets no request");
    }));
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(
        screenshot.exists(),
        "screenshot at {}",
        screenshot.display()
    );
    eprintln!("screenshot: {}", screenshot.display());
}

//! Bounded load on a proxy while a test upgrades, reloads or stops it: client threads
//! that count every failed or refused request ([`Load`], [`LoadReport`]), and
//! [`heavy`], which keeps two load tests from running at once.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::client::RawClient;
use crate::net::wait_until;
use crate::stream::{Target, TARGET_IO_TIMEOUT};

static HEAVY: Mutex<()> = Mutex::new(());

/// Serializes the tests that put load on the machine: the test harness runs tests in
/// parallel, and two load tests at once on two cores would measure the box, not the
/// binary. Hold the guard for the whole test.
pub fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
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
            let client = LoadClient {
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
        let deadline = Instant::now() + TARGET_IO_TIMEOUT + Duration::from_secs(2);
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
struct LoadClient {
    target: Target,
    path: String,
    expect: String,
    keepalive: bool,
    pause: Duration,
}

impl LoadClient {
    fn run(self, stop: &AtomicBool, ok: &AtomicU64, started: Instant) -> LoadReport {
        let LoadClient {
            target,
            path,
            expect,
            keepalive,
            pause,
        } = self;
        let (target, path, expect) = (&target, path.as_str(), expect.as_str());
        let mut report = LoadReport::default();
        let mut conn: Option<(RawClient, u64)> = None;
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
            let result = c.get(path, !keepalive);
            let nth = *used;
            *used += 1;
            match result {
                Ok(r) if r.status == 200 && r.body == expect.as_bytes() => {
                    report.ok += 1;
                    ok.fetch_add(1, Ordering::Relaxed);
                    if !keepalive || r.closes() {
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
                            r.status,
                            r.text()
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

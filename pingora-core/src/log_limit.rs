//! Keeps logging from becoming the load: [`RateLimitedLog`] wraps any [`log::Log`] and
//! lets at most a few lines per call site through in each time window. The lines held
//! back are counted and reported in one summary line per call site and window, written
//! by the next line from that call site or, when it went quiet, by a small thread that
//! wakes once a window while lines are held back.
//!
//! A flood of one kind (a line per slow client under a slowloris attack, a line per
//! failed attempt against a dead origin) thus costs a handful of lines a second, while
//! rare lines from other call sites pass untouched.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{Level, Log, Metadata, Record};

/// Most call sites tracked; lines from further sites pass unlimited (call sites are a
/// fixed set in a program, so this is only a bound against surprises).
const MAX_SITES: usize = 4096;

/// How many lines a call site may log per window, and how long a window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Lines let through per call site in one window.
    pub lines_per_window: u32,
    /// The window.
    pub window: Duration,
}

impl Default for LogLimits {
    /// 10 lines per call site per second.
    fn default() -> Self {
        LogLimits {
            lines_per_window: 10,
            window: Duration::from_secs(1),
        }
    }
}

/// A call site: the module and line of the `log!` macro.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SiteKey {
    module: Cow<'static, str>,
    line: u32,
}

#[derive(Debug)]
struct Site {
    window_start: Instant,
    emitted: u32,
    suppressed: u64,
    suppressed_since: Instant,
}

/// What became of suppressed lines, to be reported.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    module: String,
    line: u32,
    count: u64,
    over: Duration,
}

impl Summary {
    fn log_to(&self, inner: &dyn Log) {
        inner.log(
            &Record::builder()
                .level(Level::Warn)
                .target("log_limit")
                .args(format_args!(
                    "{} similar log lines from {}:{} suppressed in the last {}s",
                    self.count,
                    self.module,
                    self.line,
                    self.over.as_secs().max(1)
                ))
                .build(),
        );
    }
}

/// A [`Log`] that passes at most [`LogLimits::lines_per_window`] lines per call site and
/// window to `inner`, and counts the rest.
#[derive(Debug)]
pub struct RateLimitedLog<L> {
    shared: Arc<Shared<L>>,
}

#[derive(Debug)]
struct Shared<L> {
    inner: L,
    limits: LogLimits,
    sites: Mutex<HashMap<SiteKey, Site>>,
    suppressed_total: AtomicU64,
    /// The process whose flusher thread runs (0: none yet). Threads do not survive a
    /// fork, so a daemon's child starts its own.
    flusher_pid: AtomicU32,
}

impl<L: Log + 'static> RateLimitedLog<L> {
    /// Wraps `inner` with `limits`.
    pub fn new(inner: L, limits: LogLimits) -> Self {
        RateLimitedLog {
            shared: Arc::new(Shared {
                inner,
                limits,
                sites: Mutex::new(HashMap::new()),
                suppressed_total: AtomicU64::new(0),
                flusher_pid: AtomicU32::new(0),
            }),
        }
    }

    /// The wrapped logger.
    pub fn inner(&self) -> &L {
        &self.shared.inner
    }

    /// Lines suppressed since start (for a metric).
    pub fn suppressed_total(&self) -> u64 {
        self.shared.suppressed_total.load(Ordering::Relaxed)
    }

    /// Reports, now, the lines suppressed at call sites whose window has ended (at exit,
    /// for example).
    pub fn flush_summaries(&self) {
        self.shared.flush_summaries();
    }

    /// Starts the thread that reports held-back lines of quiet call sites, once per
    /// process.
    fn ensure_flusher(&self) {
        let pid = std::process::id();
        let running = self.shared.flusher_pid.load(Ordering::Relaxed);
        if running == pid
            || self
                .shared
                .flusher_pid
                .compare_exchange(running, pid, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let weak = Arc::downgrade(&self.shared);
        let window = self.shared.limits.window;
        let spawned = std::thread::Builder::new()
            .name("log-limit".into())
            .spawn(move || loop {
                std::thread::sleep(window);
                match weak.upgrade() {
                    Some(shared) => shared.flush_summaries(),
                    None => return,
                }
            });
        if spawned.is_err() {
            self.shared.flusher_pid.store(0, Ordering::Relaxed);
        }
    }
}

impl<L: Log> Shared<L> {
    fn flush_summaries(&self) {
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
            for (key, site) in sites.iter_mut() {
                if site.suppressed > 0
                    && now.duration_since(site.window_start) >= self.limits.window
                {
                    due.push(take_summary(key, site, now));
                }
            }
        }
        for summary in due {
            summary.log_to(&self.inner);
        }
    }

    /// Whether `record` may pass, and a summary of earlier suppressed lines to log first.
    fn admit(&self, record: &Record<'_>) -> (bool, Option<Summary>) {
        // The log macros give a static module path: no allocation per line.
        let module = match record.module_path_static() {
            Some(m) => Cow::Borrowed(m),
            None => Cow::Owned(record.module_path().unwrap_or(record.target()).to_string()),
        };
        let key = SiteKey {
            module,
            line: record.line().unwrap_or(0),
        };
        let now = Instant::now();
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        if !sites.contains_key(&key) && sites.len() >= MAX_SITES {
            return (true, None);
        }
        let site = sites.entry(key.clone()).or_insert(Site {
            window_start: now,
            emitted: 0,
            suppressed: 0,
            suppressed_since: now,
        });
        let mut summary = None;
        if now.duration_since(site.window_start) >= self.limits.window {
            if site.suppressed > 0 {
                summary = Some(take_summary(&key, site, now));
            }
            site.window_start = now;
            site.emitted = 0;
        }
        if site.emitted < self.limits.lines_per_window {
            site.emitted += 1;
            return (true, summary);
        }
        if site.suppressed == 0 {
            site.suppressed_since = now;
        }
        site.suppressed += 1;
        self.suppressed_total.fetch_add(1, Ordering::Relaxed);
        (false, summary)
    }
}

fn take_summary(key: &SiteKey, site: &mut Site, now: Instant) -> Summary {
    let summary = Summary {
        module: key.module.to_string(),
        line: key.line,
        count: site.suppressed,
        over: now.duration_since(site.suppressed_since),
    };
    site.suppressed = 0;
    summary
}

impl<L: Log + 'static> Log for RateLimitedLog<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.shared.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.shared.inner.enabled(record.metadata()) {
            return;
        }
        let (pass, summary) = self.shared.admit(record);
        if let Some(s) = summary {
            s.log_to(&self.shared.inner);
        }
        if pass {
            self.shared.inner.log(record);
        } else {
            self.ensure_flusher();
        }
    }

    fn flush(&self) {
        self.shared.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Default, Clone)]
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl Log for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &Record<'_>) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }

    fn record_at<'a>(line: u32, args: std::fmt::Arguments<'a>) -> Record<'a> {
        Record::builder()
            .level(Level::Warn)
            .module_path_static(Some("test::site"))
            .line(Some(line))
            .args(args)
            .build()
    }

    fn limited(lines: u32, window: Duration) -> (RateLimitedLog<Capture>, Capture) {
        let capture = Capture::default();
        let log = RateLimitedLog::new(
            capture.clone(),
            LogLimits {
                lines_per_window: lines,
                window,
            },
        );
        (log, capture)
    }

    #[test]
    fn a_flood_from_one_site_is_cut_and_counted() {
        let (log, capture) = limited(3, Duration::from_secs(3600));
        for i in 0..100 {
            log.log(&record_at(7, format_args!("slow client {i}")));
        }
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(lines, ["slow client 0", "slow client 1", "slow client 2"]);
        assert_eq!(log.suppressed_total(), 97);
    }

    #[test]
    fn other_sites_pass_while_one_floods() {
        let (log, capture) = limited(2, Duration::from_secs(3600));
        for _ in 0..50 {
            log.log(&record_at(1, format_args!("flood")));
        }
        log.log(&record_at(2, format_args!("rare")));
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(lines, ["flood", "flood", "rare"]);
    }

    #[test]
    fn the_next_window_reports_what_was_suppressed() {
        let (log, capture) = limited(1, Duration::from_millis(30));
        for _ in 0..5 {
            log.log(&record_at(9, format_args!("x")));
        }
        std::thread::sleep(Duration::from_millis(40));
        log.log(&record_at(9, format_args!("y")));
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], "x");
        assert!(
            lines[1].starts_with("4 similar log lines from test::site:9 suppressed"),
            "{lines:?}"
        );
        assert_eq!(lines[2], "y");
    }

    #[test]
    fn a_quiet_site_is_reported_by_the_flusher_thread() {
        let (log, capture) = limited(1, Duration::from_millis(20));
        for _ in 0..3 {
            log.log(&record_at(4, format_args!("x")));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while capture.0.lock().unwrap().len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1].starts_with("2 similar log lines from test::site:4"),
            "{lines:?}"
        );
    }

    #[test]
    fn flush_reports_a_site_that_went_quiet() {
        let (log, capture) = limited(1, Duration::from_millis(20));
        for _ in 0..3 {
            log.log(&record_at(4, format_args!("x")));
        }
        log.flush_summaries();
        assert_eq!(capture.0.lock().unwrap().len(), 1, "window not over yet");
        std::thread::sleep(Duration::from_millis(30));
        log.flush_summaries();
        log.flush_summaries();
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].starts_with("2 similar log lines"), "{lines:?}");
    }
}

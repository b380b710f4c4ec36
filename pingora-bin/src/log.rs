//! The server's own log (`error_log`): one line per event, to stderr or a file that
//! can be reopened after log rotation. At most 10 lines per call site and second get
//! through (see [`pingora_core::log_limit`]); the rest are counted, reported in a
//! summary line and in `pingora_log_lines_suppressed_total`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};
use pingora_core::log_limit::{LogLimits, RateLimitedLog};

/// Where log lines go.
enum Sink {
    Stderr,
    File { path: PathBuf, file: File },
}

/// A `log` backend writing timestamped lines.
pub struct ErrorLog {
    sink: Mutex<Sink>,
    level: LevelFilter,
}

static LOGGER: std::sync::OnceLock<RateLimitedLog<ErrorLog>> = std::sync::OnceLock::new();

/// Whether the logger is installed.
pub fn is_installed() -> bool {
    LOGGER.get().is_some()
}

/// Whether log lines go to a file rather than stderr.
pub fn logs_to_file() -> bool {
    LOGGER.get().is_some_and(|l| {
        matches!(
            *l.inner().sink.lock().unwrap_or_else(|p| p.into_inner()),
            Sink::File { .. }
        )
    })
}

/// Installs the logger: lines go to `path` (appended) or to stderr when `None`.
/// The level comes from `PINGORA_LOG` (error, warn, info, debug, trace), else from
/// `default_level` (the config's `log_level`), else info.
pub fn init(path: Option<&Path>, default_level: &str) -> std::io::Result<()> {
    let sink = match path {
        Some(p) => Sink::File {
            path: p.to_path_buf(),
            file: open_append(p)?,
        },
        None => Sink::Stderr,
    };
    let level = std::env::var("PINGORA_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .or_else(|| default_level.parse().ok())
        .unwrap_or(LevelFilter::Info);
    let logger = LOGGER.get_or_init(|| {
        RateLimitedLog::new(
            ErrorLog {
                sink: Mutex::new(Sink::Stderr),
                level,
            },
            LogLimits::default(),
        )
    });
    *logger
        .inner()
        .sink
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = sink;
    // A second init only swaps the sink: the logger is already installed.
    let _ = log::set_logger(logger);
    log::set_max_level(level);
    Ok(())
}

/// Reopens the log file (after logrotate renamed it). A no-op for stderr.
pub fn reopen() -> std::io::Result<()> {
    let Some(logger) = LOGGER.get() else {
        return Ok(());
    };
    let mut sink = logger
        .inner()
        .sink
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Sink::File { path, file } = &mut *sink {
        *file = open_append(path)?;
    }
    Ok(())
}

/// Log lines held back by the rate limit since start.
pub fn suppressed_lines() -> u64 {
    LOGGER.get().map_or(0, |l| l.suppressed_total())
}

/// Writes the summaries of lines held back that are still unreported (at exit).
pub fn flush_suppressed() {
    if let Some(l) = LOGGER.get() {
        l.flush_summaries();
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Log for ErrorLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {} [{}] {}\n",
            utc_timestamp(SystemTime::now()),
            record.level(),
            std::process::id(),
            record.args()
        );
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let _ = match &mut *sink {
            Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
            Sink::File { file, .. } => file.write_all(line.as_bytes()),
        };
    }

    fn flush(&self) {}
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn utc_timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Converts days since 1970-01-01 to a (year, month, day) civil date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(utc_timestamp(t), "2026-11-18T11:06:40.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_timestamp(leap), "2000-02-29T00:00:00.000Z");
    }
}

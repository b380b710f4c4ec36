//! Backends listed in a text file, read again when it changes.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::Discovery;
use crate::backend::Backend;
use crate::error::LbError;

/// A text file with one backend per line: `ADDR [WEIGHT]` (`#` starts a comment).
/// The file is read again only when its modification time or size changes.
#[derive(Debug)]
pub struct FileDiscovery {
    path: PathBuf,
    last: Mutex<Option<Stamped>>,
}

impl FileDiscovery {
    /// Backends listed in the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileDiscovery {
            path: path.into(),
            last: Mutex::new(None),
        }
    }
}

impl Discovery for FileDiscovery {
    async fn discover(&self) -> Result<Vec<Backend>, LbError> {
        let path = self.path.clone();
        let cached = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // Small file, but still file-system calls: keep them off the async threads.
        let read = tokio::task::spawn_blocking(move || read_if_changed(&path, cached));
        let fresh = match read.await {
            Ok(result) => result?,
            Err(join) => {
                return Err(LbError::Read {
                    path: self.path.clone(),
                    source: std::io::Error::other(join.to_string()),
                })
            }
        };
        let backends = fresh.2.clone();
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(fresh);
        Ok(backends)
    }

    fn describe(&self) -> String {
        format!("backend file {}", self.path.display())
    }
}

type Stamped = (SystemTime, u64, Vec<Backend>);

/// The list in `path`, parsed again only if its time stamp or size differs from `cached`.
fn read_if_changed(path: &Path, cached: Option<Stamped>) -> Result<Stamped, LbError> {
    let read_error = |source| LbError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    let (mtime, len) = (meta.modified().map_err(read_error)?, meta.len());
    if let Some(cached) = cached {
        if (cached.0, cached.1) == (mtime, len) {
            return Ok(cached);
        }
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    Ok((mtime, len, parse_backend_list(path, &text)?))
}

/// Reads and parses the backend list at `path` now, on the calling thread (for start-up,
/// before any runtime exists; [`FileDiscovery`] reads off the async threads).
pub fn read_backend_file(path: &Path) -> Result<Vec<Backend>, LbError> {
    let text = std::fs::read_to_string(path).map_err(|source| LbError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_backend_list(path, &text)
}

/// Parses `ADDR [WEIGHT]` lines; blank lines and `#` comments are skipped.
pub fn parse_backend_list(path: &Path, text: &str) -> Result<Vec<Backend>, LbError> {
    let mut backends = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let error = |message: String| LbError::Parse {
            path: path.to_path_buf(),
            line: n + 1,
            message,
        };
        let mut words = line.split_whitespace();
        let addr = words.next().unwrap_or_default();
        if !is_backend_addr(addr) {
            return Err(error(format!(
                "`{}` is not HOST:PORT or unix:/PATH",
                addr.escape_debug()
            )));
        }
        let weight = match words.next() {
            None => 1,
            Some(w) => match w.parse::<u32>() {
                Ok(w) if w >= 1 => w,
                _ => {
                    return Err(error(format!(
                        "weight `{}` is not a whole number from 1",
                        w.escape_debug()
                    )))
                }
            },
        };
        if let Some(extra) = words.next() {
            return Err(error(format!(
                "unexpected `{}` after the weight",
                extra.escape_debug()
            )));
        }
        backends.push(Backend::new(addr).with_weight(weight));
    }
    Ok(backends)
}

fn is_backend_addr(addr: &str) -> bool {
    if let Some(path) = addr.strip_prefix("unix:") {
        return !path.is_empty();
    }
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backend_lists() {
        let p = Path::new("list.txt");
        let list = parse_backend_list(
            p,
            "# pool\n10.0.0.1:80\n\n  10.0.0.2:8080 3  # heavy\nunix:/run/app.sock\n",
        )
        .unwrap();
        assert_eq!(
            list,
            [
                Backend::new("10.0.0.1:80"),
                Backend::new("10.0.0.2:8080").with_weight(3),
                Backend::new("unix:/run/app.sock"),
            ]
        );
        for (bad, line_text) in [
            ("10.0.0.1\n", "not HOST:PORT"),
            ("ok:1\nhost:0\n", "not HOST:PORT"),
            ("a:1 0\n", "weight `0`"),
            ("a:1 x\n", "weight `x`"),
            ("a:1 2 3\n", "unexpected `3`"),
        ] {
            let err = parse_backend_list(p, bad).unwrap_err().to_string();
            assert!(err.starts_with("list.txt:"), "{err}");
            assert!(err.contains(line_text), "{bad:?}: {err}");
        }
        let err = parse_backend_list(p, "ok:1\nhost:0\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("list.txt:2:"), "{err}");
    }
}

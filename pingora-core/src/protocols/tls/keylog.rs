//! TLS key logging to `$SSLKEYLOGFILE` (NSS key log format), for decrypting captures.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use boring::ssl::SslContextBuilder;

/// The environment variable naming the key log file.
pub const KEYLOG_ENV: &str = "SSLKEYLOGFILE";

/// The key log file, opened once per process and shared by every context.
fn keylog_file() -> Option<&'static Mutex<File>> {
    static FILE: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::var_os(KEYLOG_ENV)?;
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => Some(Mutex::new(f)),
            Err(e) => {
                log::warn!(
                    "TLS key log: cannot open {} ({KEYLOG_ENV}): {e}",
                    std::path::Path::new(&path).display()
                );
                None
            }
        }
    })
    .as_ref()
}

/// Makes connections of `builder`'s context append their keys to `$SSLKEYLOGFILE`.
/// Does nothing when the variable is not set.
pub(super) fn install(builder: &mut SslContextBuilder) {
    let Some(file) = keylog_file() else {
        return;
    };
    log::warn!("TLS key log: writing upstream session keys to ${KEYLOG_ENV}");
    builder.set_keylog_callback(move |_, line| {
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        // One write per line so that concurrent handshakes do not interleave.
        let mut entry = Vec::with_capacity(line.len() + 1);
        entry.extend_from_slice(line.as_bytes());
        entry.push(b'\n');
        if let Err(e) = f.write_all(&entry) {
            log::debug!("TLS key log: write failed: {e}");
        }
    });
}

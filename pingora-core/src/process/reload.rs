//! Starting the new instance on SIGHUP, and waiting until it serves.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::server::ReloadError;

/// This program's path, even after it was replaced on disk by a newer build.
pub fn current_exe() -> Result<PathBuf, ReloadError> {
    let exe = std::env::current_exe().map_err(ReloadError::CurrentExe)?;
    let s = exe.to_string_lossy();
    Ok(match s.strip_suffix(" (deleted)") {
        Some(p) => PathBuf::from(p),
        None => exe,
    })
}

/// Waits up to `timeout` for another live process to write its pid to `pid_file` (the
/// new instance writes it once every listener accepts).
pub(super) fn wait_for_new_instance(pid_file: &Path, timeout: Duration) -> bool {
    let own = std::process::id();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let pid = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        if let Some(pid) = pid.filter(|&p| p > 0 && p as u32 != own) {
            if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() {
                log::info!("new instance (pid {pid}) serves");
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    log::error!(
        "no new instance wrote {} within {}s",
        pid_file.display(),
        timeout.as_secs()
    );
    false
}

//! What the binary does at each point of the server's life: readiness (to a waiting
//! parent and to systemd), reload on SIGHUP, log reopening on SIGUSR1.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pingora_config::ServerConf;
use pingora_core::process::daemon::ReadyNotifier;
use pingora_core::process::notify::sd_notify;
use pingora_core::server::Lifecycle;

/// The binary's [`Lifecycle`].
pub struct BinLifecycle {
    /// The configuration file, absolute, if any.
    pub conf_path: Option<PathBuf>,
    /// Whether this instance runs as a daemon (a reload starts the new one with `-d`).
    pub daemon: bool,
    /// Whether this instance took over from another one (`-u`).
    pub upgraded: bool,
    /// Tells a waiting foreground parent that we are ready.
    pub notifier: Option<ReadyNotifier>,
    /// Set once a new instance took the listeners: `pid_file` is the new one's now.
    pub handed_over: bool,
    /// This instance's `pid_file`.
    pub pid_file: PathBuf,
    /// The `pid_file` of the configuration a reload starts (it may differ).
    pub next_pid_file: Option<PathBuf>,
    /// How long a hand-over waits for the new instance to serve.
    pub new_instance_timeout: Duration,
}

impl Lifecycle for BinLifecycle {
    fn ready(&mut self) {
        let pid = std::process::id();
        ::log::info!("ready: every listener accepts (pid {pid})");
        if self.upgraded {
            sd_notify(&format!("MAINPID={pid}\nREADY=1"));
        } else {
            sd_notify("READY=1");
        }
        if let Some(n) = self.notifier.take() {
            n.ready();
        }
    }

    fn reload(&mut self) -> Result<(), String> {
        let path = self
            .conf_path
            .clone()
            .ok_or("the server was started without -c, so there is no file to reload")?;
        let next = ServerConf::load_with(&path, &crate::wire::validate_options())
            .map_err(|e| e.to_string())?;
        self.next_pid_file = Some(next.pid_file);
        let exe = current_exe()?;
        let mut cmd = Command::new(&exe);
        cmd.arg("-c").arg(&path).arg("-u");
        if self.daemon {
            cmd.arg("-d");
        }
        cmd.stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        ::log::info!(
            "reload: configuration {} is valid; started new instance (pid {})",
            path.display(),
            child.id()
        );
        // Reap it when it (or, with -d, its foreground part) exits.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(())
    }

    fn new_instance_ready(&mut self) -> bool {
        // The new instance writes its pid to pid_file once every listener accepts.
        let path = self
            .next_pid_file
            .take()
            .unwrap_or_else(|| self.pid_file.clone());
        let own = std::process::id();
        let deadline = Instant::now() + self.new_instance_timeout;
        while Instant::now() < deadline {
            let pid = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            if let Some(pid) = pid.filter(|&p| p > 0 && p as u32 != own) {
                if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() {
                    ::log::info!("new instance (pid {pid}) serves");
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        ::log::error!(
            "no new instance wrote {} within {}s",
            path.display(),
            self.new_instance_timeout.as_secs()
        );
        false
    }

    fn upgrading(&mut self) {
        sd_notify("RELOADING=1");
    }

    fn handed_over(&mut self) {
        self.handed_over = true;
        crate::admin::handed_over();
        ::log::info!("the new instance serves; draining this one");
    }

    fn upgrade_failed(&mut self) {
        sd_notify("READY=1");
    }

    fn reopen_logs(&mut self) {
        if let Err(e) = crate::log::reopen() {
            ::log::error!("cannot reopen error_log: {e}");
        }
        crate::access_log::reopen();
    }

    fn stopping(&mut self) {
        // After a hand-over the service goes on in the new instance: STOPPING=1 from
        // this one (accepted with NotifyAccess=all) would make systemd stop the unit.
        if !self.handed_over {
            sd_notify("STOPPING=1");
        }
    }
}

/// This binary's path, even after it was replaced on disk by a newer build.
fn current_exe() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let s = exe.to_string_lossy();
    Ok(match s.strip_suffix(" (deleted)") {
        Some(p) => PathBuf::from(p),
        None => exe,
    })
}

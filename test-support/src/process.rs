//! A running `pingora` process ([`ProxyProcess`]): started from a config, its output
//! in a log file, signals sent with `kill(2)`, killed when the test ends.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;

use crate::command::wait_child;
use crate::dir::TestDir;
use crate::memory::{process_memory, ProcessMemory};
use crate::net::{port_accepts, wait_until};
use crate::pids::{read_pid, send_signal};
use crate::stream::Target;

/// Most time a process may take to start serving, and generally to reach a state a
/// test drives it towards, before the test fails.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A `pingora` process this test started. Its stdout and stderr both go to
/// `<dir>/<name>.log`; it is SIGKILLed on drop if still running, and its log is
/// printed when the test is failing.
#[derive(Debug)]
pub struct ProxyProcess {
    name: String,
    child: Child,
    exited: Option<ExitStatus>,
    dir: PathBuf,
    log_path: PathBuf,
    config_path: PathBuf,
    /// The private directory of [`ProxyProcess::start`], removed after the process
    /// is killed (fields drop after [`Drop::drop`]).
    _private_dir: Option<TestDir>,
}

impl ProxyProcess {
    /// Writes `yaml` to `<dir>/pingora.yaml` in a new private directory (every `{dir}`
    /// in it replaced by that directory), starts `bin -c <that file>` and waits up to
    /// [`SETTLE_TIMEOUT`] until every address in `wait_for` accepts connections.
    ///
    /// Fails, with the process's log in the message, if it exits or does not become
    /// ready in time.
    pub fn start(bin: &Path, yaml: &str, wait_for: &[SocketAddr]) -> io::Result<ProxyProcess> {
        Self::start_with_args(bin, yaml, &[], wait_for)
    }

    /// Like [`ProxyProcess::start`] with extra command-line arguments after `-c FILE`.
    pub fn start_with_args(
        bin: &Path,
        yaml: &str,
        args: &[&str],
        wait_for: &[SocketAddr],
    ) -> io::Result<ProxyProcess> {
        let dir = TestDir::new()?;
        let dir_text = dir.path().display().to_string();
        let config = dir.write("pingora.yaml", &yaml.replace("{dir}", &dir_text))?;
        let mut process = Self::launch(bin, dir.path(), "pingora", &config, args, &[])?;
        process._private_dir = Some(dir);
        process.wait_ready(wait_for, SETTLE_TIMEOUT)?;
        Ok(process)
    }

    /// Starts `bin -c config args...` with its log at `<dir>/<name>.log`, without
    /// waiting for anything. `NOTIFY_SOCKET` is removed from its environment. Several
    /// processes may share `dir` (the old and new instance of an upgrade).
    pub fn spawn(bin: &Path, dir: &Path, name: &str, config: &Path, args: &[&str]) -> Self {
        Self::spawn_with_env(bin, dir, name, config, args, &[])
    }

    /// [`ProxyProcess::spawn`] with `env` added to the environment.
    pub fn spawn_with_env(
        bin: &Path,
        dir: &Path,
        name: &str,
        config: &Path,
        args: &[&str],
        env: &[(&str, &OsStr)],
    ) -> Self {
        Self::launch(bin, dir, name, config, args, env)
            .unwrap_or_else(|e| panic!("cannot start {} as {name}: {e}", bin.display()))
    }

    fn launch(
        bin: &Path,
        dir: &Path,
        name: &str,
        config: &Path,
        args: &[&str],
        env: &[(&str, &OsStr)],
    ) -> io::Result<Self> {
        let log_path = dir.join(format!("{name}.log"));
        let log = fs::File::create(&log_path)?;
        let out = log.try_clone()?;
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(config)
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ok(ProxyProcess {
            name: name.to_string(),
            child: cmd.spawn()?,
            exited: None,
            dir: dir.to_path_buf(),
            log_path,
            config_path: config.to_path_buf(),
            _private_dir: None,
        })
    }

    /// Waits up to `timeout` until every address in `addrs` accepts connections; an
    /// error with the log if the process exits first or the time passes.
    pub fn wait_ready(&mut self, addrs: &[SocketAddr], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<SocketAddr> = addrs.to_vec();
        loop {
            pending.retain(|a| !port_accepts(*a));
            if pending.is_empty() {
                return Ok(());
            }
            if let Some(status) = self.exited() {
                return Err(io::Error::other(format!(
                    "pingora exited ({status}) before listening on {pending:?}; log:\n{}",
                    self.log()
                )));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "pingora not accepting on {pending:?} after {timeout:?}; log:\n{}",
                        self.log()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `target` answers `GET /hello` (the respond route of
    /// [`crate::ProxyConfig`]) with 200 and `pid_file` names this process; panics with
    /// the log otherwise (or if the process exits).
    pub fn wait_serving(&mut self, target: &Target, pid_file: &Path) {
        let pid = self.pid();
        let ok = wait_until(SETTLE_TIMEOUT, || {
            self.exited().is_none()
                && read_pid(pid_file) == Some(pid)
                && target.get("/hello").is_ok_and(|r| r.status == 200)
        });
        assert!(
            ok,
            "{} (pid {pid}) not serving on {target} with its pid in {} after {SETTLE_TIMEOUT:?} (exit: {:?}); log:\n{}",
            self.name,
            pid_file.display(),
            self.exited,
            self.log()
        );
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory of its log (for [`ProxyProcess::start`], the private directory
    /// that `{dir}` in the config names).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config file the process was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Sends `sig` to the process; panics (with the log) if that fails.
    pub fn signal(&self, sig: Signal) {
        send_signal(self.pid(), sig)
            .unwrap_or_else(|e| panic!("cannot send {sig} to {}: {e}\n{}", self.name, self.log()));
    }

    /// The exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Waits up to `timeout` for the process to exit; its status, or None if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = wait_child(&mut self.child, timeout).ok().flatten();
        }
        self.exited
    }

    /// Everything the process (and the processes it started, which inherit its
    /// output) logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits up to `timeout` for the log to contain `needle`; true if it does.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(needle))
    }

    /// Current memory figures of the process from /proc (Linux only).
    pub fn memory(&self) -> Option<ProcessMemory> {
        process_memory(self.child.id())
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- {} (pid {}) log ---\n{}--- end ---",
                self.name,
                self.child.id(),
                self.log()
            );
        }
    }
}

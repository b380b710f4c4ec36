//! Running the `pingora` binary: one-shot commands with a timeout, and a long-running
//! proxy process with its config in a private temporary directory.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use nix::sys::signal::Signal;

use crate::net::port_accepts;

/// A fresh directory under the system temp dir, removed on drop (kept when the
/// thread is panicking, so a failed test leaves its config and logs to inspect).
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates a new, unique directory.
    pub fn new() -> io::Result<TestDir> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "pingora-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&path)?;
        Ok(TestDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> io::Result<PathBuf> {
        let p = self.join(name);
        fs::write(&p, contents)?;
        Ok(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test-support: keeping {} for inspection",
                self.path.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// What a finished one-shot command produced.
#[derive(Debug)]
pub struct CommandOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output as text.
    pub stdout: String,
    /// Standard error as text.
    pub stderr: String,
}

impl CommandOutput {
    /// The exit code (None when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `bin args...` to completion, killing it if it runs longer than `timeout`
/// (then an error of kind `TimedOut` is returned).
pub fn run_command(bin: &Path, args: &[&str], timeout: Duration) -> io::Result<CommandOutput> {
    let dir = TestDir::new()?;
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path)?)
        .stderr(fs::File::create(&err_path)?)
        .spawn()?;
    let status = match wait_child(&mut child, timeout)? {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} {args:?} still running after {timeout:?}", bin.display()),
            ));
        }
    };
    Ok(CommandOutput {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    })
}

fn wait_child(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running `pingora` process serving a YAML config; SIGKILLed when dropped.
#[derive(Debug)]
pub struct ProxyProcess {
    child: Child,
    exited: Option<ExitStatus>,
    dir: TestDir,
    stderr_path: PathBuf,
    config_path: PathBuf,
}

impl ProxyProcess {
    /// Writes `yaml` to `<dir>/pingora.yaml` (every `{dir}` in it replaced by the
    /// private temp directory), starts `bin -c <that file>` and waits up to 10 s until
    /// every address in `wait_for` accepts connections.
    ///
    /// Fails, with the process's stderr in the message, if it exits or does not become
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
        let config_path = dir.write("pingora.yaml", &yaml.replace("{dir}", &dir_text))?;
        let stderr_path = dir.join("stderr.log");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&config_path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("stdout.log"))?)
            .stderr(fs::File::create(&stderr_path)?)
            .spawn()?;
        let mut proc = ProxyProcess {
            child,
            exited: None,
            dir,
            stderr_path,
            config_path,
        };
        proc.wait_ready(wait_for, Duration::from_secs(10))?;
        Ok(proc)
    }

    fn wait_ready(&mut self, addrs: &[SocketAddr], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<SocketAddr> = addrs.to_vec();
        loop {
            pending.retain(|a| !port_accepts(*a));
            if pending.is_empty() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                self.exited = Some(status);
                return Err(io::Error::other(format!(
                    "pingora exited ({status}) before listening on {pending:?}; stderr:\n{}",
                    self.stderr_text()
                )));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "pingora not accepting on {pending:?} after {timeout:?}; stderr:\n{}",
                        self.stderr_text()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The private temp directory (`{dir}` in the config).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file the process was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        let pid =
            i32::try_from(self.child.id()).map_err(|_| io::Error::other("pid out of range"))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(io::Error::from)
    }

    /// Waits up to `timeout` for the process to exit; its status, or None if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = wait_child(&mut self.child, timeout).ok().flatten();
        }
        self.exited
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits up to `timeout` for stderr to contain `needle`; true if it does.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> bool {
        crate::net::wait_until(timeout, || self.stderr_text().contains(needle))
    }

    /// Current memory figures of the process from /proc (Linux only).
    pub fn memory(&self) -> Option<ProcessMemory> {
        process_memory(self.child.id())
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- pingora stderr ---\n{}\n--- end ---",
                self.stderr_text()
            );
        }
    }
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessMemory {
    /// Current resident set size (VmRSS).
    pub rss_kib: u64,
    /// Peak resident set size (VmHWM).
    pub peak_rss_kib: u64,
}

/// Reads VmRSS and VmHWM of `pid` from `/proc/<pid>/status`.
pub fn process_memory(pid: u32) -> Option<ProcessMemory> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some(ProcessMemory {
        rss_kib: field("VmRSS:")?,
        peak_rss_kib: field("VmHWM:")?,
    })
}

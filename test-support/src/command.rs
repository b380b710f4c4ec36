//! One-shot commands (`pingora -t`, `curl`, ...) run to completion with a timeout.

use std::fs;
use std::io;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::dir::TestDir;

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

pub(crate) fn wait_child(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
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

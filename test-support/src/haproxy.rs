//! [`Haproxy`]: Debian's HAProxy run as a child process, for interoperability tests
//! (installed by `scripts/setup`; tests that need it are ignored in a plain
//! `cargo test` and run by `.ci/run` when it is there).

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::dir::TestDir;
use crate::net::wait_for_port;

/// A running HAProxy with a config of the test's; killed when dropped.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    dir: TestDir,
}

impl Haproxy {
    /// The `haproxy` executable, when installed (on `PATH`, or Debian's `/usr/sbin`).
    pub fn binary() -> Option<PathBuf> {
        let on_path = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join("haproxy"));
        on_path
            .chain([PathBuf::from("/usr/sbin/haproxy")])
            .find(|p| p.is_file())
    }

    /// Checks `config` (`haproxy -c`), starts HAProxy in the foreground with it, and
    /// waits (up to 10 s) until each of `listening` accepts connections.
    pub fn start(config: &str, listening: &[SocketAddr]) -> io::Result<Haproxy> {
        let bin = Haproxy::binary().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "haproxy is not installed (scripts/setup installs it)",
            )
        })?;
        let dir = TestDir::new()?;
        let cfg = dir.path().join("haproxy.cfg");
        fs::write(&cfg, config)?;
        let check = Command::new(&bin).arg("-c").arg("-f").arg(&cfg).output()?;
        if !check.status.success() {
            return Err(io::Error::other(format!(
                "haproxy refused the config:\n{}{}\n{config}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            )));
        }
        let log = fs::File::create(dir.path().join("haproxy.log"))?;
        let child = Command::new(&bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut haproxy = Haproxy { child, dir };
        for addr in listening {
            if !wait_for_port(*addr, Duration::from_secs(10)) {
                let log = haproxy.log();
                let _ = haproxy.child.kill();
                return Err(io::Error::other(format!(
                    "haproxy does not listen on {addr}:\n{log}"
                )));
            }
        }
        Ok(haproxy)
    }

    /// What HAProxy wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The pid file: written atomically at start, removed at a clean exit if still ours.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A pid file this process wrote.
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes this process's pid to `path` through a temporary file and a rename, so a
    /// reader never sees a partial file.
    pub fn write(path: &Path) -> std::io::Result<Self> {
        let pid = std::process::id();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{pid}.tmp"));
        let tmp = PathBuf::from(tmp);
        {
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{pid}")?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(PidFile {
            path: path.to_path_buf(),
            pid,
        })
    }

    /// Removes the file, unless another process has written its own pid there since.
    pub fn remove(self) {
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            == Some(self.pid);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_removes_only_own_pid() {
        let dir = std::env::temp_dir().join(format!("pidfile-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.pid");
        let f = PidFile::write(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        f.remove();
        assert!(!path.exists());

        let f = PidFile::write(&path).unwrap();
        std::fs::write(&path, "999999\n").unwrap();
        f.remove();
        assert!(
            path.exists(),
            "a pid file taken over by another process stays"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

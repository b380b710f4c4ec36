//! Opening a cache directory: its layout, the temporary files a killed process left,
//! and the index rebuilt from the files found.

use std::fs;
use std::io;
use std::time::{Duration, SystemTime};

use super::Shared;

/// A temporary file of another process older than this is left over from a crash
/// (one being written by a live process, such as the old one during a graceful
/// upgrade, is younger).
const STALE_TMP_AGE: Duration = Duration::from_secs(600);

/// Creates the layout, removes leftover temporary files and fills the index with the
/// files found, oldest first (evicting beyond the budget, if it shrank).
pub(super) fn prepare_and_rebuild(shared: &Shared) -> io::Result<()> {
    fs::create_dir_all(shared.dir.join("tmp"))?;
    for sub in 0..=255u8 {
        fs::create_dir_all(shared.dir.join(format!("{sub:02x}")))?;
    }
    remove_leftover_tmp(shared)?;
    let mut found = Vec::new();
    for sub in 0..=255u8 {
        let sub_dir = shared.dir.join(format!("{sub:02x}"));
        for file in fs::read_dir(&sub_dir)? {
            let file = file?;
            let name = file.file_name();
            let Some(hash) = name
                .to_str()
                .filter(|n| n.len() == 16)
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            else {
                continue;
            };
            if (hash >> 56) as u8 != sub {
                continue;
            }
            let Ok(meta) = file.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            found.push((modified, hash, meta.len()));
        }
    }
    found.sort_unstable();
    let mut evicted = Vec::new();
    {
        let mut index = shared.index();
        for (_, hash, size) in &found {
            index.restore(*hash, *size, &mut evicted);
        }
    }
    for (hash, _) in &evicted {
        let _ = fs::remove_file(shared.file_path(*hash));
    }
    shared.evictions.add(evicted.len() as u64);
    log::info!(
        "cache: {} entries ({} bytes) found in {}, {} removed to fit {} bytes",
        found.len() - evicted.len(),
        shared.index().used(),
        shared.dir.display(),
        evicted.len(),
        shared.max_bytes
    );
    Ok(())
}

/// Removes the temporary files left by dead writers: those of this process id (a
/// previous process with the same id, as pid 1 in a container, is dead), those of a
/// process id that no longer runs (where `/proc` tells), and those older than
/// [`STALE_TMP_AGE`]. The files of a live process (the old instance during a graceful
/// upgrade) stay.
fn remove_leftover_tmp(shared: &Shared) -> io::Result<()> {
    let now = SystemTime::now();
    for file in fs::read_dir(shared.dir.join("tmp"))? {
        let file = file?;
        let name = file.file_name();
        let name = name.to_str().unwrap_or_default();
        let ours = name.starts_with(&shared.tmp_prefix);
        let writer_dead = name
            .split_once('-')
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
            .is_some_and(|pid| !process_runs(pid));
        let old = file
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|m| now.duration_since(m).unwrap_or_default() > STALE_TMP_AGE);
        if ours || writer_dead || old {
            let _ = fs::remove_file(file.path());
        }
    }
    Ok(())
}

/// Whether process `pid` runs, by `/proc`; true where there is no `/proc` to ask.
fn process_runs(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

//! Memory figures of a running process, from /proc.

use std::fs;

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

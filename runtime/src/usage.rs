//! The usage ledger: one JSON record per run, appended to a JSON Lines file.
//!
//! Counts only, never data values: a consumer can send its ledger to the provider for billing
//! and attribution without sending anything about its customers.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot append to usage ledger {path}")]
pub struct UsageError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// What one run used, attributed to the package and its publisher.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UsageRecord {
    pub run_id: String,
    pub time: String,
    pub package: String,
    pub version: String,
    pub publisher: String,
    /// SHA-256 of the component that ran.
    pub component_sha256: String,
    /// `ok` or `error`.
    pub status: &'static str,
    pub rows_scored: u64,
    /// Calls to the model's `score`.
    pub batches: u64,
    /// Partitions scored (partition mode; 0 in row mode).
    pub partitions: u64,
    pub inference_calls: u64,
    /// CPU time of the process during the run (user + system), all threads.
    pub cpu_time_s: f64,
    pub wall_time_s: f64,
    pub fuel: u64,
    /// Hash of the run's last audit line, tying this record to the audit trail.
    pub audit_head: Option<String>,
}

/// Appends `record` as one line and syncs it.
pub fn append(path: &Path, record: &UsageRecord) -> Result<(), UsageError> {
    let error = |source| UsageError {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let mut line = serde_json::to_string(record).map_err(|e| error(std::io::Error::other(e)))?;
    line.push('\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(error)?;
    file.write_all(line.as_bytes()).map_err(error)?;
    file.sync_data().map_err(error)
}

/// This process's peak resident set size so far (`VmHWM` in /proc/self/status), in bytes; 0
/// where the kernel does not say. The kernel's own high-water mark for this process image:
/// unlike a parent's `wait4` figure, it never includes the memory of whoever started it.
pub fn process_peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// User plus system CPU time of this process so far.
pub fn process_cpu_time() -> std::time::Duration {
    // /proc/self/stat fields 14 and 15 (utime, stime) count clock ticks of all threads; Linux
    // reports them in USER_HZ, which is 100 on every architecture it supports.
    const TICKS_PER_SECOND: u64 = 100;
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // The command name (field 2) may hold spaces; fields are counted after its ')'.
            let after_name = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    std::time::Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_append_one_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage/ledger.jsonl");
        let record = UsageRecord {
            run_id: "r".into(),
            time: "t".into(),
            package: "p".into(),
            version: "1".into(),
            publisher: "acme".into(),
            component_sha256: "00".into(),
            status: "ok",
            rows_scored: 7,
            batches: 1,
            partitions: 0,
            inference_calls: 1,
            cpu_time_s: 0.5,
            wall_time_s: 1.0,
            fuel: 10,
            audit_head: None,
        };
        append(&path, &record).unwrap();
        append(&path, &record).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        let parsed: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(parsed["rows_scored"], 7);
        assert_eq!(parsed["publisher"], "acme");
    }

    #[test]
    fn cpu_time_counts_a_busy_half_second() {
        let start = process_cpu_time();
        let began = std::time::Instant::now();
        let mut x = 0u64;
        while began.elapsed() < std::time::Duration::from_millis(500) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        // Even on a loaded machine a spinning thread gets a fair share of half a second.
        let spent = process_cpu_time().saturating_sub(start);
        assert!(spent >= std::time::Duration::from_millis(100), "{spent:?}");
    }
}

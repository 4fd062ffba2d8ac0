//! The usage ledger: one JSON record per run, appended to a JSON Lines file.
//!
//! The ledger is the one record meant to leave the consumer: it is sent to the provider for
//! billing and attribution. So it holds only what the host determines without the model's
//! help: the package's identity, the run's UTC date, its status, and, for a run that succeeded,
//! the rows read after the policy's filter, the partitions and the batches the host cut them
//! into. Anything the model can steer (fuel burnt, inference calls, CPU and wall time, rows it
//! returned, the audit chain's head, which hashes guest-chosen text) would let a hostile model
//! encode the consumer's data in the record its author receives: those figures go to the
//! consumer's own audit trail instead. A failed run records zero counts, since how far it got is
//! the model's choice. What remains, and cannot be closed, is one bit per run: whether it
//! succeeded.

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

/// What one run used, attributed to the package and its publisher. Every field is decided by the
/// host before or around the model, never by it (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageRecord {
    pub run_id: String,
    /// The run's UTC date, `YYYY-MM-DD`: as fine as billing needs, too coarse to time the model.
    pub date: String,
    pub package: String,
    pub version: String,
    pub publisher: String,
    /// SHA-256 of the component that ran.
    pub component_sha256: String,
    /// `ok` or `error`.
    pub status: &'static str,
    /// Rows read from the table after the policy's filter (0 for a failed run).
    pub rows_read: u64,
    /// Partitions read (partition mode; 0 in row mode or for a failed run).
    pub partitions: u64,
    /// Batches the host cut the rows into, one call to the model's `score` each (0 for a
    /// failed run).
    pub batches: u64,
}

impl UsageRecord {
    /// The record of a run: counts only if it succeeded, since a model that fails on purpose
    /// after k batches would otherwise report k.
    pub fn of_run(identity: PackageIdentity, run_id: &str, date: &str, outcome: RunCounts) -> Self {
        let succeeded = outcome.succeeded;
        let count = |n: u64| if succeeded { n } else { 0 };
        UsageRecord {
            run_id: run_id.to_owned(),
            date: date.to_owned(),
            package: identity.name,
            version: identity.version,
            publisher: identity.publisher,
            component_sha256: identity.component_sha256,
            status: if succeeded { "ok" } else { "error" },
            rows_read: count(outcome.rows_read),
            partitions: count(outcome.partitions),
            batches: count(outcome.batches),
        }
    }
}

/// Who is credited: the package's manifest and component, as verified before the run.
#[derive(Debug, Clone)]
pub struct PackageIdentity {
    pub name: String,
    pub version: String,
    pub publisher: String,
    pub component_sha256: String,
}

/// The host's own counts of a run.
#[derive(Debug, Clone, Copy)]
pub struct RunCounts {
    pub succeeded: bool,
    pub rows_read: u64,
    pub partitions: u64,
    pub batches: u64,
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
    // Runs sharing a ledger append under a lock, so their lines never interleave.
    file.lock().map_err(error)?;
    let written = file
        .write_all(line.as_bytes())
        .and_then(|()| file.sync_data());
    let unlocked = file.unlock();
    written.and(unlocked).map_err(error)
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
        let record = UsageRecord::of_run(identity(), "r", "2026-12-01", counts(true));
        append(&path, &record).unwrap();
        append(&path, &record).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        let parsed: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(parsed["rows_read"], 7);
        assert_eq!(parsed["publisher"], "acme");
        // Nothing the model can steer has a field here.
        let fields: Vec<&str> = parsed
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for steerable in [
            "fuel",
            "inference_calls",
            "cpu_time_s",
            "wall_time_s",
            "audit_head",
        ] {
            assert!(!fields.contains(&steerable), "{fields:?}");
        }
    }

    fn identity() -> PackageIdentity {
        PackageIdentity {
            name: "p".into(),
            version: "1.0.0".into(),
            publisher: "acme".into(),
            component_sha256: "00".into(),
        }
    }

    fn counts(succeeded: bool) -> RunCounts {
        RunCounts {
            succeeded,
            rows_read: 7,
            partitions: 0,
            batches: 1,
        }
    }

    /// A model that fails after k batches must not be able to report k.
    #[test]
    fn a_failed_run_counts_nothing() {
        let record = UsageRecord::of_run(identity(), "r", "2026-12-01", counts(false));
        assert_eq!(record.status, "error");
        assert_eq!(
            (record.rows_read, record.partitions, record.batches),
            (0, 0, 0)
        );
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

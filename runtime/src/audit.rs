//! The audit trail: one JSON object per line, hash-chained, appended with fsync.
//!
//! Every line carries `seq` (its position in the file, from 1), `prev` (the previous line's
//! `hash`; 64 zeros on the first line) and `hash`: the SHA-256 of the line's canonical JSON
//! without the `hash` key (keys sorted, no spaces). Editing a line breaks its own hash;
//! editing it *and* recomputing its hash breaks the next line's `prev`; deleting or reordering
//! lines breaks `seq`. Only the end of the log has no successor to vouch for it: the hash of a
//! run's last line is its *head*, printed in the run's summary (kept by the consumer, not in the
//! usage ledger, whose readers must learn nothing a model chose) and checked by
//! `cordon audit verify --head`.
//!
//! A line is written whole with one `write` and synced before the run goes on, so a run killed
//! at any point leaves every earlier line intact; a partial last line is ignored by `verify`
//! and cut off when the log is next opened.
//!
//! Several runs may share one log (two `cordon run`s at once, a server's runs): each append
//! takes an exclusive lock on the file, reads and checks whatever other runs appended since,
//! and only then numbers and chains its own line, so concurrent runs interleave into one valid
//! chain. No line is longer than [`MAX_LINE_BYTES`]: a run whose event would be (text a model
//! chose, say) writes it with its long strings cut, so a hostile model cannot write a line the
//! verifier rejects and with it stop every later run under the same policy.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// `prev` of the first line of a log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest line `verify` reads; anything longer is not a line Cordon wrote.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Longest string value kept whole in an event that would otherwise exceed
/// [`MAX_LINE_BYTES`].
const MAX_STRING_IN_LONG_EVENT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot write audit log {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read audit log {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit log {path} does not verify: cannot continue a broken chain ({why})")]
    Broken { path: PathBuf, why: String },
}

/// The canonical form hashed: sorted keys (serde_json's default map), compact.
fn canonical_hash(object: &Map<String, Value>) -> String {
    let text = Value::Object(object.clone()).to_string();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// An open audit log that events are appended to.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    run_id: String,
    /// The chain as far as this process has read and checked it.
    chain: Chain,
}

/// Where a verified chain ends: how many lines, the last one's hash, and the byte offset after
/// it.
#[derive(Debug, Clone)]
struct Chain {
    lines: u64,
    prev: String,
    end: u64,
}

impl Chain {
    fn start() -> Chain {
        Chain {
            lines: 0,
            prev: GENESIS.to_owned(),
            end: 0,
        }
    }
}

impl AuditLog {
    /// Opens (or creates) the log at `path` for a run, after checking its chain so that a new
    /// run never extends a tampered log. A partial last line left by a killed run is cut off.
    pub fn open(path: &Path, run_id: &str) -> Result<AuditLog, AuditError> {
        let write_error = |source| AuditError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_error)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(write_error)?;
        let mut log = AuditLog {
            path: path.to_owned(),
            file,
            run_id: run_id.to_owned(),
            chain: Chain::start(),
        };
        // Checked (and a killed run's partial line cut off) under the lock, as an append is.
        log.file.lock().map_err(write_error)?;
        let caught_up = log.catch_up();
        log.file.unlock().map_err(write_error)?;
        caught_up?;
        Ok(log)
    }

    /// With the lock held: reads and checks the lines appended since this process last looked
    /// (all of them, the first time), and cuts off a partial last line, which only a writer
    /// killed mid-write leaves (every writer writes under the lock).
    fn catch_up(&mut self) -> Result<(), AuditError> {
        let path = self.path.clone();
        let write_error = |source| AuditError::Write {
            path: path.clone(),
            source,
        };
        let len = self.file.metadata().map_err(write_error)?.len();
        if len == self.chain.end {
            return Ok(());
        }
        if len < self.chain.end {
            return Err(AuditError::Broken {
                path: self.path.clone(),
                why: format!(
                    "it shrank from {} to {len} bytes while this run was appending to it",
                    self.chain.end
                ),
            });
        }
        let mut reader = &self.file;
        reader
            .seek(SeekFrom::Start(self.chain.end))
            .map_err(write_error)?;
        let report =
            verify_from(&mut BufReader::new(reader), self.chain.clone()).map_err(|e| match e {
                VerifyError::Read(source) => AuditError::Read {
                    path: self.path.clone(),
                    source,
                },
                VerifyError::Broken { line, why } => AuditError::Broken {
                    path: self.path.clone(),
                    why: format!("line {line}: {why}"),
                },
            })?;
        let end = self.chain.end + report.bytes;
        if report.partial_tail_bytes > 0 {
            self.file.set_len(end).map_err(write_error)?;
            self.file.sync_all().map_err(write_error)?;
        }
        self.chain = Chain {
            lines: report.lines,
            prev: report.head.unwrap_or_else(|| GENESIS.to_owned()),
            end,
        };
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hash of the last line written or read: the chain's head.
    pub fn head(&self) -> &str {
        &self.chain.prev
    }

    /// Appends one event. `fields` must be a JSON object; `event`, `run_id`, `time`, `seq`,
    /// `prev` and `hash` are added here.
    pub fn append(&mut self, event: &str, fields: Value) -> Result<(), AuditError> {
        let object = self.event_object(event, fields);
        let path = self.path.clone();
        let write_error = |source| AuditError::Write { path, source };
        if let Err(source) = self.file.lock() {
            return Err(write_error(source));
        }
        let written = self.append_locked(object);
        let unlocked = self.file.unlock();
        written.and(unlocked.map_err(write_error))
    }

    /// Appends several events with one write and one fsync: what a server does with the
    /// events of many request batches, so that recording them does not cost a disk flush each.
    pub fn append_all(&mut self, events: Vec<(String, Value)>) -> Result<(), AuditError> {
        if events.is_empty() {
            return Ok(());
        }
        let objects: Vec<Map<String, Value>> = events
            .into_iter()
            .map(|(event, fields)| self.event_object(&event, fields))
            .collect();
        let path = self.path.clone();
        let write_error = |source| AuditError::Write { path, source };
        if let Err(source) = self.file.lock() {
            return Err(write_error(source));
        }
        let written = self.append_locked_all(objects);
        let unlocked = self.file.unlock();
        written.and(unlocked.map_err(write_error))
    }

    /// `fields` with the members every line has before it is chained.
    fn event_object(&self, event: &str, fields: Value) -> Map<String, Value> {
        let mut object = match fields {
            Value::Object(object) => object,
            other => {
                let mut object = Map::new();
                object.insert("detail".into(), other);
                object
            }
        };
        object.insert("event".into(), json!(event));
        object.insert("run_id".into(), json!(self.run_id));
        object.insert("time".into(), json!(rfc3339_now()));
        object
    }

    fn append_locked(&mut self, object: Map<String, Value>) -> Result<(), AuditError> {
        self.append_locked_all(vec![object])
    }

    fn append_locked_all(&mut self, objects: Vec<Map<String, Value>>) -> Result<(), AuditError> {
        // Other runs may have appended since: their lines come first in the chain.
        self.catch_up()?;
        let mut chain = self.chain.clone();
        let mut lines = String::new();
        for mut object in objects {
            let seq = chain.lines + 1;
            object.insert("seq".into(), json!(seq));
            object.insert("prev".into(), json!(chain.prev));
            let unhashed_bytes = Value::Object(object.clone()).to_string().len();
            if unhashed_bytes + 1 + HASH_MEMBER_BYTES > MAX_LINE_BYTES {
                object = shortened(object, unhashed_bytes);
            }
            let hash = canonical_hash(&object);
            object.insert("hash".into(), json!(hash));
            let mut line = Value::Object(object).to_string();
            line.push('\n');
            chain = Chain {
                lines: seq,
                prev: hash,
                end: chain.end + line.len() as u64,
            };
            lines.push_str(&line);
        }
        // One write, then fsync: the lines are on disk before the run takes its next step.
        let write_error = |source| AuditError::Write {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(lines.as_bytes()).map_err(write_error)?;
        self.file.sync_data().map_err(write_error)?;
        self.chain = chain;
        Ok(())
    }
}

/// Bytes the `"hash":"<64 hex>",` member adds to a line.
const HASH_MEMBER_BYTES: usize = 76;

/// An event too long for one line, with every long string cut to [`MAX_STRING_IN_LONG_EVENT`]
/// bytes; if that is still too long (a huge list of short strings), its fields are replaced by
/// a note of their size. Either way the line says it was shortened.
fn shortened(object: Map<String, Value>, original_bytes: usize) -> Map<String, Value> {
    fn cut(value: Value) -> Value {
        match value {
            Value::String(text) if text.len() > MAX_STRING_IN_LONG_EVENT => {
                let mut end = MAX_STRING_IN_LONG_EVENT;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                Value::String(format!(
                    "{}… ({} bytes cut)",
                    text.get(..end).unwrap_or_default(),
                    text.len() - end
                ))
            }
            Value::Array(items) => Value::Array(items.into_iter().map(cut).collect()),
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, cut(v))).collect())
            }
            other => other,
        }
    }
    let kept = ["event", "run_id", "time", "seq", "prev"];
    let mut short: Map<String, Value> = object.into_iter().map(|(k, v)| (k, cut(v))).collect();
    short.insert("shortened_from_bytes".into(), json!(original_bytes));
    if Value::Object(short.clone()).to_string().len() + 1 + HASH_MEMBER_BYTES > MAX_LINE_BYTES {
        short.retain(|key, _| kept.contains(&key.as_str()) || key == "shortened_from_bytes");
    }
    short
}

/// What `verify` found in a log that checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Complete lines checked.
    pub lines: u64,
    /// The last line's hash, if any.
    pub head: Option<String>,
    /// Bytes of a partial last line (a run killed mid-write), ignored.
    pub partial_tail_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read the log")]
    Read(#[source] std::io::Error),
    #[error("line {line}: {why}")]
    Broken { line: u64, why: String },
}

/// Checks a whole log file.
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyError> {
    let file = File::open(path).map_err(VerifyError::Read)?;
    let report = verify_from(&mut BufReader::new(file), Chain::start())?;
    Ok(VerifyReport {
        lines: report.lines,
        head: report.head,
        partial_tail_bytes: report.partial_tail_bytes,
    })
}

/// What [`verify_from`] read.
struct ChainReport {
    /// Lines of the whole chain (the start's and those read).
    lines: u64,
    head: Option<String>,
    partial_tail_bytes: u64,
    /// Bytes of the complete lines read.
    bytes: u64,
}

/// Checks lines from a reader positioned just after the chain `start`, continuing it.
fn verify_from<R: Read>(
    reader: &mut BufReader<R>,
    start: Chain,
) -> Result<ChainReport, VerifyError> {
    let mut prev = start.prev;
    let mut lines = start.lines;
    let mut bytes = 0u64;
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let read = reader
            .by_ref()
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buffer)
            .map_err(VerifyError::Read)?;
        if read == 0 {
            break;
        }
        let number = lines + 1;
        let broken = |why: String| VerifyError::Broken { line: number, why };
        if buffer.last() != Some(&b'\n') {
            if buffer.len() > MAX_LINE_BYTES {
                return Err(broken(format!("longer than {MAX_LINE_BYTES} bytes")));
            }
            // A partial last line: the run that wrote it was killed mid-write.
            return Ok(ChainReport {
                lines,
                head: (lines > 0).then_some(prev),
                partial_tail_bytes: buffer.len() as u64,
                bytes,
            });
        }
        let mut object = match serde_json::from_slice::<Value>(&buffer) {
            Ok(Value::Object(object)) => object,
            _ => return Err(broken("not a JSON object (edited?)".into())),
        };
        let Some(Value::String(recorded)) = object.remove("hash") else {
            return Err(broken("no `hash`".into()));
        };
        // The hash covers the line exactly as written, less its `hash` member (keys are
        // sorted, so that member sits between `event` and `prev`). It is checked on the text,
        // not on the parsed values written out again: a float's decimal text does not always
        // parse back to the same f64, and a verifier must not call such a line edited.
        let text = std::str::from_utf8(&buffer)
            .map_err(|_| broken("not UTF-8 (edited?)".into()))?
            .trim_end_matches('\n');
        let member = format!("\"hash\":{},", Value::String(recorded.clone()));
        let Some((before, after)) = text
            .find(&member)
            .and_then(|at| text.get(..at).zip(text.get(at + member.len()..)))
        else {
            return Err(broken(
                "its `hash` is not where Cordon writes it (edited?)".into(),
            ));
        };
        let hashed = format!("{before}{after}");
        if hex::encode(Sha256::digest(hashed.as_bytes())) != recorded {
            return Err(broken(
                "its content does not match its hash: the line was edited".into(),
            ));
        }
        match object.get("seq").and_then(Value::as_u64) {
            Some(seq) if seq == number => {}
            Some(seq) if seq > number => {
                return Err(broken(format!(
                    "it is entry {seq}, but entry {number} was expected: lines are missing before it"
                )));
            }
            Some(seq) => {
                return Err(broken(format!(
                    "it is entry {seq}, but entry {number} was expected: lines were reordered or duplicated"
                )));
            }
            None => return Err(broken("no `seq`".into())),
        }
        if object.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
            let previous = if number == 1 {
                "the start of the log".to_string()
            } else {
                format!("line {}", number - 1)
            };
            return Err(broken(format!(
                "its `prev` does not match the hash of {previous}: the chain was rewritten"
            )));
        }
        prev = recorded;
        lines = number;
        bytes += buffer.len() as u64;
    }
    Ok(ChainReport {
        lines,
        head: (lines > 0).then_some(prev),
        partial_tail_bytes: 0,
        bytes,
    })
}

/// Reads a verified log's events, in order, for `cordon audit show`.
pub fn read_events(path: &Path) -> Result<Vec<Map<String, Value>>, VerifyError> {
    let report = verify(path)?;
    let file = File::open(path).map_err(VerifyError::Read)?;
    let mut events = Vec::new();
    for line in BufReader::new(file).lines().take(report.lines as usize) {
        let line = line.map_err(VerifyError::Read)?;
        if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&line) {
            events.push(object);
        }
    }
    Ok(events)
}

/// Today's UTC date as `YYYY-MM-DD`.
pub fn utc_date_now() -> String {
    rfc3339_now().chars().take(10).collect()
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs() as i64;
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests;

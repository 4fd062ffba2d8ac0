//! `cordon audit verify` and `cordon audit show`: the consumer's reading of its trail.

use std::path::{Path, PathBuf};

use anyhow::Context;

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; name the first edited, missing or reordered line.
    Verify {
        /// The audit log (JSON Lines).
        log: PathBuf,
        /// The expected hash of the last line (the `audit_head` a run's summary printed):
        /// also catches lines cut off the end.
        #[arg(long, value_name = "HASH")]
        head: Option<String>,
    },
    /// Print the log as a readable table (after verifying it).
    Show {
        /// The audit log (JSON Lines).
        log: PathBuf,
    },
}

pub fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { log, head } => verify(&log, head.as_deref()),
        AuditCommand::Show { log } => show(&log),
    }
}

fn verify(log: &Path, head: Option<&str>) -> anyhow::Result<()> {
    let report = cordon::audit::verify(log)
        .with_context(|| format!("audit log {} does not verify", log.display()))?;
    let last = report.head.as_deref().unwrap_or(cordon::audit::GENESIS);
    if let Some(expected) = head
        && expected != last
    {
        anyhow::bail!(
            "audit log {} does not verify: it ends at {last}, not at the expected head {expected} (lines were cut off the end, or it is another log)",
            log.display()
        );
    }
    println!(
        "{}: {} lines verify; head {last}",
        log.display(),
        report.lines
    );
    if report.partial_tail_bytes > 0 {
        println!(
            "  ignored a partial last line of {} bytes (a run killed while writing it)",
            report.partial_tail_bytes
        );
    }
    Ok(())
}

fn show(log: &Path) -> anyhow::Result<()> {
    let events = cordon::audit::read_events(log)
        .with_context(|| format!("audit log {} does not verify", log.display()))?;
    println!(
        "{:>5}  {:<24}  {:<8}  {:<12}  details",
        "seq", "time", "run", "event"
    );
    for event in events {
        let text = |key: &str| {
            event
                .get(key)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .unwrap_or_default()
        };
        let details: Vec<String> = event
            .iter()
            .filter(|(key, _)| {
                !["seq", "time", "run_id", "event", "prev", "hash"].contains(&key.as_str())
            })
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let run: String = text("run_id").chars().take(8).collect();
        println!(
            "{:>5}  {:<24}  {:<8}  {:<12}  {}",
            text("seq"),
            text("time"),
            run,
            text("event"),
            cordon::sandbox::sanitize(&details.join(" "), 400)
        );
    }
    Ok(())
}

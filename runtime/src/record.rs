//! What every driver records, in one place: the consumer's audit trail (hash-chained, with
//! everything a run did) and the provider's usage ledger (only what the model cannot steer).
//! A driver reports the steps of its run here; it never writes either file itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::Digest;

use crate::audit::{self, AuditLog};
use crate::error::RunError;
use crate::grant::Grant;
use crate::manifest::InputMode;
use crate::policy::{AuditPolicy, Policy};
use crate::prepare::ModelFacts;
use crate::scorer::Totals;
use crate::source::PartitionRead;
use crate::usage::{self, PackageIdentity, RunCounts, UsageRecord};

/// How far a run got, as the trail's `run-end` and the ledger report it.
#[derive(Debug, Default)]
pub struct RunFacts {
    pub rows_in: u64,
    pub rows_out: u64,
    pub batches: u64,
    pub partitions: u64,
    pub totals: Totals,
}

/// One run's recorder: its id and UTC day, its audit trail (when the policy asks for one) and
/// where its usage record goes.
pub struct RunRecorder {
    run_id: String,
    /// Taken before any guest code runs: the ledger's only time.
    date: String,
    started: Instant,
    cpu_at_start: Duration,
    log: Option<AuditLog>,
    audit: Option<AuditPolicy>,
    /// Known once the package has loaded; the usage record is written only then.
    package: Option<PackageIdentity>,
}

impl RunRecorder {
    /// Starts recording a run that began at `started` under `policy`, which says where the
    /// trail and ledger go.
    pub fn open(policy: &Policy, started: Instant) -> Result<RunRecorder, RunError> {
        let run_id = new_run_id();
        let log = match &policy.audit {
            Some(audit) => Some(AuditLog::open(&audit.log, &run_id)?),
            None => None,
        };
        Ok(RunRecorder {
            run_id,
            date: audit::utc_date_now(),
            started,
            cpu_at_start: usage::process_cpu_time(),
            log,
            audit: policy.audit.clone(),
            package: None,
        })
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Hash of the last audit line this run wrote.
    pub fn head(&self) -> Option<String> {
        self.log.as_ref().map(|log| log.head().to_owned())
    }

    fn record(&mut self, event: &str, fields: serde_json::Value) -> Result<(), RunError> {
        match &mut self.log {
            Some(log) => Ok(log.append(event, fields)?),
            None => Ok(()),
        }
    }

    /// A run whose package did not load or verify: what it was asked to start.
    pub fn refused_start(
        &mut self,
        package_dir: &std::path::Path,
        policy: &Policy,
    ) -> Result<(), RunError> {
        self.record(
            "run-start",
            json!({ "package": package_dir, "policy": policy.path }),
        )
    }

    /// The verified package this run starts: what it is, who signed it, its graphs. The
    /// usage record names the package from here on.
    pub fn run_start(&mut self, model: &ModelFacts, policy: &Policy) -> Result<(), RunError> {
        self.package = Some(model.identity.clone());
        let identity = &model.identity;
        self.record(
            "run-start",
            json!({
                "package": identity.name,
                "version": identity.version,
                "publisher": identity.publisher,
                "component_sha256": identity.component_sha256,
                "package_digest": model.package_digest,
                "signature": match &model.signature {
                    Some(verified) => json!(verified),
                    None => json!("unsigned, run with allow-unsigned"),
                },
                "graphs": model.graphs.iter().map(|(name, sha256)| json!({
                    "name": name, "sha256": sha256,
                })).collect::<Vec<_>>(),
                "policy": policy.path,
                "cordon_version": env!("CARGO_PKG_VERSION"),
            }),
        )
    }

    /// What the policy granted the model: the intersection of asked and allowed.
    pub fn grant(
        &mut self,
        model: &ModelFacts,
        grant: &Grant,
        policy: &Policy,
    ) -> Result<(), RunError> {
        self.record(
            "grant",
            json!({
                "role": grant.role,
                "input": grant.input.name,
                "asked": model.asked,
                "granted": grant.input.columns.iter().map(|c| json!({
                    "column": c.model, "source": c.source,
                })).collect::<Vec<_>>(),
                "key_held_back": grant.input.key,
                "output": grant.output.name,
                "sink": grant.output.sink,
                "graphs": grant.graphs.iter().map(|g| json!({
                    "name": g.spec.name, "device": g.device,
                })).collect::<Vec<_>>(),
                "limits": policy.limits,
                "settings": grant.settings,
                "out_of_domain": grant.input.out_of_domain,
            }),
        )
    }

    /// What entered the sandbox: one `data-read` event for the input in row mode, one per
    /// partition in partition mode (with its key and rows).
    pub fn data_read(
        &mut self,
        grant: &Grant,
        rows: u64,
        partitions: &[PartitionRead],
    ) -> Result<(), RunError> {
        let input = &grant.input;
        let event = |partition: Option<&PartitionRead>, rows: u64| {
            json!({
                "input": input.name,
                "source": input.source,
                "columns": input.columns.iter().map(|c| json!({
                    "column": c.model, "source": c.source, "mask": c.mask, "role_mask": c.role_mask,
                })).collect::<Vec<_>>(),
                "filter": input.filter,
                "role": grant.role,
                "mode": input.mode,
                "partition": partition.map(|p| &p.key),
                "rows": rows,
            })
        };
        match input.mode {
            InputMode::Row => self.record("data-read", event(None, rows)),
            InputMode::Partition => {
                for partition in partitions {
                    self.record("data-read", event(Some(partition), partition.rows))?;
                }
                Ok(())
            }
        }
    }

    /// What the instances' wasi-nn hosts refused, and the calls per graph.
    pub fn inference(&mut self, totals: &Totals) -> Result<(), RunError> {
        for incident in &totals.incidents {
            self.record("denial", json!({ "what": "wasi-nn", "why": incident }))?;
        }
        for (graph, calls) in &totals.calls_by_graph {
            self.record(
                "inference",
                json!({
                    "graph": graph,
                    "calls": calls,
                    "peak_tensor_bytes": totals.peak_tensor_bytes,
                }),
            )?;
        }
        Ok(())
    }

    /// Values outside the manifest's domains that entered the sandbox because the policy says
    /// to count them (`out-of-domain = "count"`): one event per column.
    pub fn out_of_domain(&mut self, input: &str, totals: &Totals) -> Result<(), RunError> {
        for (column, values) in &totals.out_of_domain {
            self.record(
                "out-of-domain",
                json!({ "input": input, "column": column, "values": values, "policy": "count" }),
            )?;
        }
        Ok(())
    }

    /// The output the run put in place.
    pub fn output_write(
        &mut self,
        output: &str,
        sink: &std::path::Path,
        rows: u64,
    ) -> Result<(), RunError> {
        self.record(
            "output-write",
            json!({ "output": output, "sink": sink, "rows": rows }),
        )
    }

    /// Ends the run: a denial when the model or package was refused, `run-end` with what the
    /// model steered (for the consumer's trail only), and the usage record with what it did
    /// not. Returns how long the run took.
    pub fn finish<T>(
        &mut self,
        result: &Result<T, RunError>,
        facts: &RunFacts,
    ) -> Result<Duration, RunError> {
        let wall_time = self.end(result, facts)?;
        if let Some(package) = self.package.clone() {
            self.usage(package, result.is_ok(), facts)?;
        }
        Ok(wall_time)
    }

    /// Events of a long-running driver (`cordon serve`'s request batches), appended together
    /// with one flush.
    pub fn events(&mut self, events: Vec<(String, serde_json::Value)>) -> Result<(), RunError> {
        match &mut self.log {
            Some(log) => Ok(log.append_all(events)?),
            None => Ok(()),
        }
    }

    /// Whether the policy keeps a trail and a ledger.
    pub fn audited(&self) -> Option<&AuditPolicy> {
        self.audit.as_ref()
    }

    /// The run's id as the ledger names it.
    pub fn package(&self) -> Option<&PackageIdentity> {
        self.package.as_ref()
    }

    /// A query of the SQL driver (`cordon sql`): its text as parsed, the role, the tables it
    /// reads and every model function call with the columns its arguments come from.
    pub fn query(&mut self, fields: serde_json::Value) -> Result<(), RunError> {
        self.record("query", fields)
    }

    /// The trail's end of the run: a denial when the model or package was refused, and
    /// `run-end` with what the model steered (for the consumer's trail only). Returns how long
    /// the run took.
    pub fn end<T>(
        &mut self,
        result: &Result<T, RunError>,
        facts: &RunFacts,
    ) -> Result<Duration, RunError> {
        let wall_time = self.started.elapsed();
        if let Err(error) = result
            && let Some(what) = error.denial_kind()
        {
            self.record("denial", json!({ "what": what, "why": error.to_string() }))?;
        }
        let totals = &facts.totals;
        self.record(
            "run-end",
            json!({
                "status": if result.is_ok() { "ok" } else { "error" },
                "error": result.as_ref().err().map(|e| format!("{e}")),
                "rows_in": facts.rows_in,
                "rows_out": facts.rows_out,
                "batches": facts.batches,
                "partitions": facts.partitions,
                "wall_time_s": wall_time.as_secs_f64(),
                "cpu_time_s": usage::process_cpu_time()
                    .saturating_sub(self.cpu_at_start)
                    .as_secs_f64(),
                "fuel": totals.fuel_consumed,
                "inference_calls": totals.inference_calls,
                "peak_guest_memory_bytes": totals.peak_memory,
            }),
        )?;
        Ok(wall_time)
    }

    /// The usage record of `package` in this run, from the host's counts in `facts` (zero
    /// unless the run `succeeded`).
    pub fn usage(
        &mut self,
        package: PackageIdentity,
        succeeded: bool,
        facts: &RunFacts,
    ) -> Result<(), RunError> {
        if let Some(audit) = &self.audit {
            let counts = RunCounts {
                succeeded,
                rows_read: facts.rows_in,
                partitions: facts.partitions,
                batches: facts.batches,
            };
            let record = UsageRecord::of_run(package, &self.run_id, &self.date, counts);
            usage::append(&audit.usage, &record)?;
        }
        Ok(())
    }
}

/// A run id: 128 bits from the clock, the process id and a counter, hashed.
fn new_run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = format!("{nanos}-{}-{count}", std::process::id());
    let digest = sha2::Sha256::digest(seed.as_bytes());
    hex::encode(digest.get(..16).unwrap_or_default())
}

//! The `cordon` command. The only place that reads arguments and environment variables, and
//! the only place that decides the exit code: 0 on success, 2 on any error, with the whole
//! cause chain on stderr.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cordon::run::Progress;
use cordon::{RunRequest, RunSummary, Runtime, RuntimeConfig};

#[derive(Parser)]
#[command(
    name = "cordon",
    version,
    about = "Run third-party models in a WebAssembly sandbox on data their authors never see"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a package on the tables its policy binds, and write the outputs the policy names.
    Run(RunArgs),
    /// Check a policy against a package and its tables without running anything: the grant,
    /// and every filter, mask and column expression planned against the table (no row read).
    Check(CheckArgs),
    /// Pack a provider's build directory into one NAME-VERSION.cordon file (deterministic).
    Pack {
        /// The directory holding cordon.toml, the component and the graphs.
        dir: PathBuf,
        /// Where to write the package.
        #[arg(long, short, default_value = ".")]
        out: PathBuf,
    },
    /// Make an ed25519 key pair: <STEM>.key (private, mode 0600) and <STEM>.pub.
    Keygen {
        /// Path of the key files without extension, such as keys/acme-analytics.
        stem: PathBuf,
    },
    /// Sign a .cordon package: adds a signature (model.sig) over the SHA-256 of every file.
    Sign {
        /// The private key, as `cordon keygen` writes it.
        #[arg(long)]
        key: PathBuf,
        /// The package to sign, in place.
        package: PathBuf,
    },
    /// The permissions screen: who made a package, whether its signature holds, what data it
    /// asks for, what it writes, its graphs and their operators, and what its component
    /// imports. Runs nothing.
    Inspect {
        /// The .cordon package (or a package directory).
        package: PathBuf,
        /// Verify the signature against this policy's [trust]; without it, it is only read.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Print it as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check a package's signature and digests against a policy's [trust] section.
    Verify {
        /// The .cordon package.
        package: PathBuf,
        /// The consumer's policy file.
        #[arg(long)]
        policy: PathBuf,
    },
    /// Draw a forecasting model's output: one small panel per series with its history, the
    /// point forecast and the 80% and 95% intervals, as a PNG.
    Plot {
        /// The forecasts a run wrote: CSV with the series and time columns and yhat, lo80,
        /// hi80, lo95, hi95.
        forecasts: PathBuf,
        /// The history the forecasts were made from (CSV).
        #[arg(long)]
        history: PathBuf,
        /// The column naming the series, in both files.
        #[arg(long)]
        series: String,
        /// The column holding the time label (sorted as text), in both files.
        #[arg(long)]
        time: String,
        /// The history's value column.
        #[arg(long)]
        value: String,
        /// The picture's title.
        #[arg(long, default_value = "Forecasts")]
        title: String,
        /// Where to write the PNG.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Check or read an audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The inference worker a run starts for each sandbox instance (not for direct use).
    #[command(name = "__inference-worker", hide = true)]
    InferenceWorker(WorkerArgs),
}

/// What the host passes an inference worker (see `cordon::nn::jail::worker`).
#[derive(clap::Args)]
struct WorkerArgs {
    #[arg(long)]
    socket: i32,
    #[arg(long)]
    region: i32,
    #[arg(long)]
    region_bytes: u64,
    #[arg(long)]
    onnxruntime: PathBuf,
    #[arg(long)]
    parent: u32,
}

#[derive(Subcommand)]
enum AuditCommand {
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

#[derive(clap::Args)]
struct RunArgs {
    /// The package: a signed .cordon file, or a build directory holding cordon.toml.
    #[arg(long)]
    package: PathBuf,
    /// Run a package that is not signed. For local development only: a warning is printed on
    /// every run and the audit trail records it.
    #[arg(long)]
    allow_unsigned: bool,
    /// The consumer's policy file.
    #[arg(long)]
    policy: PathBuf,
    /// The policy role to run as (required when the policy defines roles).
    #[arg(long)]
    role: Option<String>,
    /// libonnxruntime.so [default: $ORT_DYLIB_PATH, else the copy scripts/setup.sh installs
    /// under .onnxruntime/ in the current directory]
    #[arg(long, value_name = "FILE")]
    onnxruntime: Option<PathBuf>,
    /// Where compiled components are cached [default: $CORDON_CACHE_DIR, else
    /// $XDG_CACHE_HOME/cordon, else ~/.cache/cordon]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile the component on every run.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// The package: a signed .cordon file, or a build directory holding cordon.toml.
    #[arg(long)]
    package: PathBuf,
    /// Accept a package that is not signed (local development only).
    #[arg(long)]
    allow_unsigned: bool,
    /// The consumer's policy file.
    #[arg(long)]
    policy: PathBuf,
    /// The policy role to check (required when the policy defines roles).
    #[arg(long)]
    role: Option<String>,
    /// Print the grant as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    // ONNX Runtime 1.31 keeps a telemetry database and a device id under ~/.cache unless told
    // not to; Cordon's host sends nothing anywhere and writes only what the policy names.
    // SAFETY: set before any thread is started, so nothing reads the environment concurrently.
    unsafe { std::env::set_var("ORT_DISABLE_TELEMETRY", "1") };
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Check(args) => check(args),
        Command::Pack { dir, out } => pack(&dir, &out),
        Command::Keygen { stem } => keygen(&stem),
        Command::Sign { key, package } => sign(&key, &package),
        Command::Inspect {
            package,
            policy,
            json,
        } => inspect(&package, policy.as_deref(), json),
        Command::Verify { package, policy } => verify(&package, &policy),
        Command::Plot {
            forecasts,
            history,
            series,
            time,
            value,
            title,
            out,
        } => plot(&cordon::plot::PlotRequest {
            history: &history,
            forecasts: &forecasts,
            series: &series,
            time: &time,
            value: &value,
            title: &title,
            out: &out,
        }),
        Command::Audit(AuditCommand::Verify { log, head }) => audit_verify(&log, head.as_deref()),
        Command::Audit(AuditCommand::Show { log }) => audit_show(&log),
        Command::InferenceWorker(args) => {
            cordon::nn::jail::worker::run(cordon::nn::jail::worker::WorkerArgs {
                socket_fd: args.socket,
                region_fd: args.region,
                region_bytes: args.region_bytes,
                onnxruntime: args.onnxruntime,
                parent: args.parent,
            })
            .map_err(|why| anyhow::anyhow!("inference worker: {why}"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn pack(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let package = cordon::package::Package::load(dir)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let path = out.join(package.file_name());
    package.write(&path)?;
    println!(
        "{} ({} files, digest sha256:{}, unsigned)",
        path.display(),
        package.files.len(),
        package.digest()
    );
    Ok(())
}

fn keygen(stem: &Path) -> anyhow::Result<()> {
    let key = cordon::signing::generate_key()?;
    let (private, public) = cordon::signing::write_key_pair(&key, stem)?;
    let verifying = key.verifying_key();
    println!("private key {} (keep it secret)", private.display());
    println!("public key  {}", public.display());
    println!("fingerprint {}", cordon::signing::fingerprint(&verifying));
    println!(
        "for a consumer's policy: [trust] <publisher> = [\"{}\"]",
        cordon::signing::policy_form(&verifying)
    );
    Ok(())
}

fn sign(key: &Path, package_path: &Path) -> anyhow::Result<()> {
    let key = cordon::signing::read_signing_key(key)?;
    let package = cordon::package::Package::load(package_path)?;
    let signature = cordon::signing::sign(&package, &key)?;
    // The archive's bytes stay as they are; the signature goes after them, replacing any earlier.
    cordon::archive::replace_signature(package_path, &signature)?;
    println!(
        "signed {} as {} with key {}",
        package_path.display(),
        package.manifest.publisher,
        cordon::signing::fingerprint(&key.verifying_key())
    );
    Ok(())
}

fn verify(package_path: &Path, policy_path: &Path) -> anyhow::Result<()> {
    let base_dir = std::env::current_dir().context("cannot read the current directory")?;
    let policy = cordon::policy::Policy::load(policy_path, &base_dir)?;
    let package = cordon::package::Package::load(package_path)?;
    let verified =
        cordon::signing::verify(&package, policy.trusted_keys(&package.manifest.publisher))?;
    println!(
        "ok: {} {} signed by {} with trusted key {}; {} files match the signed digests (sha256:{})",
        package.manifest.name,
        package.manifest.version,
        verified.publisher,
        verified.key_fingerprint,
        package.files.len(),
        verified.digest
    );
    Ok(())
}

fn inspect(package_path: &Path, policy_path: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let package = cordon::package::Package::load(package_path)?;
    let policy = match policy_path {
        Some(path) => {
            let base_dir = std::env::current_dir().context("cannot read the current directory")?;
            Some(cordon::policy::Policy::load(path, &base_dir)?)
        }
        None => None,
    };
    let trusted = policy
        .as_ref()
        .map(|p| p.trusted_keys(&package.manifest.publisher));
    let rules = policy
        .as_ref()
        .map(cordon::policy::Policy::admission_rules)
        .unwrap_or_default();
    let mut inspection = cordon::inspect::inspect(&package, trusted, &rules);
    inspection.isolation = policy.as_ref().map(|p| p.inference.isolation.to_string());
    if json {
        println!("{}", serde_json::to_string_pretty(&inspection)?);
    } else {
        println!("{inspection}");
    }
    Ok(())
}

fn plot(request: &cordon::plot::PlotRequest) -> anyhow::Result<()> {
    let summary = cordon::plot::plot(request)?;
    println!(
        "{} ({} series, {}x{} px)",
        request.out.display(),
        summary.series,
        summary.width,
        summary.height
    );
    Ok(())
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let base_dir = std::env::current_dir().context("cannot read the current directory")?;
    // Nothing runs, so neither ONNX Runtime nor a compile cache is needed.
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let grant = runtime.check(&RunRequest {
        package_dir: args.package.clone(),
        policy: args.policy.clone(),
        base_dir,
        role: args.role.clone(),
        allow_unsigned: args.allow_unsigned,
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&grant)?);
        return Ok(());
    }
    let input = &grant.input;
    println!(
        "{} grants {} input `{}` from {}{}",
        args.policy.display(),
        args.package.display(),
        input.name,
        input.source.display(),
        grant
            .role
            .as_ref()
            .map(|role| format!(" as role `{role}`"))
            .unwrap_or_default()
    );
    for column in &input.columns {
        let masked = [&column.mask, &column.role_mask]
            .into_iter()
            .flatten()
            .map(|mask| format!(", masked as {mask}"))
            .collect::<String>();
        println!(
            "  {:<20} {:<9} <- {}{masked}",
            column.model.as_str(),
            column.ty.to_string(),
            column.source
        );
    }
    if let Some(filter) = &input.filter {
        println!("  rows where {filter}");
    }
    if !input.key.is_empty() {
        println!("  held back   {}", input.key.join(", "));
    }
    if !input.partition_by.is_empty() {
        let names = |names: &[cordon::names::Name]| {
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  partitions  by {}, ordered by {}",
            names(&input.partition_by),
            names(&input.order_by)
        );
    }
    println!(
        "  output      `{}` -> {}",
        grant.output.name,
        grant.output.sink.display()
    );
    for graph in &grant.graphs {
        println!(
            "  graph       {} on {}, {}",
            graph.spec.name,
            graph.device,
            match grant.isolation {
                cordon::policy::Isolation::Jail => "in a jailed inference worker",
                cordon::policy::Isolation::InProcess => "in this process (isolation = in-process)",
            }
        );
    }
    println!("ok: nothing was run and no row was read");
    Ok(())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let base_dir = std::env::current_dir().context("cannot read the current directory")?;
    let onnxruntime = args
        .onnxruntime
        .clone()
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .or_else(|| find_installed_onnxruntime(&base_dir));
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir.clone().or_else(default_cache_dir)
    };
    let runtime = Runtime::new(RuntimeConfig {
        onnxruntime,
        cache_dir,
        // Inference workers are this binary, re-executed.
        inference_worker: None,
        skip_graph_admission_for_tests: false,
    })?;

    let show_progress = !args.quiet && !args.json && std::io::stderr().is_terminal();
    let progress = ProgressBar::new(show_progress);
    if args.allow_unsigned {
        eprintln!(
            "warning: --allow-unsigned: an unsigned package would run without any check of who made it; for local development only"
        );
    }
    let request = RunRequest {
        package_dir: args.package.clone(),
        policy: args.policy.clone(),
        base_dir,
        role: args.role.clone(),
        allow_unsigned: args.allow_unsigned,
    };
    let summary = runtime
        .run(&request, &progress)
        .with_context(|| format!("run of {} failed", args.package.display()))?;
    progress.finish();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, runtime.onnxruntime_version());
    }
    Ok(())
}

fn audit_verify(log: &Path, head: Option<&str>) -> anyhow::Result<()> {
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

fn audit_show(log: &Path) -> anyhow::Result<()> {
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

/// The library `scripts/setup.sh` installs: `.onnxruntime/onnxruntime/capi/libonnxruntime.so.*`.
fn find_installed_onnxruntime(base_dir: &Path) -> Option<PathBuf> {
    let capi = base_dir.join(".onnxruntime/onnxruntime/capi");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(capi)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    candidates.sort();
    candidates.pop()
}

fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CORDON_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("cordon"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/cordon"))
}

struct ProgressBar {
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressBar {
    fn new(visible: bool) -> Self {
        let bar = visible.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {human_pos} rows scored ({per_sec}) {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        ProgressBar { bar }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for ProgressBar {
    fn rows_written(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(rows);
        }
    }
}

fn print_summary(summary: &RunSummary, onnxruntime: Option<&str>) {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "scored {} rows of `{}` with {} {} from {}",
        summary.rows_out, summary.input, summary.package, summary.version, summary.publisher
    );
    println!("  model        {}", summary.model_description);
    match &summary.signature {
        Some(signed) => println!(
            "  package      sha256:{}, signed by {} (key {})",
            summary.package_digest, signed.publisher, signed.key_fingerprint
        ),
        None => println!(
            "  package      sha256:{}, UNSIGNED (--allow-unsigned)",
            summary.package_digest
        ),
    }
    println!(
        "  output       {} -> {}",
        summary.output,
        summary.sink.display()
    );
    let calls = if summary.partitions > 0 {
        format!("{} partitions", summary.partitions)
    } else {
        format!("{} batches", summary.batches)
    };
    println!(
        "  rows         {} in, {} out, {calls} on {} instance(s)",
        summary.rows_in, summary.rows_out, summary.instances
    );
    let first_batch = match summary.first_batch_ms {
        Some(ms) => format!("first batch after {ms:.1} ms"),
        None => "no batch".to_string(),
    };
    println!(
        "  time         {:.3} s wall, {:.0} rows/s; {first_batch} (+ {:.1} ms runtime setup)",
        summary.wall_time_s, summary.rows_per_second, summary.runtime_setup_ms
    );
    let compile = match &summary.compile {
        cordon::sandbox::CacheOutcome::Hit => "from the compile cache".to_string(),
        cordon::sandbox::CacheOutcome::Miss => "compiled and cached".to_string(),
        cordon::sandbox::CacheOutcome::Rebuilt(why) => format!("recompiled ({why})"),
        cordon::sandbox::CacheOutcome::Disabled => "compiled (no cache)".to_string(),
    };
    println!(
        "  component    {compile} in {:.1} ms; instantiation {:.0} µs",
        summary.compile_time_ms, summary.instantiate_time_us
    );
    println!(
        "  memory       peak guest {:.1} MiB, peak tensors {:.2} MiB, peak host process {:.0} MiB; {} fuel",
        mib(summary.peak_guest_memory_bytes),
        mib(summary.peak_tensor_bytes),
        mib(summary.host_peak_rss_bytes),
        summary.fuel_consumed
    );
    println!(
        "  inference    {} calls, {:.3} s, graphs: {} (ONNX Runtime {})",
        summary.inference_calls,
        summary.inference_time_s,
        if summary.graphs.is_empty() {
            "none".to_string()
        } else {
            summary.graphs.join(", ")
        },
        onnxruntime.unwrap_or("not loaded")
    );
    if !summary.graphs.is_empty() {
        println!("  isolation    {}", summary.inference_isolation);
    }
    for record in &summary.guest_log {
        println!("  model log    [{}] {}", record.level, record.message);
    }
    if summary.guest_log_dropped > 0 {
        println!(
            "  model log    {} more records dropped",
            summary.guest_log_dropped
        );
    }
    for incident in &summary.incidents {
        println!("  refused      {incident}");
    }
    if let (Some(log), Some(head)) = (&summary.audit_log, &summary.audit_head) {
        println!(
            "  audit        run {} -> {} (head {head})",
            summary.run_id,
            log.display()
        );
    }
}

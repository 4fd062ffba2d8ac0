//! `cordon run`: the batch driver, with a progress bar and a summary.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use cordon::run::Progress;
use cordon::{RunSummary, Runtime};

use crate::args::{ModelArgs, RuntimeArgs};

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let runtime = Runtime::new(args.runtime.config()?)?;
    let show_progress = !args.quiet && !args.json && std::io::stderr().is_terminal();
    let progress = ProgressBar::new(show_progress);
    if args.model.allow_unsigned {
        eprintln!(
            "warning: --allow-unsigned: an unsigned package would run without any check of who made it; for local development only"
        );
    }
    let summary = runtime
        .run(&args.model.request()?, &progress)
        .with_context(|| format!("run of {} failed", args.model.package.display()))?;
    progress.finish();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, runtime.onnxruntime_version());
    }
    Ok(())
}

/// A spinner on stderr with the rows scored so far (`cordon run`, `cordon sql`).
pub struct ProgressBar {
    bar: Option<indicatif::ProgressBar>,
    /// Shown only once rows are still being scored this long after the start (`cordon sql`,
    /// where most statements take milliseconds); `None` shows it at once.
    delay: Option<(Instant, Duration)>,
}

impl ProgressBar {
    /// A spinner that appears only if scoring is still going `delay` after now.
    pub fn delayed(visible: bool, delay: Duration) -> Self {
        let progress = ProgressBar::new(visible);
        if let Some(bar) = &progress.bar {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        ProgressBar {
            delay: Some((Instant::now(), delay)),
            ..progress
        }
    }

    pub fn new(visible: bool) -> Self {
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
        ProgressBar { bar, delay: None }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for ProgressBar {
    fn rows_written(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            if let Some((started, delay)) = self.delay
                && bar.is_hidden()
                && started.elapsed() >= delay
            {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
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
    for (column, values) in &summary.out_of_domain {
        println!(
            "  domain       {values} value(s) of `{column}` outside the manifest's domain, scored and counted (out-of-domain = \"count\")"
        );
    }
    if let (Some(log), Some(head)) = (&summary.audit_log, &summary.audit_head) {
        println!(
            "  audit        run {} -> {} (head {head})",
            summary.run_id,
            log.display()
        );
    }
}

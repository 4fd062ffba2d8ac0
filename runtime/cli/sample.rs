//! `cordon test`: a provider runs a package directory on a sample table under a generated local
//! policy, sees its outputs compared with a reference (the training code's own predictions),
//! and reads what the run needed in the form `[resources]` takes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cordon::run::Quiet;
use cordon::{RunRequest, Runtime};

use crate::args::RuntimeArgs;

#[derive(clap::Args)]
pub struct TestArgs {
    /// The package directory (cordon.toml, the component, the graphs).
    dir: PathBuf,
    /// A CSV table of the model's input: its columns are matched to the manifest's input
    /// columns by name, ignoring case, `_`, `-` and spaces (`MonthlyCharges` is
    /// `monthly_charges`).
    #[arg(long)]
    sample: PathBuf,
    /// A CSV of the expected outputs, one row per output row in order; its columns named like
    /// the manifest's outputs are compared (others are ignored).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// The largest absolute difference a number may have from the reference; above it the
    /// command fails.
    #[arg(long, requires = "reference")]
    tolerance: Option<f64>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn test(args: TestArgs) -> anyhow::Result<()> {
    let package = cordon::package::Package::load(&args.dir)?;
    let manifest = &package.manifest;
    let header = csv_header(&args.sample)?;
    let mut columns = Vec::new();
    let mut missing = Vec::new();
    for column in &manifest.input.columns {
        let wanted = loose(column.name.as_str());
        match header.iter().find(|h| loose(h) == wanted) {
            Some(source) => columns.push(format!("{} = {}", column.name, toml_string(source))),
            None => missing.push(column.name.to_string()),
        }
    }
    if !missing.is_empty() {
        bail!(
            "{}: no column for the manifest's input column(s) {} (the sample has: {})",
            args.sample.display(),
            missing.join(", "),
            header.join(", ")
        );
    }
    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    let out = scratch.path().join("outputs.csv");
    let sample = std::path::absolute(&args.sample)?;
    // The most a local run may take: the caps the policy parser allows, one instance (so that
    // the peaks are one instance's), CPU only. Values outside the manifest's domains are scored
    // and counted rather than refused: a provider's sample may hold levels the model never saw
    // on purpose, to see the encoder's unknown-level rule at work.
    let policy = format!(
        "version = 1\n[limits]\nmemory = \"4 GiB\"\nfuel-per-batch = 1_000_000_000_000\nwall-time = \"30m\"\ntensor-bytes = \"1 GiB\"\ninstances = 1\n[inference]\ndevices = [\"cpu\"]\n[bind.{input}]\nsource = {source}\ncolumns = {{ {columns} }}\nout-of-domain = \"count\"\n[emit.{output}]\nsink = {sink}\n",
        input = manifest.input.name,
        output = manifest.output.name,
        source = toml_string(&sample.display().to_string()),
        columns = columns.join(", "),
        sink = toml_string(&out.display().to_string()),
    );
    let policy_path = scratch.path().join("policy.toml");
    std::fs::write(&policy_path, &policy)?;
    let runtime = Runtime::new(args.runtime.config()?)?;
    let summary = runtime
        .run(
            &RunRequest {
                package_dir: args.dir.clone(),
                policy: policy_path,
                base_dir: crate::args::current_dir()?,
                role: None,
                allow_unsigned: true,
            },
            &Quiet,
        )
        .with_context(|| format!("{} failed on {}", args.dir.display(), args.sample.display()))?;

    let partitions = if summary.partitions > 0 {
        format!(" in {} partitions", summary.partitions)
    } else {
        String::new()
    };
    println!(
        "ran {} {} on {}: {} rows in{partitions}, {} out, {:.3} s",
        summary.package,
        summary.version,
        args.sample.display(),
        summary.rows_in,
        summary.rows_out,
        summary.wall_time_s,
    );
    let mut failed = Vec::new();
    if let Some(reference) = &args.reference {
        let got = read_columns(&out)?;
        let want = read_columns(reference)?;
        for column in &manifest.output.columns {
            let name = column.name.as_str();
            let (Some(got), Some(want)) = (got.get(name), want.get(name)) else {
                println!("  {name:<24} not in the reference");
                continue;
            };
            if got.len() != want.len() {
                bail!(
                    "{}: {} rows, the run wrote {}",
                    reference.display(),
                    want.len(),
                    got.len()
                );
            }
            let (line, verdict) = compare(got, want, args.tolerance);
            println!("  {name:<24} {line}");
            if !verdict {
                failed.push(name.to_owned());
            }
        }
    }
    let rows = summary.rows_in.max(1);
    println!("measured needs, in the form [resources] takes (a quarter more than measured):");
    println!("[resources]");
    println!(
        "memory = \"{}\"  # peak guest memory {}",
        mib_above(summary.peak_guest_memory_bytes),
        cordon::units::ByteSize(summary.peak_guest_memory_bytes)
    );
    println!(
        "tensor-bytes = \"{}\"  # peak tensors {}",
        mib_above(summary.peak_tensor_bytes),
        cordon::units::ByteSize(summary.peak_tensor_bytes)
    );
    println!(
        "fuel-per-row = {}  # {} fuel for {} rows",
        (summary.fuel_consumed.div_ceil(rows) as f64 * 1.25).ceil() as u64,
        summary.fuel_consumed,
        summary.rows_in
    );
    if !failed.is_empty() {
        bail!(
            "{} differ from the reference by more than the tolerance",
            failed.join(", ")
        );
    }
    Ok(())
}

/// `text` as a TOML string, whatever it holds (a path or a header may have quotes in it).
pub(crate) fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A column name as the sample and the manifest are matched: lower case, no `_`, `-`, spaces.
fn loose(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// `bytes` and a quarter more, in whole MiB (at least 1).
fn mib_above(bytes: u64) -> String {
    let mib = ((bytes as f64 * 1.25) / (1024.0 * 1024.0)).ceil().max(1.0);
    format!("{mib} MiB")
}

/// The comparison line for one column, and whether it is within `tolerance`: numbers by their
/// largest absolute difference (and where), text by how many cells differ.
fn compare(got: &[String], want: &[String], tolerance: Option<f64>) -> (String, bool) {
    let numbers: Option<Vec<(f64, f64)>> = got
        .iter()
        .zip(want)
        .map(|(g, w)| Some((g.trim().parse().ok()?, w.trim().parse().ok()?)))
        .collect();
    match numbers {
        Some(pairs) => {
            let (row, diff) = pairs.iter().map(|(g, w)| (g - w).abs()).enumerate().fold(
                (0, 0.0f64),
                |best, (row, d)| {
                    if d > best.1 || d.is_nan() {
                        (row, d)
                    } else {
                        best
                    }
                },
            );
            let within = tolerance.is_none_or(|t| diff <= t);
            let bound = tolerance.map_or(String::new(), |t| {
                format!(
                    " ({} tolerance {t})",
                    if within { "within" } else { "ABOVE" }
                )
            });
            (
                format!("max abs diff {diff:e} at row {}{bound}", row + 1),
                within,
            )
        }
        None => {
            let differ = got.iter().zip(want).filter(|(g, w)| g != w).count();
            (
                format!("{differ} of {} cells differ (text)", got.len()),
                differ == 0 || tolerance.is_none(),
            )
        }
    }
}

fn csv_header(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(reader
        .headers()
        .with_context(|| format!("{}: no header line", path.display()))?
        .iter()
        .map(str::to_owned)
        .collect())
}

/// Every column of a CSV file, by header name.
fn read_columns(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    let mut columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (line, record) in reader.records().enumerate() {
        let record = record
            .with_context(|| format!("{}: line {} does not read", path.display(), line + 2))?;
        for (name, value) in header.iter().zip(record.iter()) {
            columns
                .entry(name.clone())
                .or_default()
                .push(value.to_owned());
        }
    }
    Ok(columns)
}

//! Benchmark: `cordon run` end to end against what a data team runs today, plus start-up and
//! scaling with instances. Figures for BENCHMARKS.md, never pass/fail.
//!
//! - **Against Python**: the Telco rows replicated to `CORDON_BENCH_E2E_ROWS` (default 1,000,000;
//!   a comma-separated list for several sizes), as CSV and as Parquet, scored into the same
//!   format by the `cordon` binary (the churn package with the gradient-boosted or the
//!   logistic-regression graph, policies/churn.toml's limits: 2 instances, 1,024-row batches,
//!   one ONNX Runtime thread, compile cache warm) and by `benches/python/baseline.py` (pandas
//!   read, the same features, onnxruntime `InferenceSession.run` in 1,024-row batches, pandas
//!   write) run with `CORDON_BENCH_PYTHON` (scripts/bench.sh makes a virtual environment with
//!   benches/python/requirements.txt). Both run `CORDON_BENCH_RUNS` times (default 3),
//!   alternating; the ratio is taken within each round and its median reported.
//! - **Start-up**: `cordon run` on a 16-row table, with the compile cache warm and with
//!   `--no-cache`, median of 10: the time before the first batch reaches a sandbox (the run's
//!   summary: `runtime_setup_ms` + `first_batch_ms`) and the whole process, timed from outside.
//! - **Instances**: the largest Parquet table at 1, 2, 4, ... instances up to this machine's cores
//!   (at most 16; `CORDON_BENCH_INSTANCES` lists other counts), the gradient-boosted graph and the
//!   MLP on the CPU and, with `CORDON_BENCH_GPU` set (ONNX Runtime from `scripts/setup.sh --gpu`),
//!   the MLP on CUDA at the policy's 1,024 rows per batch and at 16,384.
//!
//! Writes `target/bench/end_to_end.json`.

// A benchmark stops on a broken setup: that is its failure, with its reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cordon::manifest::Device;
use cordon_test_guests::telco_table::write_telco_parquet;
use cordon_test_guests::{CHURN_MODEL, onnxruntime_library, root, with_setting};

const GRAPHS: [(&str, &str); 2] = [
    ("gradient-boosted trees", "churn_gbt.onnx"),
    ("logistic regression", "churn_logreg.onnx"),
];

fn telco() -> PathBuf {
    root().join("examples/churn/data/telco_churn.csv")
}

/// The Telco table's rows repeated to `rows`, each with a fresh customerID, as CSV.
fn write_telco_csv(rows: u64, path: &Path) -> Result<(), Box<dyn Error>> {
    let text = std::fs::read_to_string(telco())?;
    let mut lines = text.lines();
    let header = lines.next().ok_or("empty table")?;
    let body: Vec<&str> = lines.collect();
    let partial = path.with_extension("csv.partial");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&partial)?);
    writeln!(out, "{header}")?;
    for i in 0..rows {
        let line = body[(i % body.len() as u64) as usize];
        let (_, rest) = line.split_once(',').ok_or("a line without a comma")?;
        writeln!(out, "C{i:09},{rest}")?;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(partial, path)?;
    Ok(())
}

/// Generates the table once into target/bench-data/.
fn table(rows: u64, format: &str) -> Result<PathBuf, Box<dyn Error>> {
    let dir = root().join("target/bench-data");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("telco_{rows}.{format}"));
    if !path.is_file() {
        eprintln!("writing {rows} rows to {}", path.display());
        match format {
            "csv" => write_telco_csv(rows, &path)?,
            _ => {
                let partial = path.with_extension("parquet.partial");
                write_telco_parquet(&telco(), rows, &partial)?;
                std::fs::rename(&partial, &path)?;
            }
        }
    }
    Ok(path)
}

/// The churn package with `graph` under the name the guest asks for, preferring `device`.
fn package(dir: &Path, graph: &str, device: Device) -> Result<PathBuf, Box<dyn Error>> {
    let example = root().join("examples/churn");
    let package = dir.join(format!("package-{graph}-{device}"));
    std::fs::create_dir_all(package.join("graphs"))?;
    let manifest = std::fs::read_to_string(example.join("cordon.toml"))?;
    let manifest = with_setting(&manifest, "device", &format!("{:?}", device.to_string()))?;
    std::fs::write(package.join("cordon.toml"), manifest)?;
    std::fs::copy(CHURN_MODEL, package.join("model.wasm"))?;
    std::fs::copy(
        example.join("graphs").join(graph),
        package.join("graphs/churn_gbt.onnx"),
    )?;
    Ok(package)
}

/// How a run is set up beyond its table and sink.
#[derive(Clone, Copy)]
struct Limits {
    instances: u32,
    batch_rows: u32,
    /// The one device the policy allows graphs on.
    device: Device,
}

/// policies/churn.toml's own limits.
const CHURN_POLICY_LIMITS: Limits = Limits {
    instances: 2,
    batch_rows: 1024,
    device: Device::Cpu,
};

/// policies/churn.toml reading `table`, writing `sink`, allowing `rows` outputs, with `limits`.
fn policy(
    dir: &Path,
    table: &Path,
    sink: &Path,
    rows: u64,
    limits: Limits,
) -> Result<PathBuf, Box<dyn Error>> {
    let mut text = std::fs::read_to_string(root().join("policies/churn.toml"))?;
    for (key, value) in [
        ("source", format!("{:?}", table.display().to_string())),
        ("sink", format!("{:?}", sink.display().to_string())),
        ("output-rows", rows.to_string()),
        ("instances", limits.instances.to_string()),
        ("batch-rows", limits.batch_rows.to_string()),
        ("devices", format!("[{:?}]", limits.device.to_string())),
    ] {
        text = with_setting(&text, key, &value)?;
    }
    let path = dir.join(format!("policy-{}.toml", std::process::id()));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Runs the `cordon` binary; returns the process's wall time in seconds.
fn cordon(
    dir: &Path,
    package: &Path,
    policy: &Path,
    cache: Option<&Path>,
) -> Result<f64, Box<dyn Error>> {
    cordon_with_summary(dir, package, policy, cache).map(|(seconds, _)| seconds)
}

/// Start-up before the first batch, from a run's `--json` summary: the runtime's setup (ONNX
/// Runtime loaded, engine built) and the run's own start-up, in ms.
fn startup_before_first_batch(summary: &serde_json::Value) -> Result<f64, Box<dyn Error>> {
    let field = |name: &str| {
        summary[name]
            .as_f64()
            .ok_or_else(|| format!("the run's summary has no `{name}`"))
    };
    Ok(field("runtime_setup_ms")? + field("first_batch_ms")?)
}

/// Runs the `cordon` binary; returns the process's wall time in seconds and its summary.
fn cordon_with_summary(
    dir: &Path,
    package: &Path,
    policy: &Path,
    cache: Option<&Path>,
) -> Result<(f64, serde_json::Value), Box<dyn Error>> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cordon"));
    command
        .current_dir(dir)
        .args(["run", "--allow-unsigned", "--quiet", "--json", "--package"])
        .arg(package)
        .arg("--policy")
        .arg(policy)
        .arg("--onnxruntime")
        .arg(onnxruntime_library());
    match cache {
        Some(cache) => command.arg("--cache-dir").arg(cache),
        None => command.arg("--no-cache"),
    };
    let (seconds, stdout) = timed(&mut command, "cordon run")?;
    Ok((seconds, serde_json::from_slice(&stdout)?))
}

/// Runs a whole process; returns its wall time in seconds and its standard output.
fn timed(command: &mut Command, what: &str) -> Result<(f64, Vec<u8>), Box<dyn Error>> {
    let started = Instant::now();
    let output = command.output()?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(format!("{what} failed: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok((seconds, output.stdout))
}

/// Runs the Python baseline; returns the process's wall time in seconds.
fn python(python: &str, graph: &Path, table: &Path, out: &Path) -> Result<f64, Box<dyn Error>> {
    let mut command = Command::new(python);
    command
        .arg(root().join("runtime/benches/python/baseline.py"))
        .arg(graph)
        .arg(table)
        .arg(out)
        .arg("1024");
    timed(&mut command, "the Python baseline").map(|(seconds, _)| seconds)
}

/// `CORDON_BENCH_INSTANCES` (comma-separated), else 1, 2, 4, ... up to this machine's cores,
/// at most 16.
fn instance_counts() -> Result<Vec<u32>, Box<dyn Error>> {
    if let Ok(list) = std::env::var("CORDON_BENCH_INSTANCES") {
        return Ok(list
            .split(',')
            .map(|n| n.trim().parse())
            .collect::<Result<_, _>>()?);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    Ok((0..=4)
        .map(|power| 1u32 << power)
        .take_while(|&count| count <= cores.min(16))
        .collect())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<(), Box<dyn Error>> {
    let sizes: Vec<u64> = std::env::var("CORDON_BENCH_E2E_ROWS")
        .unwrap_or_else(|_| "1000000".into())
        .split(',')
        .map(|s| s.trim().replace('_', "").parse())
        .collect::<Result<_, _>>()?;
    let runs: usize = std::env::var("CORDON_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let python_bin = std::env::var("CORDON_BENCH_PYTHON").ok();
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("cache");

    let mut against_python = Vec::new();
    for &rows in &sizes {
        for format in ["csv", "parquet"] {
            let table = table(rows, format)?;
            for (label, graph) in GRAPHS {
                let package = package(dir.path(), graph, Device::Cpu)?;
                let sink = dir.path().join(format!("cordon_out.{format}"));
                let policy = policy(dir.path(), &table, &sink, rows, CHURN_POLICY_LIMITS)?;
                // Warm the compile cache and the page cache once.
                cordon(dir.path(), &package, &policy, Some(&cache))?;
                let (mut cordon_rates, mut python_rates, mut ratios) =
                    (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..runs {
                    let ours = cordon(dir.path(), &package, &policy, Some(&cache))?;
                    cordon_rates.push(rows as f64 / ours);
                    if let Some(python_bin) = &python_bin {
                        let out = dir.path().join(format!("python_out.{format}"));
                        let theirs = python(
                            python_bin,
                            &root().join("examples/churn/graphs").join(graph),
                            &table,
                            &out,
                        )?;
                        python_rates.push(rows as f64 / theirs);
                        ratios.push(theirs / ours);
                    }
                }
                let cordon_rate = median(&mut cordon_rates);
                let (python_rate, speedup) = if ratios.is_empty() {
                    (None, None)
                } else {
                    (Some(median(&mut python_rates)), Some(median(&mut ratios)))
                };
                eprintln!(
                    "{rows} rows {format:<7} {label:<24} cordon {cordon_rate:>9.0} rows/s, python {}, cordon/python {}",
                    python_rate.map_or("(not run)".into(), |r| format!("{r:.0} rows/s")),
                    speedup.map_or("-".into(), |s| format!("{s:.2}x")),
                );
                against_python.push(serde_json::json!({
                    "rows": rows, "format": format, "graph": label,
                    "cordon_rows_per_second": cordon_rate,
                    "python_rows_per_second": python_rate,
                    "cordon_speedup": speedup,
                }));
            }
        }
    }

    // Start-up: a 16-row table, warm cache and no cache.
    let small = dir.path().join("small.csv");
    let text = std::fs::read_to_string(telco())?;
    std::fs::write(
        &small,
        text.lines().take(17).collect::<Vec<_>>().join("\n") + "\n",
    )?;
    let gbt_package = package(dir.path(), "churn_gbt.onnx", Device::Cpu)?;
    let small_out = dir.path().join("small_out.csv");
    let policy_small = policy(dir.path(), &small, &small_out, 16, CHURN_POLICY_LIMITS)?;
    cordon(dir.path(), &gbt_package, &policy_small, Some(&cache))?;
    // (whole process ms, ms before the first batch) per run
    let startup = |cache: Option<&Path>| -> Result<(f64, f64), Box<dyn Error>> {
        let mut whole = Vec::new();
        let mut first_batch = Vec::new();
        for _ in 0..10 {
            let (seconds, summary) =
                cordon_with_summary(dir.path(), &gbt_package, &policy_small, cache)?;
            whole.push(seconds * 1e3);
            first_batch.push(startup_before_first_batch(&summary)?);
        }
        Ok((median(&mut whole), median(&mut first_batch)))
    };
    let (warm, warm_first_batch) = startup(Some(&cache))?;
    let (cold, cold_first_batch) = startup(None)?;
    eprintln!(
        "start-up (16 rows): before the first batch {warm_first_batch:.1} ms with the cache warm, {cold_first_batch:.1} ms without; whole process {warm:.1} / {cold:.1} ms"
    );

    // Instances: the largest Parquet table, each configuration at each instance count.
    let largest = *sizes.iter().max().unwrap_or(&1_000_000);
    let table = table(largest, "parquet")?;
    let sink = dir.path().join("scaling_out.parquet");
    let mut configurations = vec![
        (
            "gradient-boosted trees",
            "churn_gbt.onnx",
            Device::Cpu,
            1024,
        ),
        ("MLP (64, 32)", "churn_mlp.onnx", Device::Cpu, 1024),
    ];
    if std::env::var_os("CORDON_BENCH_GPU").is_some() {
        // A GPU pays per call (a launch, a copy each way), so larger batches suit it.
        configurations.push(("MLP (64, 32)", "churn_mlp.onnx", Device::Gpu, 1024));
        configurations.push(("MLP (64, 32)", "churn_mlp.onnx", Device::Gpu, 16_384));
    }
    let mut scaling = Vec::new();
    for (label, graph, device, batch_rows) in configurations {
        let package = package(dir.path(), graph, device)?;
        for &instances in &instance_counts()? {
            let limits = Limits {
                instances,
                batch_rows,
                device,
            };
            let policy = policy(dir.path(), &table, &sink, largest, limits)?;
            // Compiles the package into the cache on its first run.
            cordon(dir.path(), &package, &policy, Some(&cache))?;
            let mut rates: Vec<f64> = (0..runs)
                .map(|_| {
                    cordon(dir.path(), &package, &policy, Some(&cache)).map(|s| largest as f64 / s)
                })
                .collect::<Result<_, _>>()?;
            let rate = median(&mut rates);
            eprintln!(
                "{largest} rows parquet, {label} on {device}, {batch_rows}-row batches, {instances} instance(s): {rate:.0} rows/s"
            );
            scaling.push(serde_json::json!({
                "graph": label, "device": device, "batch_rows": batch_rows,
                "instances": instances, "rows_per_second": rate,
            }));
        }
    }

    let report = serde_json::json!({
        "benchmark": "end_to_end",
        "runs": runs,
        "against_python": against_python,
        "startup_ms": {
            "rows": 16,
            "before_first_batch": { "warm_cache": warm_first_batch, "no_cache": cold_first_batch },
            "whole_process": { "warm_cache": warm, "no_cache": cold },
        },
        "instances": { "rows": largest, "format": "parquet", "figures": scaling },
    });
    let out = root().join("target/bench/end_to_end.json");
    std::fs::create_dir_all(root().join("target/bench"))?;
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("end_to_end: {}", out.display());
    Ok(())
}

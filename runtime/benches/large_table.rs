//! Benchmark: the churn example on a large Parquet table (10 million Telco-distributed rows by
//! default), through the `cordon` binary as a consumer runs it: `cordon run`, and `cordon sql`
//! with the scalar function over the same table into the same kind of file. Reports the median
//! rows/s of each (process wall time, start-up included, for both) and the largest peak RSS of
//! the runs, and writes them to `target/bench/large_table.json`.
//!
//! `cargo bench -p cordon-runtime --bench large_table` (or `scripts/bench.sh`);
//! `CORDON_BENCH_ROWS` and `CORDON_BENCH_RUNS` change the table size and the number of runs.
//! The table is generated once into `target/bench-data/` and reused.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

use cordon_test_guests::telco_table::write_telco_parquet;
use cordon_test_guests::{CHURN_MODEL, onnxruntime_library, root, with_setting};

fn env_number(name: &str, default: u64) -> Result<u64, Box<dyn Error>> {
    match std::env::var(name) {
        Ok(text) => Ok(text.replace('_', "").parse()?),
        Err(_) => Ok(default),
    }
}

/// The churn package (manifest, component, graph) in `dir/package`.
fn churn_package(dir: &Path) -> Result<PathBuf, Box<dyn Error>> {
    let example = root().join("examples/churn");
    let package = dir.join("package");
    std::fs::create_dir_all(package.join("graphs"))?;
    std::fs::copy(example.join("cordon.toml"), package.join("cordon.toml"))?;
    std::fs::copy(CHURN_MODEL, package.join("model.wasm"))?;
    std::fs::copy(
        example.join("graphs/churn_gbt.onnx"),
        package.join("graphs/churn_gbt.onnx"),
    )?;
    Ok(package)
}

/// policies/churn.toml reading `table`, writing Parquet into `dir`, allowing `rows` outputs.
fn churn_policy(dir: &Path, table: &Path, rows: u64) -> Result<PathBuf, Box<dyn Error>> {
    let mut policy = std::fs::read_to_string(root().join("policies/churn.toml"))?;
    for (key, value) in [
        ("source", format!("{:?}", table.display().to_string())),
        ("sink", "\"out/churn_scores.parquet\"".to_owned()),
        ("output-rows", rows.to_string()),
    ] {
        policy = with_setting(&policy, key, &value)?;
    }
    let path = dir.join("policy.toml");
    std::fs::write(&path, policy)?;
    Ok(path)
}

fn main() -> Result<(), Box<dyn Error>> {
    let rows = env_number("CORDON_BENCH_ROWS", 10_000_000)?;
    let runs = env_number("CORDON_BENCH_RUNS", 3)?.max(1);

    let data_dir = root().join("target/bench-data");
    std::fs::create_dir_all(&data_dir)?;
    let table = data_dir.join(format!("telco_{rows}.parquet"));
    if !table.is_file() {
        eprintln!("writing {rows} rows to {}", table.display());
        let partial = table.with_extension("parquet.partial");
        write_telco_parquet(
            &root().join("examples/churn/data/telco_churn.csv"),
            rows,
            &partial,
        )?;
        std::fs::rename(&partial, &table)?;
    }

    let dir = tempfile::tempdir()?;
    let package = churn_package(dir.path())?;
    let policy = churn_policy(dir.path(), &table, rows)?;
    let mut rates = Vec::new();
    let mut process_rates = Vec::new();
    let mut sql_rates = Vec::new();
    let mut peak_rss = 0u64;
    for run in 1..=runs {
        let started = std::time::Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_cordon"))
            .current_dir(dir.path())
            .arg("run")
            .arg("--package")
            .arg(&package)
            .arg("--allow-unsigned")
            .arg("--policy")
            .arg(&policy)
            .arg("--onnxruntime")
            .arg(onnxruntime_library())
            .arg("--json")
            .output()?;
        if !output.status.success() {
            return Err(format!(
                "cordon run failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        let number = |key: &str| summary.get(key).and_then(serde_json::Value::as_f64);
        let rate = number("rows_per_second").unwrap_or(0.0);
        // The kernel's high-water mark for the cordon process (VmHWM), as the run reports it.
        let rss = number("host_peak_rss_bytes").unwrap_or(0.0) as u64;
        eprintln!(
            "run {run}/{runs}: {rate:.0} rows/s, peak RSS {:.0} MiB",
            rss as f64 / 1048576.0
        );
        rates.push(rate);
        process_rates.push(rows as f64 / started.elapsed().as_secs_f64());
        peak_rss = peak_rss.max(rss);

        let sql_rate = sql_run(dir.path(), &package, &policy, rows)?;
        eprintln!("run {run}/{runs}: cordon sql {sql_rate:.0} rows/s");
        sql_rates.push(sql_rate);
    }
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied().unwrap_or(0.0)
    };
    let median_process = median(&mut process_rates);
    let median_sql = median(&mut sql_rates);
    let median = median(&mut rates);
    let report = serde_json::json!({
        "benchmark": "large_table",
        "rows": rows,
        "runs": runs,
        "source": "parquet",
        "sink": "parquet",
        "median_rows_per_second": median,
        "max_peak_rss_bytes": peak_rss,
        "run_process_median_rows_per_second": median_process,
        "sql_scalar_median_rows_per_second": median_sql,
        "sql_over_run": median_sql / median_process.max(1e-9),
    });
    let out = root().join("target/bench/large_table.json");
    std::fs::create_dir_all(out.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!(
        "large_table: {rows} rows, median {median:.0} rows/s over {runs} runs, peak RSS {:.0} MiB ({})",
        peak_rss as f64 / 1048576.0,
        out.display()
    );
    println!(
        "large_table: cordon sql scalar function {median_sql:.0} rows/s, cordon run {median_process:.0} rows/s (both process wall time): {:.2}x",
        median_sql / median_process.max(1e-9)
    );
    Ok(())
}

/// `cordon sql` scoring every row with the scalar function into a Parquet file; rows/s over
/// the process's wall time.
fn sql_run(dir: &Path, package: &Path, policy: &Path, rows: u64) -> Result<f64, Box<dyn Error>> {
    let started = std::time::Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .current_dir(dir)
        .args(["sql", "--quiet", "--allow-unsigned", "--package"])
        .arg(package)
        .arg("--policy")
        .arg(policy)
        .arg("--onnxruntime")
        .arg(onnxruntime_library())
        .args(["-o", "out/sql_scores.parquet", "-e"])
        .arg(
            "SELECT customerID, telco_churn(tenure, monthly_charges, total_charges, senior_citizen, \
             contract, payment_method, internet_service, paperless_billing, tech_support, \
             online_security) AS churn_probability FROM customers",
        )
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "cordon sql failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

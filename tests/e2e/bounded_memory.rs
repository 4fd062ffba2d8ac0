//! A table far larger than the batches: 10 million Telco-distributed rows in one Parquet file
//! score in bounded memory. Peak RSS is a property of the design, so it is asserted; the rows/s
//! printed beside it is a figure for the benchmark (`runtime/benches/large_table.rs`), never
//! asserted.

use cordon_test_guests::telco_table::write_telco_parquet;
use cordon_test_guests::with_setting;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

use crate::support::{churn_case_with, root};

const ROWS: u64 = 10_000_000;

/// The ceiling the issue sets for the whole `cordon` process.
const PEAK_RSS_LIMIT: u64 = 1 << 30;

// CI runs it: scripts/test.sh runs `cargo test --release --workspace`.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "10 million rows take minutes in a debug build; run with --release (CI does)"
)]
fn ten_million_parquet_rows_score_in_bounded_memory() {
    let case = churn_case_with(&[("output-rows", "20_000_000")]);
    let table = case.path("telco_10m.parquet");
    write_telco_parquet(
        &root().join("examples/churn/data/telco_churn.csv"),
        ROWS,
        &table,
    )
    .unwrap();
    case.set_source("telco_10m.parquet");
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    case.write(
        "policy.toml",
        &with_setting(&policy, "sink", "\"out/churn_scores.parquet\"").unwrap(),
    );

    let run = case.cordon(&[
        "run",
        "--package",
        "package",
        "--policy",
        "policy.toml",
        "--json",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    // The kernel's high-water mark for the cordon process (VmHWM), as the run reports it. A
    // parent's wait4 figure would not do: Linux counts the parent's memory at spawn in it.
    let peak_rss = summary["host_peak_rss_bytes"].as_u64().unwrap();
    assert!(peak_rss > 0, "no peak RSS reported");
    assert_eq!(summary["rows_out"], ROWS);
    let written = SerializedFileReader::new(
        std::fs::File::open(case.path("out/churn_scores.parquet")).unwrap(),
    )
    .unwrap();
    assert_eq!(written.metadata().file_metadata().num_rows(), ROWS as i64);
    println!(
        "{ROWS} Parquet rows: {:.0} rows/s, {:.2} s, peak RSS {:.0} MiB",
        summary["rows_per_second"].as_f64().unwrap(),
        summary["wall_time_s"].as_f64().unwrap(),
        peak_rss as f64 / (1024.0 * 1024.0)
    );
    assert!(
        peak_rss < PEAK_RSS_LIMIT,
        "peak RSS {peak_rss} bytes is over 1 GiB"
    );
}

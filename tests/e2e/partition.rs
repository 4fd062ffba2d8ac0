//! Partition mode: one call per whole partition, sorted, any number of output rows, the
//! partition key re-attached by the host, one audit `data-read` per partition.

use std::collections::BTreeMap;

use cordon_test_guests::PARTITION_SUMMARY;

use crate::support::{Case, read_csv};

const MANIFEST: &str = r#"
manifest-version = 1
[package]
name = "summary"
version = "0.0.0"
publisher = "tests"
license = "MIT"
description = "a partition-mode test guest"
component = "model.wasm"
[input.history]
mode = "partition"
partition-by = ["region"]
order-by = ["t"]
columns = [
  { name = "region", type = "text" },
  { name = "t", type = "int64" },
  { name = "x", type = "float64" },
]
[output.summary]
columns = [
  { name = "step", type = "int64" },
  { name = "rows", type = "int64" },
  { name = "first_t", type = "int64" },
  { name = "last_t", type = "int64" },
  { name = "ordered", type = "boolean" },
  { name = "one_region", type = "boolean" },
  { name = "total", type = "float64" },
]
"#;

/// Regions of different lengths; region `i` has times 1..=n with x = t * (i + 1).
const REGIONS: [(&str, i64); 5] = [
    ("north", 10),
    ("south", 13),
    ("east", 1),
    ("west", 22),
    ("mid", 7),
];

/// The table with its rows deliberately out of order: regions interleaved, times shuffled.
fn shuffled_table() -> String {
    let mut rows = Vec::new();
    for (index, (region, length)) in REGIONS.iter().enumerate() {
        for t in 1..=*length {
            let x = t as f64 * (index + 1) as f64;
            rows.push(((t * 7919 + index as i64 * 31) % 101, region, t, x));
        }
    }
    rows.sort_by_key(|row| row.0);
    let mut text = String::from("region,t,x,secret\n");
    for (_, region, t, x) in rows {
        text.push_str(&format!("{region},{t},{x},never-read\n"));
    }
    text
}

/// `limits` goes into the policy's `[limits]` table; `binding` into `[bind.history]`.
fn case(limits: &str, binding: &str) -> Case {
    let case = Case::new();
    case.package(PARTITION_SUMMARY, MANIFEST, &[]);
    case.write("history.csv", &shuffled_table());
    case.write(
        "policy.toml",
        &format!(
            "version = 1\n[limits]\n{limits}\n[bind.history]\nsource = \"history.csv\"\ncolumns = {{ region = \"region\", t = \"t\", x = \"x\" }}\n{binding}\n[emit.summary]\nsink = \"out/summary.csv\"\n[audit]\nlog = \"out/audit.jsonl\"\nusage = \"out/usage.jsonl\"\n"
        ),
    );
    case
}

#[test]
fn each_call_gets_one_whole_sorted_partition() {
    // Batches of 4 rows: most partitions span several of DataFusion's batches.
    let case = case("batch-rows = 4\ninstances = 2", "");
    let summary = case.run().unwrap();
    let total_rows: i64 = REGIONS.iter().map(|(_, n)| n).sum();
    assert_eq!(summary.rows_in, total_rows as u64);
    assert_eq!(summary.partitions, REGIONS.len() as u64);
    assert_eq!(summary.rows_out, 3 * REGIONS.len() as u64);

    let header = csv::Reader::from_path(case.path("out/summary.csv"))
        .unwrap()
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert_eq!(
        header,
        [
            "region",
            "step",
            "rows",
            "first_t",
            "last_t",
            "ordered",
            "one_region",
            "total"
        ]
    );
    let rows = read_csv(&case.path("out/summary.csv"));
    let mut expected_order: Vec<&str> = REGIONS.iter().map(|(r, _)| *r).collect();
    expected_order.sort();
    for (position, region) in expected_order.iter().enumerate() {
        let (index, (_, length)) = REGIONS
            .iter()
            .enumerate()
            .find(|(_, (r, _))| r == region)
            .unwrap();
        let sum: f64 = (1..=*length).map(|t| t as f64 * (index + 1) as f64).sum();
        for step in 1..=3 {
            let row = &rows[position * 3 + step - 1];
            let expected = [
                region.to_string(),
                step.to_string(),
                length.to_string(),
                "1".into(),
                length.to_string(),
                "true".into(),
                "true".into(),
                sum.to_string(),
            ];
            assert_eq!(row, &expected, "{region} step {step}");
        }
    }

    // One data-read event per partition, with its key and rows; the usage record counts them.
    let events = cordon::audit::read_events(&case.path("out/audit.jsonl")).unwrap();
    let reads: BTreeMap<String, u64> = events
        .iter()
        .filter(|e| e["event"] == "data-read")
        .map(|e| {
            assert_eq!(e["mode"], "partition");
            (
                e["partition"]["region"].as_str().unwrap().to_owned(),
                e["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeMap<String, u64> = REGIONS
        .iter()
        .map(|(r, n)| (r.to_string(), *n as u64))
        .collect();
    assert_eq!(reads, expected);
    let usage: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(case.path("out/usage.jsonl"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(usage["partitions"], REGIONS.len() as u64);
}

#[test]
fn a_partition_over_the_limit_stops_the_run() {
    let case = case("partition-rows = 20", "");
    let error = case.run().unwrap_err().to_string();
    assert!(
        error.contains("a partition (region=west) has more than 20 rows (limits.partition-rows)"),
        "{error}"
    );
    assert!(!case.path("out/summary.csv").exists());
}

#[test]
fn key_columns_are_refused_in_partition_mode() {
    let case = case("", "key = [\"secret\"]");
    let error = case.run().unwrap_err().to_string();
    assert!(
        error.contains("partition mode") && error.contains("remove `key`"),
        "{error}"
    );
}

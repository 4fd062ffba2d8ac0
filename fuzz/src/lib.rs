//! Fuzz targets for every parser of hostile input in Cordon's host.
//!
//! Each target takes arbitrary bytes and hands them to the runtime's own entry point for one
//! kind of input a provider, a consumer or a guest controls. A target never panics: the
//! runtime answers any input with a value or an error, so a panic (or an abort, a hang, a
//! runaway allocation) is a finding. The same functions serve the libFuzzer binary
//! (`src/bin/cordon-fuzz.rs`, run by `scripts/fuzz.sh`) and the replay tests
//! (`tests/replay.rs`), which run every seed and every past crash in the normal test suite.
//!
//! The targets build their fixed surroundings (a scratch directory, a manifest, a key, a
//! Tokio runtime) once per process. Failing to do that is a broken harness, not a finding,
//! and stops the process loudly rather than fuzzing nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use cordon::data::{Batch, Column, ColumnValues, TextValues};
use cordon::grant::{Grant, GrantedColumn, InputGrant, OutputGrant};
use cordon::manifest::{ColumnSpec, ColumnType, InputMode, Manifest};
use cordon::names::Name;
use cordon::nn::graph_info::{self, AdmissionRules};
use cordon::package::Package;
use cordon::policy::{Limits, NonFinite, Policy};
use cordon::sandbox::bindings::cordon::model::types as wit;
use cordon::sink::Sink;
use cordon::source::TableSource;
use cordon::{sandbox, scorer, signing};
use ed25519_dalek::SigningKey;

/// A fuzz target: arbitrary bytes in, nothing out; it returns whatever the runtime answers.
pub type Target = fn(&[u8]);

/// Every target by the name `scripts/fuzz.sh` and the corpus folders use.
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", manifest),
    ("encoder_file", encoder_file),
    ("policy", policy),
    ("archive", archive),
    ("signature_bundle", signature_bundle),
    ("onnx_graph", onnx_graph),
    ("guest_batch", guest_batch),
    ("csv_source", csv_source),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .map(|(_, target)| *target)
}

/// The example's manifest: the fixed side of the policy and signature targets, and a seed.
const CHURN_MANIFEST: &str = include_str!("../../examples/churn/cordon.toml");

/// The example's policy: the fixed side of the manifest target.
const CHURN_POLICY: &str = include_str!("../../policies/churn.toml");

/// The key the signature and archive targets trust. Fixed, so that a crash replays exactly.
pub const SIGNING_SEED: [u8; 32] = [7; 32];

/// The archive digest the signature target's package claims.
const ARCHIVE_SHA256: &str = "5b6e0a3c2d9f8e7a1b4c6d8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a";

/// Surroundings shared by every run of every target in one process.
struct Fixture {
    /// Files the path-taking entry points read and the sinks write; removed at exit.
    scratch: tempfile::TempDir,
    manifest: Manifest,
    policy: Policy,
    key: SigningKey,
    tokio: Arc<tokio::runtime::Runtime>,
}

// A harness that cannot set itself up must stop: every later run would test nothing.
#[allow(clippy::expect_used)]
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let scratch = tempfile::Builder::new()
            .prefix("cordon-fuzz-")
            .tempdir()
            .expect("a scratch directory for the fuzz targets");
        let manifest = Manifest::parse(CHURN_MANIFEST, Path::new("cordon.toml"))
            .expect("the example manifest parses");
        let policy = Policy::parse(CHURN_POLICY, Path::new("policy.toml"), scratch.path())
            .expect("the example policy parses");
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a Tokio runtime for the CSV source");
        Fixture {
            scratch,
            manifest,
            policy,
            key: SigningKey::from_bytes(&SIGNING_SEED),
            tokio: Arc::new(tokio),
        }
    })
}

/// Writes `data` to `name` in the scratch directory, for an entry point that takes a path.
/// `None` if the write fails (a full disk is not a finding).
fn scratch_file(name: &str, data: &[u8]) -> Option<PathBuf> {
    let path = fixture().scratch.path().join(name);
    std::fs::write(&path, data).ok()?;
    Some(path)
}

fn name(text: &str) -> Option<Name> {
    Name::try_from(text.to_owned()).ok()
}

/// A package manifest (`cordon.toml`), as `cordon inspect`, `pack` and `run` read it, then
/// the grant it gets under the example policy.
pub fn manifest(data: &[u8]) {
    // The runtime reads the manifest with `read_to_string`: text that is not UTF-8 never
    // reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = Manifest::parse(text, Path::new("cordon.toml")) else {
        return;
    };
    let _ = Grant::resolve(&manifest, &fixture().policy, None);
}

/// The input columns the encoder target's files are checked against: the walkthrough's credit
/// model's, with one domain declared by the manifest.
pub const ENCODER_MANIFEST: &str = r#"
manifest-version = 1
[package]
name = "credit-model"
version = "0.1.0"
publisher = "tests"
license = "MIT"
description = "d"
component = "model.wasm"
[input.rows]
mode = "row"
columns = [
  { name = "age", type = "float64" },
  { name = "income", type = "float64" },
  { name = "purpose", type = "text" },
  { name = "housing", type = "text", levels = ["free", "missing", "own", "rent"] },
  { name = "employment", type = "text" },
  { name = "member", type = "boolean" },
]
[output.scores]
columns = [{ name = "default_probability", type = "float64" }]
[[encoder]]
name = "features"
file = "encoders/features.toml"
"#;

/// An encoder file (`[[encoder]]`), as a package load reads it: checked against the manifest's
/// input columns, its levels fed into their domains, its width summed.
pub fn encoder_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut manifest) = Manifest::parse(ENCODER_MANIFEST, Path::new("cordon.toml")) else {
        return;
    };
    if manifest
        .resolve_encoders(Path::new("cordon.toml"), |_| Ok(text.to_owned()))
        .is_ok()
    {
        for encoder in &manifest.encoders {
            let _ = (encoder.width(), encoder.levels());
        }
    }
}

/// A consumer's policy, then the grant it gives the example manifest: under no role, and
/// under each role it defines.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = fixture();
    // Trusted-key files are read relative to the scratch directory, which holds only what the
    // targets write.
    let Ok(policy) = Policy::parse(text, Path::new("policy.toml"), fixture.scratch.path()) else {
        return;
    };
    let _ = policy.admission_rules();
    let _ = Grant::resolve(&fixture.manifest, &policy, None);
    for role in policy.roles.keys() {
        let _ = Grant::resolve(&fixture.manifest, &policy, Some(role.as_str()));
    }
}

/// A `.cordon` package file: the zstd frame, the tar entries in it, the signature frame
/// after it, then the package it makes and the check of its signature.
pub fn archive(data: &[u8]) {
    let Some(path) = scratch_file("package.cordon", data) else {
        return;
    };
    let Ok(package) = Package::load(&path) else {
        return;
    };
    let _ = signing::claimed_signer(&package);
    let _ = signing::verify(&package, &[fixture().key.verifying_key()]);
}

/// The package the signature target checks bundles against: the example's manifest and two
/// small files, packed (it has an archive digest) and not yet signed.
fn unsigned_package() -> Package {
    let manifest = fixture().manifest.clone();
    let mut files = BTreeMap::new();
    files.insert("cordon.toml".to_owned(), CHURN_MANIFEST.as_bytes().to_vec());
    files.insert(manifest.component.clone(), b"\0asm\x0d\0\x01\0".to_vec());
    for graph in &manifest.graphs {
        files.insert(graph.file.clone(), b"graph".to_vec());
    }
    Package {
        path: PathBuf::from("telco-churn-0.1.0.cordon"),
        component: b"\0asm\x0d\0\x01\0".to_vec(),
        component_sha256: String::new(),
        graphs: Vec::new(),
        manifest,
        files,
        archive_sha256: Some(ARCHIVE_SHA256.to_owned()),
        signature: None,
    }
}

/// The signature bundle of a package (`model.sig`). The first byte chooses what the rest is:
/// even, the bundle's bytes as a package would carry them; odd, a statement that the trusted
/// key signs into a bundle, so that the statement's reader is reached past the signature
/// check, which mutated bytes otherwise never pass.
pub fn signature_bundle(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let fixture = fixture();
    let bundle = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        signing::sign_payload(rest, &fixture.key)
    };
    let mut package = unsigned_package();
    package.signature = Some(bundle);
    let _ = signing::claimed_signer(&package);
    let _ = signing::verify(&package, &[fixture.key.verifying_key()]);
}

/// The bundle `sign` writes for the signature target's package: what its seeds are made of
/// (`tests/replay.rs`).
pub fn signed_bundle() -> Option<Vec<u8>> {
    signing::sign(&unsigned_package(), &fixture().key).ok()
}

/// An ONNX graph (ModelProto), read as admission reads it before ONNX Runtime sees it, then
/// admitted under the default rules and under rules that allow a contrib domain.
pub fn onnx_graph(data: &[u8]) {
    let Ok(info) = graph_info::read(data) else {
        return;
    };
    let _ = graph_info::admit(&info, &AdmissionRules::default());
    let _ = graph_info::admit(
        &info,
        &AdmissionRules::with_extra_domains(["com.microsoft".to_owned()]),
    );
}

/// Bytes read front to back; past the end every read gives zero, so any input decodes.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((first, rest)) => {
                self.0 = rest;
                *first
            }
            None => 0,
        }
    }

    fn take(&mut self, len: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        for (slot, byte) in out.iter_mut().zip(self.take(N)) {
            *slot = *byte;
        }
        out
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}

/// Output columns the guest batch target's grant declares: one of each type.
const OUTPUT_COLUMNS: &[(&str, ColumnType)] = &[
    ("p", ColumnType::Float64),
    ("q", ColumnType::Float32),
    ("n", ColumnType::Int64),
    ("b", ColumnType::Boolean),
    ("t", ColumnType::Text),
    ("ts", ColumnType::Timestamp),
];

/// Decodes a batch as a guest's `score` could return it. Every field the contract lets the
/// guest choose is chosen by the input: row count, column names, types, lengths, text
/// offsets and validity. Lengths are one byte, so that the fuzzer meets matching lengths
/// often; text offsets are one byte each, or four when the type byte's high bit is set, so
/// that both a plausible layout and an absurd one are near.
fn wit_batch(input: &mut Bytes<'_>) -> wit::Batch {
    let num_rows = u32::from(input.byte());
    let mut columns = Vec::new();
    while !input.is_empty() && columns.len() < 16 {
        let name_len = usize::from(input.byte() % 16);
        // A guest's strings arrive as UTF-8: the component model checks them in the copy.
        let name = String::from_utf8_lossy(input.take(name_len)).into_owned();
        let kind = input.byte();
        let count = usize::from(input.byte());
        let values = match kind % 6 {
            0 => wit::ColumnValues::Float64(
                (0..count).map(|_| f64::from_bits(input.u64())).collect(),
            ),
            1 => wit::ColumnValues::Float32(
                (0..count).map(|_| f32::from_bits(input.u32())).collect(),
            ),
            2 => wit::ColumnValues::Int64((0..count).map(|_| input.u64() as i64).collect()),
            3 => wit::ColumnValues::Boolean((0..count).map(|_| input.byte() % 2 == 1).collect()),
            4 => {
                let wide = kind & 0x80 != 0;
                let offsets = (0..count)
                    .map(|_| {
                        if wide {
                            input.u32()
                        } else {
                            u32::from(input.byte())
                        }
                    })
                    .collect();
                let byte_len = usize::from(input.byte());
                let bytes = input.take(byte_len).to_vec();
                wit::ColumnValues::Text(wit::TextValues { offsets, bytes })
            }
            _ => wit::ColumnValues::Timestamp((0..count).map(|_| input.u64() as i64).collect()),
        };
        let validity_len = usize::from(input.byte());
        let validity = input.take(validity_len).to_vec();
        columns.push(wit::Column {
            name,
            values,
            validity,
        });
    }
    wit::Batch { num_rows, columns }
}

/// A batch a guest returns from `score`: the conversion into host data (the text layout
/// check), the validation against the declared output in row and partition mode, and the
/// CSV or Parquet sink writing what passed, as the run does.
pub fn guest_batch(data: &[u8]) {
    let mut input = Bytes(data);
    // The first byte: which mode the run is in, which sink it writes, and how many rows went
    // in (row mode needs as many out).
    let setup = input.byte();
    let mode = if setup & 1 == 0 {
        InputMode::Row
    } else {
        InputMode::Partition
    };
    let extension = if setup & 2 == 0 { "csv" } else { "parquet" };
    let input_rows = usize::from(setup >> 2);
    let Ok(batch) = sandbox::from_wit(wit_batch(&mut input)) else {
        return;
    };
    let Some(output_name) = name("scores") else {
        return;
    };
    let columns: Vec<ColumnSpec> = OUTPUT_COLUMNS
        .iter()
        .filter_map(|(column, ty)| Some(ColumnSpec::new(name(column)?, *ty)))
        .collect();
    let partition_key = match (mode, name("region")) {
        (InputMode::Partition, Some(region)) => vec![ColumnSpec::new(region, ColumnType::Text)],
        _ => Vec::new(),
    };
    // Both ways of treating a NaN, chosen by the batch's row count.
    let non_finite = if input_rows % 2 == 0 {
        NonFinite::Refuse
    } else {
        NonFinite::Null
    };
    let grant = OutputGrant {
        name: output_name,
        sink: fixture().scratch.path().join(format!("out.{extension}")),
        columns,
        partition_key,
        non_finite,
    };
    let limits = Limits::default();
    let Ok(batch) =
        scorer::validate_output(batch, input_rows, mode, &grant, limits.output_text_bytes)
    else {
        return;
    };
    for column in &batch.columns {
        for row in 0..batch.num_rows {
            let _ = column.values.json_value(row);
        }
    }
    let (keys, batch) = match mode {
        // Row mode: one held-back key per row, written before the model's columns.
        InputMode::Row => (
            (0..batch.num_rows)
                .map(|row| vec![format!("customer-{row}")])
                .collect::<Vec<_>>(),
            batch,
        ),
        // Partition mode: the partition's key spread over every row the model returned, as
        // the run puts it in front.
        InputMode::Partition => {
            let Some(region) = TextValues::from_strs(["north"]) else {
                return;
            };
            let key = Column {
                name: "region".to_owned(),
                values: ColumnValues::Text(region),
                validity: Vec::new(),
            };
            let Some(spread) = key.repeat(0, batch.num_rows) else {
                return;
            };
            let mut columns = vec![spread];
            columns.extend(batch.columns);
            let batch = Batch {
                num_rows: batch.num_rows,
                columns,
            };
            (Vec::new(), batch)
        }
    };
    let key_columns: Vec<String> = match mode {
        InputMode::Row => vec!["customerID".to_owned()],
        InputMode::Partition => Vec::new(),
    };
    let Ok(mut sink) = Sink::create(&grant, &key_columns, &limits) else {
        return;
    };
    let _ = sink.write(&keys, &batch);
    // Not finished: the file is never put in place, so each run starts from nothing.
    drop(sink);
}

/// One granted column for the CSV target.
fn granted(model: &str, source: &str, ty: ColumnType) -> Option<GrantedColumn> {
    Some(GrantedColumn {
        model: name(model)?,
        source: source.to_owned(),
        mask: None,
        role_mask: None,
        ty,
        source_key: format!("bind.customers.columns.{model}"),
        mask_key: None,
        role_mask_key: None,
    })
}

/// The grant the CSV target reads under: the example's key and a column of each kind
/// (forced and inferred text, numbers cast from text, a number the schema types), in `mode`.
fn csv_grant(source: PathBuf, mode: InputMode) -> Option<InputGrant> {
    let columns = vec![
        granted("tenure", "tenure", ColumnType::Int64)?,
        granted("monthly_charges", "MonthlyCharges", ColumnType::Float64)?,
        granted("senior_citizen", "SeniorCitizen", ColumnType::Boolean)?,
        granted("contract", "Contract", ColumnType::Text)?,
        granted("total_charges", "TotalCharges", ColumnType::Float32)?,
    ];
    let (partition_by, order_by) = match mode {
        InputMode::Row => (Vec::new(), Vec::new()),
        InputMode::Partition => (vec![name("contract")?], vec![name("tenure")?]),
    };
    Some(InputGrant {
        name: name("customers")?,
        source,
        columns,
        key: vec!["customerID".to_owned()],
        filter: None,
        filters: Vec::new(),
        domains: Vec::new(),
        out_of_domain: Default::default(),
        schema: [("SeniorCitizen".to_owned(), ColumnType::Int64)].into(),
        mode,
        partition_by,
        order_by,
        policy: Default::default(),
    })
}

/// Most batches the CSV target reads from one table: the seeds need a handful, and a table
/// that goes on is not more interesting for going on.
const CSV_MAX_BATCHES: usize = 64;

/// A consumer's CSV table, read as a run reads its source: the header by the `csv` crate,
/// the rows by DataFusion's reader through the granted query, and the results converted to
/// batches, in row mode and in partition mode (partitions of at most 16 rows, so that the
/// limit is met).
pub fn csv_source(data: &[u8]) {
    let Some(path) = scratch_file("table.csv", data) else {
        return;
    };
    let fixture = fixture();
    for mode in [InputMode::Row, InputMode::Partition] {
        let Some(grant) = csv_grant(path.clone(), mode) else {
            return;
        };
        let Ok(mut source) = TableSource::open(&grant, 8, 16, Arc::clone(&fixture.tokio)) else {
            continue;
        };
        for _ in 0..CSV_MAX_BATCHES {
            match source.next_batch() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let _ = source.rows_read();
        let _ = source.partitions_read();
    }
}

//! The package manifest (`cordon.toml`): what a provider's model asks for.
//!
//! The manifest only *requests*: inputs with the columns the model reads, outputs with the
//! columns it returns, graphs it runs. The consumer's policy decides what is granted. Parsing is
//! strict (unknown keys are errors) and resolves into types that cannot hold an invalid state.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

pub use cordon_contract::types::{ColumnType, InputMode};

use crate::encoders::{EncoderDecl, EncoderSpec};
use crate::names::Name;
use crate::units::ByteSize;

/// The file name of the manifest inside a package.
pub const MANIFEST_FILE: &str = "cordon.toml";

/// The only manifest format this runtime reads.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML error is in the message (with its line and caret), not in the error's chain,
    /// so that a caller printing the chain says it once.
    #[error("{path}: {error}")]
    Parse {
        path: PathBuf,
        error: Box<toml::de::Error>,
    },
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        /// The line of the key at fault, where there is one.
        line: Option<usize>,
        message: String,
    },
}

/// Where a graph prefers to run; the policy decides where it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Device {
    Cpu,
    Gpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GraphFormat {
    Onnx,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ColumnSpec {
    pub name: Name,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Input text columns: every value the model knows. The host checks each value against
    /// them before it enters the sandbox (a level the encoder never saw would score as
    /// silently as a known one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<Vec<String>>,
    /// Input number columns: the closed range the model is valid on, `[low, high]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<ValueRange>,
    /// Input number columns: what the numbers measure (`months`, `USD`), for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Input columns: whether the model takes a null. Unless a manifest says `false`, it does.
    #[serde(default = "nullable_by_default")]
    pub nullable: bool,
}

fn nullable_by_default() -> bool {
    true
}

impl ColumnSpec {
    /// A column with no domain: any value of its type, nulls included.
    pub fn new(name: Name, ty: ColumnType) -> ColumnSpec {
        ColumnSpec {
            name,
            ty,
            levels: None,
            range: None,
            unit: None,
            nullable: true,
        }
    }

    /// Whether the manifest narrows the column's values (levels, range, or no nulls).
    pub fn has_domain(&self) -> bool {
        self.levels.is_some() || self.range.is_some() || !self.nullable
    }
}

/// `range = [low, high]`: both ends included. Finite and ordered once the manifest is
/// validated, so equality is exact.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
pub struct ValueRange(pub f64, pub f64);

impl Eq for ValueRange {}

impl ValueRange {
    pub fn low(&self) -> f64 {
        self.0
    }

    pub fn high(&self) -> f64 {
        self.1
    }

    /// Whether `value` lies in the range (NaN never does).
    pub fn contains(&self, value: f64) -> bool {
        value >= self.0 && value <= self.1
    }
}

impl fmt::Display for ValueRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.0, self.1)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    manifest_version: u32,
    package: RawPackage,
    #[serde(default)]
    input: std::collections::BTreeMap<Name, RawInput>,
    #[serde(default)]
    output: std::collections::BTreeMap<Name, RawOutput>,
    #[serde(default)]
    graph: Vec<GraphSpec>,
    #[serde(default)]
    resources: ResourceHints,
    #[serde(default)]
    settings: std::collections::BTreeMap<Name, crate::settings::RawSetting>,
    #[serde(default)]
    encoder: Vec<EncoderDecl>,
}

/// What the provider says the model needs, so that a consumer can set `[limits]` to fit before
/// the first run fails. Hints only: the policy's limits are what the host enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ResourceHints {
    /// Linear memory one instance needs (compare `limits.memory`).
    pub memory: Option<ByteSize>,
    /// wasi:nn tensor bytes one instance holds at most (compare `limits.tensor-bytes`).
    pub tensor_bytes: Option<ByteSize>,
    /// Fuel one row costs, roughly (compare `limits.fuel-per-batch` over `limits.batch-rows`).
    pub fuel_per_row: Option<u64>,
}

impl ResourceHints {
    /// Where the policy's `limits` give less than these hints ask for, at the policy's batch
    /// size (`mode` row) or its largest partition (partition mode), each as a sentence for
    /// `cordon check` to warn with: the run would stop on a limit the consumer could have
    /// raised beforehand.
    pub fn shortfalls(&self, limits: &crate::policy::Limits, mode: InputMode) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(memory) = self.memory
            && memory.bytes() > limits.memory.bytes()
        {
            out.push(format!(
                "limits.memory = \"{}\" is below the package's hint, {memory} per instance",
                limits.memory
            ));
        }
        if let Some(tensors) = self.tensor_bytes
            && tensors.bytes() > limits.tensor_bytes.bytes()
        {
            out.push(format!(
                "limits.tensor-bytes = \"{}\" is below the package's hint, {tensors}",
                limits.tensor_bytes
            ));
        }
        if let Some(per_row) = self.fuel_per_row.filter(|f| *f > 0) {
            let (rows, what) = match mode {
                InputMode::Row => (u64::from(limits.batch_rows), "limits.batch-rows"),
                InputMode::Partition => (limits.partition_rows, "limits.partition-rows"),
            };
            let needed = per_row.saturating_mul(rows);
            if needed > limits.fuel_per_batch {
                let covered = limits.fuel_per_batch / per_row;
                out.push(format!(
                    "limits.fuel-per-batch = {} is below the package's hint for a full batch: {per_row} fuel per row x {rows} rows ({what}) = {needed}; batches of more than {covered} rows may stop on the CPU limit",
                    limits.fuel_per_batch
                ));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPackage {
    name: Name,
    version: String,
    publisher: Name,
    license: String,
    description: String,
    component: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawInput {
    mode: InputMode,
    columns: Vec<ColumnSpec>,
    #[serde(default)]
    partition_by: Vec<Name>,
    #[serde(default)]
    order_by: Vec<Name>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawOutput {
    columns: Vec<ColumnSpec>,
}

/// A graph the package ships, reached by the guest with wasi:nn `load-by-name`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GraphSpec {
    pub name: Name,
    /// Path inside the package.
    pub file: String,
    pub format: GraphFormat,
    #[serde(default = "default_device")]
    pub device: Device,
}

fn default_device() -> Device {
    Device::Cpu
}

/// A validated manifest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Manifest {
    pub name: Name,
    pub version: String,
    pub publisher: Name,
    pub license: String,
    pub description: String,
    /// Path of the component inside the package.
    pub component: String,
    pub input: InputSpec,
    pub output: OutputSpec,
    pub graphs: Vec<GraphSpec>,
    pub resources: ResourceHints,
    /// `[settings.<name>]`: typed knobs with defaults, which the policy may set.
    pub settings: Vec<crate::settings::SettingSpec>,
    /// `[[encoder]]`: feature encoders, each defined by a file of the package.
    pub encoder_files: Vec<EncoderDecl>,
    /// The encoders read from those files and checked against the input columns, in the
    /// manifest's order: empty until [`Manifest::resolve_encoders`] has read them (a
    /// [`Manifest::load`] or a loaded package has).
    pub encoders: Vec<EncoderSpec>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InputSpec {
    pub name: Name,
    pub mode: InputMode,
    pub columns: Vec<ColumnSpec>,
    /// Partition mode: the input columns whose values make one partition. Empty in row mode.
    pub partition_by: Vec<Name>,
    /// Partition mode: the input columns that order the rows inside a partition, ascending.
    pub order_by: Vec<Name>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputSpec {
    pub name: Name,
    pub columns: Vec<ColumnSpec>,
}

impl Manifest {
    /// Reads and validates `cordon.toml` at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut manifest = Self::parse(&text, path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        manifest.resolve_encoders(path, |file| {
            let file_path = dir.join(file);
            let too_large = std::fs::metadata(&file_path)
                .is_ok_and(|m| m.len() > crate::encoders::MAX_ENCODER_FILE_BYTES);
            if too_large {
                return Err(ManifestError::Invalid {
                    path: file_path,
                    line: None,
                    message: format!(
                        "the encoder file is larger than the {} bytes allowed",
                        crate::encoders::MAX_ENCODER_FILE_BYTES
                    ),
                });
            }
            std::fs::read_to_string(&file_path).map_err(|source| ManifestError::Read {
                path: file_path,
                source,
            })
        })?;
        Ok(manifest)
    }

    /// Reads each `[[encoder]]`'s file with `read` (given its path inside the package), checks
    /// it against the input columns and feeds its levels into their domains
    /// (see [`crate::encoders`]). `manifest_path` names the files in errors.
    pub fn resolve_encoders(
        &mut self,
        manifest_path: &Path,
        mut read: impl FnMut(&str) -> Result<String, ManifestError>,
    ) -> Result<(), ManifestError> {
        use crate::encoders::{MAX_ENCODER_FILE_BYTES, MAX_ENCODER_LEVELS};
        let dir = manifest_path.parent().unwrap_or(Path::new(""));
        let key = format!("input.{}.columns", self.input.name);
        let declared: BTreeSet<Name> = self
            .input
            .columns
            .iter()
            .filter(|c| c.levels.is_some())
            .map(|c| c.name.clone())
            .collect();
        let too_much = |message: String| ManifestError::Invalid {
            path: manifest_path.to_owned(),
            // The limits are on the encoders together, at no one line.
            line: None,
            message,
        };
        let mut encoders = Vec::with_capacity(self.encoder_files.len());
        let (mut bytes, mut levels) = (0u64, 0usize);
        for decl in &self.encoder_files {
            let text = read(&decl.file)?;
            // Together, not only each: the host keeps every encoder and copies it to each
            // instance that asks.
            bytes = bytes.saturating_add(text.len() as u64);
            if bytes > MAX_ENCODER_FILE_BYTES {
                return Err(too_much(format!(
                    "the encoder files hold more than {MAX_ENCODER_FILE_BYTES} bytes together"
                )));
            }
            let encoder = crate::encoders::resolve(
                decl,
                &text,
                &dir.join(&decl.file),
                &mut self.input.columns,
                &declared,
                &key,
            )?;
            levels = levels.saturating_add(encoder.levels());
            if levels > MAX_ENCODER_LEVELS {
                return Err(too_much(format!(
                    "the encoders list more than {MAX_ENCODER_LEVELS} levels together"
                )));
            }
            encoders.push(encoder);
        }
        self.encoders = encoders;
        Ok(())
    }

    /// Validates manifest text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|source| ManifestError::Parse {
            path: path.to_owned(),
            error: Box::new(source),
        })?;
        let invalid_at = |key: &str, message: String| ManifestError::Invalid {
            path: path.to_owned(),
            line: line_of_key(text, key),
            message,
        };
        // An error about the manifest as a whole, at no one line.
        let invalid = |message: String| ManifestError::Invalid {
            path: path.to_owned(),
            line: None,
            message,
        };
        if raw.manifest_version != MANIFEST_VERSION {
            return Err(invalid_at(
                "manifest-version",
                format!(
                    "manifest-version {} is not supported; this runtime reads version {MANIFEST_VERSION}",
                    raw.manifest_version
                ),
            ));
        }
        check_package_path(&raw.package.component)
            .map_err(|why| invalid_at("package.component", format!("package.component: {why}")))?;
        check_version(&raw.package.version)
            .map_err(|why| invalid_at("package.version", format!("package.version: {why}")))?;
        for (key, text, max) in [
            (
                "description",
                &raw.package.description,
                MAX_DESCRIPTION_BYTES,
            ),
            ("license", &raw.package.license, MAX_LICENSE_BYTES),
        ] {
            if text.len() > max {
                return Err(invalid_at(
                    &format!("package.{key}"),
                    format!(
                        "package.{key} is {} bytes; at most {max} are allowed",
                        text.len()
                    ),
                ));
            }
        }

        // One input and one output for now: multi-input models need the data interface.
        let mut inputs = raw.input.into_iter();
        let (input_name, input) = match (inputs.next(), inputs.next()) {
            (Some(first), None) => first,
            (None, _) => return Err(invalid("the manifest declares no [input.<name>]".into())),
            (Some((first, _)), Some((second, _))) => {
                let names = [first, second]
                    .into_iter()
                    .chain(inputs.map(|(name, _)| name));
                return Err(invalid_at(
                    &last_written(text, "input", names),
                    "the manifest declares more than one input; this runtime runs one".into(),
                ));
            }
        };
        let mut outputs = raw.output.into_iter();
        let (output_name, output) = match (outputs.next(), outputs.next()) {
            (Some(first), None) => first,
            (None, _) => return Err(invalid("the manifest declares no [output.<name>]".into())),
            (Some((first, _)), Some((second, _))) => {
                let names = [first, second]
                    .into_iter()
                    .chain(outputs.map(|(name, _)| name));
                return Err(invalid_at(
                    &last_written(text, "output", names),
                    "the manifest declares more than one output; this runtime writes one".into(),
                ));
            }
        };
        let at_key = |(key, message): (String, String)| invalid_at(&key, message);
        check_columns(&input.columns, &format!("input.{input_name}.columns")).map_err(at_key)?;
        check_columns(&output.columns, &format!("output.{output_name}.columns")).map_err(at_key)?;
        check_domains(&input.columns, &format!("input.{input_name}.columns")).map_err(at_key)?;
        check_no_domains(&output.columns, &format!("output.{output_name}.columns"))
            .map_err(at_key)?;
        check_partitioning(&input_name, &input, &output_name, &output).map_err(at_key)?;

        let mut graph_names = BTreeSet::new();
        for (index, graph) in raw.graph.iter().enumerate() {
            if !graph_names.insert(graph.name.as_str()) {
                return Err(invalid_at(
                    &format!("graph.{index}.name"),
                    format!("graph `{}` is declared twice", graph.name),
                ));
            }
            check_package_path(&graph.file).map_err(|why| {
                invalid_at(
                    &format!("graph.{index}.file"),
                    format!("graph `{}` file: {why}", graph.name),
                )
            })?;
        }
        let settings = crate::settings::declared(raw.settings).map_err(at_key)?;
        check_encoder_files(&raw.encoder, &raw.package.component, &raw.graph).map_err(at_key)?;

        Ok(Manifest {
            name: raw.package.name,
            version: raw.package.version,
            publisher: raw.package.publisher,
            license: raw.package.license,
            description: raw.package.description,
            component: raw.package.component,
            input: InputSpec {
                name: input_name,
                mode: input.mode,
                columns: input.columns,
                partition_by: input.partition_by,
                order_by: input.order_by,
            },
            output: OutputSpec {
                name: output_name,
                columns: output.columns,
            },
            graphs: raw.graph,
            resources: raw.resources,
            settings,
            encoder_files: raw.encoder,
            encoders: Vec::new(),
        })
    }
}

/// Longest `package.description`: a paragraph, not a payload.
pub const MAX_DESCRIPTION_BYTES: usize = 2048;
/// Longest `package.license` (an SPDX expression).
pub const MAX_LICENSE_BYTES: usize = 256;
/// Longest `package.version`.
const MAX_VERSION_BYTES: usize = 64;

/// A version is Semantic Versioning 2.0 (`1.4.0`, `2.0.0-rc.1+build.5`): it ends up in file
/// names (`cordon pack` writes `<name>-<version>.cordon`), so it may hold nothing but
/// `[0-9A-Za-z.+-]`, never a `/` or `..`.
pub fn check_version(version: &str) -> Result<(), String> {
    let shown = crate::names::printable(version, MAX_VERSION_BYTES);
    if version.len() > MAX_VERSION_BYTES {
        return Err(format!(
            "`{shown}` is longer than {MAX_VERSION_BYTES} bytes"
        ));
    }
    semver::Version::parse(version).map(|_| ()).map_err(|e| {
        format!("`{shown}` is not a semantic version such as 1.4.0 or 2.0.0-rc.1 ({e})")
    })
}

/// Columns are a non-empty list of distinct names. Returns the dotted key at fault and why.
fn check_columns(columns: &[ColumnSpec], key: &str) -> Result<(), (String, String)> {
    if columns.is_empty() {
        return Err((
            key.to_owned(),
            format!("{key} is empty: a model must read or write some column"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (index, column) in columns.iter().enumerate() {
        if !seen.insert(column.name.as_str()) {
            return Err((
                format!("{key}.{index}"),
                format!("{key}: column `{}` is listed twice", column.name),
            ));
        }
    }
    Ok(())
}

/// Most levels one text column may declare: a vocabulary, not a payload.
pub const MAX_LEVELS: usize = 4096;
/// Longest level.
pub const MAX_LEVEL_BYTES: usize = 256;
/// Longest unit.
pub const MAX_UNIT_BYTES: usize = 32;

/// An input column's domain fits its type: levels (distinct, bounded) on text only, a finite,
/// ordered range and a unit on numbers only. Everything here is the provider's and is printed
/// on the consumer's terminal, hence the bounds.
fn check_domains(columns: &[ColumnSpec], key: &str) -> Result<(), (String, String)> {
    for (index, column) in columns.iter().enumerate() {
        let at = |field: &str| format!("{key}.{index}.{field}");
        let name = &column.name;
        let number = matches!(
            column.ty,
            ColumnType::Int64 | ColumnType::Float64 | ColumnType::Float32
        );
        if let Some(levels) = &column.levels {
            if column.ty != ColumnType::Text {
                return Err((
                    at("levels"),
                    format!(
                        "{key}: column `{name}` is {}; levels are for text columns (give numbers a range)",
                        column.ty
                    ),
                ));
            }
            if levels.is_empty() {
                return Err((
                    at("levels"),
                    format!(
                        "{key}: column `{name}` lists no levels; leave levels out to take any text"
                    ),
                ));
            }
            if levels.len() > MAX_LEVELS {
                return Err((
                    at("levels"),
                    format!(
                        "{key}: column `{name}` lists {} levels; at most {MAX_LEVELS} are allowed",
                        levels.len()
                    ),
                ));
            }
            let mut seen = BTreeSet::new();
            for level in levels {
                let shown = crate::names::printable(level, 64);
                if level.len() > MAX_LEVEL_BYTES {
                    return Err((
                        at("levels"),
                        format!(
                            "{key}: column `{name}`: level `{shown}` is {} bytes; at most {MAX_LEVEL_BYTES} are allowed",
                            level.len()
                        ),
                    ));
                }
                if !seen.insert(level.as_str()) {
                    return Err((
                        at("levels"),
                        format!("{key}: column `{name}` lists level `{shown}` twice"),
                    ));
                }
            }
        }
        if let Some(range) = &column.range {
            if !number {
                return Err((
                    at("range"),
                    format!(
                        "{key}: column `{name}` is {}; a range is for int64, float64 and float32 columns",
                        column.ty
                    ),
                ));
            }
            if !range.low().is_finite() || !range.high().is_finite() || range.low() > range.high() {
                return Err((
                    at("range"),
                    format!(
                        "{key}: column `{name}`: range = [{}, {}] must be two finite numbers, the lower first",
                        range.low(),
                        range.high()
                    ),
                ));
            }
        }
        if let Some(unit) = &column.unit {
            if !number {
                return Err((
                    at("unit"),
                    format!(
                        "{key}: column `{name}` is {}; a unit is for number columns",
                        column.ty
                    ),
                ));
            }
            if unit.is_empty()
                || unit.len() > MAX_UNIT_BYTES
                || unit.chars().any(|c| c.is_control())
            {
                return Err((
                    at("unit"),
                    format!(
                        "{key}: column `{name}`: a unit is 1 to {MAX_UNIT_BYTES} bytes of printable text"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Domains describe what a model reads; what it returns is checked against the output's
/// declared types and the policy's `[emit]` rules instead.
fn check_no_domains(columns: &[ColumnSpec], key: &str) -> Result<(), (String, String)> {
    for (index, column) in columns.iter().enumerate() {
        let field = if column.levels.is_some() {
            "levels"
        } else if column.range.is_some() {
            "range"
        } else if column.unit.is_some() {
            "unit"
        } else if !column.nullable {
            "nullable"
        } else {
            continue;
        };
        return Err((
            format!("{key}.{index}.{field}"),
            format!(
                "{key}: column `{}`: {field} describes an input column; outputs take their type only",
                column.name
            ),
        ));
    }
    Ok(())
}

/// Partition mode needs `partition-by` (and may have `order-by`), both naming declared input
/// columns; row mode has neither. The host adds the partition columns to every output row, so
/// an output column may not share their names. Returns the dotted key at fault and why.
fn check_partitioning(
    input_name: &Name,
    input: &RawInput,
    output_name: &Name,
    output: &RawOutput,
) -> Result<(), (String, String)> {
    let table = format!("input.{input_name}");
    match input.mode {
        InputMode::Row => {
            if !input.partition_by.is_empty() || !input.order_by.is_empty() {
                let key = if input.partition_by.is_empty() {
                    "order-by"
                } else {
                    "partition-by"
                };
                return Err((
                    format!("{table}.{key}"),
                    format!("{table}: partition-by and order-by need mode = \"partition\""),
                ));
            }
            return Ok(());
        }
        InputMode::Partition => {
            if input.partition_by.is_empty() {
                return Err((
                    format!("{table}.mode"),
                    format!(
                        "{table}: mode = \"partition\" needs partition-by, the columns whose values make one partition"
                    ),
                ));
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (key, names) in [
        ("partition-by", &input.partition_by),
        ("order-by", &input.order_by),
    ] {
        for name in names {
            if !input.columns.iter().any(|c| &c.name == name) {
                return Err((
                    format!("{table}.{key}"),
                    format!("{table}.{key}: `{name}` is not one of the input's columns"),
                ));
            }
            if !seen.insert(name) {
                return Err((
                    format!("{table}.{key}"),
                    format!(
                        "{table}.{key}: `{name}` appears more than once in partition-by and order-by"
                    ),
                ));
            }
        }
    }
    for name in &input.partition_by {
        if let Some(index) = output.columns.iter().position(|c| &c.name == name) {
            return Err((
                format!("output.{output_name}.columns.{index}"),
                format!(
                    "output.{output_name}.columns: `{name}` is the partition key, which the host adds to every output row; the model must not return it"
                ),
            ));
        }
    }
    Ok(())
}

/// `[[encoder]]`s: unique names, at most [`crate::encoders::MAX_ENCODERS`], each a file of its
/// own inside the package.
fn check_encoder_files(
    encoders: &[EncoderDecl],
    component: &str,
    graphs: &[GraphSpec],
) -> Result<(), (String, String)> {
    use crate::encoders::MAX_ENCODERS;
    if encoders.len() > MAX_ENCODERS {
        return Err((
            "encoder".into(),
            format!(
                "the manifest declares {} encoders; at most {MAX_ENCODERS} are allowed",
                encoders.len()
            ),
        ));
    }
    let mut names = BTreeSet::new();
    for (index, encoder) in encoders.iter().enumerate() {
        if !names.insert(encoder.name.as_str()) {
            return Err((
                format!("encoder.{index}.name"),
                format!("encoder `{}` is declared twice", encoder.name),
            ));
        }
        let at_file = format!("encoder.{index}.file");
        check_package_path(&encoder.file).map_err(|why| {
            (
                at_file.clone(),
                format!("encoder `{}` file: {why}", encoder.name),
            )
        })?;
        let taken = encoder.file == component
            || encoder.file == MANIFEST_FILE
            || graphs.iter().any(|g| g.file == encoder.file)
            || encoders.iter().take(index).any(|e| e.file == encoder.file);
        if taken {
            return Err((
                at_file,
                format!(
                    "encoder `{}` file `{}` is already another file of the package",
                    encoder.name, encoder.file
                ),
            ));
        }
    }
    Ok(())
}

/// The line where the key at dotted `path` is written (`input.rows.columns.2` is the third
/// column, `graph.0.file` the first `[[graph]]`'s file), or else where its nearest enclosing
/// key is; read from the TOML parser's spans. `None` if the text does not parse or names none.
pub(crate) fn line_of_key(text: &str, path: &str) -> Option<usize> {
    use toml::de::DeValue;

    let root = toml::de::DeTable::parse(text).ok()?;
    let mut value: Option<&DeValue<'_>> = None;
    let mut span = None;
    for part in path.split('.') {
        let found = match value {
            None => root
                .get_ref()
                .iter()
                .find(|(key, _)| key.get_ref() == part)
                .map(|(key, value)| (key.span(), value)),
            Some(DeValue::Table(table)) => table
                .iter()
                .find(|(key, _)| key.get_ref() == part)
                .map(|(key, value)| (key.span(), value)),
            Some(DeValue::Array(array)) => part
                .parse::<usize>()
                .ok()
                .and_then(|index| array.get(index))
                .map(|item| (item.span(), item)),
            Some(_) => None,
        };
        let Some((found_span, found_value)) = found else {
            break;
        };
        span = Some(found_span);
        value = Some(found_value.get_ref());
    }
    let start = span?.start;
    Some(text.get(..start)?.matches('\n').count() + 1)
}

/// The dotted key of the `table.<name>` written last in the file: the one that is one too many.
fn last_written(text: &str, table: &str, names: impl Iterator<Item = Name>) -> String {
    names
        .map(|name| format!("{table}.{name}"))
        .max_by_key(|key| line_of_key(text, key))
        .unwrap_or_else(|| table.to_owned())
}

/// A path inside a package must be relative and stay inside it: no `..`, no absolute paths.
fn check_package_path(path: &str) -> Result<(), String> {
    let parsed = Path::new(path);
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    for component in parsed.components() {
        match component {
            Component::Normal(_) => {}
            _ => {
                return Err(format!(
                    "`{path}` must be a relative path inside the package, without `..`"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
manifest-version = 1
[package]
name = "m"
version = "0.1.0"
publisher = "acme"
license = "MIT"
description = "d"
component = "model.wasm"
[input.rows]
mode = "row"
columns = [{ name = "x", type = "float64" }]
[output.scores]
columns = [{ name = "y", type = "float64" }]
"#;

    #[test]
    fn a_good_manifest_resolves() {
        let manifest = Manifest::parse(GOOD, Path::new("cordon.toml")).unwrap();
        assert_eq!(manifest.input.name.as_str(), "rows");
        assert_eq!(manifest.output.columns[0].ty, ColumnType::Float64);
    }

    #[test]
    fn unknown_keys_and_escaping_paths_are_refused() {
        let unknown = GOOD.replace("license = \"MIT\"", "license = \"MIT\"\nhomepage = \"x\"");
        let error = Manifest::parse(&unknown, Path::new("cordon.toml")).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `homepage`"),
            "{error}"
        );

        let escaping = GOOD.replace("model.wasm", "../model.wasm");
        let error = Manifest::parse(&escaping, Path::new("cordon.toml")).unwrap_err();
        assert!(error.to_string().contains("without `..`"), "{error}");
    }

    #[test]
    fn errors_name_the_line_of_the_key_at_fault() {
        let duplicated = GOOD.replace(
            "columns = [{ name = \"x\", type = \"float64\" }]",
            "columns = [\n  { name = \"x\", type = \"float64\" },\n  { name = \"x\", type = \"text\" },\n]",
        );
        let error = Manifest::parse(&duplicated, Path::new("cordon.toml")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cordon.toml:14: input.rows.columns: column `x` is listed twice"
        );
        let version = GOOD.replace("version = \"0.1.0\"", "version = \"1\"");
        let error = Manifest::parse(&version, Path::new("cordon.toml")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cordon.toml:5: package.version: "),
            "{error}"
        );
        assert_eq!(line_of_key(GOOD, "input.rows.mode"), Some(11));
        assert_eq!(line_of_key(GOOD, "input.rows.nothing"), Some(10));
        assert_eq!(line_of_key(GOOD, "output.scores.columns.0"), Some(14));
        assert_eq!(line_of_key("not = toml = at all", "not"), None);
    }

    #[test]
    fn partition_mode_names_declared_columns() {
        let partitioned = GOOD
            .replace("mode = \"row\"", "mode = \"partition\"\npartition-by = [\"region\"]\norder-by = [\"t\"]")
            .replace(
                "columns = [{ name = \"x\", type = \"float64\" }]",
                "columns = [{ name = \"region\", type = \"text\" }, { name = \"t\", type = \"int64\" }, { name = \"x\", type = \"float64\" }]",
            );
        let manifest = Manifest::parse(&partitioned, Path::new("cordon.toml")).unwrap();
        assert_eq!(manifest.input.mode, InputMode::Partition);
        assert_eq!(manifest.input.partition_by[0].as_str(), "region");

        let cases = [
            (
                partitioned.replace("partition-by = [\"region\"]\n", ""),
                "needs partition-by",
            ),
            (
                partitioned.replace("order-by = [\"t\"]", "order-by = [\"day\"]"),
                "order-by: `day` is not one of",
            ),
            (
                partitioned.replace("order-by = [\"t\"]", "order-by = [\"region\"]"),
                "appears more than once",
            ),
            (
                partitioned.replace("name = \"y\"", "name = \"region\""),
                "the host adds to every output row",
            ),
            (
                GOOD.replace("mode = \"row\"", "mode = \"row\"\norder-by = [\"x\"]"),
                "need mode = \"partition\"",
            ),
        ];
        for (text, expected) in cases {
            let error = Manifest::parse(&text, Path::new("cordon.toml")).unwrap_err();
            assert!(error.to_string().contains(expected), "{expected}: {error}");
        }
    }
}

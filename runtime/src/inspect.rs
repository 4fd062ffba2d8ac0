//! `cordon inspect`: the permissions screen. Everything a consumer should read before running a
//! package, taken from the package itself without running or compiling anything: who made it
//! and whether the signature holds, what it holds, what data it asks for, what it writes, which
//! graphs it runs with which operators, what it says it needs, and what its component imports.

use std::fmt::{self, Write as _};

use ed25519_dalek::VerifyingKey;

use crate::manifest::{ColumnSpec, ResourceHints};
use crate::names::printable;
use crate::nn::graph_info::{self, GraphInfo};
use crate::package::Package;
use crate::sandbox::WASMTIME_VERSION;
use crate::signing;
use crate::world::{ComponentWorld, ImportVerdict};

/// What `cordon inspect` shows; `--json` prints it as is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    pub package: PackageFacts,
    pub signature: SignatureStatus,
    pub files: Vec<FileFacts>,
    pub input: InputFacts,
    pub output: OutputFacts,
    pub graphs: Vec<GraphFacts>,
    /// The feature encoders the package ships (`[[encoder]]`).
    pub encoders: Vec<EncoderFacts>,
    pub resources: ResourceHints,
    /// The settings the manifest declares, with their defaults; the policy's `[settings]` may
    /// set them.
    pub settings: Vec<crate::settings::SettingSpec>,
    pub component: ComponentFacts,
    /// Where the graphs would run under the policy given (`jail` or `in-process`); `None`
    /// without a policy.
    pub isolation: Option<String>,
    /// The versions of the host that read it.
    pub host: HostFacts,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PackageFacts {
    pub name: String,
    pub version: String,
    pub publisher: String,
    pub license: String,
    pub description: String,
    pub path: String,
    /// `sha256:` root digest over every file's digest: what the signature covers.
    pub digest: String,
    /// SHA-256 of the compressed archive as stored, for a packed package.
    pub archive_sha256: Option<String>,
}

/// The signature, as far as it could be checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignatureStatus {
    /// `verified`, `not-checked` (no policy given), `unsigned` or `refused`.
    pub status: &'static str,
    /// The key that signed it (verified) or says it did (otherwise).
    pub key_fingerprint: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FileFacts {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InputFacts {
    pub name: String,
    pub mode: String,
    pub columns: Vec<ColumnSpec>,
    pub partition_by: Vec<String>,
    pub order_by: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputFacts {
    pub name: String,
    pub columns: Vec<ColumnSpec>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphFacts {
    pub name: String,
    pub file: String,
    pub format: String,
    pub device: String,
    pub bytes: u64,
    pub sha256: String,
    /// Operators and operator sets, when the graph could be read.
    pub info: Option<GraphInfo>,
    /// Why `cordon run` would refuse the graph (external data, an operator domain the policy
    /// does not allow, a tensor past a limit); empty when it is admitted.
    pub refused: Vec<String>,
    /// Why it could not be.
    pub unreadable: Option<String>,
}

/// One encoder: what it makes of which columns. The levels themselves are the columns'
/// domains, shown with the input.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EncoderFacts {
    pub name: String,
    pub file: String,
    /// Features per row.
    pub features: usize,
    pub columns: Vec<EncodedColumnFacts>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EncodedColumnFacts {
    pub column: String,
    /// `number`, `one-hot` or `ordinal`.
    pub encode: &'static str,
    /// Levels, for one-hot and ordinal.
    pub levels: Option<usize>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ComponentFacts {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    /// `accepted`, or why `cordon run` would refuse it.
    pub verdict: String,
    pub world: Option<ComponentWorld>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HostFacts {
    pub cordon: &'static str,
    pub wasmtime: &'static str,
}

/// Inspects a loaded package; with `trusted` (the policy's keys for its publisher) the
/// signature is verified, without it only read.
/// `rules` are the graph admission rules (the policy's, or the defaults without one).
pub fn inspect(
    package: &Package,
    trusted: Option<&[VerifyingKey]>,
    rules: &graph_info::AdmissionRules,
) -> Inspection {
    let manifest = &package.manifest;
    let signature = signature_status(package, trusted);
    let files = package
        .file_digests()
        .into_iter()
        .map(|(name, sha256)| FileFacts {
            bytes: package.files.get(&name).map_or(0, |b| b.len() as u64),
            name,
            sha256,
        })
        .collect();
    let graphs = package
        .graphs
        .iter()
        .map(|graph| {
            let read = graph_info::read(&graph.bytes);
            let refused = match &read {
                Ok(info) => graph_info::admit(info, rules)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                Err(error) => vec![error.to_string()],
            };
            GraphFacts {
                refused,
                name: graph.spec.name.to_string(),
                file: graph.spec.file.clone(),
                format: "onnx".into(),
                device: graph.spec.device.to_string(),
                bytes: graph.bytes.len() as u64,
                sha256: graph.sha256.clone(),
                unreadable: read.as_ref().err().map(ToString::to_string),
                info: read.ok(),
            }
        })
        .collect();
    let world = ComponentWorld::read(&package.component);
    let verdict = match world
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|w| w.check(manifest.input.mode))
    {
        Ok(()) => "accepted".to_owned(),
        Err(error) => format!("refused: {error}"),
    };
    let names = |names: &[crate::names::Name]| names.iter().map(|n| n.to_string()).collect();
    Inspection {
        package: PackageFacts {
            name: manifest.name.to_string(),
            version: manifest.version.clone(),
            publisher: manifest.publisher.to_string(),
            license: manifest.license.clone(),
            description: manifest.description.clone(),
            path: package.path.display().to_string(),
            digest: format!("sha256:{}", package.digest()),
            archive_sha256: package.archive_sha256.clone(),
        },
        signature,
        files,
        input: InputFacts {
            name: manifest.input.name.to_string(),
            mode: manifest.input.mode.to_string(),
            columns: manifest.input.columns.clone(),
            partition_by: names(&manifest.input.partition_by),
            order_by: names(&manifest.input.order_by),
        },
        output: OutputFacts {
            name: manifest.output.name.to_string(),
            columns: manifest.output.columns.clone(),
        },
        graphs,
        encoders: manifest.encoders.iter().map(encoder_facts).collect(),
        resources: manifest.resources.clone(),
        settings: manifest.settings.clone(),
        component: ComponentFacts {
            file: manifest.component.clone(),
            bytes: package.component.len() as u64,
            sha256: package.component_sha256.clone(),
            verdict,
            world: world.ok(),
        },
        isolation: None,
        host: HostFacts {
            cordon: env!("CARGO_PKG_VERSION"),
            wasmtime: WASMTIME_VERSION,
        },
    }
}

fn signature_status(package: &Package, trusted: Option<&[VerifyingKey]>) -> SignatureStatus {
    let claimed = signing::claimed_signer(package);
    if package.signature.is_none() {
        return SignatureStatus {
            status: "unsigned",
            key_fingerprint: None,
            detail: "no signature: `cordon run` refuses it (but for --allow-unsigned)".into(),
        };
    }
    let Some(trusted) = trusted else {
        return SignatureStatus {
            status: "not-checked",
            key_fingerprint: claimed,
            detail: "signed, not checked: pass --policy to verify it against your [trust]".into(),
        };
    };
    match signing::verify(package, trusted) {
        Ok(verified) => SignatureStatus {
            status: "verified",
            key_fingerprint: Some(verified.key_fingerprint),
            detail: format!(
                "signed by a key your policy trusts for `{}`; every file matches the signed digests",
                verified.publisher
            ),
        },
        Err(error) => SignatureStatus {
            status: "refused",
            key_fingerprint: claimed,
            detail: error.to_string(),
        },
    }
}

fn columns(columns: &[ColumnSpec]) -> String {
    columns
        .iter()
        .map(|c| format!("{} ({})", c.name, c.ty))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One column's domain as the host checks it: `contract: one of "Month-to-month", "One year",
/// "Two year"; no nulls`. Levels and units are the provider's strings: escaped and cut.
fn domain(column: &ColumnSpec) -> String {
    let mut parts = Vec::new();
    if let Some(levels) = &column.levels {
        const LISTED: usize = 24;
        let mut listed: Vec<String> = levels
            .iter()
            .take(LISTED)
            .map(|level| format!("\"{}\"", printable(level, 64)))
            .collect();
        if levels.len() > LISTED {
            listed.push(format!(
                "and {} more (--json lists them all)",
                levels.len() - LISTED
            ));
        }
        parts.push(format!("one of {}", listed.join(", ")));
    }
    if let Some(range) = &column.range {
        let unit = column
            .unit
            .as_ref()
            .map(|unit| format!(" {}", printable(unit, 32)))
            .unwrap_or_default();
        parts.push(format!("{range}{unit}"));
    } else if let Some(unit) = &column.unit {
        parts.push(format!("in {}", printable(unit, 32)));
    }
    parts.push(
        if column.nullable {
            "nulls taken"
        } else {
            "no nulls"
        }
        .to_owned(),
    );
    format!("{}: {}", column.name, parts.join("; "))
}

/// A size for people: `81.1 KiB`.
fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{bytes} B")
    }
}

fn encoder_facts(spec: &crate::encoders::EncoderSpec) -> EncoderFacts {
    use crate::encoders::Encoding;
    EncoderFacts {
        name: spec.name.to_string(),
        file: spec.file.clone(),
        features: spec.width(),
        columns: spec
            .columns
            .iter()
            .map(|column| EncodedColumnFacts {
                column: column.column.to_string(),
                encode: column.encoding.kind(),
                levels: match &column.encoding {
                    Encoding::Number { .. } => None,
                    Encoding::OneHot { categories, .. } | Encoding::Ordinal { categories } => {
                        Some(categories.levels.len())
                    }
                },
            })
            .collect(),
    }
}

/// Most of a description shown; the manifest allows no more.
const MAX_DESCRIPTION_SHOWN: usize = crate::manifest::MAX_DESCRIPTION_BYTES;

/// A provider's string as the terminal shows it: escaped and cut (see [`printable`]).
fn shown(text: &str) -> String {
    printable(text, 512)
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.package;
        writeln!(
            f,
            "{} {} by {}  ({})",
            p.name,
            shown(&p.version),
            p.publisher,
            shown(&p.license)
        )?;
        writeln!(f, "  {}", printable(&p.description, MAX_DESCRIPTION_SHOWN))?;
        writeln!(f, "  file        {}", shown(&p.path))?;
        writeln!(f, "  digest      {}", p.digest)?;
        let s = &self.signature;
        writeln!(
            f,
            "signature     {}{}",
            s.status,
            s.key_fingerprint
                .as_ref()
                .map(|k| format!(", key {}", shown(k)))
                .unwrap_or_default()
        )?;
        writeln!(f, "  {}", shown(&s.detail))?;

        let input = &self.input;
        writeln!(f, "reads         `{}`, {} mode", input.name, input.mode)?;
        writeln!(f, "  columns     {}", columns(&input.columns))?;
        for column in input.columns.iter().filter(|c| c.has_domain()) {
            writeln!(f, "  domain      {}", domain(column))?;
        }
        if !input.partition_by.is_empty() {
            writeln!(
                f,
                "  partitions  by {}, ordered by {}",
                input.partition_by.join(", "),
                input.order_by.join(", ")
            )?;
        }
        writeln!(f, "writes        `{}`", self.output.name)?;
        writeln!(f, "  columns     {}", columns(&self.output.columns))?;

        for graph in &self.graphs {
            writeln!(
                f,
                "graph         {} ({}, {}, {}, prefers {})",
                graph.name,
                shown(&graph.file),
                graph.format,
                size(graph.bytes),
                graph.device
            )?;
            match (&graph.info, &graph.unreadable) {
                (Some(info), _) => {
                    let opsets = info
                        .opsets
                        .iter()
                        .map(|(domain, version)| format!("{} {version}", shown(domain)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let operators = info
                        .operators
                        .iter()
                        .map(|(op, count)| format!("{} ×{count}", shown(op)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    for (label, ports) in [("input", &info.inputs), ("output", &info.outputs)] {
                        for port in ports {
                            writeln!(f, "  {label:<11} {}", shown(&port.to_string()))?;
                        }
                    }
                    if info.more_ports > 0 {
                        writeln!(
                            f,
                            "  ...         {} more inputs and outputs",
                            info.more_ports
                        )?;
                    }
                    writeln!(f, "  opsets      {opsets}")?;
                    writeln!(f, "  operators   {operators}")?;
                    writeln!(
                        f,
                        "  stored      {} tensors, {}",
                        info.initializers,
                        size(info.initializer_bytes)
                    )?;
                }
                (None, Some(why)) => writeln!(f, "  unreadable  {}", shown(why))?,
                (None, None) => {}
            }
            for why in &graph.refused {
                writeln!(f, "  REFUSED     {}", shown(why))?;
            }
            if let Some(isolation) = &self.isolation {
                let place = if isolation == "jail" {
                    "in a jailed inference worker"
                } else {
                    "in the host process"
                };
                writeln!(
                    f,
                    "  runs        {place} ([inference] isolation = \"{isolation}\")"
                )?;
            }
        }

        for encoder in &self.encoders {
            let columns: Vec<String> = encoder
                .columns
                .iter()
                .map(|c| match c.levels {
                    Some(levels) => format!("{} ({}, {levels} levels)", c.column, c.encode),
                    None => format!("{} ({})", c.column, c.encode),
                })
                .collect();
            writeln!(
                f,
                "encoder       {} ({}): {} features from {}",
                encoder.name,
                shown(&encoder.file),
                encoder.features,
                columns.join(", ")
            )?;
        }

        let r = &self.resources;
        let mut hints = String::new();
        if let Some(memory) = r.memory {
            let _ = write!(hints, "memory {memory}  ");
        }
        if let Some(tensors) = r.tensor_bytes {
            let _ = write!(hints, "tensor-bytes {tensors}  ");
        }
        if let Some(fuel) = r.fuel_per_row {
            let _ = write!(hints, "fuel-per-row {fuel}");
        }
        if hints.is_empty() {
            hints.push_str("none given");
        }
        writeln!(f, "needs         {}", hints.trim_end())?;
        for setting in &self.settings {
            let mut bounds = String::new();
            if let Some(range) = setting.range {
                let _ = write!(bounds, ", in {range}");
            }
            if let Some(choices) = &setting.choices {
                let listed: Vec<String> = choices
                    .iter()
                    .map(|choice| format!("\"{}\"", printable(choice, 64)))
                    .collect();
                let _ = write!(bounds, ", one of {}", listed.join(", "));
            }
            let description = if setting.description.is_empty() {
                String::new()
            } else {
                format!(": {}", shown(&setting.description))
            };
            writeln!(
                f,
                "setting       {} ({}, default {}{bounds}){description}",
                setting.name, setting.ty, setting.default
            )?;
        }

        let c = &self.component;
        writeln!(
            f,
            "component     {} ({}, sha256:{}): {}",
            shown(&c.file),
            size(c.bytes),
            c.sha256,
            shown(&c.verdict)
        )?;
        if let Some(world) = &c.world {
            for import in &world.imports {
                let mark = match import.verdict {
                    ImportVerdict::Offered => "imports",
                    ImportVerdict::Network | ImportVerdict::Unknown => "REFUSED",
                };
                writeln!(
                    f,
                    "  {mark:<11} {}: {}",
                    shown(&import.name),
                    shown(import.note)
                )?;
            }
            for export in &world.exports {
                writeln!(f, "  exports     {}", shown(export))?;
            }
        }

        writeln!(f, "files")?;
        for file in &self.files {
            writeln!(
                f,
                "  {:<28} {:>10}  sha256:{}",
                shown(&file.name),
                size(file.bytes),
                file.sha256
            )?;
        }
        write!(
            f,
            "read by cordon {} (wasmtime {}); nothing was run",
            self.host.cordon, self.host.wasmtime
        )
    }
}

//! The grant: what the manifest requests intersected with what the policy allows.
//!
//! Resolved once, before any data is read or any guest code runs, so that a refusal names what
//! was refused instead of surfacing halfway through a run.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::manifest::{ColumnSpec, ColumnType, Device, GraphSpec, Manifest};
use crate::names::Name;
use crate::policy::Policy;

#[derive(Debug, thiserror::Error)]
#[error("{policy}: {message}")]
pub struct GrantError {
    pub policy: PathBuf,
    pub message: String,
}

/// One model column and where its values come from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GrantedColumn {
    /// The name the model reads.
    pub model: Name,
    /// What the policy's `columns` maps it to: a source column or an SQL expression.
    pub source: String,
    /// The SQL expression the policy's `mask` puts in its place, if any.
    pub mask: Option<String>,
    pub ty: ColumnType,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InputGrant {
    pub name: Name,
    pub source: PathBuf,
    /// In the manifest's order, which is the order the model receives them.
    pub columns: Vec<GrantedColumn>,
    /// Source columns held back from the sandbox and re-attached to the output.
    pub key: Vec<String>,
    /// SQL condition rows must pass before they enter the sandbox.
    pub filter: Option<String>,
    /// Types forced on CSV source columns.
    pub schema: std::collections::BTreeMap<String, ColumnType>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputGrant {
    pub name: Name,
    pub sink: PathBuf,
    pub columns: Vec<ColumnSpec>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphGrant {
    pub spec: GraphSpec,
    /// Where the policy lets it run.
    pub device: Device,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Grant {
    pub input: InputGrant,
    pub output: OutputGrant,
    pub graphs: Vec<GraphGrant>,
}

impl Grant {
    pub fn resolve(manifest: &Manifest, policy: &Policy) -> Result<Grant, GrantError> {
        let refuse = |message: String| GrantError {
            policy: policy.path.clone(),
            message,
        };

        let input_name = &manifest.input.name;
        for bound in policy.bind.keys() {
            if bound != input_name {
                return Err(refuse(format!(
                    "[bind.{bound}] binds an input the package does not declare (it declares `{input_name}`)"
                )));
            }
        }
        let binding = policy.bind.get(input_name).ok_or_else(|| {
            refuse(format!(
                "the package reads input `{input_name}`, but the policy has no [bind.{input_name}]"
            ))
        })?;

        let requested: BTreeSet<&Name> = manifest.input.columns.iter().map(|c| &c.name).collect();
        for granted in binding.columns.keys() {
            if !requested.contains(granted) {
                return Err(refuse(format!(
                    "[bind.{input_name}] columns grants `{granted}`, which the package does not ask for"
                )));
            }
        }
        let mut columns = Vec::with_capacity(manifest.input.columns.len());
        for spec in &manifest.input.columns {
            let source = binding.columns.get(&spec.name).ok_or_else(|| {
                refuse(format!(
                    "the package needs column `{}` ({}) of input `{input_name}`, but [bind.{input_name}] columns does not grant it",
                    spec.name, spec.ty
                ))
            })?;
            if binding.key.contains(source) {
                return Err(refuse(format!(
                    "[bind.{input_name}] grants key column `{source}` to the model as `{}`; key columns never enter the sandbox",
                    spec.name
                )));
            }
            columns.push(GrantedColumn {
                model: spec.name.clone(),
                source: source.clone(),
                mask: binding.mask.get(&spec.name).cloned(),
                ty: spec.ty,
            });
        }
        for masked in binding.mask.keys() {
            if !requested.contains(masked) {
                return Err(refuse(format!(
                    "[bind.{input_name}] mask names `{masked}`, which the package does not ask for"
                )));
            }
        }

        let output_name = &manifest.output.name;
        for emitted in policy.emit.keys() {
            if emitted != output_name {
                return Err(refuse(format!(
                    "[emit.{emitted}] names an output the package does not declare (it declares `{output_name}`)"
                )));
            }
        }
        let emit = policy.emit.get(output_name).ok_or_else(|| {
            refuse(format!(
                "the package writes output `{output_name}`, but the policy has no [emit.{output_name}]"
            ))
        })?;
        let output_columns: BTreeSet<&str> = manifest
            .output
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        for key in &binding.key {
            if output_columns.contains(key.as_str()) {
                return Err(refuse(format!(
                    "key column `{key}` has the same name as an output column of `{output_name}`"
                )));
            }
        }

        let mut graphs = Vec::with_capacity(manifest.graphs.len());
        for spec in &manifest.graphs {
            let allowed = &policy.inference.devices;
            let device = if allowed.contains(&spec.device) {
                spec.device
            } else if allowed.contains(&Device::Cpu) {
                Device::Cpu
            } else {
                return Err(refuse(format!(
                    "graph `{}` needs an inference device, but [inference] devices allows none it can use (add devices = [\"cpu\"])",
                    spec.name
                )));
            };
            graphs.push(GraphGrant {
                spec: spec.clone(),
                device,
            });
        }

        Ok(Grant {
            input: InputGrant {
                name: input_name.clone(),
                source: binding.source.clone(),
                columns,
                key: binding.key.clone(),
                filter: binding.filter.clone(),
                schema: binding.schema.clone(),
            },
            output: OutputGrant {
                name: output_name.clone(),
                sink: emit.sink.clone(),
                columns: manifest.output.columns.clone(),
            },
            graphs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const MANIFEST: &str = r#"
manifest-version = 1
[package]
name = "m"
version = "0.1.0"
publisher = "acme"
license = "MIT"
description = "d"
component = "model.wasm"
[input.customers]
mode = "row"
columns = [{ name = "tenure", type = "int64" }, { name = "contract", type = "text" }]
[output.scores]
columns = [{ name = "p", type = "float64" }]
[[graph]]
name = "g"
file = "g.onnx"
format = "onnx"
"#;

    fn grant(policy: &str) -> Result<Grant, GrantError> {
        let manifest = Manifest::parse(MANIFEST, Path::new("cordon.toml")).unwrap();
        let policy = Policy::parse(policy, Path::new("p.toml"), Path::new("/")).unwrap();
        Grant::resolve(&manifest, &policy)
    }

    const HEAD: &str =
        "version = 1\n[inference]\ndevices = [\"cpu\"]\n[emit.scores]\nsink = \"o.csv\"\n";

    #[test]
    fn a_full_grant_keeps_manifest_order() {
        let grant = grant(&format!(
            "{HEAD}[bind.customers]\nsource = \"t.csv\"\nkey = [\"id\"]\ncolumns = {{ contract = \"Contract\", tenure = \"tenure\" }}\n"
        ))
        .unwrap();
        let names: Vec<_> = grant
            .input
            .columns
            .iter()
            .map(|c| c.model.as_str())
            .collect();
        assert_eq!(names, ["tenure", "contract"]);
        assert_eq!(grant.graphs[0].device, Device::Cpu);
    }

    #[test]
    fn refusals_name_what_was_refused() {
        let cases = [
            (
                format!("{HEAD}[bind.customers]\nsource = \"t.csv\"\ncolumns = {{ tenure = \"tenure\" }}\n"),
                "needs column `contract`",
            ),
            (
                format!("{HEAD}[bind.customers]\nsource = \"t.csv\"\ncolumns = {{ tenure = \"t\", contract = \"c\", zip = \"z\" }}\n"),
                "grants `zip`, which the package does not ask for",
            ),
            (
                format!("{HEAD}[bind.customers]\nsource = \"t.csv\"\nkey = [\"t\"]\ncolumns = {{ tenure = \"t\", contract = \"c\" }}\n"),
                "key columns never enter the sandbox",
            ),
            (
                format!("{HEAD}[bind.people]\nsource = \"t.csv\"\ncolumns = {{ tenure = \"t\" }}\n"),
                "[bind.people] binds an input the package does not declare",
            ),
            (
                "version = 1\n[emit.scores]\nsink = \"o.csv\"\n[bind.customers]\nsource = \"t.csv\"\ncolumns = { tenure = \"t\", contract = \"c\" }\n".to_string(),
                "graph `g` needs an inference device",
            ),
        ];
        for (policy, expected) in cases {
            let error = grant(&policy).unwrap_err().to_string();
            assert!(error.contains(expected), "{policy}\n=> {error}");
        }
    }
}

//! The grant: what the manifest requests intersected with what the policy allows.
//!
//! Resolved once, before any data is read or any guest code runs, so that a refusal names what
//! was refused instead of surfacing halfway through a run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::manifest::{ColumnSpec, ColumnType, Device, GraphSpec, InputMode, Manifest};
use crate::names::Name;
use crate::policy::Policy;

#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", policy.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct GrantError {
    pub policy: PathBuf,
    /// The line of the policy table at fault, where there is one.
    pub line: Option<usize>,
    pub message: String,
}

/// One model column and where its values come from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GrantedColumn {
    /// The name the model reads.
    pub model: Name,
    /// What the policy's `columns` maps it to: a source column or an SQL expression.
    pub source: String,
    /// The SQL expression the binding's `mask` puts in its place, if any: over the table's
    /// columns.
    pub mask: Option<String>,
    /// The role's `mask`, if any, applied on top of the binding's result: it reads the model's
    /// columns as the binding delivers them (`contract` is already `left(Contract, 3)`), never
    /// the table's, so a role can only narrow what the binding grants.
    pub role_mask: Option<String>,
    pub ty: ColumnType,
    /// Where in the policy `source` is written (`bind.customers.columns.tenure`), for errors.
    #[serde(skip)]
    pub source_key: String,
    /// Where in the policy `mask` is written, for errors.
    #[serde(skip)]
    pub mask_key: Option<String>,
    /// Where in the policy `role_mask` is written, for errors.
    #[serde(skip)]
    pub role_mask_key: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InputGrant {
    pub name: Name,
    pub source: PathBuf,
    /// In the manifest's order, which is the order the model receives them.
    pub columns: Vec<GrantedColumn>,
    /// Source columns held back from the sandbox and re-attached to the output.
    pub key: Vec<String>,
    /// SQL condition rows must pass before they enter the sandbox: the binding's and the
    /// role's together.
    pub filter: Option<String>,
    /// Each filter that makes up `filter`, with where the policy writes it, for errors.
    #[serde(skip)]
    pub filters: Vec<(String, String)>,
    /// Types forced on CSV source columns.
    pub schema: std::collections::BTreeMap<String, ColumnType>,
    pub mode: InputMode,
    /// Partition mode: the model columns whose values make one partition.
    pub partition_by: Vec<Name>,
    /// Partition mode: the model columns that order each partition's rows.
    pub order_by: Vec<Name>,
    /// Where the policy writes each key, for errors in its SQL found against the table.
    #[serde(skip)]
    pub policy: crate::policy::PolicyLines,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputGrant {
    pub name: Name,
    pub sink: PathBuf,
    /// What the model must return, as the manifest declares it.
    pub columns: Vec<ColumnSpec>,
    /// Partition mode: the partition columns the host writes before the model's columns.
    pub partition_key: Vec<ColumnSpec>,
    /// What a NaN or infinity from the model becomes (`[emit.<output>] non-finite`).
    pub non_finite: crate::policy::NonFinite,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphGrant {
    pub spec: GraphSpec,
    /// Where the policy lets it run.
    pub device: Device,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Grant {
    /// The role the run was granted as, if the policy has roles.
    pub role: Option<Name>,
    pub input: InputGrant,
    pub output: OutputGrant,
    pub graphs: Vec<GraphGrant>,
    /// Where the graphs run: in jailed inference workers, or in the host process.
    pub isolation: crate::policy::Isolation,
}

impl Grant {
    /// The grant for a run as `role` (required when the policy defines roles).
    pub fn resolve(
        manifest: &Manifest,
        policy: &Policy,
        role: Option<&str>,
    ) -> Result<Grant, GrantError> {
        let refuse = |table: &str, message: String| GrantError {
            policy: policy.path.clone(),
            line: policy.line_of(table),
            message,
        };
        let role_names = || {
            policy
                .roles
                .keys()
                .map(Name::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let role = match (role, policy.roles.is_empty()) {
            (None, true) => None,
            (None, false) => {
                return Err(refuse(
                    "role",
                    format!(
                        "the policy defines roles ({}); choose one with --role",
                        role_names()
                    ),
                ));
            }
            (Some(name), true) => {
                return Err(refuse(
                    "role",
                    format!("--role {name}: the policy defines no roles"),
                ));
            }
            (Some(name), false) => {
                let found = policy.roles.iter().find(|(n, _)| n.as_str() == name);
                match found {
                    Some((name, role)) => Some((name.clone(), role)),
                    None => {
                        return Err(refuse(
                            "role",
                            format!(
                                "--role {name}: the policy defines no such role (it defines: {})",
                                role_names()
                            ),
                        ));
                    }
                }
            }
        };

        let input_name = &manifest.input.name;
        for bound in policy.bind.keys() {
            if bound != input_name {
                return Err(refuse(
                    &format!("bind.{bound}"),
                    format!(
                        "[bind.{bound}] binds an input the package does not declare (it declares `{input_name}`)"
                    ),
                ));
            }
        }
        let binding = policy.bind.get(input_name).ok_or_else(|| {
            refuse("bind", format!(
                "the package reads input `{input_name}`, but the policy has no [bind.{input_name}]"
            ))
        })?;

        // The role narrows the binding: both filters apply, its masks come on top.
        let role_binding = role.as_ref().and_then(|(_, r)| r.bind.get(input_name));
        let filter = match (
            &binding.filter,
            role_binding.and_then(|r| r.filter.as_ref()),
        ) {
            (Some(base), Some(extra)) => Some(format!("({base}) AND ({extra})")),
            (base, extra) => base.clone().or_else(|| extra.cloned()),
        };
        let mut filters = Vec::new();
        if let Some(base) = &binding.filter {
            filters.push((format!("bind.{input_name}.filter"), base.clone()));
        }
        if let (Some((role_name, _)), Some(extra)) =
            (&role, role_binding.and_then(|r| r.filter.as_ref()))
        {
            filters.push((
                format!("role.{role_name}.bind.{input_name}.filter"),
                extra.clone(),
            ));
        }
        // Each mask with where it is written; a role's comes on top of the binding's.
        let masks_of =
            |masks: &BTreeMap<Name, String>, prefix: &str| -> BTreeMap<Name, (String, String)> {
                masks
                    .iter()
                    .map(|(column, sql)| {
                        (
                            column.clone(),
                            (format!("{prefix}.mask.{column}"), sql.clone()),
                        )
                    })
                    .collect()
            };
        let masks = masks_of(&binding.mask, &format!("bind.{input_name}"));
        let role_masks = match (&role, role_binding) {
            (Some((role_name, _)), Some(role_binding)) => masks_of(
                &role_binding.mask,
                &format!("role.{role_name}.bind.{input_name}"),
            ),
            _ => BTreeMap::new(),
        };

        let requested: BTreeSet<&Name> = manifest.input.columns.iter().map(|c| &c.name).collect();
        for granted in binding.columns.keys() {
            if !requested.contains(granted) {
                return Err(refuse(
                    &format!("bind.{input_name}.columns.{granted}"),
                    format!(
                        "[bind.{input_name}] columns grants `{granted}`, which the package does not ask for"
                    ),
                ));
            }
        }
        let mut columns = Vec::with_capacity(manifest.input.columns.len());
        for spec in &manifest.input.columns {
            let source = binding.columns.get(&spec.name).ok_or_else(|| {
                refuse(&format!("bind.{input_name}.columns"), format!(
                    "the package needs column `{}` ({}) of input `{input_name}`, but [bind.{input_name}] columns does not grant it",
                    spec.name, spec.ty
                ))
            })?;
            if binding.key.contains(source) {
                return Err(refuse(
                    &format!("bind.{input_name}.key"),
                    format!(
                        "[bind.{input_name}] grants key column `{source}` to the model as `{}`; key columns never enter the sandbox",
                        spec.name
                    ),
                ));
            }
            let mask = masks.get(&spec.name);
            let role_mask = role_masks.get(&spec.name);
            columns.push(GrantedColumn {
                model: spec.name.clone(),
                source: source.clone(),
                mask: mask.map(|(_, sql)| sql.clone()),
                role_mask: role_mask.map(|(_, sql)| sql.clone()),
                ty: spec.ty,
                source_key: format!("bind.{input_name}.columns.{}", spec.name),
                mask_key: mask.map(|(key, _)| key.clone()),
                role_mask_key: role_mask.map(|(key, _)| key.clone()),
            });
        }
        for (masked, (key, _)) in masks.iter().chain(&role_masks) {
            if !requested.contains(masked) {
                let table = key.strip_suffix(&format!(".mask.{masked}")).unwrap_or(key);
                return Err(refuse(
                    key,
                    format!("[{table}] mask names `{masked}`, which the package does not ask for"),
                ));
            }
        }

        if manifest.input.mode == InputMode::Partition && !binding.key.is_empty() {
            let partition_by: Vec<&str> = manifest
                .input
                .partition_by
                .iter()
                .map(Name::as_str)
                .collect();
            return Err(refuse(
                &format!("bind.{input_name}.key"),
                format!(
                    "[bind.{input_name}] key: input `{input_name}` is read in partition mode, whose output rows are not input rows; the host adds the partition key ({}) to them instead, so remove `key`",
                    partition_by.join(", ")
                ),
            ));
        }

        let output_name = &manifest.output.name;
        for emitted in policy.emit.keys() {
            if emitted != output_name {
                return Err(refuse(
                    &format!("emit.{emitted}"),
                    format!(
                        "[emit.{emitted}] names an output the package does not declare (it declares `{output_name}`)"
                    ),
                ));
            }
        }
        let emit = policy.emit.get(output_name).ok_or_else(|| {
            refuse("emit", format!(
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
                return Err(refuse(
                    &format!("bind.{input_name}.key"),
                    format!(
                        "key column `{key}` has the same name as an output column of `{output_name}`"
                    ),
                ));
            }
        }

        // The partition columns go out with the types the model read them as.
        let partition_key: Vec<ColumnSpec> = manifest
            .input
            .partition_by
            .iter()
            .filter_map(|name| manifest.input.columns.iter().find(|c| &c.name == name))
            .cloned()
            .collect();

        let mut graphs = Vec::with_capacity(manifest.graphs.len());
        for spec in &manifest.graphs {
            let allowed = &policy.inference.devices;
            let device = if allowed.contains(&spec.device) {
                spec.device
            } else if allowed.contains(&Device::Cpu) {
                Device::Cpu
            } else {
                return Err(refuse(
                    "inference.devices",
                    format!(
                        "graph `{}` needs an inference device, but [inference] devices allows none it can use (add devices = [\"cpu\"])",
                        spec.name
                    ),
                ));
            };
            graphs.push(GraphGrant {
                spec: spec.clone(),
                device,
            });
        }

        Ok(Grant {
            role: role.map(|(name, _)| name),
            input: InputGrant {
                name: input_name.clone(),
                source: binding.source.clone(),
                columns,
                key: binding.key.clone(),
                filter,
                filters,
                schema: binding.schema.clone(),
                mode: manifest.input.mode,
                partition_by: manifest.input.partition_by.clone(),
                order_by: manifest.input.order_by.clone(),
                policy: policy.lines(),
            },
            output: OutputGrant {
                name: output_name.clone(),
                sink: emit.sink.clone(),
                columns: manifest.output.columns.clone(),
                partition_key,
                non_finite: emit.non_finite,
            },
            graphs,
            isolation: policy.inference.isolation,
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
        Grant::resolve(&manifest, &policy, None)
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
    fn roles_narrow_the_binding_and_must_be_chosen() {
        let manifest = Manifest::parse(MANIFEST, Path::new("cordon.toml")).unwrap();
        let text = format!(
            "{HEAD}[bind.customers]\nsource = \"t.csv\"\nfilter = \"consent\"\ncolumns = {{ tenure = \"t\", contract = \"c\" }}\n[role.eu.bind.customers]\nfilter = \"region = 'EU'\"\nmask = {{ contract = \"left(c, 3)\" }}\n[role.all]\n"
        );
        let policy = Policy::parse(&text, Path::new("p.toml"), Path::new("/")).unwrap();
        let error = Grant::resolve(&manifest, &policy, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("defines roles (all, eu); choose one with --role"),
            "{error}"
        );
        let error = Grant::resolve(&manifest, &policy, Some("us"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no such role"), "{error}");

        let eu = Grant::resolve(&manifest, &policy, Some("eu")).unwrap();
        assert_eq!(
            eu.input.filter.as_deref(),
            Some("(consent) AND (region = 'EU')")
        );
        assert_eq!(eu.input.columns[1].mask, None);
        assert_eq!(eu.input.columns[1].role_mask.as_deref(), Some("left(c, 3)"));
        let all = Grant::resolve(&manifest, &policy, Some("all")).unwrap();
        assert_eq!(all.input.filter.as_deref(), Some("consent"));
        assert_eq!(all.input.columns[1].role_mask, None);
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

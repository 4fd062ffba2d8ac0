//! The grant: what the manifest requests intersected with what the policy allows.
//!
//! Resolved once, before any data is read or any guest code runs, so that a refusal names what
//! was refused instead of surfacing halfway through a run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::manifest::{ColumnSpec, ColumnType, Device, GraphSpec, InputMode, Manifest};
use crate::names::Name;
use crate::policy::{Binding, Emit, Policy, Role, RoleBinding};

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
    /// The manifest's input columns that declare a domain (levels, a range, no nulls): each
    /// value is checked against it before it enters the sandbox.
    pub domains: Vec<ColumnSpec>,
    /// What a value outside its domain does (`[bind.<input>] out-of-domain`).
    pub out_of_domain: crate::policy::OutOfDomain,
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
    /// Every setting the package declares, with the value this run gives the model.
    pub settings: Vec<crate::settings::GrantedSetting>,
}

impl Grant {
    /// The grant for a run as `role` (required when the policy defines roles).
    ///
    /// Each step below checks one part of the request against the policy, in the order a
    /// reader meets them: the role, the binding, its columns and masks, the output, the graphs.
    pub fn resolve(
        manifest: &Manifest,
        policy: &Policy,
        role: Option<&str>,
    ) -> Result<Grant, GrantError> {
        let role = choose_role(policy, role)?;
        let input_name = &manifest.input.name;
        let binding = find_binding(manifest, policy)?;

        // The role narrows the binding: both filters apply, its masks come on top.
        let role_binding = role.as_ref().and_then(|(_, r)| r.bind.get(input_name));
        let role_name = role.as_ref().map(|(name, _)| name);
        let (filter, filters) = combine_filters(input_name, binding, role_name, role_binding);
        let masks = masks_of(&binding.mask, &format!("bind.{input_name}"));
        let role_masks = match (role_name, role_binding) {
            (Some(role_name), Some(role_binding)) => masks_of(
                &role_binding.mask,
                &format!("role.{role_name}.bind.{input_name}"),
            ),
            _ => BTreeMap::new(),
        };

        let columns = grant_columns(manifest, policy, binding, &masks, &role_masks)?;
        check_partition_mode_has_no_key(manifest, policy, binding)?;
        let emit = find_emit(manifest, policy, binding)?;

        // The partition columns go out with the types the model read them as.
        let partition_key: Vec<ColumnSpec> = manifest
            .input
            .partition_by
            .iter()
            .filter_map(|name| manifest.input.columns.iter().find(|c| &c.name == name))
            .cloned()
            .collect();

        let graphs = grant_graphs(manifest, policy)?;
        let settings = crate::settings::resolve(&manifest.settings, &policy.settings)
            .map_err(|(key, message)| refuse(policy, &key, message))?;

        Ok(Grant {
            role: role.map(|(name, _)| name),
            input: InputGrant {
                name: input_name.clone(),
                source: binding.source.clone(),
                columns,
                key: binding.key.clone(),
                filter,
                filters,
                domains: manifest
                    .input
                    .columns
                    .iter()
                    .filter(|c| c.has_domain())
                    .cloned()
                    .collect(),
                out_of_domain: binding.out_of_domain,
                schema: binding.schema.clone(),
                mode: manifest.input.mode,
                partition_by: manifest.input.partition_by.clone(),
                order_by: manifest.input.order_by.clone(),
                policy: policy.lines(),
            },
            output: OutputGrant {
                name: manifest.output.name.clone(),
                sink: emit.sink.clone(),
                columns: manifest.output.columns.clone(),
                partition_key,
                non_finite: emit.non_finite,
            },
            graphs,
            isolation: policy.inference.isolation,
            settings,
        })
    }
}

/// A refusal at the policy's `table` (a dotted key), with that key's line.
fn refuse(policy: &Policy, table: &str, message: String) -> GrantError {
    GrantError {
        policy: policy.path.clone(),
        line: policy.line_of(table),
        message,
    }
}

/// Each mask of a binding or role by model column, with the dotted key it is written at.
type MasksByColumn = BTreeMap<Name, (String, String)>;

/// The role the run is granted as. A policy with roles must be run as one of them, and one
/// without roles as none: a `--role` the policy does not know is refused rather than ignored,
/// so that nobody believes a run was narrowed when it was not.
fn choose_role<'p>(
    policy: &'p Policy,
    role: Option<&str>,
) -> Result<Option<(Name, &'p Role)>, GrantError> {
    let role_names = || {
        policy
            .roles
            .keys()
            .map(Name::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (role, policy.roles.is_empty()) {
        (None, true) => Ok(None),
        (None, false) => Err(refuse(
            policy,
            "role",
            format!(
                "the policy defines roles ({}); choose one with --role",
                role_names()
            ),
        )),
        (Some(name), true) => Err(refuse(
            policy,
            "role",
            format!("--role {name}: the policy defines no roles"),
        )),
        (Some(name), false) => {
            let found = policy.roles.iter().find(|(n, _)| n.as_str() == name);
            match found {
                Some((name, role)) => Ok(Some((name.clone(), role))),
                None => Err(refuse(
                    policy,
                    "role",
                    format!(
                        "--role {name}: the policy defines no such role (it defines: {})",
                        role_names()
                    ),
                )),
            }
        }
    }
}

/// The policy's binding of the package's input. A `[bind.*]` for an input the package does not
/// declare is refused, since the consumer meant it for some other model; a missing one is
/// refused, since nothing may be read without it.
fn find_binding<'p>(manifest: &Manifest, policy: &'p Policy) -> Result<&'p Binding, GrantError> {
    let input_name = &manifest.input.name;
    for bound in policy.bind.keys() {
        if bound != input_name {
            return Err(refuse(
                policy,
                &format!("bind.{bound}"),
                format!(
                    "[bind.{bound}] binds an input the package does not declare (it declares `{input_name}`)"
                ),
            ));
        }
    }
    policy.bind.get(input_name).ok_or_else(|| {
        refuse(
            policy,
            "bind",
            format!(
                "the package reads input `{input_name}`, but the policy has no [bind.{input_name}]"
            ),
        )
    })
}

/// The binding's filter and the role's together (rows must pass both), and each of them with
/// the dotted key it is written at, so that an error in either names its line.
fn combine_filters(
    input_name: &Name,
    binding: &Binding,
    role_name: Option<&Name>,
    role_binding: Option<&RoleBinding>,
) -> (Option<String>, Vec<(String, String)>) {
    let role_filter = role_binding.and_then(|r| r.filter.as_ref());
    let filter = match (&binding.filter, role_filter) {
        (Some(base), Some(extra)) => Some(format!("({base}) AND ({extra})")),
        (base, extra) => base.clone().or_else(|| extra.cloned()),
    };
    let mut filters = Vec::new();
    if let Some(base) = &binding.filter {
        filters.push((format!("bind.{input_name}.filter"), base.clone()));
    }
    if let (Some(role_name), Some(extra)) = (role_name, role_filter) {
        filters.push((
            format!("role.{role_name}.bind.{input_name}.filter"),
            extra.clone(),
        ));
    }
    (filter, filters)
}

/// Each mask with where it is written (`<prefix>.mask.<column>`); a role's comes on top of the
/// binding's.
fn masks_of(masks: &BTreeMap<Name, String>, prefix: &str) -> MasksByColumn {
    masks
        .iter()
        .map(|(column, sql)| {
            (
                column.clone(),
                (format!("{prefix}.mask.{column}"), sql.clone()),
            )
        })
        .collect()
}

/// The model's columns in the manifest's order, each with its source and masks. The policy
/// must grant exactly what the package asks for: a column granted or masked but not asked for
/// is refused (the consumer meant it for another model), one asked for but not granted is
/// refused, and a key column may never be granted, since keys never enter the sandbox.
fn grant_columns(
    manifest: &Manifest,
    policy: &Policy,
    binding: &Binding,
    masks: &MasksByColumn,
    role_masks: &MasksByColumn,
) -> Result<Vec<GrantedColumn>, GrantError> {
    let input_name = &manifest.input.name;
    let requested: BTreeSet<&Name> = manifest.input.columns.iter().map(|c| &c.name).collect();
    for granted in binding.columns.keys() {
        if !requested.contains(granted) {
            return Err(refuse(
                policy,
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
            refuse(policy, &format!("bind.{input_name}.columns"), format!(
                "the package needs column `{}` ({}) of input `{input_name}`, but [bind.{input_name}] columns does not grant it",
                spec.name, spec.ty
            ))
        })?;
        if binding.key.contains(source) {
            return Err(refuse(
                policy,
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
    for (masked, (key, _)) in masks.iter().chain(role_masks) {
        if !requested.contains(masked) {
            let table = key.strip_suffix(&format!(".mask.{masked}")).unwrap_or(key);
            return Err(refuse(
                policy,
                key,
                format!("[{table}] mask names `{masked}`, which the package does not ask for"),
            ));
        }
    }
    Ok(columns)
}

/// In partition mode an output row is not an input row, so there is no row to re-attach a
/// `key` to: the host writes the partition key instead, and a `key` is refused rather than
/// silently dropped.
fn check_partition_mode_has_no_key(
    manifest: &Manifest,
    policy: &Policy,
    binding: &Binding,
) -> Result<(), GrantError> {
    if manifest.input.mode != InputMode::Partition || binding.key.is_empty() {
        return Ok(());
    }
    let input_name = &manifest.input.name;
    let partition_by: Vec<&str> = manifest
        .input
        .partition_by
        .iter()
        .map(Name::as_str)
        .collect();
    Err(refuse(
        policy,
        &format!("bind.{input_name}.key"),
        format!(
            "[bind.{input_name}] key: input `{input_name}` is read in partition mode, whose output rows are not input rows; the host adds the partition key ({}) to them instead, so remove `key`",
            partition_by.join(", ")
        ),
    ))
}

/// The policy's `[emit.*]` for the package's output. As with bindings, one for an output the
/// package does not declare is refused, and so is a missing one; and a key column may not
/// share a name with an output column, or the re-attached key would be ambiguous. A binding
/// to requests (`source = "request"`) answers in the response: it needs no `[emit.*]`, and its
/// sink is named `response`.
fn find_emit(manifest: &Manifest, policy: &Policy, binding: &Binding) -> Result<Emit, GrantError> {
    let input_name = &manifest.input.name;
    let output_name = &manifest.output.name;
    for emitted in policy.emit.keys() {
        if emitted != output_name {
            return Err(refuse(
                policy,
                &format!("emit.{emitted}"),
                format!(
                    "[emit.{emitted}] names an output the package does not declare (it declares `{output_name}`)"
                ),
            ));
        }
    }
    let emit = match policy.emit.get(output_name) {
        Some(emit) => emit.clone(),
        None if binding.is_request() => Emit {
            sink: "response".into(),
            non_finite: crate::policy::NonFinite::default(),
        },
        None => {
            return Err(refuse(
                policy,
                "emit",
                format!(
                    "the package writes output `{output_name}`, but the policy has no [emit.{output_name}]"
                ),
            ));
        }
    };
    let output_columns: BTreeSet<&str> = manifest
        .output
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for key in &binding.key {
        if output_columns.contains(key.as_str()) {
            return Err(refuse(
                policy,
                &format!("bind.{input_name}.key"),
                format!(
                    "key column `{key}` has the same name as an output column of `{output_name}`"
                ),
            ));
        }
    }
    Ok(emit)
}

/// The device each graph may run on: the one it asks for if the policy allows it, else the
/// CPU if the policy allows that; a graph with neither is refused before anything runs.
fn grant_graphs(manifest: &Manifest, policy: &Policy) -> Result<Vec<GraphGrant>, GrantError> {
    let allowed = &policy.inference.devices;
    let mut graphs = Vec::with_capacity(manifest.graphs.len());
    for spec in &manifest.graphs {
        let device = if allowed.contains(&spec.device) {
            spec.device
        } else if allowed.contains(&Device::Cpu) {
            Device::Cpu
        } else {
            return Err(refuse(
                policy,
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
    Ok(graphs)
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

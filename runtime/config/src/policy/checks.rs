//! The steps of [`Policy::parse`](super::Policy::parse) after the text has been read as TOML:
//! each checks one table, or resolves its paths, and names the key at fault.

use std::collections::BTreeMap;
use std::path::Path;

use super::lines::KeyLines;
use super::sql::check_binding_sql;
use super::{
    Binding, InferencePolicy, Limits, MAX_BATCH_ROWS, MAX_GUEST_MEMORY, MAX_INFERENCE_THREADS,
    MAX_INSTANCES, MIN_GUEST_MEMORY, MIN_INFERENCE_MEMORY, POLICY_VERSION, PlainTable, PolicyError,
    Role, ServePolicy,
};
use crate::names::Name;

/// Makes the errors of one policy file: each names the file and the line of the key at fault.
pub(super) struct Invalid<'a> {
    pub(super) path: &'a Path,
    pub(super) key_lines: &'a KeyLines,
}

impl Invalid<'_> {
    /// An error about the key at dotted `key`, with that key's line.
    pub(super) fn at(&self, key: &str, message: String) -> PolicyError {
        PolicyError::Invalid {
            path: self.path.to_owned(),
            line: self.key_lines.line_of(key),
            message,
        }
    }
}

/// The version decides how to read everything else, so it is checked before the rest of the
/// policy is parsed: a policy written for another version fails with a message about its
/// version, not about some key this runtime does not know.
pub(super) fn check_version(table: &toml::Table, invalid: &Invalid) -> Result<(), PolicyError> {
    match table.get("version") {
        Some(toml::Value::Integer(POLICY_VERSION)) => Ok(()),
        Some(other) => Err(invalid.at(
            "version",
            format!(
                "version = {other} is not supported; this runtime reads version {POLICY_VERSION}"
            ),
        )),
        None => Err(invalid.at(
            "version",
            format!("missing `version`; add `version = {POLICY_VERSION}` as the first line"),
        )),
    }
}

/// Every limit within its range: a limit of zero would refuse every run (so it is a mistake,
/// not a setting), and one past its maximum would let a run reserve more of the host than the
/// runtime is built to give.
pub(super) fn check_limits(limits: &Limits, invalid: &Invalid) -> Result<(), PolicyError> {
    if !(1..=MAX_INSTANCES).contains(&limits.instances) {
        return Err(invalid.at(
            "limits.instances",
            format!(
                "limits.instances = {} is out of range 1..={MAX_INSTANCES}",
                limits.instances
            ),
        ));
    }
    if limits.memory < MIN_GUEST_MEMORY || limits.memory > MAX_GUEST_MEMORY {
        return Err(invalid.at(
            "limits.memory",
            format!(
                "limits.memory = \"{}\" is out of range {MIN_GUEST_MEMORY}..={MAX_GUEST_MEMORY}",
                limits.memory
            ),
        ));
    }
    if !(1..=MAX_BATCH_ROWS).contains(&limits.batch_rows) {
        return Err(invalid.at(
            "limits.batch-rows",
            format!(
                "limits.batch-rows = {} is out of range 1..={MAX_BATCH_ROWS}",
                limits.batch_rows
            ),
        ));
    }
    if limits.partition_rows == 0 {
        return Err(invalid.at(
            "limits.partition-rows",
            "limits.partition-rows = 0 would refuse every partition".into(),
        ));
    }
    for (key, size) in [
        ("limits.output-bytes", limits.output_bytes),
        ("limits.output-text-bytes", limits.output_text_bytes),
    ] {
        if size.bytes() == 0 {
            return Err(invalid.at(key, format!("{key} = \"{size}\" would refuse every output")));
        }
    }
    if limits.fuel_per_batch == 0 {
        return Err(invalid.at(
            "limits.fuel-per-batch",
            "limits.fuel-per-batch = 0 would stop every model".into(),
        ));
    }
    if limits.wall_time.0.is_zero() {
        return Err(invalid.at(
            "limits.wall-time",
            "limits.wall-time must be longer than zero".into(),
        ));
    }
    if limits.inference_memory < MIN_INFERENCE_MEMORY {
        return Err(invalid.at(
            "limits.inference-memory",
            format!(
                "limits.inference-memory = \"{}\" is below {MIN_INFERENCE_MEMORY}, too little for ONNX Runtime to load a graph",
                limits.inference_memory
            ),
        ));
    }
    Ok(())
}

/// The `[inference]` table with its defaults filled in: operator domains must be plain names
/// (they reach error messages and ONNX Runtime), and the thread count is 1 when absent and at
/// most [`MAX_INFERENCE_THREADS`].
pub(super) fn check_inference(
    mut inference: InferencePolicy,
    invalid: &Invalid,
) -> Result<InferencePolicy, PolicyError> {
    for domain in &inference.operator_domains {
        let well_formed = !domain.is_empty()
            && domain.len() <= 128
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !well_formed {
            return Err(invalid.at(
                "inference.operator-domains",
                format!(
                    "inference.operator-domains: {:?} is not an operator domain (letters, digits, `.`, `_`, `-`)",
                    crate::names::printable(domain, 64)
                ),
            ));
        }
    }
    if inference.threads == 0 {
        inference.threads = 1;
    }
    if inference.threads > MAX_INFERENCE_THREADS {
        return Err(invalid.at(
            "inference.threads",
            format!(
                "inference.threads = {} is out of range 1..={MAX_INFERENCE_THREADS}",
                inference.threads
            ),
        ));
    }
    Ok(inference)
}

/// The `[trust]` table's keys, read now: a key that does not parse (or a key file that cannot
/// be read) fails the policy when it is loaded, not when a package is first verified.
pub(super) fn read_trust(
    trust: BTreeMap<Name, Vec<String>>,
    base_dir: &Path,
    invalid: &Invalid,
) -> Result<BTreeMap<Name, Vec<ed25519_dalek::VerifyingKey>>, PolicyError> {
    let mut parsed_trust = BTreeMap::new();
    for (publisher, keys) in trust {
        let mut parsed = Vec::with_capacity(keys.len());
        for key in keys {
            let parsed_key = read_trusted_key(&key, base_dir).map_err(|why| {
                invalid.at(
                    &format!("trust.{publisher}"),
                    format!("trust.{publisher}: {why}"),
                )
            })?;
            parsed.push(parsed_key);
        }
        parsed_trust.insert(publisher, parsed);
    }
    Ok(parsed_trust)
}

/// A trusted key as the policy writes it: `ed25519:<base64>` inline, or the path of a public
/// key file (SPKI PEM, as `cordon keygen` writes it) relative to `base_dir`.
fn read_trusted_key(key: &str, base_dir: &Path) -> Result<ed25519_dalek::VerifyingKey, String> {
    if key.starts_with(crate::keys::KEY_PREFIX) {
        return crate::keys::parse_public_key(key).map_err(|e| e.to_string());
    }
    let path = base_dir.join(key);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read public key file {}: {e}", path.display()))?;
    crate::keys::parse_public_key(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The `[bind.*]` tables with their sources resolved against `base_dir`. A binding that grants
/// no columns is refused (it could only be a mistake), and its filter and masks must be SQL
/// the data plane can splice in safely.
pub(super) fn resolve_bindings(
    mut bind: BTreeMap<Name, Binding>,
    base_dir: &Path,
    invalid: &Invalid,
) -> Result<BTreeMap<Name, Binding>, PolicyError> {
    for (input, binding) in &mut bind {
        if binding.columns.is_empty() {
            return Err(invalid.at(
                &format!("bind.{input}"),
                format!(
                    "[bind.{input}] grants no columns: add `columns = {{ model_column = \"source_column\" }}`"
                ),
            ));
        }
        // `source = "request"` names no file: it stays as written.
        if !binding.is_request() {
            binding.source = base_dir.join(&binding.source);
        }
        check_binding_sql(
            &format!("bind.{input}"),
            binding.filter.as_ref(),
            &binding.mask,
        )
        .map_err(|(key, message)| invalid.at(&key, message))?;
    }
    Ok(bind)
}

/// `[serve]`: paths resolved, TLS given whole or not at all, and limits that can be met.
pub(super) fn resolve_serve(
    mut serve: ServePolicy,
    base_dir: &Path,
    invalid: &Invalid,
) -> Result<ServePolicy, PolicyError> {
    if serve.tokens.as_os_str().is_empty() {
        return Err(invalid.at(
            "serve",
            "[serve] needs `tokens = \"<file>\"`: the callers' hashed bearer tokens and their roles"
                .into(),
        ));
    }
    serve.tokens = base_dir.join(&serve.tokens);
    match (&serve.tls_certificate, &serve.tls_key) {
        (Some(_), None) => {
            return Err(invalid.at(
                "serve.tls-certificate",
                "[serve] tls-certificate is given without tls-key (the certificate's private key)"
                    .into(),
            ));
        }
        (None, Some(_)) => {
            return Err(invalid.at(
                "serve.tls-key",
                "[serve] tls-key is given without tls-certificate".into(),
            ));
        }
        _ => {}
    }
    serve.tls_certificate = serve.tls_certificate.map(|path| base_dir.join(path));
    serve.tls_key = serve.tls_key.map(|path| base_dir.join(path));
    let limits = &serve;
    let positive = [
        ("queue-rows", limits.queue_rows),
        ("request-bytes", limits.request_bytes.bytes()),
        ("in-flight-bytes", limits.in_flight_bytes.bytes()),
        ("request-rows", limits.request_rows),
        ("request-time", limits.request_time.0.as_micros() as u64),
        ("usage-period", limits.usage_period.0.as_micros() as u64),
    ];
    for (key, value) in positive {
        if value == 0 {
            return Err(invalid.at(
                &format!("serve.{key}"),
                format!("[serve] {key} must be more than 0"),
            ));
        }
    }
    if limits.request_bytes.bytes() > limits.in_flight_bytes.bytes() {
        return Err(invalid.at(
            "serve.request-bytes",
            format!(
                "[serve] request-bytes ({}) is more than in-flight-bytes ({}): such a request could never be read",
                limits.request_bytes, limits.in_flight_bytes
            ),
        ));
    }
    if limits.in_flight_bytes.bytes() > u64::from(u32::MAX) {
        return Err(invalid.at(
            "serve.in-flight-bytes",
            format!(
                "[serve] in-flight-bytes ({}) is more than 4 GiB, the most Cordon counts",
                limits.in_flight_bytes
            ),
        ));
    }
    if limits.request_rows > limits.queue_rows {
        return Err(invalid.at(
            "serve.request-rows",
            format!(
                "[serve] request-rows ({}) is more than queue-rows ({}): such a request could never be queued",
                limits.request_rows, limits.queue_rows
            ),
        ));
    }
    Ok(serve)
}

/// Each role's SQL is checked like a binding's, and a role may only change a binding the
/// policy has: it narrows what a binding grants, so it cannot grant a table of its own.
pub(super) fn check_roles(
    roles: &BTreeMap<Name, Role>,
    bind: &BTreeMap<Name, Binding>,
    invalid: &Invalid,
) -> Result<(), PolicyError> {
    for (role_name, role) in roles {
        for (input, role_binding) in &role.bind {
            check_binding_sql(
                &format!("role.{role_name}.bind.{input}"),
                role_binding.filter.as_ref(),
                &role_binding.mask,
            )
            .map_err(|(key, message)| invalid.at(&key, message))?;
        }
        for input in role.bind.keys() {
            if !bind.contains_key(input) {
                return Err(invalid.at(
                    &format!("role.{role_name}"),
                    format!(
                        "[role.{role_name}.bind.{input}] changes a binding the policy does not have; add [bind.{input}] first"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The `[table.*]` tables with their sources resolved against `base_dir`. A plain table may not
/// take the name of a binding: in `cordon sql` both are tables of one session, and a plain
/// table under a governed table's name would pass the consumer's data off as granted.
pub(super) fn resolve_tables(
    mut tables: BTreeMap<Name, PlainTable>,
    bind: &BTreeMap<Name, Binding>,
    base_dir: &Path,
    invalid: &Invalid,
) -> Result<BTreeMap<Name, PlainTable>, PolicyError> {
    for (name, table) in &mut tables {
        if bind.contains_key(name) {
            return Err(invalid.at(
                &format!("table.{name}"),
                format!(
                    "[table.{name}] has the name of [bind.{name}]; a plain table needs a name of its own"
                ),
            ));
        }
        table.source = base_dir.join(&table.source);
    }
    Ok(tables)
}

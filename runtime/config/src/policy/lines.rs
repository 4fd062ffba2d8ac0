//! Where a policy's keys are written, for errors that name the line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::PolicyError;

/// Where a policy's keys are written: the file and each key's line. The grant carries it, so
/// that policy SQL the data plane later finds not to fit the table is refused at its line,
/// with the same error as any other mistake in the policy.
#[derive(Debug, Clone, Default)]
pub struct PolicyLines {
    pub(super) path: PathBuf,
    pub(super) key_lines: KeyLines,
}

impl PolicyLines {
    /// An error in the policy, at the line of the dotted key `path`.
    pub fn error_at(&self, path: &str, message: String) -> PolicyError {
        PolicyError::Invalid {
            path: self.path.clone(),
            line: self.key_lines.line_of(path),
            message,
        }
    }
}

/// A dotted key path as a reader finds it in the file: `bind.customers.filter` is
/// `[bind.customers] filter`, `role.eu.bind.customers.mask.zip` is
/// `[role.eu.bind.customers] mask.zip`.
pub fn describe_key(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    let table_depth = match parts.as_slice() {
        ["role", _, "bind", ..] => 4,
        ["bind" | "emit" | "role", ..] => 2,
        _ => 1,
    };
    match (parts.get(..table_depth), parts.get(table_depth..)) {
        (Some(table), Some(rest)) if !rest.is_empty() => {
            format!("[{}] {}", table.join("."), rest.join("."))
        }
        _ => format!("[{path}]"),
    }
}

/// Where each key of a policy file is written: its dotted path (`bind.customers.filter`) and
/// line, read from the TOML parser's spans.
#[derive(Debug, Clone, Default)]
pub(super) struct KeyLines(BTreeMap<String, usize>);

impl KeyLines {
    pub(super) fn of(text: &str) -> KeyLines {
        let mut lines = KeyLines::default();
        if let Ok(root) = toml::de::DeTable::parse(text) {
            lines.collect(text, root.get_ref(), "");
        }
        lines
    }

    fn collect(&mut self, text: &str, table: &toml::de::DeTable<'_>, prefix: &str) {
        for (key, value) in table.iter() {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            let line = text
                .get(..key.span().start)
                .map_or(1, |before| before.matches('\n').count() + 1);
            // A table written as several headers keeps the line of its first.
            let known = self.0.entry(path.clone()).or_insert(line);
            *known = (*known).min(line);
            if let toml::de::DeValue::Table(inner) = value.get_ref() {
                self.collect(text, inner, &path);
            }
        }
    }

    /// The line of `path`, or of its longest prefix that is written in the file.
    pub(super) fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(line) = self.0.get(path) {
                return Some(*line);
            }
            path = path.rsplit_once('.')?.0;
        }
    }
}

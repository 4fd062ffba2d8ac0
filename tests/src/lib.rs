//! Paths of the compiled test guests and example models, one constant per guest, emitted by
//! `build.rs` (the pattern of wasmtime's test-programs artifacts crate). The end-to-end tests
//! in `tests/e2e/` use them; the build fails if a guest is used by no test. [`telco_table`] makes
//! the large tables the memory tests and benchmarks score; [`onnx_graphs`] writes the hostile
//! ONNX models the sandbox must refuse or contain.

// Test helpers panic on a broken test setup: that is a failed test, with its reason.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

pub mod onnx_graphs;
pub mod telco_table;

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The ONNX Runtime library: `ORT_DYLIB_PATH`, or the copy scripts/setup.sh installs.
pub fn onnxruntime_library() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(path);
    }
    let capi = root().join(".onnxruntime/onnxruntime/capi");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&capi)
        .unwrap_or_else(|_| {
            panic!(
                "no ONNX Runtime at {}: run scripts/setup.sh",
                capi.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("libonnxruntime.so")
        })
        .collect();
    found.sort();
    found
        .pop()
        .expect("no libonnxruntime.so: run scripts/setup.sh")
}

/// A TOML file's `text` (a policy, a manifest) with the one line that starts `key = ` set to
/// `key = value`; an error if the file no longer has that setting, so that a test or benchmark
/// never runs the unchanged file by mistake.
pub fn with_setting(text: &str, key: &str, value: &str) -> Result<String, String> {
    let prefix = format!("{key} = ");
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with(&prefix) {
                found = true;
                format!("{prefix}{value}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    if !found {
        return Err(format!("no `{key}` setting to change"));
    }
    Ok(lines.join("\n") + "\n")
}

/// `text` (a policy, a manifest) with every `from` replaced by `to`, for an edit that is not one
/// `key = value` line (a table header, an inline table's entry); an error if `text` has no
/// `from`, for the same reason as [`with_setting`].
pub fn with_replaced(text: &str, from: &str, to: &str) -> Result<String, String> {
    if !text.contains(from) {
        return Err(format!("no `{from}` to replace"));
    }
    Ok(text.replace(from, to))
}

#[cfg(test)]
mod tests {
    use super::{with_replaced, with_setting};

    #[test]
    fn with_setting_changes_the_one_line_or_says_it_is_missing() {
        let policy = "[limits]\ninstances = 2\nbatch-rows = 1024\n";
        assert_eq!(
            with_setting(policy, "instances", "16").unwrap(),
            "[limits]\ninstances = 16\nbatch-rows = 1024\n"
        );
        assert_eq!(
            with_setting(policy, "threads", "4").unwrap_err(),
            "no `threads` setting to change"
        );
    }

    #[test]
    fn with_replaced_changes_the_text_or_says_it_is_missing() {
        let policy = "[bind.rows]\ncolumns = { x = \"x\", y = \"y\" }\n";
        assert_eq!(
            with_replaced(policy, "x = \"x\", ", "").unwrap(),
            "[bind.rows]\ncolumns = { y = \"y\" }\n"
        );
        assert_eq!(
            with_replaced(policy, "[bind.other]", "").unwrap_err(),
            "no `[bind.other]` to replace"
        );
    }
}

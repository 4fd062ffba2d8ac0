//! Paths of the compiled test guests and example models, one constant per guest, emitted by
//! `build.rs` (the pattern of wasmtime's test-programs artifacts crate). The end-to-end tests
//! in `tests/e2e/` use them; the build fails if a guest is used by no test. [`telco_table`] makes
//! the large tables the memory tests and benchmarks score.

// Test helpers panic on a broken test setup: that is a failed test, with its reason.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

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

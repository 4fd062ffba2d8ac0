//! The churn example end to end, through the library and through the `cordon` binary.

use cordon::policy::Policy;
use cordon::sandbox::CacheOutcome;

use crate::support::{Case, churn_case, churn_case_with, read_csv, root};

/// Every Telco row is scored, in input order, and every probability equals the one ONNX
/// Runtime gave the training script (examples/churn/training/reference.csv).
#[test]
fn churn_scores_match_the_training_reference() {
    let case = churn_case();
    let summary = case.run().unwrap();
    assert_eq!(summary.rows_in, 7043);
    assert_eq!(summary.rows_out, 7043);
    assert_eq!(summary.batches, 7);
    assert_eq!(summary.inference_calls, 7);
    // Start-up is reported, and the first batch falls inside the run.
    let first_batch_ms = summary.first_batch_ms.expect("a first batch");
    assert!(first_batch_ms > 0.0 && first_batch_ms <= summary.wall_time_s * 1e3);
    assert!(summary.runtime_setup_ms > 0.0);
    assert_matches_reference(&case);
}

/// Many instances finishing batches out of order still write rows in input order.
#[test]
fn parallel_instances_keep_input_order() {
    let case = churn_case_with(&[("instances", "4"), ("batch-rows", "97")]);
    let summary = case.run().unwrap();
    assert_eq!(summary.instances, 4);
    assert_eq!(summary.batches, 73);
    assert_matches_reference(&case);
}

fn assert_matches_reference(case: &Case) {
    let scores = read_csv(&case.path("out/churn_scores.csv"));
    let reference = read_csv(&root().join("examples/churn/training/reference.csv"));
    assert_eq!(scores.len(), reference.len());
    let mut worst = 0f64;
    for (row, (score, expected)) in scores.iter().zip(&reference).enumerate() {
        assert_eq!(score[0], expected[0], "row {row}: customer order differs");
        let p: f64 = score[1].parse().unwrap();
        let q: f64 = expected.last().unwrap().parse().unwrap();
        worst = worst.max((p - q).abs());
        assert!(
            (p - q).abs() <= 1e-6,
            "row {row} ({}): {p} vs reference {q}",
            score[0]
        );
    }
    eprintln!("largest difference from the reference: {worst:e}");
}

/// The header names the key and the declared output column, nothing else.
#[test]
fn churn_output_is_key_plus_declared_columns() {
    let case = churn_case();
    case.run().unwrap();
    let mut reader = csv::Reader::from_path(case.path("out/churn_scores.csv")).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, ["customerID", "churn_probability"]);
}

/// The binary: summary, exit code 0, and a second run served by the compile cache.
#[test]
fn cli_runs_the_churn_example_with_a_compile_cache() {
    let case = churn_case();
    let run = || {
        case.cordon(&[
            "run",
            "--package",
            "package",
            "--policy",
            "policy.toml",
            "--json",
            "--cache-dir",
            "cache",
        ])
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(summary["rows_out"], 7043);
    assert_eq!(summary["compile"]["outcome"], "miss");

    let second = run();
    assert!(second.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(summary["compile"]["outcome"], "hit");
}

/// A truncated, corrupted or foreign cache entry is noticed and rebuilt, never loaded.
/// (tests/e2e/cache.rs: a planted one, and a cache directory others can write.)
#[test]
fn a_bad_cache_entry_is_rebuilt() {
    let case = churn_case();
    let cache_dir = case.path("cache");
    let cache = cordon::sandbox::CompileCache::new(Some(cache_dir.clone())).unwrap();
    let engine = cordon::sandbox::SandboxEngine::new().unwrap();
    let wasm = std::fs::read(cordon_test_guests::CHURN_MODEL).unwrap();
    let digest = "sha256:package-a";
    let (_, first) = cache.load(&engine.engine, digest, &wasm).unwrap();
    assert_eq!(first, CacheOutcome::Miss);
    let entry = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    let good = std::fs::read(&entry).unwrap();
    let rebuilt_because = |bytes: &[u8]| {
        std::fs::write(&entry, bytes).unwrap();
        match cache.load(&engine.engine, digest, &wasm).unwrap().1 {
            CacheOutcome::Rebuilt(why) => why,
            other => panic!("a bad entry was not rebuilt: {other:?}"),
        }
    };

    // Truncated, and one flipped byte in the compiled code.
    assert!(rebuilt_because(&good[..good.len() / 2]).contains("failed its MAC check"));
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(rebuilt_because(&flipped).contains("failed its MAC check"));
    // Foreign: not Cordon's, and another package's entry (same component) under this name.
    assert!(rebuilt_because(b"\0asm\x01\0\0\0").contains("not a Cordon cache entry"));
    let (_, other) = cache
        .load(&engine.engine, "sha256:package-b", &wasm)
        .unwrap();
    assert_eq!(
        other,
        CacheOutcome::Miss,
        "the package digest is part of the key"
    );
    let other_entry = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| *p != entry && p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    assert!(rebuilt_because(&std::fs::read(other_entry).unwrap()).contains("another package"));

    // Each rebuild wrote a good entry back.
    let (_, last) = cache.load(&engine.engine, digest, &wasm).unwrap();
    assert_eq!(last, CacheOutcome::Hit);
}

/// Every policy in policies/ parses.
#[test]
fn every_shipped_policy_parses() {
    let mut count = 0;
    for entry in std::fs::read_dir(root().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Policy::load(&path, &root()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            count += 1;
        }
    }
    assert!(count >= 1);
}

/// A missing ONNX Runtime library is a clear error, not a panic.
#[test]
fn a_missing_onnxruntime_is_a_clear_error() {
    let case = Case::new();
    let output = case
        .bare_command()
        .args(["run", "--package", "package", "--policy", "policy.toml"])
        .args(["--onnxruntime", "/nonexistent/libonnxruntime.so"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot load ONNX Runtime from /nonexistent/libonnxruntime.so"),
        "{stderr}"
    );
    assert!(stderr.contains("scripts/setup.sh"), "{stderr}");
}

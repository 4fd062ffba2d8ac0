//! Every fuzz target over its seeds (`corpus/<target>/`) and over every crash the fuzzer ever
//! found (`regressions/<target>/`), in the normal test suite: a regression fails here without
//! the fuzzer, and a target that stops compiling fails the build.

// Test code: a failed unwrap is a failed test, which is what these lints guard production code from.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;

fn dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(target)
}

/// The files directly in `dir`, in name order; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && !path.ends_with("README.md"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_seeds_and_survives_them_and_its_past_crashes() {
    for (name, target) in cordon_fuzz::TARGETS {
        let seeds = inputs(&dir("corpus", name));
        assert!(!seeds.is_empty(), "no seeds for target {name}");
        for input in seeds.iter().chain(&inputs(&dir("regressions", name))) {
            eprintln!("{name}: {}", input.display());
            target(&std::fs::read(input).unwrap());
        }
    }
}

#[test]
fn targets_survive_trivial_inputs() {
    for (_, target) in cordon_fuzz::TARGETS {
        for input in [
            &b""[..],
            b"\0",
            b"\xff\xff\xff\xff",
            b"[",
            b"\x28\xb5\x2f\xfd",
        ] {
            target(input);
        }
    }
}

#[test]
fn targets_are_found_by_name() {
    assert!(cordon_fuzz::target("archive").is_some());
    assert!(cordon_fuzz::target("no-such-target").is_none());
}

/// A guest batch in the guest batch target's encoding (`wit_batch` in src/lib.rs): `rows`
/// rows in and out, and one column of each declared type.
fn guest_batch_seed(rows: u8, partition: bool, parquet: bool) -> Vec<u8> {
    let mut out = vec![
        (rows << 2) | u8::from(partition) | (u8::from(parquet) << 1),
        rows,
    ];
    let mut column = |name: &str, kind: u8, values: &[u8], validity: &[u8]| {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(kind);
        out.push(rows);
        out.extend_from_slice(values);
        out.push(validity.len() as u8);
        out.extend_from_slice(validity);
    };
    let n = usize::from(rows);
    column("p", 0, &0.25f64.to_le_bytes().repeat(n), &[]);
    column("q", 1, &0.5f32.to_le_bytes().repeat(n), &vec![1; n]);
    column("n", 2, &42i64.to_le_bytes().repeat(n), &[]);
    column("b", 3, &[1, 0].repeat(n)[..n], &[]);
    column(
        "ts",
        5,
        &1_700_000_000_000_000i64.to_le_bytes().repeat(n),
        &[],
    );
    // Text by hand: it needs rows + 1 offsets (one byte each, "ab" per row), then its bytes.
    let offsets: Vec<u8> = (0..=rows).map(|i| i * 2).collect();
    out.push(1);
    out.push(b't');
    out.push(4);
    out.push(rows + 1);
    out.extend_from_slice(&offsets);
    out.push(rows * 2);
    out.extend_from_slice(&b"ab".repeat(n));
    out.push(0);
    out
}

/// Writes the seeds that are not copies of repository files (packages, signature bundles,
/// guest batches). Run by hand after a format change:
/// `cargo test --release -p cordon-fuzz --test replay -- --ignored write_seeds`.
#[test]
#[ignore]
fn write_seeds() {
    let write = |target: &str, file: &str, bytes: &[u8]| {
        let dir = dir("corpus", target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), bytes).unwrap();
    };

    // A package holding what the example manifest names, unsigned and signed.
    let manifest =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/churn/cordon.toml"))
            .unwrap();
    let files: BTreeMap<String, Vec<u8>> = [
        ("cordon.toml".to_owned(), manifest),
        ("model.wasm".to_owned(), b"\0asm\x0d\0\x01\0".to_vec()),
        ("graphs/churn_gbt.onnx".to_owned(), b"graph".to_vec()),
    ]
    .into();
    let scratch = tempfile::tempdir().unwrap();
    let unsigned = scratch.path().join("unsigned.cordon");
    cordon::archive::write(&files, None, &unsigned).unwrap();
    let package = cordon::package::Package::load(&unsigned).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&cordon_fuzz::SIGNING_SEED);
    let signature = cordon::signing::sign(&package, &key).unwrap();
    let signed = scratch.path().join("signed.cordon");
    cordon::archive::write(&files, Some(&signature), &signed).unwrap();
    write(
        "archive",
        "unsigned.cordon",
        &std::fs::read(&unsigned).unwrap(),
    );
    write("archive", "signed.cordon", &std::fs::read(&signed).unwrap());

    // The signature target's bundle as stored (mode 0) and the statement in it (mode 1).
    let bundle = cordon_fuzz::signed_bundle().unwrap();
    let mut stored = vec![0];
    stored.extend_from_slice(&bundle);
    write("signature_bundle", "bundle.json", &stored);
    let parsed: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(parsed["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let mut statement = vec![1];
    statement.extend_from_slice(&payload);
    write("signature_bundle", "statement.json", &statement);

    write(
        "guest_batch",
        "row-csv.bin",
        &guest_batch_seed(3, false, false),
    );
    write(
        "guest_batch",
        "row-parquet.bin",
        &guest_batch_seed(2, false, true),
    );
    write(
        "guest_batch",
        "partition-csv.bin",
        &guest_batch_seed(4, true, false),
    );
}

/// The seeds are worth starting from only if they get past the first refusal: the signed
/// package verifies under the targets' key and the table yields rows.
#[test]
fn seeds_reach_past_the_first_refusal() {
    let key = ed25519_dalek::SigningKey::from_bytes(&cordon_fuzz::SIGNING_SEED);
    let package =
        cordon::package::Package::load(&dir("corpus", "archive").join("signed.cordon")).unwrap();
    cordon::signing::verify(&package, &[key.verifying_key()]).unwrap();
    for seed in inputs(&dir("corpus", "onnx_graph")) {
        cordon::nn::graph_info::read(&std::fs::read(&seed).unwrap()).unwrap();
    }
    for seed in inputs(&dir("corpus", "manifest")) {
        let text = std::fs::read_to_string(&seed).unwrap();
        cordon::manifest::Manifest::parse(&text, &seed).unwrap();
    }
    // Each encoder seed resolves against the target's manifest.
    for seed in inputs(&dir("corpus", "encoder_file")) {
        let text = std::fs::read_to_string(&seed).unwrap();
        let mut manifest =
            cordon::manifest::Manifest::parse(cordon_fuzz::ENCODER_MANIFEST, &seed).unwrap();
        manifest
            .resolve_encoders(&seed, |_| Ok(text.clone()))
            .unwrap();
        assert_eq!(manifest.encoders.len(), 1, "{}", seed.display());
    }
}

//! Packages: `cordon pack` is reproducible, `cordon sign` and `verify` follow the model-signing
//! layout, `cordon run` refuses anything unsigned, untrusted or changed, and hostile archives
//! fail fast with the limit they broke.

use std::path::{Path, PathBuf};

use cordon::package::Package;
use cordon::signing;
use cordon_test_guests::with_setting;

use crate::support::{Case, churn_case, read_csv};

/// The churn example's build directory in `case/package`, packed into `case/dist`.
pub(crate) fn packed_churn(case: &Case) -> PathBuf {
    let output = case.cordon(&["pack", "package", "--out", "dist"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    case.path("dist/telco-churn-0.1.0.cordon")
}

/// A fresh key pair at `case/keys/<name>`.
pub(crate) fn keygen(case: &Case, name: &str) -> PathBuf {
    std::fs::create_dir_all(case.path("keys")).unwrap();
    let stem = format!("keys/{name}");
    let output = case.cordon(&["keygen", &stem]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    case.path(&format!("{stem}.key"))
}

pub(crate) fn sign(case: &Case, key: &Path, package: &Path) {
    let output = case.cordon(&[
        "sign",
        "--key",
        key.to_str().unwrap(),
        package.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Makes the policy trust `public_key` for the churn example's publisher.
pub(crate) fn trust(case: &Case, public_key: &Path) {
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let trusted = format!("[{:?}]", public_key.display().to_string());
    case.write(
        "policy.toml",
        &with_setting(&policy, "acme-analytics", &trusted).unwrap(),
    );
}

fn run_package(case: &Case, package: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "--package",
        package.to_str().unwrap(),
        "--policy",
        "policy.toml",
        "--no-cache",
    ];
    args.extend_from_slice(extra);
    case.cordon(&args)
}

#[test]
fn pack_and_sign_are_reproducible_byte_for_byte() {
    let case = churn_case();
    let key = keygen(&case, "acme");
    let first = packed_churn(&case);
    let unsigned = std::fs::read(&first).unwrap();
    std::fs::rename(&first, case.path("first.cordon")).unwrap();
    let second = packed_churn(&case);
    assert_eq!(unsigned, std::fs::read(&second).unwrap());

    sign(&case, &key, &second);
    let signed = std::fs::read(&second).unwrap();
    assert_ne!(signed, unsigned);
    sign(&case, &key, &case.path("first.cordon"));
    assert_eq!(signed, std::fs::read(case.path("first.cordon")).unwrap());
}

#[test]
fn a_signed_package_runs_and_everything_else_is_refused() {
    let case = churn_case();
    let key = keygen(&case, "acme");
    let package = packed_churn(&case);
    trust(&case, &key.with_extension("pub"));

    // Unsigned: refused, unless --allow-unsigned, which warns.
    let output = run_package(&case, &package, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("the package is not signed"), "{stderr}");
    assert!(!case.path("out/churn_scores.csv").exists());
    let output = run_package(&case, &package, &["--allow-unsigned"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("warning: --allow-unsigned"));
    std::fs::remove_file(case.path("out/churn_scores.csv")).unwrap();

    // Signed with the trusted key: verify and run both accept it.
    sign(&case, &key, &package);
    let output = case.cordon(&[
        "verify",
        package.to_str().unwrap(),
        "--policy",
        "policy.toml",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("signed by acme-analytics with trusted key sha256:"),
        "{stdout}"
    );
    let output = run_package(&case, &package, &["--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["signature"]["publisher"], "acme-analytics");
    assert_eq!(read_csv(&case.path("out/churn_scores.csv")).len(), 7043);

    // The same package re-signed with another key fails against the policy's trust.
    let other = keygen(&case, "mallory");
    sign(&case, &other, &package);
    for output in [
        case.cordon(&[
            "verify",
            package.to_str().unwrap(),
            "--policy",
            "policy.toml",
        ]),
        run_package(&case, &package, &[]),
    ] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2));
        assert!(
            stderr.contains("which the policy does not trust for publisher `acme-analytics`"),
            "{stderr}"
        );
    }
}

/// Every single-byte change of a signed package is caught: by the archive reader, the zstd
/// content checksum, the signature or a digest. Checked on a spread of offsets through the
/// library (fast) and on a few through `cordon run`.
#[test]
fn flipping_any_byte_of_a_signed_package_fails() {
    let case = churn_case();
    let key = keygen(&case, "acme");
    let package = packed_churn(&case);
    sign(&case, &key, &package);
    trust(&case, &key.with_extension("pub"));
    let policy = cordon::policy::Policy::load(&case.path("policy.toml"), case.dir.path()).unwrap();
    let trusted = policy.trusted_keys(&"acme-analytics".to_string().try_into().unwrap());
    let original = std::fs::read(&package).unwrap();
    assert!(signing::verify(&Package::load(&package).unwrap(), trusted).is_ok());

    let tampered = case.path("dist/tampered.cordon");
    let offsets: Vec<usize> = (0..64)
        .chain((64..original.len()).step_by(original.len() / 300))
        .chain(original.len() - 64..original.len())
        .collect();
    for (count, offset) in offsets.iter().enumerate() {
        let mut bytes = original.clone();
        bytes[*offset] ^= 0x01;
        std::fs::write(&tampered, &bytes).unwrap();
        let accepted = Package::load(&tampered)
            .ok()
            .is_some_and(|p| signing::verify(&p, trusted).is_ok());
        assert!(
            !accepted,
            "a flip at byte {offset} of {} went unnoticed",
            original.len()
        );
        if count % 100 == 0 {
            let output = run_package(&case, &tampered, &[]);
            assert_eq!(output.status.code(), Some(2), "byte {offset}");
        }
    }
}

/// A signature over a statement that leaves a file out, or a digest that no longer matches,
/// is refused and the file named.
#[test]
fn the_statement_must_list_every_file_with_its_digest() {
    let case = churn_case();
    let key = signing::read_signing_key(&keygen(&case, "acme")).unwrap();
    let package = Package::load(&packed_churn(&case)).unwrap();
    let trusted = [key.verifying_key()];

    let mut partial = Package::load(&case.path("dist/telco-churn-0.1.0.cordon")).unwrap();
    partial.files.remove("graphs/churn_gbt.onnx");
    let mut unlisted = Package::load(&case.path("dist/telco-churn-0.1.0.cordon")).unwrap();
    unlisted.signature = Some(signing::sign(&partial, &key).unwrap());
    let error = signing::verify(&unlisted, &trusted)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("holds `graphs/churn_gbt.onnx`, which the signed statement does not list"),
        "{error}"
    );

    let mut changed = Package::load(&case.path("dist/telco-churn-0.1.0.cordon")).unwrap();
    changed.signature = Some(signing::sign(&package, &key).unwrap());
    changed
        .files
        .insert("cordon.toml".into(), b"manifest-version = 1\n".to_vec());
    let error = signing::verify(&changed, &trusted).unwrap_err().to_string();
    assert!(
        error.contains("`cordon.toml` does not match its signed digest"),
        "{error}"
    );
}

/// Writes a tar entry header by hand, as no honest packer would.
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, declared: u64, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    // `set_path` refuses `..`; the raw name field does not.
    let field = &mut header.as_old_mut().name;
    field[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(declared);
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
}

fn hostile(case: &Case, name: &str, tar_bytes: &[u8]) -> String {
    let path = case.path(name);
    std::fs::write(&path, cordon::archive::compress(tar_bytes).unwrap()).unwrap();
    let started = std::time::Instant::now();
    let error = match Package::load(&path) {
        Ok(_) => panic!("{name} loaded"),
        Err(error) => error.to_string(),
    };
    // Fast: a hostile archive is refused without reading what it claims to hold.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{name}"
    );
    error
}

#[test]
fn hostile_archives_fail_fast_with_a_clear_message() {
    let case = Case::new();
    let foreign = case.path("foreign.cordon");
    std::fs::write(&foreign, b"PK\x03\x04 a zip file, say").unwrap();
    let error = Package::load(&foreign).err().unwrap().to_string();
    assert!(
        error.contains("does not start with a zstd frame"),
        "{error}"
    );
    let mut trailing = cordon::archive::compress(&[0u8; 1024]).unwrap();
    trailing.extend_from_slice(b"appended");
    std::fs::write(&foreign, trailing).unwrap();
    let error = Package::load(&foreign).err().unwrap().to_string();
    assert!(
        error.contains("8 bytes after the archive are not a signature frame"),
        "{error}"
    );

    let manifest = b"manifest-version = 1\n";
    let end = [0u8; 1024];

    let mut traversal = Vec::new();
    raw_entry(
        &mut traversal,
        "../escape.txt",
        tar::EntryType::Regular,
        2,
        b"hi",
    );
    traversal.extend_from_slice(&end);
    let error = hostile(&case, "traversal.cordon", &traversal);
    assert!(error.contains("the path leaves the package"), "{error}");

    let mut symlink = Vec::new();
    raw_entry(&mut symlink, "model.wasm", tar::EntryType::Symlink, 0, b"");
    symlink.extend_from_slice(&end);
    let error = hostile(&case, "symlink.cordon", &symlink);
    assert!(
        error.contains("entry `model.wasm` is a symbolic link"),
        "{error}"
    );

    let mut huge = Vec::new();
    raw_entry(
        &mut huge,
        "graphs/big.onnx",
        tar::EntryType::Regular,
        10 << 30,
        b"",
    );
    let error = hostile(&case, "huge.cordon", &huge);
    assert!(
        error.contains("entry `graphs/big.onnx` is 10737418240 bytes, over the limit")
            && error.contains("max_file_bytes"),
        "{error}"
    );

    // 256 MiB of zeros: within the per-file limit, compressed to a few KiB, so past the first
    // 64 MiB it unpacks to far more than 200 times its size.
    let mut bomb = Vec::new();
    let zeros = vec![0u8; 256 << 20];
    raw_entry(
        &mut bomb,
        "graphs/zeros.onnx",
        tar::EntryType::Regular,
        zeros.len() as u64,
        &zeros,
    );
    drop(zeros);
    let error = hostile(&case, "bomb.cordon", &bomb);
    assert!(error.contains("refused as a decompression bomb"), "{error}");

    let mut twice = Vec::new();
    for _ in 0..2 {
        raw_entry(
            &mut twice,
            "cordon.toml",
            tar::EntryType::Regular,
            manifest.len() as u64,
            manifest,
        );
    }
    twice.extend_from_slice(&end);
    let error = hostile(&case, "twice.cordon", &twice);
    assert!(
        error.contains("entry `cordon.toml` appears twice"),
        "{error}"
    );
}

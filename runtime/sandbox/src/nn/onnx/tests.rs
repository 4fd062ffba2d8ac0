use super::*;

#[test]
fn old_or_unknown_versions_are_refused() {
    assert!(check_version("1.31.1").is_ok());
    assert!(check_version("1.32.0").is_ok());
    let old = check_version("1.22.0").unwrap_err();
    assert!(old.contains("1.22.0") && old.contains("1.31"), "{old}");
    assert!(check_version("2.0.0").is_err());
    assert!(check_version("garbage").is_err());
}

#[test]
fn a_file_that_is_not_onnxruntime_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a shared library").unwrap();
    let error = match OnnxRuntime::load(&fake) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("a text file loaded as ONNX Runtime"),
    };
    assert!(error.contains(&fake.display().to_string()), "{error}");
    assert!(error.contains("scripts/setup.sh"), "{error}");
}

//! Bad policies next to the exact error each must produce (tests/policy-snapshots/).

use cordon::grant::Grant;
use cordon::manifest::Manifest;
use cordon::policy::Policy;

use crate::support::root;

/// The error a policy file gives when loaded for the churn example, with paths relative to the
/// repository root; `None` if it loads.
fn policy_error(path: &std::path::Path) -> Option<String> {
    let manifest = Manifest::load(&root().join("examples/churn/cordon.toml")).unwrap();
    let error = match Policy::load(path, &root()) {
        Err(error) => error.to_string(),
        Ok(policy) => Grant::resolve(&manifest, &policy, None).err()?.to_string(),
    };
    Some(error.replace(&format!("{}/", root().display()), ""))
}

#[test]
fn every_bad_policy_gives_its_snapshot_error() {
    let dir = root().join("tests/policy-snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10);
    let mut mismatches = Vec::new();
    for case in &cases {
        let error = policy_error(case)
            .unwrap_or_else(|| panic!("{} loaded, but it is broken", case.display()));
        let snapshot = case.with_extension("err");
        if update {
            std::fs::write(&snapshot, format!("{error}\n")).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&snapshot).unwrap_or_else(|_| {
            panic!(
                "{} has no snapshot: run with UPDATE_SNAPSHOTS=1",
                case.display()
            )
        });
        if expected.trim_end() != error.trim_end() {
            mismatches.push(format!(
                "{}:\n  expected: {}\n  actual:   {error}",
                case.display(),
                expected.trim_end()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

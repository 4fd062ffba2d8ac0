//! Bad policies next to the exact error each must produce (tests/policy-snapshots/).

use cordon::{RunRequest, Runtime, RuntimeConfig};

use crate::support::{churn_case, root};

/// The error `cordon check` gives for a policy file with the churn example, with paths relative
/// to the repository root; `None` if the policy is good. The check covers everything a run
/// checks before it starts: the policy, the grant, and the policy's SQL against the table.
///
/// A first line `# role: NAME` checks it as that role.
fn policy_error(runtime: &Runtime, path: &std::path::Path) -> Option<String> {
    let case = churn_case();
    let text = std::fs::read_to_string(path).unwrap();
    let role = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("# role: "))
        .map(str::to_owned);
    let error = runtime
        .check(&RunRequest {
            package_dir: case.path("package"),
            policy: path.to_owned(),
            base_dir: root(),
            role,
            allow_unsigned: true,
        })
        .err()?
        .to_string();
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
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let mut mismatches = Vec::new();
    for case in &cases {
        let error = policy_error(&runtime, case)
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

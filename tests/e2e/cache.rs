//! The compile cache runs native code in the host, so it takes only what this user's Cordon
//! wrote: a planted entry is refused and rebuilt, a directory others can write is an error.

use std::os::unix::fs::PermissionsExt;

use sha2::Digest;

use crate::support::churn_case;

/// magic (16 bytes), the key in hex (64), the MAC (32): runtime/src/sandbox/cache.rs.
const HEADER_LEN: usize = 16 + 64 + 32;

fn run_json(case: &crate::support::Case) -> serde_json::Value {
    case.run_json(&["--cache-dir", "cache"])
}

/// Someone who can write the cache directory but not read its key replaces the compiled code
/// and recomputes the header by the public rules (magic, key, SHA-256 of the code). The next
/// run refuses the entry, says so in its summary, compiles afresh and scores correctly; the
/// run after that is served by the rebuilt entry.
#[test]
fn a_planted_cache_entry_is_refused_and_rebuilt() {
    let case = churn_case();
    assert_eq!(run_json(&case)["compile"]["outcome"], "miss");
    assert_eq!(run_json(&case)["compile"]["outcome"], "hit");

    let entry = std::fs::read_dir(case.path("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    let good = std::fs::read(&entry).unwrap();
    let (header, compiled) = good.split_at(HEADER_LEN);
    let mut code = compiled.to_vec();
    let last = code.len() - 1;
    code[last] ^= 0x5a;
    let mut planted = header[..16 + 64].to_vec();
    planted.extend_from_slice(&sha2::Sha256::digest(&code));
    planted.extend_from_slice(&code);
    std::fs::write(&entry, &planted).unwrap();

    let summary = run_json(&case);
    assert_eq!(summary["compile"]["outcome"], "rebuilt", "{summary}");
    let reason = summary["compile"]["reason"].as_str().unwrap();
    assert!(reason.contains("failed its MAC check"), "{reason}");
    assert_eq!(summary["rows_out"], 7043);
    // Replaced by an entry of this user's (compiled again: not necessarily the same bytes).
    assert_ne!(std::fs::read(&entry).unwrap(), planted);

    // The human summary says the same.
    std::fs::write(&entry, &planted).unwrap();
    let output = case.run_cli(&["--cache-dir", "cache"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("recompiled (") && stdout.contains("failed its MAC check"),
        "{stdout}"
    );

    assert_eq!(run_json(&case)["compile"]["outcome"], "hit");
}

/// A cache directory group and others can write is an error naming it, before anything runs;
/// the run does not fall back to compiling without a cache.
#[test]
fn a_cache_directory_others_can_write_is_an_error() {
    let case = churn_case();
    std::fs::create_dir(case.path("cache")).unwrap();
    std::fs::set_permissions(case.path("cache"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let output = case.run_cli(&["--cache-dir", "cache"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("compile cache cache: mode 0777 lets its group and others write to it"),
        "{stderr}"
    );
    assert!(!case.path("out/churn_scores.csv").exists());
    assert_eq!(std::fs::read_dir(case.path("cache")).unwrap().count(), 0);
}

/// A CLI run that names no cache uses the one the tests give it, and writes nothing into its
/// `HOME` or `XDG_CACHE_HOME` (an empty directory here): no compile cache, no ONNX Runtime
/// telemetry, nothing. So no test writes into the user's `~/.cache`.
#[test]
fn a_cli_run_writes_into_the_given_cache_and_nothing_into_home() {
    let case = churn_case();
    let summary = case.run_json(&[]);
    assert_eq!(summary["rows_out"], 7043);
    assert_eq!(summary["compile"]["outcome"], "miss", "{summary}");
    let cached = std::fs::read_dir(case.default_cache())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .count();
    assert_eq!(cached, 1);
    let home: Vec<_> = std::fs::read_dir(case.home())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(home.is_empty(), "the run wrote into HOME: {home:?}");
    // A second run is served by the given cache, not by one under a real home.
    assert_eq!(case.run_json(&[])["compile"]["outcome"], "hit");
}

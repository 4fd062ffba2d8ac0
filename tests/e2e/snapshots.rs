//! Snapshot tests in the way of Spin's `tests/ui`: a directory of broken files `NAME.toml`, each
//! next to the exact error `NAME.err` it must produce, and one `#[test]` per file, so that a
//! failure names its file and the other files still run. `UPDATE_SNAPSHOTS=1` writes the `.err`
//! files instead of comparing them (read them before committing).

use std::path::{Path, PathBuf};

use crate::support::root;

/// Declares `mod $module` with one `#[test]` per snapshot file of `$dir` (a file
/// `bad-size.toml` is the test `bad_size`), each comparing `$error(path)` (the error the file
/// gives, `None` if it loads) with the file's `.err`; and a test `every_file_has_a_test` that
/// fails when the directory and the list differ, so that no file is left unchecked.
macro_rules! snapshot_tests {
    ($module:ident, $dir:literal, $error:path, [$($name:ident),+ $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    crate::snapshots::check($dir, stringify!($name), $error);
                }
            )+

            #[test]
            fn every_file_has_a_test() {
                crate::snapshots::check_listed($dir, &[$(stringify!($name)),+]);
            }
        }
    };
}
pub(crate) use snapshot_tests;

/// The snapshot file a test is named for: `bad_size` in `tests/x` is `tests/x/bad-size.toml`.
fn case_path(dir: &str, test: &str) -> PathBuf {
    root()
        .join(dir)
        .join(format!("{}.toml", test.replace('_', "-")))
}

/// Compares the error of one snapshot file with its `.err` (or writes the `.err` under
/// `UPDATE_SNAPSHOTS`).
pub fn check(dir: &str, test: &str, error: fn(&Path) -> Option<String>) {
    let case = case_path(dir, test);
    assert!(
        case.is_file(),
        "{} does not exist: remove the test `{test}` or add the file",
        case.display()
    );
    let error =
        error(&case).unwrap_or_else(|| panic!("{} loaded, but it is broken", case.display()));
    let snapshot = case.with_extension("err");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, format!("{error}\n")).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&snapshot).unwrap_or_else(|_| {
        panic!(
            "{} has no snapshot: run with UPDATE_SNAPSHOTS=1",
            case.display()
        )
    });
    assert!(
        expected.trim_end() == error.trim_end(),
        "{} gives another error than {}\n--- expected\n{}\n--- actual\n{}\n(UPDATE_SNAPSHOTS=1 \
         writes the actual one)",
        case.display(),
        snapshot.display(),
        expected.trim_end(),
        error.trim_end()
    );
}

/// Fails unless the `.toml` files of `dir` are exactly the `tests` (and every `.err` has its
/// `.toml`).
pub fn check_listed(dir: &str, tests: &[&str]) {
    let mut files = Vec::new();
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(root().join(dir)).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => files.push(stem),
            Some("err") if !path.with_extension("toml").exists() => orphans.push(stem),
            _ => {}
        }
    }
    let listed: Vec<String> = tests.iter().map(|t| t.replace('_', "-")).collect();
    let untested: Vec<&String> = files.iter().filter(|f| !listed.contains(f)).collect();
    let missing: Vec<&String> = listed.iter().filter(|t| !files.contains(t)).collect();
    assert!(
        untested.is_empty() && missing.is_empty() && orphans.is_empty(),
        "{dir}: files without a test (add them to the list): {untested:?}; tests without a \
         file: {missing:?}; .err files without a .toml: {orphans:?}"
    );
    assert!(
        files.iter().all(|f| !f.contains('_')),
        "{dir}: snapshot names use `-`, not `_`"
    );
}

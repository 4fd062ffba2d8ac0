use super::*;

fn log_with(lines: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path, "run-1").unwrap();
    for i in 0..lines {
        log.append("data-read", json!({ "rows": i })).unwrap();
    }
    (dir, path)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn an_untouched_log_verifies_and_continues_across_runs() {
    let (_dir, path) = log_with(3);
    let report = verify(&path).unwrap();
    assert_eq!(report.lines, 3);
    let mut log = AuditLog::open(&path, "run-2").unwrap();
    log.append("run-start", json!({})).unwrap();
    assert_eq!(verify(&path).unwrap().lines, 4);
    assert_eq!(verify(&path).unwrap().head.unwrap(), log.head());
}

/// Wall times and rates are floats; a line must verify whatever digits they have, even
/// where parsing the decimal text back does not give the very same f64.
#[test]
fn lines_with_any_float_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path, "run-1").unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..2_000 {
        // A fixed pseudo-random sequence of values like wall_time_s.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let seconds = (x >> 11) as f64 / (1u64 << 53) as f64 * 100.0;
        log.append(
            "run-end",
            json!({ "wall_time_s": seconds, "rate": 1.0 / seconds }),
        )
        .unwrap();
    }
    assert_eq!(verify(&path).unwrap().lines, 2_000);
}

#[test]
fn editing_any_line_names_it() {
    for target in 0..4 {
        let (_dir, path) = log_with(4);
        let mut all = lines(&path);
        all[target] = all[target].replace("\"rows\":", "\"rows\":1");
        write_lines(&path, &all);
        let error = verify(&path).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("line {}: its content does not match", target + 1)),
            "{error}"
        );
    }
}

#[test]
fn deleting_or_reordering_lines_names_the_place() {
    let (_dir, path) = log_with(4);
    let mut all = lines(&path);
    all.remove(1);
    write_lines(&path, &all);
    let error = verify(&path).unwrap_err().to_string();
    assert!(error.starts_with("line 2: it is entry 3"), "{error}");
    assert!(error.contains("missing"), "{error}");

    let (_dir, path) = log_with(4);
    let mut all = lines(&path);
    all.swap(1, 2);
    write_lines(&path, &all);
    let error = verify(&path).unwrap_err().to_string();
    assert!(error.starts_with("line 2: it is entry 3"), "{error}");
}

#[test]
fn a_partial_last_line_is_ignored_then_cut_off() {
    let (_dir, path) = log_with(2);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"{\"event\":\"data-re").unwrap();
    let report = verify(&path).unwrap();
    assert_eq!(report.lines, 2);
    assert!(report.partial_tail_bytes > 0);
    let mut log = AuditLog::open(&path, "run-2").unwrap();
    log.append("run-start", json!({})).unwrap();
    assert_eq!(
        verify(&path).unwrap(),
        VerifyReport {
            lines: 3,
            head: Some(log.head().to_owned()),
            partial_tail_bytes: 0,
        }
    );
}

#[test]
fn a_broken_log_is_not_extended() {
    let (_dir, path) = log_with(2);
    let mut all = lines(&path);
    all[0] = all[0].replace("data-read", "data-reed");
    write_lines(&path, &all);
    let error = AuditLog::open(&path, "run-2").err().unwrap().to_string();
    assert!(error.contains("line 1"), "{error}");
}

/// Runs appending to one log at once (each with its own open file) still make one chain.
#[test]
fn concurrent_appenders_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut log = AuditLog::open(&path, &format!("run-{writer}")).unwrap();
                for i in 0..50 {
                    log.append("data-read", json!({ "rows": i })).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(verify(&path).unwrap().lines, 200);
}

/// An event a model made huge is shortened, not written as a line the verifier rejects.
#[test]
fn an_event_too_long_for_a_line_is_shortened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path, "run-1").unwrap();
    log.append("denial", json!({ "why": "é".repeat(MAX_LINE_BYTES) }))
        .unwrap();
    // Many short strings: cutting each is not enough, so the fields give way to a note.
    let many: Vec<String> = (0..200_000).map(|i| format!("column-{i}")).collect();
    log.append("grant", json!({ "granted": many })).unwrap();
    log.append("run-end", json!({ "status": "error" })).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.lines().all(|line| line.len() < MAX_LINE_BYTES));
    assert!(text.contains("bytes cut") && text.contains("shortened_from_bytes"));
    assert_eq!(verify(&path).unwrap().lines, 3);
    AuditLog::open(&path, "run-2").unwrap();
}

#[test]
fn timestamps_look_like_rfc3339() {
    let now = rfc3339_now();
    assert_eq!(now.len(), 24, "{now}");
    assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
}

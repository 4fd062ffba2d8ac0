use super::*;

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text, Path::new("p.toml"), Path::new("/data"))
}

#[test]
fn defaults_deny_and_paths_resolve() {
    let policy = parse(
        "version = 1\n[bind.rows]\nsource = \"t.csv\"\ncolumns = { x = \"X\" }\n[emit.out]\nsink = \"o.csv\"\n",
    )
    .unwrap();
    assert!(policy.inference.devices.is_empty());
    assert!(!policy.inference.allow_guest_graphs);
    assert_eq!(
        policy.bind.values().next().unwrap().source,
        Path::new("/data/t.csv")
    );
}

#[test]
fn bad_policies_name_what_is_wrong() {
    let cases = [
        ("[limits]\nmemory = \"1 MiB\"\n", "version"),
        ("version = 2\n", "version = 2 is not supported"),
        (
            "version = 1\n[limits]\nmemroy = \"1 MiB\"\n",
            "unknown field `memroy`",
        ),
        (
            "version = 1\n[limits]\nmemory = \"lots\"\n",
            "is not a size",
        ),
        (
            "version = 1\n[limits]\ninstances = 0\n",
            "limits.instances = 0",
        ),
        (
            "version = 1\n[bind.rows]\nsource = \"t.csv\"\n",
            "grants no columns",
        ),
        (
            "version = 1\n[limits]\noutput-bytes = \"0 B\"\n",
            "p.toml:3: limits.output-bytes = \"0 B\" would refuse every output",
        ),
        (
            "version = 1\n[limits]\noutput-text-bytes = 0\n",
            "invalid type",
        ),
        (
            "version = 1\n[emit.out]\nsink = \"o.csv\"\nnon-finite = \"zero\"\n",
            "unknown variant `zero`, expected `refuse` or `null`",
        ),
    ];
    for (text, expected) in cases {
        let error = parse(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
        assert!(error.starts_with("p.toml"), "{error}");
    }
}

#[test]
fn output_limits_and_non_finite_have_safe_defaults() {
    let base = "version = 1\n[emit.out]\nsink = \"o.csv\"\n";
    let policy = parse(base).unwrap();
    assert_eq!(policy.limits.output_bytes, ByteSize::gib(4));
    assert_eq!(policy.limits.output_text_bytes, ByteSize::kib(64));
    assert_eq!(
        policy.emit.values().next().unwrap().non_finite,
        NonFinite::Refuse
    );
    let policy = parse(&format!(
        "{base}non-finite = \"null\"\n[limits]\noutput-bytes = \"1 MiB\"\noutput-text-bytes = \"100 B\"\n"
    ))
    .unwrap();
    assert_eq!(
        policy.emit.values().next().unwrap().non_finite,
        NonFinite::Null
    );
    assert_eq!(policy.limits.output_bytes, ByteSize::mib(1));
    assert_eq!(policy.limits.output_text_bytes, ByteSize(100));
}

#[test]
fn roles_must_change_existing_bindings() {
    let error = parse("version = 1\n[role.eu.bind.rows]\nfilter = \"region = 'EU'\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("[role.eu.bind.rows] changes a binding"),
        "{error}"
    );
}

#[test]
fn sql_that_does_not_parse_is_refused_at_its_line() {
    let base = "version = 1\n[bind.rows]\nsource = \"t.csv\"\ncolumns = { x = \"X\" }\n";
    let cases = [
        (
            format!("{base}filter = \"x = = 1\"\n"),
            "p.toml:5: [bind.rows] filter `x = = 1` is not an SQL expression",
        ),
        (
            format!("{base}mask = {{ x = \"left(X, 3)) UNION SELECT 1\" }}\n"),
            "p.toml:5: [bind.rows] mask.x `left(X, 3)) UNION SELECT 1` must be one SQL expression and nothing more, but goes on at `)`",
        ),
        (
            format!("{base}\n[role.eu.bind.rows]\nfilter = \"region = 'EU\"\n"),
            "p.toml:7: [role.eu.bind.rows] filter `region = 'EU` is not valid SQL",
        ),
    ];
    for (text, expected) in cases {
        let error = parse(&text).unwrap_err().to_string();
        assert!(error.starts_with(expected), "{error}");
    }
    assert!(parse(&format!("{base}filter = \"x > 1 AND y IN ('a', 'b')\"\n")).is_ok());
}

#[test]
fn keys_are_found_on_their_own_line() {
    let text = "version = 1\n\n[limits]\nmemory = \"64 MiB\"\ninstances = 2\n[role.a.bind.rows]\nfilter = \"x\"\n[role.b]\n";
    let lines = KeyLines::of(text);
    assert_eq!(lines.line_of("limits.instances"), Some(5));
    assert_eq!(lines.line_of("limits.batch-rows"), Some(3));
    assert_eq!(lines.line_of("role"), Some(6));
    assert_eq!(lines.line_of("role.b"), Some(8));
    assert_eq!(lines.line_of("role.a.bind.rows.filter"), Some(7));
    assert_eq!(
        describe_key("role.a.bind.rows.mask.zip"),
        "[role.a.bind.rows] mask.zip"
    );
    assert_eq!(describe_key("bind.rows.filter"), "[bind.rows] filter");
    assert_eq!(describe_key("limits"), "[limits]");
}

#[test]
fn parse_errors_give_the_line() {
    let error = parse("version = 1\n\n[limits]\ninstances = \"two\"\n").unwrap_err();
    assert!(error.to_string().contains("line 4"), "{error}");
}

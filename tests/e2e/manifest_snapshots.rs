//! Bad package manifests next to the exact error each must produce
//! (tests/manifest-snapshots/), one test per file: what a provider sees from `cordon pack`,
//! `cordon inspect` or `cordon run` for a `cordon.toml` the runtime refuses.

use std::path::Path;

use cordon::package::Package;

use crate::snapshots::snapshot_tests;

/// The manifest every snapshot breaks in one place: it loads, with the files it names.
const GOOD_MANIFEST: &str = r#"
manifest-version = 1

[package]
name = "probe"
version = "0.1.0"
publisher = "tests"
license = "MIT"
description = "a test model"
component = "model.wasm"

[input.rows]
mode = "row"
columns = [{ name = "x", type = "float64" }]

[output.results]
columns = [{ name = "outcome", type = "text" }]

[[graph]]
name = "identity"
file = "graphs/model.onnx"
format = "onnx"
"#;

/// A package directory `package/` in a temporary directory, holding `manifest` as its
/// `cordon.toml`, a component `model.wasm`, a graph `graphs/model.onnx` and the encoder files of
/// `tests/manifest-snapshots/encoders/` under `encoders/`.
fn package_with(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("package");
    std::fs::create_dir_all(package.join("graphs")).unwrap();
    std::fs::write(package.join("cordon.toml"), manifest).unwrap();
    std::fs::copy(
        cordon_test_guests::POLICY_ENV_PROBE,
        package.join("model.wasm"),
    )
    .unwrap();
    std::fs::copy(
        crate::support::root().join("tests/fixtures/identity_all_types.onnx"),
        package.join("graphs/model.onnx"),
    )
    .unwrap();
    // The encoder files the snapshot manifests name (`[[encoder]] file = "encoders/..."`).
    let encoders = crate::support::root().join("tests/manifest-snapshots/encoders");
    std::fs::create_dir_all(package.join("encoders")).unwrap();
    for entry in std::fs::read_dir(encoders).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            package.join("encoders").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    dir
}

/// The error loading a package with the manifest at `path` gives, with the temporary
/// directory's path left out (`package/cordon.toml:12: ...`); `None` if the package loads.
fn manifest_error(path: &Path) -> Option<String> {
    let dir = package_with(&std::fs::read_to_string(path).unwrap());
    let error = Package::load(&dir.path().join("package"))
        .err()?
        .to_string();
    // Not a config text: the error's temporary path, left out so that the snapshot is stable.
    Some(error.replace(&format!("{}/", dir.path().display()), ""))
}

/// The snapshots fail for what each changes, not for the package around it.
#[test]
fn the_manifest_the_snapshots_break_loads() {
    let dir = package_with(GOOD_MANIFEST);
    let package = Package::load(&dir.path().join("package")).unwrap();
    assert_eq!(package.manifest.graphs.len(), 1);
}

snapshot_tests!(
    manifest_snapshot,
    "tests/manifest-snapshots",
    super::manifest_error,
    [
        column_key_unknown,
        column_name_invalid,
        column_type_unknown,
        component_empty,
        component_escapes_the_package,
        component_is_absolute,
        component_not_in_package,
        description_too_long,
        domain_on_an_output_column,
        duplicate_input_column,
        duplicate_output_column,
        encoder_column_unknown,
        encoder_declared_twice,
        encoder_drop_not_a_level,
        encoder_file_is_the_graph,
        encoder_file_not_in_package,
        encoder_level_outside_domain,
        encoder_number_of_text,
        encoder_unknown_key,
        encoder_version_unsupported,
        graph_declared_twice,
        graph_device_unknown,
        graph_file_escapes_the_package,
        graph_file_not_in_package,
        graph_format_unknown,
        graph_name_missing,
        input_mode_missing,
        input_mode_unknown,
        levels_empty,
        levels_listed_twice,
        levels_on_a_number_column,
        license_too_long,
        manifest_version_not_a_number,
        missing_component,
        missing_manifest_version,
        no_input,
        no_input_columns,
        no_output,
        no_output_columns,
        not_toml,
        order_by_repeats_partition_column,
        output_returns_partition_key,
        package_name_invalid,
        partition_by_names_missing_column,
        partition_mode_without_partition_by,
        publisher_name_invalid,
        range_not_a_pair,
        range_on_a_text_column,
        range_reversed,
        resources_key_unknown,
        resources_size_invalid,
        row_mode_with_order_by,
        setting_default_of_another_type,
        setting_default_outside_its_range,
        setting_range_on_a_text_setting,
        setting_type_unknown,
        two_inputs,
        two_outputs,
        unit_on_a_text_column,
        unknown_key,
        unknown_table,
        unsupported_manifest_version,
        version_not_semver,
        version_too_long,
        version_walks_out_of_the_pack_directory,
    ]
);

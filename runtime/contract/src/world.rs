//! The world Cordon offers a model, and the check that a component asks for nothing outside it.
//!
//! A component names every interface it imports. wasmtime's WASI linker would satisfy some that
//! Cordon never means to offer (`wasi:sockets`, for one, is linked with every address denied):
//! a model that imports the network is refused before it is compiled, with the import named,
//! rather than left to find out at run time that the network is closed. The same goes for
//! anything this host does not know. Only the component's own, outermost imports and exports
//! count: its nested core modules are wired to them inside the component.

use std::fmt;

use wasmparser::{Parser, Payload};

/// The contract's current version, as the component's import and export names carry it: what
/// the guest SDK builds.
pub const CONTRACT_VERSION: &str = "0.4.0";

/// Every version this host serves, newest first: the current one and the earlier ones kept
/// beside it (`wit/archive/`), so that a model built with an older guest SDK keeps running.
pub const SERVED_CONTRACT_VERSIONS: &[&str] = &["0.4.0", "0.3.0", "0.2.0"];

/// The served versions without `cordon:model/settings` (added in 0.3.0).
pub const WITHOUT_SETTINGS: &[&str] = &["0.2.0"];

/// The served versions without `cordon:model/encoders` (added in 0.4.0).
pub const WITHOUT_ENCODERS: &[&str] = &["0.3.0", "0.2.0"];

/// The wasi:nn version Cordon's host implements.
pub const WASI_NN_VERSION: &str = "0.2.0-rc-2024-10-28";

/// The one interface a model exports. Both modes share it: in row mode `score` gets a batch, in
/// partition mode one whole partition (see `wit/cordon.wit`).
pub const SCORER_EXPORT: &str = "cordon:model/scorer";

/// What Cordon says about an interface a component imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportVerdict {
    /// Part of the world: linked, and locked down where it could reach anything.
    Offered,
    /// Known, and refused on purpose: network access.
    Network,
    /// Nothing this host knows.
    Unknown,
}

/// One import with the verdict on it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Import {
    /// The full name, such as `wasi:cli/environment@0.2.6`.
    pub name: String,
    pub verdict: ImportVerdict,
    /// What the host gives for it, in a few words.
    pub note: &'static str,
}

/// The outermost imports and exports of a component.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComponentWorld {
    pub imports: Vec<Import>,
    pub exports: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    #[error("the component is not a valid WebAssembly component: {0}")]
    NotAComponent(String),
    #[error(
        "the component imports `{import}`: {why}. Cordon refuses a model that asks for it before anything runs"
    )]
    RefusedImport { import: String, why: &'static str },
    #[error(
        "the component does not export `{SCORER_EXPORT}@{CONTRACT_VERSION}` (or an earlier version this host serves: {}), which a model in {mode} mode must (it exports: {found})",
        SERVED_CONTRACT_VERSIONS.join(", ")
    )]
    MissingExport { mode: String, found: String },
    #[error(
        "the component exports `{export}`, which is not part of the contract: a model exports `{SCORER_EXPORT}@<version>` and nothing else"
    )]
    ExtraExport { export: String },
    #[error(
        "the component imports cordon:model {imported} but exports its scorer at {exported}: a model speaks one version of the contract; rebuild it with one cordon-guest"
    )]
    MixedVersions { imported: String, exported: String },
}

/// Interfaces of WASI that Cordon links, locked down (see `cordon_sandbox`), by package.
/// Rust's standard library for wasm32-wasip2 imports several of these whatever the model does.
const OFFERED_WASI: &[(&str, &str)] = &[
    (
        "wasi:cli/",
        "no arguments, no environment, stdin empty, stdout discarded",
    ),
    ("wasi:io/", "streams the host made; nothing outside"),
    ("wasi:clocks/", "rounded to the clock resolution"),
    ("wasi:random/", "random bytes; no data"),
    ("wasi:filesystem/", "no directory is opened to the model"),
];

/// Interfaces refused outright.
const REFUSED: &[(&str, &str)] = &[
    (
        "wasi:sockets/",
        "network access, which Cordon never gives a model",
    ),
    (
        "wasi:http/",
        "network access, which Cordon never gives a model",
    ),
];

impl ComponentWorld {
    /// Reads a component's outermost imports and exports, without compiling it.
    pub fn read(wasm: &[u8]) -> Result<ComponentWorld, WorldError> {
        let mut imports = Vec::new();
        let mut exports = Vec::new();
        // parse_all yields the payloads of nested modules and components inline, each nest
        // opened by a Version payload and closed by End; depth 1 is the component itself.
        let mut depth = 0usize;
        let mut is_component = false;
        for payload in Parser::new(0).parse_all(wasm) {
            let payload = payload.map_err(|e| WorldError::NotAComponent(e.to_string()))?;
            match payload {
                Payload::Version { encoding, .. } => {
                    if depth == 0 {
                        is_component = encoding == wasmparser::Encoding::Component;
                    }
                    depth += 1;
                }
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentImportSection(reader) if depth == 1 => {
                    for import in reader {
                        let import =
                            import.map_err(|e| WorldError::NotAComponent(e.to_string()))?;
                        imports.push(judge(import.name.name));
                    }
                }
                Payload::ComponentExportSection(reader) if depth == 1 => {
                    for export in reader {
                        let export =
                            export.map_err(|e| WorldError::NotAComponent(e.to_string()))?;
                        exports.push(export.name.name.to_owned());
                    }
                }
                _ => {}
            }
        }
        if !is_component {
            return Err(WorldError::NotAComponent(
                "it is a core module or something else; build it for wasm32-wasip2".into(),
            ));
        }
        Ok(ComponentWorld { imports, exports })
    }

    /// Refuses an import outside the world, a missing scorer and any export beyond it. The
    /// function types of the scorer are checked by wasmtime when the instances are prepared.
    pub fn check(&self, mode: impl fmt::Display) -> Result<(), WorldError> {
        if let Some(import) = self
            .imports
            .iter()
            .find(|i| i.verdict != ImportVerdict::Offered)
        {
            return Err(WorldError::RefusedImport {
                import: import.name.clone(),
                why: import.note,
            });
        }
        let Some(version) = self.contract_version() else {
            return Err(WorldError::MissingExport {
                mode: mode.to_string(),
                found: if self.exports.is_empty() {
                    "nothing".into()
                } else {
                    self.exports.join(", ")
                },
            });
        };
        let scorer = format!("{SCORER_EXPORT}@{version}");
        if let Some(extra) = self.exports.iter().find(|e| **e != scorer) {
            return Err(WorldError::ExtraExport {
                export: extra.clone(),
            });
        }
        if let Some(other) = self.imports.iter().find_map(|import| {
            let (_, imported) = import.name.strip_prefix("cordon:model/")?.split_once('@')?;
            (imported != version).then(|| imported.to_owned())
        }) {
            return Err(WorldError::MixedVersions {
                imported: other,
                exported: version.to_owned(),
            });
        }
        Ok(())
    }

    /// The version of the contract the component's scorer is exported at, when this host
    /// serves it.
    pub fn contract_version(&self) -> Option<&'static str> {
        SERVED_CONTRACT_VERSIONS.iter().copied().find(|version| {
            self.exports
                .iter()
                .any(|e| *e == format!("{SCORER_EXPORT}@{version}"))
        })
    }
}

/// The verdict on one import name.
fn judge(name: &str) -> Import {
    let import = |verdict, note| Import {
        name: name.to_owned(),
        verdict,
        note,
    };
    if let Some((_, why)) = REFUSED.iter().find(|(prefix, _)| name.starts_with(prefix)) {
        return import(ImportVerdict::Network, why);
    }
    if let Some(interface) = name.strip_prefix("wasi:nn/") {
        let known = ["tensor", "graph", "inference", "errors"]
            .iter()
            .any(|i| interface == format!("{i}@{WASI_NN_VERSION}"));
        if known {
            return import(
                ImportVerdict::Offered,
                "the package's graphs, within the tensor budget",
            );
        }
        return import(
            ImportVerdict::Unknown,
            "a wasi:nn interface or version this host does not implement",
        );
    }
    if let Some((interface, version)) = name
        .strip_prefix("cordon:model/")
        .and_then(|rest| rest.split_once('@'))
        && SERVED_CONTRACT_VERSIONS.contains(&version)
    {
        match interface {
            "log" => {
                return import(
                    ImportVerdict::Offered,
                    "bounded diagnostics into the run log",
                );
            }
            "types" => return import(ImportVerdict::Offered, "the contract's types"),
            "settings" if !WITHOUT_SETTINGS.contains(&version) => {
                return import(
                    ImportVerdict::Offered,
                    "the manifest's settings, with the values the policy gives them",
                );
            }
            "encoders" if !WITHOUT_ENCODERS.contains(&version) => {
                return import(
                    ImportVerdict::Offered,
                    "the package's feature encoders, as the manifest declares them",
                );
            }
            _ => {}
        }
    }
    if name.starts_with("cordon:model/") {
        // A model built with another release's guest SDK: refused by name rather than by a
        // type mismatch later.
        return import(
            ImportVerdict::Unknown,
            "a version of Cordon's contract this host does not serve (it serves cordon:model@0.4.0, 0.3.0 and 0.2.0); rebuild the model with a matching cordon-guest SDK",
        );
    }
    if let Some((_, note)) = OFFERED_WASI.iter().find(|(prefix, _)| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.split_once('@'))
            .is_some_and(|(_, version)| version.starts_with("0.2."))
    }) {
        return import(ImportVerdict::Offered, note);
    }
    import(
        ImportVerdict::Unknown,
        "not part of the world Cordon offers (WASI 0.2 cli, io, clocks, random, filesystem; wasi:nn; cordon:model's log, settings and encoders)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_judged_by_interface_and_version() {
        let verdict = |name: &str| judge(name).verdict;
        assert_eq!(
            verdict("wasi:cli/environment@0.2.6"),
            ImportVerdict::Offered
        );
        assert_eq!(verdict("wasi:io/streams@0.2.0"), ImportVerdict::Offered);
        assert_eq!(
            verdict("wasi:nn/graph@0.2.0-rc-2024-10-28"),
            ImportVerdict::Offered
        );
        assert_eq!(verdict("cordon:model/log@0.2.0"), ImportVerdict::Offered);
        assert_eq!(verdict("cordon:model/log@0.3.0"), ImportVerdict::Offered);
        assert_eq!(
            verdict("cordon:model/settings@0.3.0"),
            ImportVerdict::Offered
        );
        // 0.2.0 had no settings.
        assert_eq!(
            verdict("cordon:model/settings@0.2.0"),
            ImportVerdict::Unknown
        );
        assert_eq!(
            verdict("cordon:model/encoders@0.4.0"),
            ImportVerdict::Offered
        );
        // 0.3.0 had no encoders.
        assert_eq!(
            verdict("cordon:model/encoders@0.3.0"),
            ImportVerdict::Unknown
        );
        assert_eq!(verdict("wasi:sockets/tcp@0.2.6"), ImportVerdict::Network);
        assert_eq!(
            verdict("wasi:http/outgoing-handler@0.2.6"),
            ImportVerdict::Network
        );
        assert_eq!(verdict("wasi:nn/graph@0.2.0"), ImportVerdict::Unknown);
        assert_eq!(
            verdict("wasi:cli/environment@0.3.0"),
            ImportVerdict::Unknown
        );
        assert_eq!(verdict("wasi:keyvalue/store@0.2.0"), ImportVerdict::Unknown);
        assert_eq!(verdict("acme:exfil/upload"), ImportVerdict::Unknown);
        assert_eq!(verdict("cordon:model/log@0.1.0"), ImportVerdict::Unknown);
        // The note names the version this host speaks; it is a literal, so it must follow.
        let note = judge("cordon:model/types@0.1.0").note;
        assert!(
            note.contains(&format!("cordon:model@{CONTRACT_VERSION}")),
            "{note}"
        );
    }

    #[test]
    fn a_core_module_is_not_a_component() {
        // The smallest core module: magic and version 1.
        let module = b"\0asm\x01\0\0\0";
        assert!(matches!(
            ComponentWorld::read(module),
            Err(WorldError::NotAComponent(_))
        ));
        assert!(matches!(
            ComponentWorld::read(b"not wasm"),
            Err(WorldError::NotAComponent(_))
        ));
    }

    #[test]
    fn exports_must_be_exactly_the_scorer() {
        let world = |exports: &[&str]| ComponentWorld {
            imports: vec![judge("wasi:cli/environment@0.2.6")],
            exports: exports.iter().map(|e| e.to_string()).collect(),
        };
        assert!(world(&["cordon:model/scorer@0.2.0"]).check("row").is_ok());
        assert!(world(&["cordon:model/scorer@0.3.0"]).check("row").is_ok());
        assert!(world(&["cordon:model/scorer@0.4.0"]).check("row").is_ok());
        assert_eq!(
            world(&["cordon:model/scorer@0.2.0"]).contract_version(),
            Some("0.2.0")
        );
        assert!(matches!(
            world(&["cordon:model/scorer@0.1.0"]).check("row"),
            Err(WorldError::MissingExport { .. })
        ));
        let mut mixed = world(&["cordon:model/scorer@0.3.0"]);
        mixed.imports.push(judge("cordon:model/log@0.2.0"));
        assert!(matches!(
            mixed.check("row"),
            Err(WorldError::MixedVersions { .. })
        ));
        assert!(matches!(
            world(&[]).check("row"),
            Err(WorldError::MissingExport { .. })
        ));
        assert!(matches!(
            world(&[
                "cordon:model/scorer@0.2.0",
                "wasi:http/incoming-handler@0.2.6"
            ])
            .check("row"),
            Err(WorldError::ExtraExport { .. })
        ));
        let mut refused = world(&["cordon:model/scorer@0.2.0"]);
        refused.imports.push(judge("wasi:sockets/tcp@0.2.6"));
        let error = refused.check("row").unwrap_err().to_string();
        assert!(error.contains("`wasi:sockets/tcp@0.2.6`"), "{error}");
    }
}

//! A package: the manifest, the component, the graphs and the encoder files, with their digests.
//!
//! A provider's build leaves a directory; `cordon pack` turns it into one `.cordon` file
//! ([`crate::archive`]) holding exactly the files its manifest names; `cordon sign` appends the
//! signature ([`crate::signing`]). Either form loads into the same [`Package`]; only a packed
//! one can be signed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::archive::{self, ArchiveError};
use cordon_config::encoders::MAX_ENCODER_FILE_BYTES;
use cordon_config::manifest::{GraphSpec, MANIFEST_FILE, Manifest, ManifestError};

/// Largest component accepted.
pub const MAX_COMPONENT_BYTES: u64 = 256 * 1024 * 1024;

/// Largest graph accepted.
pub const MAX_GRAPH_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The file extension of a packed package.
pub const PACKAGE_EXTENSION: &str = "cordon";

/// What the signature is called in messages and in the statement's ignored paths (the OpenSSF
/// model-signing convention); it travels in its own frame after the archive.
pub const SIGNATURE_FILE: &str = "model.sig";

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{path}: cannot read the package file")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes is more than the {limit} bytes a package {what} may have")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
        what: &'static str,
    },
    #[error("{path}: not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{package}: the manifest names `{file}`, but the package has no such file")]
    Missing { package: PathBuf, file: String },
    #[error(
        "{package}: holds `{file}`, which its manifest does not name; a package holds only the manifest, the component, its graphs, its encoder files and its signature"
    )]
    Unlisted { package: PathBuf, file: String },
}

/// A graph the package ships, with its bytes.
pub struct PackagedGraph {
    pub spec: GraphSpec,
    pub bytes: Arc<[u8]>,
    pub sha256: String,
}

pub struct Package {
    /// The directory or `.cordon` file it was loaded from.
    pub path: PathBuf,
    pub manifest: Manifest,
    pub component: Vec<u8>,
    pub component_sha256: String,
    pub graphs: Vec<PackagedGraph>,
    /// Every file of the package, by its name inside the package.
    pub files: BTreeMap<String, Vec<u8>>,
    /// For a packed package: SHA-256 of its compressed archive, exactly as stored.
    pub archive_sha256: Option<String>,
    /// The signature's bytes, if the package is packed and signed.
    pub signature: Option<Vec<u8>>,
}

impl Package {
    /// Loads a package directory or a `.cordon` file.
    pub fn load(path: &Path) -> Result<Package, PackageError> {
        if path.is_dir() {
            Self::load_dir(path)
        } else {
            Self::load_file(path)
        }
    }

    /// A provider's build directory: the manifest and the files it names.
    fn load_dir(dir: &Path) -> Result<Package, PackageError> {
        // Parsed here, not loaded: the encoder files are read below with the other files and
        // resolved from those same bytes in `assemble`.
        let manifest_path = dir.join(MANIFEST_FILE);
        let text =
            std::fs::read_to_string(&manifest_path).map_err(|source| ManifestError::Read {
                path: manifest_path.clone(),
                source,
            })?;
        let manifest = Manifest::parse(&text, &manifest_path)?;
        let mut files = BTreeMap::new();
        let manifest_bytes = read_limited(&dir.join(MANIFEST_FILE), 1 << 20, "manifest")?;
        files.insert(MANIFEST_FILE.to_owned(), manifest_bytes);
        let component = read_limited(
            &dir.join(&manifest.component),
            MAX_COMPONENT_BYTES,
            "component",
        )?;
        files.insert(manifest.component.clone(), component);
        for spec in &manifest.graphs {
            let bytes = read_limited(&dir.join(&spec.file), MAX_GRAPH_BYTES, "graph")?;
            files.insert(spec.file.clone(), bytes);
        }
        for encoder in &manifest.encoder_files {
            let bytes = read_limited(
                &dir.join(&encoder.file),
                MAX_ENCODER_FILE_BYTES,
                "encoder file",
            )?;
            files.insert(encoder.file.clone(), bytes);
        }
        Self::assemble(dir, manifest, files, None, None)
    }

    /// A `.cordon` file, read under the archive limits.
    fn load_file(path: &Path) -> Result<Package, PackageError> {
        let contents = archive::read(path)?;
        let files = contents.files;
        let manifest_bytes = files
            .get(MANIFEST_FILE)
            .ok_or_else(|| PackageError::Missing {
                package: path.to_owned(),
                file: MANIFEST_FILE.into(),
            })?;
        let text = String::from_utf8(manifest_bytes.clone()).map_err(|_| PackageError::Read {
            path: path.join(MANIFEST_FILE),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
        })?;
        let manifest = Manifest::parse(&text, &path.join(MANIFEST_FILE))?;
        let named = named_files(&manifest);
        if let Some(extra) = files.keys().find(|name| !named.contains(name)) {
            return Err(PackageError::Unlisted {
                package: path.to_owned(),
                file: extra.clone(),
            });
        }
        Self::assemble(
            path,
            manifest,
            files,
            Some(contents.archive_sha256),
            contents.signature,
        )
    }

    fn assemble(
        path: &Path,
        mut manifest: Manifest,
        files: BTreeMap<String, Vec<u8>>,
        archive_sha256: Option<String>,
        signature: Option<Vec<u8>>,
    ) -> Result<Package, PackageError> {
        let missing = |file: &str| PackageError::Missing {
            package: path.to_owned(),
            file: file.to_owned(),
        };
        let component = files
            .get(&manifest.component)
            .ok_or_else(|| missing(&manifest.component))?
            .clone();
        check_size(path, &component, MAX_COMPONENT_BYTES, "component")?;
        // The encoders are read from the same bytes that are digested and signed.
        manifest.resolve_encoders(&path.join(MANIFEST_FILE), |file| {
            let bytes = files.get(file).ok_or_else(|| {
                ManifestError::Invalid {
                    path: path.join(MANIFEST_FILE),
                    line: None,
                    message: format!("the manifest names encoder file `{file}`, but the package has no such file"),
                }
            })?;
            if bytes.len() as u64 > MAX_ENCODER_FILE_BYTES {
                return Err(ManifestError::Invalid {
                    path: path.join(file),
                    line: None,
                    message: format!(
                        "{} bytes is more than the {MAX_ENCODER_FILE_BYTES} bytes an encoder file may have",
                        bytes.len()
                    ),
                });
            }
            String::from_utf8(bytes.clone()).map_err(|_| ManifestError::Invalid {
                path: path.join(file),
                line: None,
                message: "the encoder file is not UTF-8 text".into(),
            })
        })?;
        let mut graphs = Vec::with_capacity(manifest.graphs.len());
        for spec in &manifest.graphs {
            let bytes = files.get(&spec.file).ok_or_else(|| missing(&spec.file))?;
            check_size(path, bytes, MAX_GRAPH_BYTES, "graph")?;
            graphs.push(PackagedGraph {
                spec: spec.clone(),
                sha256: hex::encode(Sha256::digest(bytes)),
                bytes: Arc::from(bytes.as_slice()),
            });
        }
        Ok(Package {
            path: path.to_owned(),
            component_sha256: hex::encode(Sha256::digest(&component)),
            manifest,
            component,
            graphs,
            files,
            archive_sha256,
            signature,
        })
    }

    /// SHA-256 of each file, by name, in name order.
    pub fn file_digests(&self) -> BTreeMap<String, String> {
        self.files
            .iter()
            .map(|(name, bytes)| (name.clone(), hex::encode(Sha256::digest(bytes))))
            .collect()
    }

    /// The package's digest: SHA-256 over the raw SHA-256 of every file in name order (the
    /// model-signing specification's root digest).
    pub fn digest(&self) -> String {
        root_digest(self.file_digests().values())
    }

    /// `NAME-VERSION.cordon`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}.{PACKAGE_EXTENSION}",
            self.manifest.name, self.manifest.version
        )
    }

    /// Writes the package as one `.cordon` file at `out` (with its signature, if it has one).
    /// The same files always give the same bytes.
    pub fn write(&self, out: &Path) -> Result<(), PackageError> {
        Ok(archive::write(&self.files, self.signature.as_deref(), out)?)
    }
}

/// The model-signing root digest of hex SHA-256 digests, in the order given.
pub fn root_digest<'a>(digests: impl IntoIterator<Item = &'a String>) -> String {
    let mut hasher = Sha256::new();
    for digest in digests {
        hasher.update(hex::decode(digest).unwrap_or_default());
    }
    hex::encode(hasher.finalize())
}

/// The files a manifest names: itself, the component, the graphs, the encoder files.
fn named_files(manifest: &Manifest) -> Vec<String> {
    let mut names = vec![MANIFEST_FILE.to_owned(), manifest.component.clone()];
    names.extend(manifest.graphs.iter().map(|g| g.file.clone()));
    names.extend(manifest.encoder_files.iter().map(|e| e.file.clone()));
    names
}

fn check_size(
    path: &Path,
    bytes: &[u8],
    limit: u64,
    what: &'static str,
) -> Result<(), PackageError> {
    let size = bytes.len() as u64;
    if size > limit {
        return Err(PackageError::TooLarge {
            path: path.to_owned(),
            size,
            limit,
            what,
        });
    }
    Ok(())
}

fn read_limited(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, PackageError> {
    let read_error = |source| PackageError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if !metadata.is_file() {
        return Err(PackageError::NotAFile {
            path: path.to_owned(),
        });
    }
    if metadata.len() > limit {
        return Err(PackageError::TooLarge {
            path: path.to_owned(),
            size: metadata.len(),
            limit,
            what,
        });
    }
    std::fs::read(path).map_err(read_error)
}

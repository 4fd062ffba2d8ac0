//! A package directory: the manifest, the component and the graphs, with their digests.
//!
//! (The signed single-file `.cordon` package builds on this; until then a package is a
//! directory, as a provider's build leaves it.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::manifest::{GraphSpec, MANIFEST_FILE, Manifest, ManifestError};

/// Largest component accepted.
pub const MAX_COMPONENT_BYTES: u64 = 256 * 1024 * 1024;

/// Largest graph accepted.
pub const MAX_GRAPH_BYTES: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
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
}

/// A graph the package ships, with its bytes.
pub struct PackagedGraph {
    pub spec: GraphSpec,
    pub bytes: Arc<[u8]>,
    pub sha256: String,
}

pub struct Package {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub component: Vec<u8>,
    pub component_sha256: String,
    pub graphs: Vec<PackagedGraph>,
}

impl Package {
    pub fn load(dir: &Path) -> Result<Package, PackageError> {
        let manifest = Manifest::load(&dir.join(MANIFEST_FILE))?;
        let component = read_limited(
            &dir.join(&manifest.component),
            MAX_COMPONENT_BYTES,
            "component",
        )?;
        let component_sha256 = hex::encode(Sha256::digest(&component));
        let mut graphs = Vec::with_capacity(manifest.graphs.len());
        for spec in &manifest.graphs {
            let bytes = read_limited(&dir.join(&spec.file), MAX_GRAPH_BYTES, "graph")?;
            graphs.push(PackagedGraph {
                spec: spec.clone(),
                sha256: hex::encode(Sha256::digest(&bytes)),
                bytes: Arc::from(bytes),
            });
        }
        Ok(Package {
            dir: dir.to_owned(),
            manifest,
            component,
            component_sha256,
            graphs,
        })
    }
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

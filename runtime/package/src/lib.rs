//! Cordon's packages: the `.cordon` archive, its signature, loading a package from a folder or
//! an archive, and the host's one atomic file writer ([`files`]).

pub mod archive;
pub mod files;
pub mod package;
pub mod signing;

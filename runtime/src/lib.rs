//! Cordon's host: runs a provider's model, compiled to a WebAssembly component, on a
//! consumer's table under the consumer's policy.
//!
//! The path of one run ([`Runtime::run`]):
//! 1. load the package ([`package`]) and the policy ([`policy`]); intersect what the manifest
//!    requests with what the policy allows ([`grant`]);
//! 2. compile the component, or load it from the compile cache ([`sandbox`]);
//! 3. load the package's graphs into ONNX Runtime once per process ([`nn`]);
//! 4. read the bound table in batches of granted columns, keys held back ([`data`]);
//! 5. score the batches in parallel sandbox instances, validate every output batch, re-attach
//!    the keys and write the sink atomically ([`run`]).
//!
//! Only the `cordon` binary reads environment variables or arguments; this library takes
//! everything as explicit configuration.

// The host's crates, below this one (see the README's layout): each module under its old
// name, so that `cordon::sandbox::Instance`, `crate::grant::Grant` and the rest resolve as
// they always have.
pub use cordon_config::{admission, grant, keys, manifest, names, policy, units};
pub use cordon_contract::{bindings, world};
pub use cordon_data::{panics, sink, source};
pub use cordon_package::{archive, files, package, signing};
pub use cordon_plot as plot;
pub use cordon_sandbox as sandbox;
pub use cordon_sandbox::nn;

/// The batches that cross the sandbox boundary (`cordon_contract`) and the data plane's
/// errors (`cordon_data`), under the one name they always had.
pub mod data {
    pub use cordon_contract::data::*;
    pub use cordon_data::{DataError, NonFiniteAt};
    pub use cordon_package::files::write_atomically;
}

pub mod audit;
pub mod inspect;
pub mod run;
pub mod usage;

pub use run::{Progress, RunError, RunRequest, RunSummary, Runtime, RuntimeConfig};

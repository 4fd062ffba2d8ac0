//! Cordon's host: runs a provider's model, compiled to a WebAssembly component, on a
//! consumer's table under the consumer's policy.
//!
//! Prepare once, score many. Every way of calling a model is a thin driver ([`drivers`]) over
//! the same parts:
//! 1. admit: load the package ([`package`]) and the policy ([`policy`]), verify the signature,
//!    check the component's imports and the graphs, and intersect what the manifest requests
//!    with what the policy allows ([`grant`]) ([`Runtime::admit`]);
//! 2. prepare: compile the component or load it from the compile cache ([`sandbox`]), load the
//!    graphs into ONNX Runtime once per process ([`nn`]), link an `InstancePre`: a
//!    [`PreparedModel`] ([`prepare`]);
//! 3. score: each driver thread makes a [`Scorer`] (one sandbox instance with the policy's
//!    limits and output validation) and hands it batches of granted columns, keys held back
//!    ([`source`]); outputs go to a sink with their keys re-attached ([`sink`]);
//! 4. record: the audit trail and the usage ledger ([`record`]).
//!
//! Only the `cordon` binary reads environment variables or arguments; this library takes
//! everything as explicit configuration.

// The host's crates, below this one (see the README's layout): each module under its old
// name, so that `cordon::sandbox::Instance`, `crate::grant::Grant` and the rest resolve as
// they always have.
pub use cordon_config::{
    admission, encoders, grant, keys, manifest, names, policy, settings, units,
};
pub use cordon_contract::{bindings, world};
pub use cordon_data::{panics, sink, source};
pub use cordon_package::{archive, files, package, signing};
pub use cordon_plot as plot;
pub use cordon_sandbox as sandbox;
pub use cordon_sandbox::{nn, scorer};

/// The batches that cross the sandbox boundary (`cordon_contract`) and the data plane's
/// errors (`cordon_data`), under the one name they always had.
pub mod data {
    pub use cordon_contract::data::*;
    pub use cordon_data::{DataError, NonFiniteAt};
    pub use cordon_package::files::write_atomically;
}

pub mod audit;
pub mod drivers;
pub mod error;
pub mod inspect;
pub mod prepare;
pub mod record;
pub mod run;
pub mod runtime;
pub mod usage;

pub use error::RunError;
pub use prepare::{Admitted, PreparedModel};
pub use run::{Progress, RunRequest, RunSummary};
pub use runtime::{Runtime, RuntimeConfig};
pub use scorer::{ScoreError, Scorer, ScorerTemplate};

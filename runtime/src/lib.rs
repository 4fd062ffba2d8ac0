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

pub mod archive;
pub mod audit;
pub mod data;
pub mod drivers;
pub mod error;
pub mod grant;
pub mod inspect;
pub mod manifest;
pub mod names;
pub mod nn;
pub mod package;
pub mod panics;
pub mod plot;
pub mod policy;
pub mod prepare;
pub mod record;
pub mod run;
pub mod runtime;
pub mod sandbox;
pub mod scorer;
pub mod signing;
pub mod sink;
pub mod source;
pub mod units;
pub mod usage;
pub mod world;

pub use error::RunError;
pub use prepare::{Admitted, PreparedModel};
pub use run::{Progress, RunRequest, RunSummary};
pub use runtime::{Runtime, RuntimeConfig};
pub use scorer::{ScoreError, Scorer, ScorerTemplate};

//! End-to-end tests: real components in the real sandbox, one behaviour per test guest.
//!
//! Every test shares one `Runtime` (one engine, one ONNX Runtime, one graph registry), as a
//! long-running host would, and every hostile test ends by scoring the churn example in that
//! same runtime: a hostile guest must not leave the host broken.

// Test code: a failed unwrap is a failed test, which is what these lints guard production code from.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod audit;
mod bounded_memory;
mod cache;
mod churn;
mod data_plane;
mod domains;
mod drivers;
mod forecast;
mod inference_wall;
mod inspect;
mod limits;
mod manifest_snapshots;
mod output;
mod packaging;
mod partition;
mod policy_snapshots;
mod project;
mod sandbox_policy;
mod serve;
mod settings;
mod snapshots;
mod sql;
mod support;

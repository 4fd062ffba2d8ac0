//! Cordon's boundary: what crosses between the host and a guest component.
//!
//! - [`bindings`]: the one `bindgen!` of the host, from the WIT in the repository's `wit/`;
//! - [`data`]: the batches of columns a guest scores;
//! - [`types`]: the column types and input modes manifests and policies name;
//! - [`world`]: the checks of a component's imports and exports against the contract.
//!
//! Every other crate of the host depends on this one and on nothing above it.

pub mod arrow;
pub mod data;
pub mod types;
pub mod world;

/// The bindings generated from the contract in `wit/`; the only `bindgen!` of the host.
///
/// Every import is trappable: a host function returns `Err` only for a host fault or a broken
/// limit, which ends the run. Guest mistakes are reported through the WIT result types
/// (wasi:nn errors, `model-error`) and never trap.
///
/// wasi:nn's resources (tensor, graph, execution context, error) are left to bindgen's
/// placeholder types: the values behind them belong to the wasi:nn host (`cordon_sandbox::nn`),
/// which is above this crate and stores its own types under the same handles.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "cordon:model/model",
        imports: { default: trappable },
    });
}

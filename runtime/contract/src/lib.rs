//! Cordon's boundary: what crosses between the host and a guest component.
//!
//! - [`bindings`]: the host's `bindgen!` of the current contract, from the WIT in the
//!   repository's `wit/`, and [`bindings_0_3`] and [`bindings_0_2`] of the earlier versions it
//!   still serves;
//! - [`data`]: the batches of columns a guest scores;
//! - [`types`]: the column types and input modes manifests and policies name;
//! - [`world`]: the checks of a component's imports and exports against the contract.
//!
//! Every other crate of the host depends on this one and on nothing above it.

pub mod arrow;
pub mod data;
pub mod types;
pub mod world;

/// The bindings generated from the contract in `wit/` (the current version, 0.4.0).
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

/// The bindings of contract 0.3.0 (`wit/archive/0.3.0`), served beside the current one so that
/// a model built with an older guest SDK keeps running. Its types and wasi:nn are the current
/// ones (0.4.0 only added the `encoders` interface), so one conversion of batches and one
/// wasi:nn host serve every version; its `log` and `settings` interfaces are its own, under
/// their own names, served by the same hosts.
pub mod bindings_0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/archive/0.3.0",
        world: "cordon:model/model",
        imports: { default: trappable },
        with: {
            "cordon:model/types": crate::bindings::cordon::model::types,
            "wasi:nn": crate::bindings::wasi::nn,
        },
    });
}

/// The bindings of contract 0.2.0 (`wit/archive/0.2.0`), served beside the current one. Its
/// types and wasi:nn are the current ones too (0.3.0 added the `settings` interface); only its
/// `log` interface is its own, under its own name.
pub mod bindings_0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/archive/0.2.0",
        world: "cordon:model/model",
        imports: { default: trappable },
        with: {
            "cordon:model/types": crate::bindings::cordon::model::types,
            "wasi:nn": crate::bindings::wasi::nn,
        },
    });
}

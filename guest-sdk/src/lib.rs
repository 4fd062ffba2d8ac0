//! The Cordon guest SDK: what a provider compiles its model against.
//!
//! A model is a Rust crate built for `wasm32-wasip2` as a `cdylib`. It implements [`Model`] and
//! calls [`export_model!`] once. Cordon's host streams typed, columnar [`Batch`]es of the
//! consumer's data into [`Model::score`]; the model answers with a batch of its declared output
//! columns. Graphs shipped in the package run on the host through wasi:nn, reached with
//! [`nn::Session`]. The model never sees raw bindings, files, sockets, environment or clocks
//! beyond what the host allows.
//!
//! ```
//! use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};
//!
//! struct Doubler;
//!
//! impl Model for Doubler {
//!     fn describe() -> ModelInfo {
//!         ModelInfo::new("doubler", "0.1.0", "doubles the column `x`")
//!     }
//!
//!     fn score(input: &Batch) -> Result<Batch, ModelError> {
//!         let x = input.f64s("x")?;
//!         let doubled = x.iter().map(|v| v.map(|v| v * 2.0)).collect();
//!         BatchBuilder::new().nullable_f64("doubled", doubled).build()
//!     }
//! }
//!
//! cordon_guest::export_model!(Doubler);
//! # fn main() {
//! #     let input = BatchBuilder::new().f64("x", vec![1.0, 2.5]).build().unwrap();
//! #     let output = Doubler::score(&input).unwrap();
//! #     assert_eq!(output.f64s("doubled").unwrap().get(1), Some(5.0));
//! # }
//! ```
//!
//! On a native target (unit tests of a model's own logic) the wasi:nn functions are not
//! available: call them only from code that runs inside Cordon.
//!
//! # What the host expects back
//!
//! [`Model::score`] returns one [`Batch`] with exactly the manifest's output columns, by name
//! and type, and no others. In row mode it has as many rows as the input, in the same order
//! (the host re-attaches the consumer's key columns by position); in partition mode any number
//! of rows, to which the host adds the partition key. Numbers must be finite (a NaN or an
//! infinity is refused naming the column and row), and the policy's output limits (rows, bytes,
//! text bytes) apply. A batch that breaks any of this fails the run as the model's invalid
//! output; an `Err` from `score` fails it as the model's error, with the message shown.
//!
//! # Tensors
//!
//! wasi:nn tensors are [`nn::ElementType`]s: float16, bfloat16, float32, float64, uint8, int32
//! and int64, of any shape. There are no string, boolean, map or sequence tensors: encode text
//! in the guest, feed booleans as uint8 (a graph's boolean output comes back as uint8), and
//! export classifiers without ZipMap. `cordon pack`, `build` and `inspect` refuse a graph whose
//! inputs or outputs are of any other kind, naming the tensor. Every tensor byte counts against
//! the policy's `limits.tensor-bytes`.
//!
//! # Features from the package's encoders
//!
//! [`encoders::get`] reads an encoder the package ships (`[[encoder]]` in the manifest, written
//! by `scripts/export-sklearn.py` from a fitted scikit-learn `ColumnTransformer`) and turns a
//! batch into the float32 features the graph was trained on: scaled numbers, one-hot and
//! ordinal levels, and scikit-learn's missing-value and unknown-level rules, with no category
//! list copied into the model's code.
//!
//! # Fuel
//!
//! The host meters the guest's WebAssembly execution in fuel: about one unit per instruction
//! executed inside the sandbox (graph inference on the host is not counted; its time is bounded
//! by the run's deadline instead). Each batch, or each partition, may spend at most the
//! policy's `limits.fuel-per-batch`; past it the run stops with the CPU-limit error. Declare
//! what a row costs in the manifest's `[resources] fuel-per-row` (`cordon test` measures it), so
//! that consumers size the limit, and `cordon check` warns them when it is too low.

mod batch;
pub mod encoders;
pub mod log;
pub mod nn;
pub mod settings;

pub use batch::{Batch, BatchBuilder, Column, ColumnType, TextColumn};

/// The raw bindings generated from the contract in the repository's `wit/` folder. Providers
/// never need them: they are public only so that [`export_model!`] can reach them.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "cordon:model/model",
        pub_export_macro: true,
        export_macro_name: "__export_model_world",
        default_bindings_module: "cordon_guest::bindings",
        generate_all,
    });
}

use bindings::cordon::model::types as wit;

/// What a model says about itself; the host records it in the run's audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub description: String,
}

impl ModelInfo {
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
        }
    }
}

/// Why a model refused or failed a batch. The run ends with this error, reported as the
/// model's, with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// The input is not what the model expects: a missing column, a wrong type.
    InvalidInput(String),
    /// A wasi:nn call failed; the message carries the host's cause.
    Inference(String),
    /// Anything else.
    Internal(String),
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::InvalidInput(message) => write!(f, "invalid input: {message}"),
            ModelError::Inference(message) => write!(f, "inference failed: {message}"),
            ModelError::Internal(message) => write!(f, "internal error: {message}"),
        }
    }
}

impl std::error::Error for ModelError {}

impl From<nn::NnError> for ModelError {
    fn from(error: nn::NnError) -> Self {
        ModelError::Inference(error.to_string())
    }
}

/// A provider's model. Both functions are associated functions: state that must live across
/// batches (a graph session, a lookup table) belongs in a `thread_local!`, which lives as long as
/// the sandbox instance.
pub trait Model {
    /// Name, version and a one-line description.
    fn describe() -> ModelInfo;

    /// Score one batch. In row mode the output must have exactly one row per input row, in the
    /// same order. In partition mode the batch is one whole partition (all rows sharing the
    /// manifest's `partition-by` values, sorted by `order-by`) and the output may have any
    /// number of rows; the host writes the partition key in front of them. Either way the
    /// output holds exactly the columns the package's manifest declares.
    fn score(input: &Batch) -> Result<Batch, ModelError>;
}

/// Exports a [`Model`] implementation as the component's `cordon:model/scorer` interface.
/// Invoke it once, at the crate's top level.
#[macro_export]
macro_rules! export_model {
    ($model:ty) => {
        // Only a wasm component exports the interface: a native build (the model's own unit
        // tests) has no host to call it, and native linkers reject WIT export names.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct CordonModelExport;

            impl $crate::bindings::exports::cordon::model::scorer::Guest for CordonModelExport {
                fn score(
                    input: $crate::bindings::cordon::model::types::Batch,
                ) -> ::core::result::Result<
                    $crate::bindings::cordon::model::types::Batch,
                    $crate::bindings::cordon::model::types::ModelError,
                > {
                    $crate::__private::score::<$model>(input)
                }

                fn describe() -> $crate::bindings::cordon::model::types::ModelInfo {
                    $crate::__private::describe::<$model>()
                }
            }

            $crate::bindings::__export_model_world!(
                CordonModelExport with_types_in $crate::bindings
            );
        };

        // Natively, still name the model's functions so the model type counts as used.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = <$model as $crate::Model>::describe;
            let _ = <$model as $crate::Model>::score;
        };
    };
}

/// Glue between the raw bindings and [`Model`], used by [`export_model!`].
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub fn score<M: Model>(input: wit::Batch) -> Result<wit::Batch, wit::ModelError> {
        let input = Batch::from_wit(input);
        match M::score(&input) {
            Ok(output) => Ok(output.into_wit()),
            Err(ModelError::InvalidInput(message)) => Err(wit::ModelError::InvalidInput(message)),
            Err(ModelError::Inference(message)) => Err(wit::ModelError::Inference(message)),
            Err(ModelError::Internal(message)) => Err(wit::ModelError::Internal(message)),
        }
    }

    pub fn describe<M: Model>() -> wit::ModelInfo {
        let info = M::describe();
        wit::ModelInfo {
            name: info.name,
            version: info.version,
            description: info.description,
        }
    }
}

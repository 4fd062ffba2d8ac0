//! A safe wrapper over wasi:nn: named graphs from the package, tensors in, tensors out.
//!
//! Graphs are loaded once per process by the host and reached by the name the manifest gives
//! them. The host counts every tensor byte against the consumer's budget, so drop tensors you no
//! longer need; [`Session::run`] consumes its inputs for that reason.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::bindings::wasi::nn::{errors, graph, inference, tensor};

/// A wasi:nn failure, with the host's cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NnError {
    /// The wasi:nn error code, as its WIT name (`not-found`, `invalid-argument`, ...).
    pub code: &'static str,
    /// What the host said went wrong.
    pub message: String,
}

impl std::fmt::Display for NnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wasi-nn {}: {}", self.code, self.message)
    }
}

impl std::error::Error for NnError {}

impl From<errors::Error> for NnError {
    fn from(error: errors::Error) -> Self {
        let code = match error.code() {
            errors::ErrorCode::InvalidArgument => "invalid-argument",
            errors::ErrorCode::InvalidEncoding => "invalid-encoding",
            errors::ErrorCode::Timeout => "timeout",
            errors::ErrorCode::RuntimeError => "runtime-error",
            errors::ErrorCode::UnsupportedOperation => "unsupported-operation",
            errors::ErrorCode::TooLarge => "too-large",
            errors::ErrorCode::NotFound => "not-found",
            errors::ErrorCode::Security => "security",
            errors::ErrorCode::Unknown => "unknown",
        };
        NnError {
            code,
            message: error.data(),
        }
    }
}

fn local_error(message: String) -> NnError {
    NnError {
        code: "invalid-argument",
        message,
    }
}

/// The element type of a tensor; every type wasi:nn names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    F16,
    F32,
    F64,
    BF16,
    U8,
    I32,
    I64,
}

impl ElementType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElementType::U8 => 1,
            ElementType::F16 | ElementType::BF16 => 2,
            ElementType::F32 | ElementType::I32 => 4,
            ElementType::F64 | ElementType::I64 => 8,
        }
    }

    fn to_wit(self) -> tensor::TensorType {
        match self {
            ElementType::F16 => tensor::TensorType::Fp16,
            ElementType::F32 => tensor::TensorType::Fp32,
            ElementType::F64 => tensor::TensorType::Fp64,
            ElementType::BF16 => tensor::TensorType::Bf16,
            ElementType::U8 => tensor::TensorType::U8,
            ElementType::I32 => tensor::TensorType::I32,
            ElementType::I64 => tensor::TensorType::I64,
        }
    }

    fn from_wit(ty: tensor::TensorType) -> Self {
        match ty {
            tensor::TensorType::Fp16 => ElementType::F16,
            tensor::TensorType::Fp32 => ElementType::F32,
            tensor::TensorType::Fp64 => ElementType::F64,
            tensor::TensorType::Bf16 => ElementType::BF16,
            tensor::TensorType::U8 => ElementType::U8,
            tensor::TensorType::I32 => ElementType::I32,
            tensor::TensorType::I64 => ElementType::I64,
        }
    }
}

/// A tensor held by the host. Its bytes count against the consumer's tensor budget until it
/// is dropped or passed to [`Session::run`].
pub struct Tensor {
    raw: tensor::Tensor,
}

macro_rules! typed_tensor {
    ($from:ident, $to:ident, $ty:ty, $element:ident) => {
        /// A tensor of the given dimensions (row-major) from these values.
        ///
        /// WebAssembly is little-endian, so the values' memory already is the tensor's byte
        /// layout: it is handed to the host as it is, with no conversion value by value (that
        /// loop was a large share of a small model's work per row inside the sandbox).
        pub fn $from(dimensions: &[u32], values: &[$ty]) -> Tensor {
            #[cfg(target_endian = "little")]
            let raw = tensor::Tensor::new(
                dimensions,
                ElementType::$element.to_wit(),
                bytemuck::cast_slice(values),
            );
            #[cfg(not(target_endian = "little"))]
            let raw = {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                tensor::Tensor::new(dimensions, ElementType::$element.to_wit(), &bytes)
            };
            Tensor { raw }
        }

        /// The tensor's values, if its element type matches. Trailing bytes that do not make a
        /// whole value are ignored.
        pub fn $to(&self) -> Result<Vec<$ty>, NnError> {
            self.expect_type(ElementType::$element)?;
            const SIZE: usize = std::mem::size_of::<$ty>();
            let bytes = self.raw.data();
            let whole = bytes.len() / SIZE;
            let bytes = bytes.get(..whole * SIZE).unwrap_or_default();
            #[cfg(target_endian = "little")]
            {
                // One copy of the bytes into place, not a conversion per value.
                let mut values = vec![<$ty>::default(); whole];
                bytemuck::cast_slice_mut::<$ty, u8>(&mut values).copy_from_slice(bytes);
                Ok(values)
            }
            #[cfg(not(target_endian = "little"))]
            Ok(bytes
                .chunks_exact(SIZE)
                .map(|chunk| {
                    let mut value = [0u8; SIZE];
                    value.copy_from_slice(chunk);
                    <$ty>::from_le_bytes(value)
                })
                .collect())
        }
    };
}

impl Tensor {
    /// A tensor from raw little-endian bytes. The host checks that the length matches the
    /// dimensions when the tensor is used.
    pub fn from_bytes(dimensions: &[u32], element_type: ElementType, bytes: Vec<u8>) -> Tensor {
        Tensor {
            raw: tensor::Tensor::new(dimensions, element_type.to_wit(), &bytes),
        }
    }

    typed_tensor!(from_f32, to_f32, f32, F32);
    typed_tensor!(from_f64, to_f64, f64, F64);
    typed_tensor!(from_i32, to_i32, i32, I32);
    typed_tensor!(from_i64, to_i64, i64, I64);
    typed_tensor!(from_u8, to_u8, u8, U8);

    pub fn dimensions(&self) -> Vec<u32> {
        self.raw.dimensions()
    }

    pub fn element_type(&self) -> ElementType {
        ElementType::from_wit(self.raw.ty())
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.raw.data()
    }

    fn expect_type(&self, wanted: ElementType) -> Result<(), NnError> {
        let found = self.element_type();
        if found == wanted {
            Ok(())
        } else {
            Err(local_error(format!(
                "tensor holds {found:?} elements, not {wanted:?}"
            )))
        }
    }
}

/// A graph from the package, ready to run.
pub struct Session {
    // The context borrows the graph on the host side; keep the graph alive beside it.
    context: inference::GraphExecutionContext,
    _graph: graph::Graph,
}

impl Session {
    /// Loads the graph the package's manifest names `graph_name`.
    pub fn load(graph_name: &str) -> Result<Session, NnError> {
        let graph = graph::load_by_name(graph_name)?;
        let context = graph.init_execution_context()?;
        Ok(Session {
            context,
            _graph: graph,
        })
    }

    /// Loads an ONNX graph from bytes the model carries itself. The host refuses this unless
    /// the consumer's policy allows it: prefer graphs declared in the manifest.
    pub fn load_onnx_bytes(bytes: &[u8]) -> Result<Session, NnError> {
        let graph = graph::load(
            &[bytes.to_vec()],
            graph::GraphEncoding::Onnx,
            graph::ExecutionTarget::Cpu,
        )?;
        let context = graph.init_execution_context()?;
        Ok(Session {
            context,
            _graph: graph,
        })
    }

    /// Runs the graph on named inputs and returns its outputs.
    pub fn run(&self, inputs: Vec<(&str, Tensor)>) -> Result<Outputs, NnError> {
        let inputs = inputs
            .into_iter()
            .map(|(name, tensor)| (name.to_owned(), tensor.raw))
            .collect();
        let outputs = self.context.compute(inputs)?;
        Ok(Outputs {
            tensors: outputs
                .into_iter()
                .map(|(name, raw)| (name, Tensor { raw }))
                .collect(),
        })
    }
}

/// The named tensors a graph returned.
pub struct Outputs {
    tensors: Vec<(String, Tensor)>,
}

impl Outputs {
    /// The output called `name`.
    pub fn get(&self, name: &str) -> Result<&Tensor, NnError> {
        self.tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, tensor)| tensor)
            .ok_or_else(|| {
                let names: Vec<&str> = self.tensors.iter().map(|(n, _)| n.as_str()).collect();
                local_error(format!(
                    "the graph has no output `{name}` (it has: {})",
                    names.join(", ")
                ))
            })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|(n, _)| n.as_str())
    }
}

thread_local! {
    static SESSIONS: RefCell<HashMap<String, Rc<Session>>> = RefCell::new(HashMap::new());
}

/// The session for `graph_name`, loaded on first use and kept for the life of the sandbox
/// instance, so that each batch does not load the graph again.
pub fn session(graph_name: &str) -> Result<Rc<Session>, NnError> {
    if let Some(session) = SESSIONS.with(|s| s.borrow().get(graph_name).cloned()) {
        return Ok(session);
    }
    let session = Rc::new(Session::load(graph_name)?);
    SESSIONS.with(|s| {
        s.borrow_mut()
            .insert(graph_name.to_owned(), Rc::clone(&session))
    });
    Ok(session)
}

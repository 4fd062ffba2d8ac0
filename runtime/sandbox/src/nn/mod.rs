//! Cordon's own wasi:nn host (`wasi:nn@0.2.0-rc-2024-10-28`).
//!
//! wasmtime-wasi-nn's ONNX backend is not fit to face a hostile guest: it panics on non-f32
//! inputs, holds every session behind one mutex, keeps tensors in host memory that no limit
//! counts, and drops the cause of errors. This implementation:
//! - accepts every element type the WIT names, checks each tensor's length against its
//!   dimensions, and never panics on guest input;
//! - counts the bytes of every tensor an instance holds against the policy's `tensor-bytes`
//!   budget, and the number of live handles against [`MAX_NN_HANDLES`];
//! - serves the package's graphs by name from a registry loaded once per process, and refuses
//!   graph bytes from the guest unless the policy allows them;
//! - returns ONNX Runtime's cause in the error resource, so the guest and the run log see it.
//!
//! Guest mistakes (a wrong shape, an unknown graph) are wasi:nn errors the guest can handle;
//! a broken limit traps and ends the run.

pub mod graph_info;
pub mod jail;
pub mod onnx;

mod host;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Resource, ResourceTable};

use crate::limits::LimitExceeded;
use cordon_contract::bindings::wasi::nn::{errors, graph, inference, tensor};
use jail::{InferenceWorker, JailConfig, JailLayers, WorkerError};
use onnx::{LoadedGraph, OnnxRuntime, SessionOptions};

/// Most wasi:nn handles (tensors, graphs, contexts, errors) one instance may hold at once.
/// Each costs host memory that the guest's linear memory cap does not cover.
pub const MAX_NN_HANDLES: usize = 10_000;

/// Largest graph a guest may hand over as bytes, when the policy allows that at all.
pub const MAX_GUEST_GRAPH_BYTES: usize = 256 * 1024 * 1024;

/// Most dimensions of a tensor a guest makes or a graph returns: the dimension list is host
/// memory the tensor budget does not otherwise see.
pub const MAX_TENSOR_RANK: usize = 32;

/// Longest name (of a graph, an input) the host keeps or repeats from a guest; longer ones are
/// cut in messages and refused where they would be kept.
pub const MAX_NAME_BYTES: usize = 1024;

/// Longest error text a wasi:nn error resource holds (ONNX Runtime's causes quote the graph).
pub const MAX_ERROR_TEXT_BYTES: usize = 4096;

/// Why inference stopped the run from inside a host call: these trap, and the run reports them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InferenceStopped {
    #[error("the run's deadline passed while a graph ran")]
    WallTime,
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

/// The element type of a tensor: every type wasi:nn names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    pub fn size(self) -> usize {
        match self {
            ElementType::U8 => 1,
            ElementType::F16 | ElementType::BF16 => 2,
            ElementType::F32 | ElementType::I32 => 4,
            ElementType::F64 | ElementType::I64 => 8,
        }
    }
}

impl From<tensor::TensorType> for ElementType {
    fn from(ty: tensor::TensorType) -> Self {
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

impl From<ElementType> for tensor::TensorType {
    fn from(ty: ElementType) -> Self {
        match ty {
            ElementType::F16 => tensor::TensorType::Fp16,
            ElementType::F32 => tensor::TensorType::Fp32,
            ElementType::F64 => tensor::TensorType::Fp64,
            ElementType::BF16 => tensor::TensorType::Bf16,
            ElementType::U8 => tensor::TensorType::U8,
            ElementType::I32 => tensor::TensorType::I32,
            ElementType::I64 => tensor::TensorType::I64,
        }
    }
}

/// A tensor held on the host for a guest.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub dimensions: Vec<u32>,
    pub ty: ElementType,
    pub data: Vec<u8>,
}

impl Tensor {
    /// Bytes a tensor of these dimensions and type holds, or `None` on overflow.
    pub fn byte_len(dimensions: &[u32], ty: ElementType) -> Option<usize> {
        dimensions.iter().try_fold(ty.size(), |acc, &d| {
            acc.checked_mul(usize::try_from(d).ok()?)
        })
    }

    /// Host bytes the tensor holds against the budget: its data and its dimension list.
    pub fn held_bytes(&self) -> u64 {
        (self.data.len() + self.dimensions.len() * std::mem::size_of::<u32>()) as u64
    }

    /// Checks that the data is exactly as long as the dimensions and type say.
    fn check(&self) -> Result<(), String> {
        match Tensor::byte_len(&self.dimensions, self.ty) {
            Some(expected) if expected == self.data.len() => Ok(()),
            Some(expected) => Err(format!(
                "tensor data is {} bytes, but dimensions {:?} of {:?} need {expected}",
                self.data.len(),
                self.dimensions,
                self.ty
            )),
            None => Err(format!("dimensions {:?} overflow", self.dimensions)),
        }
    }
}

/// A graph handle held by a guest: the graph, and its index in the instance's inference
/// worker when the run is jailed.
pub struct Graph {
    graph: Arc<LoadedGraph>,
    in_worker: Option<u32>,
}

/// An execution context held by a guest.
pub struct ExecutionContext {
    graph: Arc<LoadedGraph>,
    in_worker: Option<u32>,
}

/// The wasi:nn error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    InvalidEncoding,
    Timeout,
    RuntimeError,
    UnsupportedOperation,
    TooLarge,
    NotFound,
    Security,
    Unknown,
}

/// A wasi:nn error resource: a code and the host's cause.
#[derive(Debug, Clone)]
pub struct NnError {
    pub code: ErrorCode,
    pub message: String,
}

/// The bindings (in `cordon_contract`, below this crate) type wasi:nn's handles with
/// placeholder types; the table holds this host's value for each under the same handle, and
/// checks the value's type on every look-up.
trait Handle: 'static {
    type Value: Send + 'static;
}

impl Handle for tensor::Tensor {
    type Value = Tensor;
}

impl Handle for graph::Graph {
    type Value = Graph;
}

impl Handle for inference::GraphExecutionContext {
    type Value = ExecutionContext;
}

impl Handle for errors::Error {
    type Value = NnError;
}

/// What one instance did through wasi:nn, for the run summary.
#[derive(Debug, Clone, Default)]
pub struct NnStats {
    pub inference_calls: u64,
    pub inference_time: Duration,
    pub peak_tensor_bytes: u64,
    /// Refused or failed requests, in order, for the run log.
    pub incidents: Vec<String>,
    /// Inference calls per graph name.
    pub calls_by_graph: BTreeMap<String, u64>,
    /// The jail layers of this instance's inference worker, once it started.
    pub jail: Option<JailLayers>,
}

/// Most incidents one instance keeps for the run log.
const MAX_INCIDENTS: usize = 32;

/// The graphs of one package, loaded once per process and shared by all instances.
pub type GraphRegistry = BTreeMap<String, Arc<LoadedGraph>>;

/// Settings for graphs a guest brings itself; present only when the policy allows them.
#[derive(Clone)]
pub struct GuestGraphs {
    pub runtime: OnnxRuntime,
    pub options: SessionOptions,
    /// The policy's admission rules, which a guest's graph meets as a package's does.
    pub admission: graph_info::AdmissionRules,
}

/// One instance's wasi:nn state.
pub struct NnState {
    table: ResourceTable,
    handles: usize,
    graphs: Arc<GraphRegistry>,
    guest_graphs: Option<GuestGraphs>,
    tensor_budget: u64,
    tensor_bytes: u64,
    /// Where graphs run: `None` in this process, else in this instance's worker (started on
    /// first use, or by [`NnState::start_worker`]).
    jail: Option<JailConfig>,
    worker: Option<InferenceWorker>,
    /// When the run must end: a graph still running then is stopped.
    pub deadline: Instant,
    pub stats: NnStats,
}

impl NnState {
    /// In-process inference (graphs run in the host's ONNX Runtime).
    pub fn new(
        graphs: Arc<GraphRegistry>,
        guest_graphs: Option<GuestGraphs>,
        tensor_budget: u64,
    ) -> Self {
        NnState {
            table: ResourceTable::new(),
            handles: 0,
            graphs,
            guest_graphs,
            tensor_budget,
            tensor_bytes: 0,
            jail: None,
            worker: None,
            deadline: Instant::now() + Duration::from_secs(365 * 24 * 3600),
            stats: NnStats::default(),
        }
    }

    /// Runs this instance's graphs in an inference worker made from `config`.
    pub fn jailed(mut self, config: JailConfig) -> Self {
        self.jail = Some(config);
        self
    }

    /// Starts the instance's inference worker now, when the run is jailed and has graphs, so a
    /// worker or graph that cannot start fails before any data is read.
    pub fn start_worker(&mut self) -> Result<(), WorkerError> {
        if self.jail.is_some() && !self.graphs.is_empty() {
            self.worker()?;
        }
        Ok(())
    }

    /// The process id of the instance's worker, if one runs (tests kill it).
    pub fn worker_pid(&self) -> Option<u32> {
        self.worker.as_ref().map(InferenceWorker::pid)
    }

    /// The running worker, started with the package's graphs (graph `i` is the registry's
    /// `i`-th, in name order) if it is not yet.
    fn worker(&mut self) -> Result<&mut InferenceWorker, WorkerError> {
        let Some(config) = &self.jail else {
            return Err(WorkerError::Protocol("the run is not jailed".into()));
        };
        if self.worker.is_none() {
            let graphs: Vec<Arc<LoadedGraph>> = self.graphs.values().cloned().collect();
            let worker = InferenceWorker::start(config, &graphs, self.deadline)?;
            self.stats.jail = Some(worker.layers.clone());
            self.worker = Some(worker);
        }
        self.worker
            .as_mut()
            .ok_or_else(|| WorkerError::Protocol("the worker did not start".into()))
    }

    /// Bytes of tensors the guest holds now.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensor_bytes
    }

    fn push<H: Handle>(&mut self, value: H::Value) -> wasmtime::Result<Resource<H>> {
        if self.handles >= MAX_NN_HANDLES {
            return Err(wasmtime::Error::new(LimitExceeded::NnHandles {
                limit: MAX_NN_HANDLES,
            }));
        }
        let resource = self.table.push(value)?;
        self.handles += 1;
        Ok(Resource::new_own(resource.rep()))
    }

    fn delete<H: Handle>(&mut self, handle: Resource<H>) -> wasmtime::Result<H::Value> {
        let value = self
            .table
            .delete(Resource::<H::Value>::new_own(handle.rep()))?;
        self.handles = self.handles.saturating_sub(1);
        Ok(value)
    }

    fn get<H: Handle>(&self, handle: &Resource<H>) -> wasmtime::Result<&H::Value> {
        Ok(self
            .table
            .get(&Resource::<H::Value>::new_borrow(handle.rep()))?)
    }

    fn error<T>(
        &mut self,
        code: ErrorCode,
        message: String,
    ) -> wasmtime::Result<Result<T, Resource<errors::Error>>> {
        // Error texts quote guest names and graph node names: bounded and escaped here, where
        // they enter the host's keeping.
        let message = cordon_config::names::printable(&message, MAX_ERROR_TEXT_BYTES);
        if self.stats.incidents.len() < MAX_INCIDENTS {
            self.stats.incidents.push(format!(
                "wasi-nn {code:?}: {}",
                cordon_config::names::printable(&message, 512)
            ));
        }
        let error = self.push(NnError { code, message })?;
        Ok(Err(error))
    }

    fn hold_tensor(&mut self, bytes: u64) -> Result<(), LimitExceeded> {
        let total = self.tensor_bytes.saturating_add(bytes);
        if total > self.tensor_budget {
            return Err(LimitExceeded::TensorBytes {
                budget: self.tensor_budget,
                requested: total,
            });
        }
        self.tensor_bytes = total;
        self.stats.peak_tensor_bytes = self.stats.peak_tensor_bytes.max(total);
        Ok(())
    }

    fn release_tensor(&mut self, tensor: &Tensor) {
        self.tensor_bytes = self.tensor_bytes.saturating_sub(tensor.held_bytes());
    }
}

#[cfg(test)]
mod tests;

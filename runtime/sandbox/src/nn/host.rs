//! The wasi:nn interfaces the guest calls (`tensor`, `graph`, `inference`, `errors`),
//! implemented on [`NnState`]: each checks the guest's arguments against the limits before
//! anything reaches ONNX Runtime or the inference worker.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Resource;

use super::jail::{WorkerError, WorkerFailure};
use super::onnx::{GraphFailure, LoadedGraph};
use super::{
    ErrorCode, ExecutionContext, Graph, InferenceStopped, MAX_GUEST_GRAPH_BYTES, MAX_NAME_BYTES,
    MAX_TENSOR_RANK, NnState, Tensor, graph_info,
};
use crate::limits::LimitExceeded;
use cordon_contract::bindings::wasi::nn::{errors, graph, inference, tensor};

impl tensor::Host for NnState {}

impl tensor::HostTensor for NnState {
    fn new(
        &mut self,
        dimensions: tensor::TensorDimensions,
        ty: tensor::TensorType,
        data: tensor::TensorData,
    ) -> wasmtime::Result<Resource<tensor::Tensor>> {
        // The constructor cannot return a wasi:nn error, so a tensor past the budget traps.
        // The bytes were copied out of guest memory already, which bounds this one allocation;
        // the budget bounds how many of them the guest may keep. The dimension list is host
        // memory too: its rank is capped and its bytes counted.
        if dimensions.len() > MAX_TENSOR_RANK {
            return Err(wasmtime::Error::new(LimitExceeded::TensorRank {
                limit: MAX_TENSOR_RANK,
                requested: dimensions.len(),
            }));
        }
        let tensor = Tensor {
            dimensions,
            ty: ty.into(),
            data,
        };
        self.hold_tensor(tensor.held_bytes())
            .map_err(wasmtime::Error::new)?;
        self.push(tensor)
    }

    fn dimensions(&mut self, tensor: Resource<tensor::Tensor>) -> wasmtime::Result<Vec<u32>> {
        Ok(self.get(&tensor)?.dimensions.clone())
    }

    fn ty(&mut self, tensor: Resource<tensor::Tensor>) -> wasmtime::Result<tensor::TensorType> {
        Ok(self.get(&tensor)?.ty.into())
    }

    fn data(&mut self, tensor: Resource<tensor::Tensor>) -> wasmtime::Result<Vec<u8>> {
        // Copied into guest memory, where the guest's memory cap applies.
        Ok(self.get(&tensor)?.data.clone())
    }

    fn drop(&mut self, tensor: Resource<tensor::Tensor>) -> wasmtime::Result<()> {
        let tensor = self.delete(tensor)?;
        self.release_tensor(&tensor);
        Ok(())
    }
}

impl graph::Host for NnState {
    fn load(
        &mut self,
        builders: Vec<graph::GraphBuilder>,
        encoding: graph::GraphEncoding,
        target: graph::ExecutionTarget,
    ) -> wasmtime::Result<Result<Resource<graph::Graph>, Resource<errors::Error>>> {
        let Some(guest_graphs) = self.guest_graphs.clone() else {
            return self.error(
                ErrorCode::Security,
                "loading graph bytes from the model is not allowed by the consumer's policy ([inference] allow-guest-graphs = false); load a graph the package declares with load-by-name".into(),
            );
        };
        if !matches!(
            encoding,
            graph::GraphEncoding::Onnx | graph::GraphEncoding::Autodetect
        ) {
            return self.error(
                ErrorCode::InvalidEncoding,
                format!("encoding {encoding:?} is not supported; Cordon runs ONNX graphs"),
            );
        }
        if !matches!(target, graph::ExecutionTarget::Cpu) {
            return self.error(
                ErrorCode::UnsupportedOperation,
                "graphs a model brings itself run on the CPU only".into(),
            );
        }
        let [bytes] = builders.as_slice() else {
            return self.error(
                ErrorCode::InvalidArgument,
                format!("an ONNX graph is one builder, not {}", builders.len()),
            );
        };
        if bytes.len() > MAX_GUEST_GRAPH_BYTES {
            return self.error(
                ErrorCode::TooLarge,
                format!(
                    "the graph is {} bytes; at most {MAX_GUEST_GRAPH_BYTES} are accepted",
                    bytes.len()
                ),
            );
        }
        // The guest's bytes meet the same admission as a package's graphs.
        let refusals = match graph_info::read(bytes) {
            Ok(info) => graph_info::admit(&info, &guest_graphs.admission),
            Err(error) => return self.error(ErrorCode::InvalidEncoding, error.to_string()),
        };
        if let Some(first) = refusals.first() {
            return self.error(
                ErrorCode::Security,
                format!("the model's own graph was refused: {first}"),
            );
        }
        const NAME: &str = "<from the model>";
        let bytes: Arc<[u8]> = Arc::from(bytes.as_slice());
        if self.jail.is_some() {
            let graph = Arc::new(LoadedGraph::for_worker(
                &guest_graphs.runtime,
                NAME,
                bytes,
                guest_graphs.options,
            ));
            let deadline = self.deadline;
            let loaded = match self.worker() {
                Ok(worker) => worker.load_graph(&graph, deadline),
                Err(error) => Err(WorkerFailure::Fatal(error)),
            };
            return match loaded {
                Ok(index) => Ok(Ok(self.push(Graph {
                    graph,
                    in_worker: Some(index),
                })?)),
                Err(WorkerFailure::Nn(code, message)) => self.error(code, message),
                Err(WorkerFailure::Fatal(error)) => {
                    Err(wasmtime::Error::new(InferenceStopped::Worker(error)))
                }
            };
        }
        match LoadedGraph::load(&guest_graphs.runtime, NAME, bytes, guest_graphs.options) {
            Ok(graph) => Ok(Ok(self.push(Graph {
                graph: Arc::new(graph),
                in_worker: None,
            })?)),
            Err(error) => self.error(ErrorCode::InvalidEncoding, error.to_string()),
        }
    }

    fn load_by_name(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<graph::Graph>, Resource<errors::Error>>> {
        match self.graphs.get(&name) {
            Some(graph) => {
                let graph = Arc::clone(graph);
                // In a worker, graph `i` is the registry's `i`-th (see `worker`).
                let in_worker = match self.jail {
                    Some(_) => self
                        .graphs
                        .keys()
                        .position(|known| *known == name)
                        .and_then(|i| u32::try_from(i).ok()),
                    None => None,
                };
                Ok(Ok(self.push(Graph { graph, in_worker })?))
            }
            None => {
                let known: Vec<&str> = self.graphs.keys().map(String::as_str).collect();
                let message = format!(
                    "the package declares no graph `{}` (it declares: {})",
                    cordon_config::names::printable(&name, 256),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
                self.error(ErrorCode::NotFound, message)
            }
        }
    }
}

impl graph::HostGraph for NnState {
    fn init_execution_context(
        &mut self,
        graph: Resource<graph::Graph>,
    ) -> wasmtime::Result<Result<Resource<inference::GraphExecutionContext>, Resource<errors::Error>>>
    {
        let graph = self.get(&graph)?;
        let context = ExecutionContext {
            graph: Arc::clone(&graph.graph),
            in_worker: graph.in_worker,
        };
        Ok(Ok(self.push(context)?))
    }

    fn drop(&mut self, graph: Resource<graph::Graph>) -> wasmtime::Result<()> {
        self.delete(graph)?;
        Ok(())
    }
}

impl inference::Host for NnState {}

impl inference::HostGraphExecutionContext for NnState {
    fn compute(
        &mut self,
        context: Resource<inference::GraphExecutionContext>,
        inputs: Vec<(String, Resource<tensor::Tensor>)>,
    ) -> wasmtime::Result<Result<Vec<(String, Resource<tensor::Tensor>)>, Resource<errors::Error>>>
    {
        let context = self.get(&context)?;
        let (graph, in_worker) = (Arc::clone(&context.graph), context.in_worker);
        // The inputs are owned handles: the guest hands them over, so they leave its budget.
        let mut tensors = Vec::with_capacity(inputs.len());
        for (name, resource) in inputs {
            let tensor = self.delete(resource)?;
            self.release_tensor(&tensor);
            tensors.push((name, tensor));
        }
        for (name, tensor) in &tensors {
            if name.len() > MAX_NAME_BYTES {
                return self.error(
                    ErrorCode::InvalidArgument,
                    format!(
                        "an input name is {} bytes; at most {MAX_NAME_BYTES} are accepted",
                        name.len()
                    ),
                );
            }
            if let Err(why) = tensor.check() {
                return self.error(ErrorCode::InvalidArgument, format!("input `{name}`: {why}"));
            }
        }

        // Outputs are refused before the host allocates them if they would break the budget.
        let output_budget = self.tensor_budget.saturating_sub(self.tensor_bytes);
        let deadline = self.deadline;
        let started = Instant::now();
        let outputs = match in_worker {
            Some(index) => match self.worker() {
                Ok(worker) => worker.compute(index, &graph.name, tensors, deadline, output_budget),
                Err(error) => Err(WorkerFailure::Fatal(error)),
            },
            None => graph
                .compute_until(tensors, deadline, output_budget)
                .map_err(|failure| match failure {
                    GraphFailure::Nn(code, message) => WorkerFailure::Nn(code, message),
                    GraphFailure::WallTime => WorkerFailure::Fatal(WorkerError::Deadline),
                }),
        };
        self.stats.inference_calls += 1;
        *self
            .stats
            .calls_by_graph
            .entry(graph.name.clone())
            .or_default() += 1;
        self.stats.inference_time += started.elapsed();
        let outputs = match outputs {
            Ok(outputs) => outputs,
            Err(WorkerFailure::Nn(code, message)) => return self.error(code, message),
            // A graph stopped at the deadline, or a worker that died or broke a limit, ends the
            // run: the guest is not asked to carry on.
            Err(WorkerFailure::Fatal(WorkerError::Deadline)) => {
                return Err(wasmtime::Error::new(InferenceStopped::WallTime));
            }
            Err(WorkerFailure::Fatal(error)) => {
                return Err(wasmtime::Error::new(InferenceStopped::Worker(error)));
            }
        };

        let output_bytes: u64 = outputs.iter().map(|(_, t)| t.held_bytes()).sum();
        if let Err(limit) = self.hold_tensor(output_bytes) {
            return self.error(ErrorCode::TooLarge, limit.to_string());
        }
        let mut handles = Vec::with_capacity(outputs.len());
        for (name, tensor) in outputs {
            handles.push((name, self.push(tensor)?));
        }
        Ok(Ok(handles))
    }

    fn drop(
        &mut self,
        context: Resource<inference::GraphExecutionContext>,
    ) -> wasmtime::Result<()> {
        self.delete(context)?;
        Ok(())
    }
}

impl errors::Host for NnState {}

impl errors::HostError for NnState {
    fn code(&mut self, error: Resource<errors::Error>) -> wasmtime::Result<errors::ErrorCode> {
        Ok(match self.get(&error)?.code {
            ErrorCode::InvalidArgument => errors::ErrorCode::InvalidArgument,
            ErrorCode::InvalidEncoding => errors::ErrorCode::InvalidEncoding,
            ErrorCode::Timeout => errors::ErrorCode::Timeout,
            ErrorCode::RuntimeError => errors::ErrorCode::RuntimeError,
            ErrorCode::UnsupportedOperation => errors::ErrorCode::UnsupportedOperation,
            ErrorCode::TooLarge => errors::ErrorCode::TooLarge,
            ErrorCode::NotFound => errors::ErrorCode::NotFound,
            ErrorCode::Security => errors::ErrorCode::Security,
            ErrorCode::Unknown => errors::ErrorCode::Unknown,
        })
    }

    fn data(&mut self, error: Resource<errors::Error>) -> wasmtime::Result<String> {
        Ok(self.get(&error)?.message.clone())
    }

    fn drop(&mut self, error: Resource<errors::Error>) -> wasmtime::Result<()> {
        self.delete(error)?;
        Ok(())
    }
}

//! The process's sandbox: one engine, one ONNX Runtime, one compile cache and the graphs
//! loaded so far, shared by every model it prepares and every driver that scores with them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::RunError;
use crate::nn::onnx::{LoadedGraph, OnnxRuntime, SessionOptions};
use crate::sandbox::{CompileCache, SandboxEngine};

/// Process-wide settings: where ONNX Runtime is and where compiled components are cached.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// `libonnxruntime.so`; required for packages with graphs.
    pub onnxruntime: Option<PathBuf>,
    /// Compile cache directory; `None` compiles every run.
    pub cache_dir: Option<PathBuf>,
    /// The `cordon` binary that inference workers are started from; `None` is this process's
    /// own executable (right for `cordon` itself; a library user names the binary).
    pub inference_worker: Option<PathBuf>,
    /// Test hook: let graphs through without admission, to show what the jail alone stops.
    /// Never set by `cordon`; not part of the supported interface.
    #[doc(hidden)]
    pub skip_graph_admission_for_tests: bool,
}

type GraphKey = (String, SessionOptions);

/// The process's sandbox: one engine, one ONNX Runtime, one compile cache, and the graphs
/// loaded so far. Create it once and run any number of packages with it.
pub struct Runtime {
    pub(crate) engine: SandboxEngine,
    pub(crate) onnxruntime: Option<OnnxRuntime>,
    pub(crate) cache: CompileCache,
    /// Graphs by content digest and session options, loaded once per process.
    pub(crate) graphs: Mutex<HashMap<GraphKey, Arc<LoadedGraph>>>,
    /// Drives DataFusion's reads.
    pub(crate) tokio: Arc<tokio::runtime::Runtime>,
    /// How long `new` took, reported with each run's start-up.
    pub(crate) setup_time: Duration,
    /// The binary inference workers run from.
    pub(crate) inference_worker: PathBuf,
    pub(crate) skip_graph_admission: bool,
}

impl Runtime {
    /// Starts the engine and loads ONNX Runtime, so that a missing library fails here.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RunError> {
        let started = Instant::now();
        let engine = SandboxEngine::new()
            .map_err(|e| RunError::Internal(format!("cannot start wasmtime: {e:#}")))?;
        let onnxruntime = match &config.onnxruntime {
            Some(path) => Some(OnnxRuntime::load(path)?),
            None => None,
        };
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cordon-data")
            // Tasks run here parse the consumer's files; tokio turns a panic in one into an
            // error that DataFusion reports, so the default hook's message is only noise.
            .on_thread_start(crate::panics::silence_this_thread)
            .enable_all()
            .build()
            .map_err(|e| {
                RunError::Internal(format!("cannot start the data plane's runtime: {e}"))
            })?;
        let inference_worker = match config.inference_worker {
            Some(path) => path,
            None => std::env::current_exe().map_err(|e| {
                RunError::Internal(format!(
                    "cannot find this program for inference workers: {e}"
                ))
            })?,
        };
        Ok(Runtime {
            engine,
            onnxruntime,
            cache: CompileCache::new(config.cache_dir)?,
            graphs: Mutex::new(HashMap::new()),
            tokio: Arc::new(tokio),
            setup_time: started.elapsed(),
            inference_worker,
            skip_graph_admission: config.skip_graph_admission_for_tests,
        })
    }

    /// The loaded ONNX Runtime's version, if any.
    pub fn onnxruntime_version(&self) -> Option<&str> {
        self.onnxruntime.as_ref().map(|o| o.version.as_str())
    }
}

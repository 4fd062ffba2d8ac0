//! ONNX Runtime behind Cordon's wasi:nn host.
//!
//! The shared library is loaded at start-up from an explicit path (the `onnxruntime` wheel that
//! `scripts/setup.sh` installs) and probed once, so a missing or too old library is an error
//! that says what to do, never a panic in the middle of a run.
//!
//! ONNX Runtime's `Run` is not safe to call concurrently on one session (ort takes `&mut` for
//! that reason), so each graph keeps a small pool of sessions: an instance checks one out for
//! the length of one inference. The pool's lock is held only to pop and push, never while a
//! graph runs, so parallel instances do not serialise on it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use ort::environment::Environment;
use ort::logging::LogLevel;
use ort::session::{RunOptions, Session, SessionInputValue};

use crate::nn::{ErrorCode, Tensor};
use cordon_config::manifest::Device;

/// The oldest ONNX Runtime this build accepts: the release it is tested with. Older releases
/// differ in how they resolve a graph's external-data paths (1.22 follows `..` and absolute
/// paths), and Cordon's defence against that (graph admission, the session's external-data
/// folder and the jail's filter) is verified against this one.
pub const MIN_ONNXRUNTIME: &str = "1.31";

/// The folder ONNX Runtime is told to find external data in. It does not exist: graph admission
/// refuses external data before a graph gets here, and a graph that slipped past it still finds
/// no file relative to this folder (ONNX Runtime from 1.31 refuses paths that leave it).
pub const NO_EXTERNAL_DATA_FOLDER: &str = "/nonexistent/cordon-graphs-have-no-external-data";

/// Most lines ONNX Runtime may log through the host in one process; the rest are counted and
/// dropped, so a graph cannot flood the consumer's terminal with warnings it provokes.
pub const MAX_ORT_LOG_LINES: u32 = 64;

/// Longest ONNX Runtime log message kept (they quote node names, which the provider chooses).
const MAX_ORT_LOG_BYTES: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum OnnxRuntimeError {
    #[error(
        "cannot load ONNX Runtime from {path}: {cause}\n  run scripts/setup.sh, or point ORT_DYLIB_PATH (or --onnxruntime) at libonnxruntime.so from the `onnxruntime` wheel >= {MIN_ONNXRUNTIME}"
    )]
    Load { path: PathBuf, cause: String },
    #[error("ONNX Runtime was loaded from {loaded} already; cannot switch to {requested}")]
    AlreadyLoaded { loaded: PathBuf, requested: PathBuf },
    #[error("cannot create the graph session for `{graph}` on {device}: {cause}")]
    Session {
        graph: String,
        device: Device,
        cause: String,
    },
}

/// The process's ONNX Runtime: the library is probed once and shared by every run. Its
/// environment (about 15 ms to create) is made on the first session this process builds: a host
/// whose graphs all run in inference workers never makes one.
#[derive(Clone)]
pub struct OnnxRuntime {
    environment: Arc<OnceLock<Result<Arc<Environment>, String>>>,
    pub library: PathBuf,
    pub version: String,
}

/// The runtime loaded first; a failed load is not remembered, so a corrected path can follow.
static LOADED: OnceLock<OnnxRuntime> = OnceLock::new();

impl OnnxRuntime {
    /// Loads and probes the library at `path`. ONNX Runtime can be loaded once per process:
    /// later calls return that runtime, or an error if they name another library.
    pub fn load(path: &Path) -> Result<OnnxRuntime, OnnxRuntimeError> {
        let loaded = match LOADED.get() {
            Some(loaded) => loaded,
            None => {
                let version = probe_version(path).map_err(|cause| OnnxRuntimeError::Load {
                    path: path.to_owned(),
                    cause,
                })?;
                LOADED.get_or_init(|| OnnxRuntime {
                    environment: Arc::new(OnceLock::new()),
                    library: path.to_owned(),
                    version,
                })
            }
        };
        if loaded.library == path {
            Ok(loaded.clone())
        } else {
            Err(OnnxRuntimeError::AlreadyLoaded {
                loaded: loaded.library.clone(),
                requested: path.to_owned(),
            })
        }
    }

    /// Makes the environment now: the inference worker does, before it seals itself and can no
    /// longer open the library.
    pub fn prepare(&self) -> Result<(), OnnxRuntimeError> {
        self.environment().map(|_| ())
    }

    /// The environment, made on first use.
    fn environment(&self) -> Result<&Arc<Environment>, OnnxRuntimeError> {
        let made = self.environment.get_or_init(|| {
            ort::init_from(&self.library)
                .map_err(|e| e.to_string())?
                .with_name("cordon")
                .with_telemetry(false)
                .with_logger(Arc::new(log_through_host))
                .build()
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        made.as_ref().map_err(|cause| OnnxRuntimeError::Load {
            path: self.library.clone(),
            cause: cause.clone(),
        })
    }

    /// Builds a session for `graph` from its bytes.
    pub fn session(
        &self,
        graph: &str,
        bytes: &[u8],
        options: SessionOptions,
    ) -> Result<Session, OnnxRuntimeError> {
        let error = |cause: String| OnnxRuntimeError::Session {
            graph: graph.to_owned(),
            device: options.device,
            cause,
        };
        let threads = usize::try_from(options.threads).unwrap_or(1).max(1);
        let mut builder = Session::builder(self.environment()?)
            .map_err(|e| error(e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| error(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| error(e.to_string()))?
            // Informational lines name every node; warnings and errors are what a consumer
            // needs, and they go through `log_through_host`.
            .with_log_level(LogLevel::Warning)
            .map_err(|e| error(e.to_string()))?
            .with_config_entry(
                "session.model_external_initializers_file_folder_path",
                NO_EXTERNAL_DATA_FOLDER,
            )
            .map_err(|e| error(e.to_string()))?
            // Bytes are read as ONNX only: ONNX Runtime would otherwise take bytes that look like
            // its own flatbuffer format (`ORTM` at offset 4) as that, which graph admission
            // does not read.
            .with_config_entry("session.load_model_format", "ONNX")
            .map_err(|e| error(e.to_string()))?;
        if options.device == Device::Gpu {
            builder = builder
                .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                .map_err(|e| error(e.to_string()))?;
        }
        builder
            .commit_from_memory(bytes)
            .map_err(|e| error(e.to_string()))
    }
}

/// ONNX Runtime's log lines, on the host's stderr: warnings and errors only, escaped (a node
/// name may hold terminal control sequences), cut short, and at most [`MAX_ORT_LOG_LINES`] per
/// process.
fn log_through_host(level: LogLevel, _category: &str, _id: &str, _location: &str, message: &str) {
    static LINES: AtomicU32 = AtomicU32::new(0);
    if level < LogLevel::Warning {
        return;
    }
    let line = LINES.fetch_add(1, Ordering::Relaxed);
    if line < MAX_ORT_LOG_LINES {
        let level = if level == LogLevel::Warning {
            "warning"
        } else {
            "error"
        };
        eprintln!(
            "onnxruntime {level}: {}",
            cordon_config::names::printable(message, MAX_ORT_LOG_BYTES)
        );
    } else if line == MAX_ORT_LOG_LINES {
        eprintln!("onnxruntime: further log lines are dropped");
    }
}

/// Opens the library and asks it for its version, before ort takes it over: a file that is
/// missing, is not ONNX Runtime, or is too old is reported here with its path.
fn probe_version(path: &Path) -> Result<String, String> {
    // SAFETY: loading a shared library runs its initialisers; this is the ONNX Runtime library
    // the consumer configured for this process, the same one ort loads next.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release.
    let get_api_base: libloading::Symbol<
        '_,
        unsafe extern "C" fn() -> *const ort::sys::OrtApiBase,
    > = unsafe { library.get(b"OrtGetApiBase") }.map_err(|_| {
        "the library does not export OrtGetApiBase: is it ONNX Runtime?".to_string()
    })?;
    // SAFETY: calling the exported entry point; it returns a pointer to a static table.
    let base = unsafe { get_api_base() };
    if base.is_null() {
        return Err("OrtGetApiBase returned nothing".into());
    }
    // SAFETY: `base` points to ONNX Runtime's static OrtApiBase; GetVersionString returns a
    // static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(((*base).GetVersionString)()) }
        .to_string_lossy()
        .into_owned();
    check_version(&version)?;
    Ok(version)
}

/// Accepts 1.x releases from [`MIN_ONNXRUNTIME`] on.
fn check_version(version: &str) -> Result<(), String> {
    let minor = |v: &str| v.split('.').nth(1).and_then(|m| m.parse::<u32>().ok());
    match (
        version.split('.').next(),
        minor(version),
        minor(MIN_ONNXRUNTIME),
    ) {
        (Some("1"), Some(found), Some(needed)) if found >= needed => Ok(()),
        _ => Err(format!(
            "it is version {version}; Cordon needs {MIN_ONNXRUNTIME} or a newer 1.x"
        )),
    }
}

/// Per-policy session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionOptions {
    pub device: Device,
    pub threads: u32,
}

/// Why running a graph failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphFailure {
    /// A failure the guest is told about as a wasi:nn error (a wrong input, a failed kernel).
    Nn(ErrorCode, String),
    /// The run's deadline passed while the graph ran; the graph was stopped.
    WallTime,
}

/// A graph from a package, ready to run from any instance.
pub struct LoadedGraph {
    pub name: String,
    pub bytes: Arc<[u8]>,
    pub options: SessionOptions,
    runtime: OnnxRuntime,
    idle_sessions: Mutex<Vec<Session>>,
}

impl LoadedGraph {
    /// Builds the first session eagerly so that a broken graph fails before any guest runs.
    pub fn load(
        runtime: &OnnxRuntime,
        name: &str,
        bytes: Arc<[u8]>,
        options: SessionOptions,
    ) -> Result<LoadedGraph, OnnxRuntimeError> {
        let first = runtime.session(name, &bytes, options)?;
        Ok(LoadedGraph {
            name: name.to_owned(),
            bytes,
            options,
            runtime: runtime.clone(),
            idle_sessions: Mutex::new(vec![first]),
        })
    }

    /// A graph that runs only in inference workers: no session is made in this process.
    pub fn for_worker(
        runtime: &OnnxRuntime,
        name: &str,
        bytes: Arc<[u8]>,
        options: SessionOptions,
    ) -> LoadedGraph {
        LoadedGraph {
            name: name.to_owned(),
            bytes,
            options,
            runtime: runtime.clone(),
            idle_sessions: Mutex::new(Vec::new()),
        }
    }

    /// Runs the graph on named inputs with no deadline and no output budget (benchmarks).
    pub fn compute(
        &self,
        inputs: Vec<(String, Tensor)>,
    ) -> Result<Vec<(String, Tensor)>, (ErrorCode, String)> {
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        self.compute_until(inputs, far, u64::MAX)
            .map_err(|failure| match failure {
                GraphFailure::Nn(code, message) => (code, message),
                GraphFailure::WallTime => (ErrorCode::Timeout, "stopped at the deadline".into()),
            })
    }

    /// Runs the graph on named inputs, stopped at `deadline`; outputs past `output_budget`
    /// bytes are refused before the host copies them.
    pub fn compute_until(
        &self,
        inputs: Vec<(String, Tensor)>,
        deadline: Instant,
        output_budget: u64,
    ) -> Result<Vec<(String, Tensor)>, GraphFailure> {
        let pooled = self
            .idle_sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut session = match pooled {
            Some(session) => session,
            None => self
                .runtime
                .session(&self.name, &self.bytes, self.options)
                .map_err(|e| GraphFailure::Nn(ErrorCode::RuntimeError, e.to_string()))?,
        };
        let result = run_owned(&mut session, &self.name, inputs, deadline, output_budget);
        self.idle_sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(session);
        result
    }
}

/// Runs `session` on host tensors, each copied once into a tensor ONNX Runtime allocates.
fn run_owned(
    session: &mut Session,
    graph: &str,
    inputs: Vec<(String, Tensor)>,
    deadline: Instant,
    output_budget: u64,
) -> Result<Vec<(String, Tensor)>, GraphFailure> {
    let mut values = Vec::with_capacity(inputs.len());
    for (name, tensor) in inputs {
        check_input_name(session, graph, &name)?;
        let value = to_ort(session, &tensor).map_err(|cause| {
            GraphFailure::Nn(
                ErrorCode::InvalidArgument,
                format!("input `{name}`: {cause}"),
            )
        })?;
        values.push((name, SessionInputValue::from(value)));
    }
    run(session, graph, values, Some(deadline), output_budget)
}

/// Refuses an input the graph does not have, listing the ones it has.
pub fn check_input_name(session: &Session, graph: &str, name: &str) -> Result<(), GraphFailure> {
    if session.inputs().iter().any(|i| i.name() == name) {
        return Ok(());
    }
    let known: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    Err(GraphFailure::Nn(
        ErrorCode::InvalidArgument,
        format!(
            "graph `{graph}` has no input `{}` (its inputs: {})",
            cordon_config::names::printable(name, 256),
            known.join(", ")
        ),
    ))
}

/// Runs `session` until `deadline` (if any), when the watchdog sets ONNX Runtime's terminate
/// flag (it is checked between nodes, and between a `Loop`'s iterations), and copies its
/// outputs out. `None` is for the inference worker, whose deadline the host enforces by killing
/// it.
pub fn run(
    session: &mut Session,
    graph: &str,
    values: Vec<(String, SessionInputValue<'_>)>,
    deadline: Option<Instant>,
    output_budget: u64,
) -> Result<Vec<(String, Tensor)>, GraphFailure> {
    let options = match deadline {
        Some(_) => Some(Arc::new(RunOptions::new().map_err(|e| {
            GraphFailure::Nn(ErrorCode::RuntimeError, format!("graph `{graph}`: {e}"))
        })?)),
        None => None,
    };
    let watch = match (deadline, &options) {
        (Some(deadline), Some(options)) => Some(watchdog().watch(deadline, Arc::clone(options))),
        _ => None,
    };
    let outputs = match &options {
        Some(options) => session.run_with_options(values, &**options),
        None => session.run(values),
    };
    let stopped = watch.is_some_and(Watch::finish);
    let outputs = match outputs {
        Ok(outputs) => outputs,
        Err(_) if stopped => return Err(GraphFailure::WallTime),
        Err(e) => {
            return Err(GraphFailure::Nn(
                ErrorCode::RuntimeError,
                format!("graph `{graph}`: {e}"),
            ));
        }
    };
    let mut tensors = Vec::with_capacity(outputs.len());
    let mut left = output_budget;
    for (name, value) in outputs.iter() {
        let tensor = from_ort(value, left).map_err(|(code, cause)| {
            GraphFailure::Nn(code, format!("graph `{graph}` output `{name}`: {cause}"))
        })?;
        left = left.saturating_sub(tensor.data.len() as u64);
        tensors.push((name.to_owned(), tensor));
    }
    Ok(tensors)
}

mod tensors;
mod watchdog;

pub use tensors::{from_ort, tensor_view, to_ort};
use watchdog::{Watch, watchdog};

#[cfg(test)]
mod tests;

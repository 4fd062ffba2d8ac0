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
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{DynTensor, TensorElementType, ValueType};

use crate::manifest::Device;
use crate::nn::{ElementType, ErrorCode, Tensor};

/// The oldest ONNX Runtime this build works with (ort's `api-22` feature).
pub const MIN_ONNXRUNTIME: &str = "1.22";

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

/// The process's ONNX Runtime: the library is loaded once and shared by every run.
#[derive(Clone)]
pub struct OnnxRuntime {
    environment: Arc<Environment>,
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
                let load_error = |cause: String| OnnxRuntimeError::Load {
                    path: path.to_owned(),
                    cause,
                };
                let version = probe_version(path).map_err(load_error)?;
                let environment = ort::init_from(path)
                    .map_err(|e| load_error(e.to_string()))?
                    .with_name("cordon")
                    .with_telemetry(false)
                    .build()
                    .map_err(|e| load_error(e.to_string()))?;
                LOADED.get_or_init(|| OnnxRuntime {
                    environment: Arc::new(environment),
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
        let mut builder = Session::builder(&self.environment)
            .map_err(|e| error(e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| error(e.to_string()))?
            .with_inter_threads(1)
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

/// A graph from a package, ready to run from any instance.
pub struct LoadedGraph {
    pub name: String,
    bytes: Arc<[u8]>,
    options: SessionOptions,
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

    /// Runs the graph on named inputs. Errors carry a wasi:nn code and ONNX Runtime's cause.
    pub fn compute(
        &self,
        inputs: Vec<(String, Tensor)>,
    ) -> Result<Vec<(String, Tensor)>, (ErrorCode, String)> {
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
                .map_err(|e| (ErrorCode::RuntimeError, e.to_string()))?,
        };
        let result = run(&mut session, &self.name, inputs);
        self.idle_sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(session);
        result
    }
}

fn run(
    session: &mut Session,
    graph: &str,
    inputs: Vec<(String, Tensor)>,
) -> Result<Vec<(String, Tensor)>, (ErrorCode, String)> {
    let mut values = Vec::with_capacity(inputs.len());
    for (name, tensor) in inputs {
        if !session.inputs().iter().any(|i| i.name() == name) {
            let known: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
            return Err((
                ErrorCode::InvalidArgument,
                format!(
                    "graph `{graph}` has no input `{name}` (its inputs: {})",
                    known.join(", ")
                ),
            ));
        }
        let value = to_ort(session, &tensor).map_err(|cause| {
            (
                ErrorCode::InvalidArgument,
                format!("input `{name}`: {cause}"),
            )
        })?;
        values.push((name, value));
    }
    let outputs = session
        .run(values)
        .map_err(|e| (ErrorCode::RuntimeError, format!("graph `{graph}`: {e}")))?;
    let mut tensors = Vec::with_capacity(outputs.len());
    for (name, value) in outputs.iter() {
        let tensor = from_ort(value).map_err(|cause| {
            (
                ErrorCode::UnsupportedOperation,
                format!("graph `{graph}` output `{name}`: {cause}"),
            )
        })?;
        tensors.push((name.to_owned(), tensor));
    }
    Ok(tensors)
}

fn ort_type(ty: ElementType) -> TensorElementType {
    match ty {
        ElementType::F16 => TensorElementType::Float16,
        ElementType::F32 => TensorElementType::Float32,
        ElementType::F64 => TensorElementType::Float64,
        ElementType::BF16 => TensorElementType::Bfloat16,
        ElementType::U8 => TensorElementType::Uint8,
        ElementType::I32 => TensorElementType::Int32,
        ElementType::I64 => TensorElementType::Int64,
    }
}

/// Copies a validated wasi:nn tensor into an ONNX Runtime tensor of the same element type.
fn to_ort(session: &Session, tensor: &Tensor) -> Result<DynTensor, String> {
    let shape: Vec<i64> = tensor.dimensions.iter().map(|&d| i64::from(d)).collect();
    let mut value = DynTensor::new(session.allocator(), ort_type(tensor.ty), shape)
        .map_err(|e| e.to_string())?;
    let destination = value.data_ptr_mut().cast::<u8>();
    if destination.is_null() && !tensor.data.is_empty() {
        return Err("ONNX Runtime gave no buffer for the tensor".into());
    }
    if !tensor.data.is_empty() {
        // SAFETY: `DynTensor::new` allocated a CPU buffer of exactly product(shape) elements of
        // this element type; `Tensor::check` (called on every input) proved that `data` holds
        // exactly that many bytes. Byte copies need no alignment.
        unsafe {
            std::ptr::copy_nonoverlapping(tensor.data.as_ptr(), destination, tensor.data.len());
        }
    }
    Ok(value)
}

/// Copies an ONNX Runtime output into a wasi:nn tensor. Element types wasi:nn cannot name are
/// refused, except booleans, which become `u8` 0/1.
fn from_ort(value: ort::value::DynValueRef<'_>) -> Result<Tensor, String> {
    let (ty, shape) = match value.dtype() {
        ValueType::Tensor { ty, shape, .. } => (*ty, shape.clone()),
        other => {
            return Err(format!(
                "is a {other}, not a tensor; wasi:nn returns only tensors"
            ));
        }
    };
    let element = match ty {
        TensorElementType::Float16 => ElementType::F16,
        TensorElementType::Float32 => ElementType::F32,
        TensorElementType::Float64 => ElementType::F64,
        TensorElementType::Bfloat16 => ElementType::BF16,
        TensorElementType::Uint8 | TensorElementType::Bool => ElementType::U8,
        TensorElementType::Int32 => ElementType::I32,
        TensorElementType::Int64 => ElementType::I64,
        other => {
            return Err(format!(
                "has element type {other:?}, which wasi:nn cannot carry"
            ));
        }
    };
    let dimensions = shape
        .iter()
        .map(|&d| u32::try_from(d).map_err(|_| format!("has dimension {d}, outside u32")))
        .collect::<Result<Vec<u32>, String>>()?;
    let byte_len = Tensor::byte_len(&dimensions, element)
        .ok_or_else(|| "is too large to describe".to_string())?;
    let tensor_ref = value
        .downcast::<ort::value::DynTensorValueType>()
        .map_err(|e| e.to_string())?;
    let source = tensor_ref.data_ptr().cast::<u8>();
    let mut data = vec![0u8; byte_len];
    if byte_len > 0 {
        if source.is_null() {
            return Err("has no CPU buffer".into());
        }
        // SAFETY: ONNX Runtime's output is a CPU tensor of `shape` with elements of `ty`, whose
        // size (1 byte for bool and u8) matches `element`; `byte_len` is exactly its buffer size.
        unsafe { std::ptr::copy_nonoverlapping(source, data.as_mut_ptr(), byte_len) };
    }
    Ok(Tensor {
        dimensions,
        ty: element,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_or_unknown_versions_are_refused() {
        assert!(check_version("1.31.1").is_ok());
        assert!(check_version("1.22.0").is_ok());
        let old = check_version("1.16.3").unwrap_err();
        assert!(old.contains("1.16.3") && old.contains("1.22"), "{old}");
        assert!(check_version("2.0.0").is_err());
        assert!(check_version("garbage").is_err());
    }

    #[test]
    fn a_file_that_is_not_onnxruntime_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libonnxruntime.so");
        std::fs::write(&fake, b"not a shared library").unwrap();
        let error = match OnnxRuntime::load(&fake) {
            Err(error) => error.to_string(),
            Ok(_) => panic!("a text file loaded as ONNX Runtime"),
        };
        assert!(error.contains(&fake.display().to_string()), "{error}");
        assert!(error.contains("scripts/setup.sh"), "{error}");
    }
}

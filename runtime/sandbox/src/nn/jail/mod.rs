//! The inference jail: a package's graphs run in a worker process, never in the host.
//!
//! ONNX Runtime runs a graph with the authority of the process it is in: a graph can make it
//! read files (external data), allocate without bound, loop for ever, or reach a memory bug in
//! one of its kernels. So each sandbox instance that uses graphs gets a worker of its own
//! ([`worker`], the `cordon` binary re-executed), which drops every authority before it takes
//! a graph ([`seccomp`], caps), and which the host kills at the run's deadline. Tensors cross
//! through a shared memory region ([`shm`]); the socket carries their descriptions
//! ([`protocol`]). A crash, kill or limit in the worker is an error of the run; the host and
//! the next run are untouched.

pub mod protocol;
mod seccomp;
pub mod shm;
pub mod worker;

mod process;
mod socket;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use process::{
    check_layers, forward_stderr, library_for_worker, signal_name, spawn_from_lasting_thread,
};
pub use protocol::JailLayers;
use protocol::{Failure, Reply, Request, Slot};
use shm::SharedRegion;
use socket::{receive_until, send_until};

use crate::nn::onnx::LoadedGraph;
use crate::nn::{ErrorCode, Tensor};
use cordon_config::manifest::Device;

/// Tensors in the region start on this boundary, as ONNX Runtime's kernels prefer.
pub const SLOT_ALIGN: u64 = 64;

/// Address space a worker needs besides its graphs' memory and the tensor region: ONNX
/// Runtime's library, the program, malloc's two arenas (measured with ONNX Runtime 1.31.1:
/// about 180 MiB of mappings with the churn graphs loaded, region excluded).
pub const WORKER_BASE_ADDRESS_SPACE: u64 = 512 * 1024 * 1024;

/// Address space per ONNX Runtime pool thread (an 8 MiB stack and its guard, with room).
pub const WORKER_THREAD_ADDRESS_SPACE: u64 = 16 * 1024 * 1024;

/// How long a worker may take to start and seal itself, beyond the run's own deadline.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Most stderr lines of one worker passed on to the host's stderr.
const MAX_WORKER_LOG_LINES: usize = 64;

/// Rounds `at` up to [`SLOT_ALIGN`].
pub fn align(at: u64) -> u64 {
    at.div_ceil(SLOT_ALIGN).saturating_mul(SLOT_ALIGN)
}

/// How a run's workers are made.
#[derive(Debug, Clone)]
pub struct JailConfig {
    /// The `cordon` binary (the worker is `cordon __inference-worker`).
    pub worker_exe: PathBuf,
    /// ONNX Runtime's library, loaded by the worker before it seals itself.
    pub onnxruntime: PathBuf,
    /// What the worker may allocate for its graphs (`limits.inference-memory`).
    pub inference_memory: u64,
    /// The tensor region: the instance's tensor budget (`limits.tensor-bytes`).
    pub region_bytes: u64,
}

/// A worker's end, as the run reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start the inference worker {exe}: {cause}")]
    Start { exe: PathBuf, cause: String },
    #[error("graph `{graph}` could not be loaded in the inference worker: {cause}")]
    Load { graph: String, cause: String },
    #[error(
        "inference-memory limit: a graph needed more than the {limit} bytes the policy allows ONNX Runtime (limits.inference-memory): {message}"
    )]
    Memory { limit: u64, message: String },
    #[error("the run's deadline passed while a graph ran; its worker was stopped")]
    Deadline,
    #[error("the inference worker died ({how}) {during}{stderr}")]
    Died {
        how: String,
        /// What it was doing: `while starting`, `while running graph `x``.
        during: String,
        stderr: String,
    },
    #[error("the inference worker broke the protocol: {0}")]
    Protocol(String),
}

/// How one request to a worker failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerFailure {
    /// Told to the guest as a wasi:nn error; the worker lives on.
    Nn(ErrorCode, String),
    /// The worker is gone or must be: the run ends.
    Fatal(WorkerError),
}

/// One sandbox instance's inference worker.
pub struct InferenceWorker {
    child: Child,
    socket: UnixStream,
    region: SharedRegion,
    config: JailConfig,
    pub layers: JailLayers,
    /// Set once the worker is dead or killed: every later request fails with it.
    dead: Option<WorkerError>,
    /// The last lines the worker wrote to stderr, for the error when it dies.
    last_words: Arc<Mutex<String>>,
}

impl InferenceWorker {
    /// Starts a worker, seals it and loads `graphs` (in order: graph `i` is `graphs[i]`). A run
    /// that uses CUDA first makes one CUDA session of Cordon's own graph, before sealing, so that
    /// CUDA can open its libraries and device files; no provider graph is ever loaded unsealed.
    pub fn start(
        config: &JailConfig,
        graphs: &[Arc<LoadedGraph>],
        deadline: Instant,
    ) -> Result<InferenceWorker, WorkerError> {
        let start_error = |cause: String| WorkerError::Start {
            exe: config.worker_exe.clone(),
            cause,
        };
        let (host_end, worker_end) =
            UnixStream::pair().map_err(|e| start_error(format!("socketpair: {e}")))?;
        let region =
            SharedRegion::create(usize::try_from(config.region_bytes).unwrap_or(usize::MAX))
                .map_err(|e| start_error(format!("tensor region: {e}")))?;
        let socket_fd = worker_end.as_raw_fd();
        let region_fd = region.fd().as_raw_fd();

        let mut command = Command::new(&config.worker_exe);
        command
            .arg("__inference-worker")
            .arg(format!("--socket={socket_fd}"))
            .arg(format!("--region={region_fd}"))
            .arg(format!("--region-bytes={}", region.len()))
            .arg("--onnxruntime")
            .arg(library_for_worker(&config.onnxruntime).map_err(|e| start_error(e.to_string()))?)
            .arg(format!("--parent={}", std::process::id()))
            // Nothing of the host's environment (credentials live there) but what CUDA needs
            // to find its libraries and devices.
            .env_clear()
            .envs(std::env::vars_os().filter(|(name, _)| {
                let name = name.to_string_lossy();
                name == "LD_LIBRARY_PATH"
                    || name.starts_with("CUDA_")
                    || name.starts_with("NVIDIA_")
            }))
            // Few malloc arenas: each reserves 64 MiB of address space under the cap.
            .env("MALLOC_ARENA_MAX", "2")
            // ONNX Runtime 1.31 otherwise keeps a telemetry database and device id under
            // ~/.cache, opened before the filter and kept open after it.
            .env("ORT_DISABLE_TELEMETRY", "1")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec and only makes raw
        // system calls (close_range, fcntl), which are async-signal-safe. It makes the two descriptors survive exec in the child
        // alone; the host's copies keep close-on-exec.
        unsafe {
            command.pre_exec(move || {
                // Any descriptor this process inherited without close-on-exec (a jobserver
                // pipe, a terminal, a socket from a supervisor) must not reach the worker.
                if libc::syscall(
                    libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                ) != 0
                {
                    // Kernels before 5.11 (or a container's filter) lack it: one by one.
                    let mut limit = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    let highest = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                        limit.rlim_cur.min(1 << 20) as i32
                    } else {
                        1024
                    };
                    for fd in 3..highest {
                        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                    }
                }
                for fd in [socket_fd, region_fd] {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child =
            spawn_from_lasting_thread(command).map_err(|e| start_error(e.to_string()))?;
        drop(worker_end);

        let last_words = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let last_words = Arc::clone(&last_words);
            let pid = child.id();
            let _ = std::thread::Builder::new()
                .name("cordon-worker-log".into())
                .spawn(move || forward_stderr(stderr, pid, &last_words));
        }

        let mut worker = InferenceWorker {
            child,
            socket: host_end,
            region,
            config: config.clone(),
            layers: JailLayers::default(),
            dead: None,
            last_words,
        };
        let start_deadline = deadline.min(Instant::now() + START_TIMEOUT);
        let uses_cuda = graphs.iter().any(|g| g.options.device == Device::Gpu);
        if uses_cuda {
            // CUDA opens its libraries and /dev/nvidia* when its first session is made: that is
            // done before sealing, with Cordon's own one-node graph, never a provider's.
            match worker.request(
                &Request::WarmUpCuda,
                None,
                start_deadline,
                "while starting CUDA",
            ) {
                Ok(Reply::Loaded { .. }) => {}
                Ok(_) => {
                    return Err(
                        worker.kill(WorkerError::Protocol("answered WarmUpCuda oddly".into()))
                    );
                }
                Err(WorkerFailure::Fatal(error)) => return Err(error),
                Err(WorkerFailure::Nn(_, cause)) => {
                    return Err(WorkerError::Load {
                        graph: "<CUDA warm-up>".into(),
                        cause,
                    });
                }
            }
        }
        // CUDA reserves tens of GiB of address space for itself: a run that uses it gets no
        // address-space cap (0), and says so.
        let threads: u64 = graphs.iter().map(|g| u64::from(g.options.threads)).sum();
        let address_space = if uses_cuda {
            0
        } else {
            config
                .inference_memory
                .saturating_add(worker.region.len() as u64)
                .saturating_add(WORKER_BASE_ADDRESS_SPACE)
                .saturating_add(threads.saturating_mul(WORKER_THREAD_ADDRESS_SPACE))
        };
        match worker.request(
            &Request::Seal { address_space },
            None,
            start_deadline,
            "while starting",
        ) {
            Ok(Reply::Sealed { layers }) => {
                if let Err(why) = check_layers(worker.pid(), &layers) {
                    return Err(worker.kill(WorkerError::Protocol(why)));
                }
                worker.layers = layers;
            }
            Ok(other) => {
                return Err(WorkerError::Protocol(cordon_config::names::printable(
                    &format!("answered Seal with {other:?}"),
                    512,
                )));
            }
            Err(WorkerFailure::Fatal(error)) => return Err(error),
            Err(WorkerFailure::Nn(_, message)) => {
                return Err(WorkerError::Protocol(format!("refused to seal: {message}")));
            }
        }
        for graph in graphs {
            worker.load_declared(graph, start_deadline)?;
        }
        Ok(worker)
    }

    /// Loads one of the package's graphs at start-up; a graph that does not load fails the run.
    fn load_declared(
        &mut self,
        graph: &LoadedGraph,
        deadline: Instant,
    ) -> Result<u32, WorkerError> {
        self.load_graph(graph, deadline)
            .map_err(|failure| match failure {
                WorkerFailure::Fatal(error) => error,
                WorkerFailure::Nn(_, cause) => WorkerError::Load {
                    graph: cordon_config::names::printable(&graph.name, 256),
                    cause,
                },
            })
    }

    /// The worker's process id (for tests that kill it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Loads one more graph; its index is the number loaded before it.
    pub fn load_graph(
        &mut self,
        graph: &LoadedGraph,
        deadline: Instant,
    ) -> Result<u32, WorkerFailure> {
        let request = Request::Load {
            name: graph.name.clone(),
            device: graph.options.device,
            threads: graph.options.threads,
        };
        let during = format!(
            "while loading graph `{}`",
            cordon_config::names::printable(&graph.name, 256)
        );
        match self.request(&request, Some(&graph.bytes), deadline, &during)? {
            Reply::Loaded { graph } => Ok(graph),
            other => Err(self.protocol_error(format!("answered Load with {other:?}"))),
        }
    }

    /// Runs graph `graph` on `inputs`, written into the region; outputs past `output_budget`
    /// bytes are refused by the worker before they cross.
    pub fn compute(
        &mut self,
        graph: u32,
        graph_name: &str,
        inputs: Vec<(String, Tensor)>,
        deadline: Instant,
        output_budget: u64,
    ) -> Result<Vec<(String, Tensor)>, WorkerFailure> {
        let mut slots = Vec::with_capacity(inputs.len());
        let mut at = 0u64;
        for (name, tensor) in &inputs {
            let len = tensor.data.len() as u64;
            if let Err(why) = self.region.write(at, &tensor.data) {
                return Err(WorkerFailure::Nn(
                    ErrorCode::TooLarge,
                    format!("input `{name}`: {why}"),
                ));
            }
            slots.push(Slot {
                name: name.clone(),
                ty: tensor.ty,
                dimensions: tensor.dimensions.clone(),
                offset: at,
                len,
            });
            at = align(at.saturating_add(len));
        }
        drop(inputs);
        let outputs_at = at;
        let outputs_limit =
            output_budget.min((self.region.len() as u64).saturating_sub(outputs_at));
        let request = Request::Compute {
            graph,
            inputs: slots,
            outputs_at,
            outputs_limit,
        };
        let during = format!(
            "while running graph `{}`",
            cordon_config::names::printable(graph_name, 256)
        );
        let outputs = match self.request(&request, None, deadline, &during)? {
            Reply::Outputs { outputs } => outputs,
            other => return Err(self.protocol_error(format!("answered Compute with {other:?}"))),
        };
        // The worker may be compromised: every slot is checked as a guest's tensor would be.
        let mut tensors = Vec::with_capacity(outputs.len());
        let mut total = 0u64;
        for slot in outputs {
            total = total.saturating_add(slot.len);
            let valid = Tensor::byte_len(&slot.dimensions, slot.ty) == Some(slot.len as usize)
                && slot.dimensions.len() <= crate::nn::MAX_TENSOR_RANK
                && slot.name.len() <= crate::nn::MAX_NAME_BYTES
                && total <= outputs_limit;
            if !valid {
                return Err(self.protocol_error("an output slot does not match its tensor".into()));
            }
            let data = match self.region.read(slot.offset, slot.len) {
                Ok(data) => data,
                Err(why) => return Err(self.protocol_error(why)),
            };
            tensors.push((
                slot.name,
                Tensor {
                    dimensions: slot.dimensions,
                    ty: slot.ty,
                    data,
                },
            ));
        }
        Ok(tensors)
    }

    /// Sends a request (and the graph bytes of a `Load`) and waits for the reply until
    /// `deadline`, when the worker is killed.
    fn request(
        &mut self,
        request: &Request,
        payload: Option<&[u8]>,
        deadline: Instant,
        during: &str,
    ) -> Result<Reply, WorkerFailure> {
        if let Some(dead) = &self.dead {
            return Err(WorkerFailure::Fatal(dead.clone()));
        }
        // The deadline is absolute: a worker that stops reading, or answers one byte at a
        // time, still cannot hold the host past it.
        let sent = send_until(&mut self.socket, request, payload, deadline);
        let reply = sent.and_then(|()| receive_until(&mut self.socket, deadline));
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                return Err(WorkerFailure::Fatal(match error.kind() {
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                        self.kill(WorkerError::Deadline)
                    }
                    std::io::ErrorKind::InvalidData => self.kill(WorkerError::Protocol(
                        cordon_config::names::printable(&error.to_string(), 512),
                    )),
                    _ => self.bury(during),
                }));
            }
        };
        match reply {
            Reply::Failed { failure, message } => {
                // The worker's text is the worker's: escaped and cut where it enters the host.
                let message = cordon_config::names::printable(&message, 2048);
                Err(match failure {
                    Failure::Memory => WorkerFailure::Fatal(self.kill(WorkerError::Memory {
                        limit: self.config.inference_memory,
                        message: cordon_config::names::printable(&message, 1024),
                    })),
                    Failure::InvalidArgument => {
                        WorkerFailure::Nn(ErrorCode::InvalidArgument, message)
                    }
                    Failure::TooLarge => WorkerFailure::Nn(ErrorCode::TooLarge, message),
                    Failure::Runtime => WorkerFailure::Nn(ErrorCode::RuntimeError, message),
                    Failure::Load => WorkerFailure::Nn(ErrorCode::InvalidEncoding, message),
                })
            }
            reply => Ok(reply),
        }
    }

    fn protocol_error(&mut self, why: String) -> WorkerFailure {
        let why = cordon_config::names::printable(&why, 512);
        WorkerFailure::Fatal(self.kill(WorkerError::Protocol(why)))
    }

    /// Kills the worker for `why`, which every later request then reports.
    fn kill(&mut self, why: WorkerError) -> WorkerError {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dead = Some(why.clone());
        why
    }

    /// The worker hung up: says how it ended (waiting briefly for its status, then killing it).
    fn bury(&mut self, during: &str) -> WorkerError {
        let mut status = None;
        for _ in 0..50 {
            if let Ok(Some(exit)) = self.child.try_wait() {
                status = Some(exit);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let how = match status {
            Some(exit) => match exit.signal() {
                Some(signal) => format!("killed by signal {signal}{}", signal_name(signal)),
                None => format!("exit status {}", exit.code().unwrap_or(-1)),
            },
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                "closed its socket, and was killed".into()
            }
        };
        let words = self
            .last_words
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let error = WorkerError::Died {
            how,
            during: during.to_owned(),
            stderr: if words.is_empty() {
                String::new()
            } else {
                format!(": {words}")
            },
        };
        self.dead = Some(error.clone());
        error
    }
}

impl Drop for InferenceWorker {
    fn drop(&mut self) {
        if self.dead.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

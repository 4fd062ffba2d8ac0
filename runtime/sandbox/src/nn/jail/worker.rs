//! The inference worker: the process a graph runs in (`cordon __inference-worker`, started by
//! the host for one sandbox instance).
//!
//! In order, before it reads a single graph byte: it dies with its parent, cannot be traced or
//! dumped, gets its caps (address space, no core files, no file writes), loads ONNX Runtime's
//! library (the last file it opens), maps the tensor region it inherited, and installs its
//! system-call filter. Only then does it take graphs, so everything a graph makes ONNX Runtime
//! do — read external data, allocate, crash — happens behind that wall.

use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use ort::session::{Session, SessionInputValue};

use super::protocol::{self, Failure, JailLayers, Reply, Request, RootStatus, Slot};
use super::seccomp;
use super::shm::SharedRegion;
use crate::nn::onnx::{self, GraphFailure, OnnxRuntime, SessionOptions};
use crate::nn::{ErrorCode, Tensor};

/// What the host tells a worker on its command line.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// The inherited end of the host's socket.
    pub socket_fd: i32,
    /// The inherited tensor region and its length.
    pub region_fd: i32,
    pub region_bytes: u64,
    pub onnxruntime: PathBuf,
    /// The host's process id: the worker exits if its parent is already someone else.
    pub parent: u32,
}

/// Runs the worker until the host hangs up. Errors end the process (exit 2); the host reads
/// that as the worker's death.
pub fn run(args: WorkerArgs) -> Result<(), String> {
    // SAFETY: these fds were inherited for this process alone, and are used only here.
    let mut socket = unsafe { UnixStream::from_raw_fd(args.socket_fd) };
    // SAFETY: as above.
    let region_fd = unsafe { OwnedFd::from_raw_fd(args.region_fd) };

    confine_process(args.parent)?;
    set_limit(libc::RLIMIT_CORE, 0)?;
    // A memory fault in a kernel ends the worker at once, by its signal, which the host names.
    // (Rust's runtime installs handlers for these to report stack overflows; here that would
    // only delay the end, and a SIGSEGV sent rather than faulted would be swallowed.)
    // SAFETY: restoring the default disposition installs no handler code.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
    let onnxruntime = OnnxRuntime::load(&args.onnxruntime).map_err(|e| e.to_string())?;
    onnxruntime.prepare().map_err(|e| e.to_string())?;
    let region_len = usize::try_from(args.region_bytes).map_err(|e| e.to_string())?;
    let mut region = SharedRegion::map(region_fd, region_len)
        .map_err(|e| format!("cannot map the region: {e}"))?;

    let mut sealed = false;
    // Kept for the worker's life: the CUDA context and libraries stay loaded with it.
    let mut warm_up: Vec<Session> = Vec::new();
    let mut sessions: Vec<(String, Session)> = Vec::new();
    loop {
        protocol::spin_until_readable(&socket, protocol::SPIN_BEFORE_SLEEP);
        let request = match protocol::receive::<Request>(&mut socket) {
            Ok(request) => request,
            // The host is done with this worker.
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(error) => return Err(format!("cannot read the host's request: {error}")),
        };
        let reply = match request {
            Request::Seal { address_space } => {
                // The cap applies to every later mapping: graphs, their sessions, and what they
                // allocate. Zero means none (CUDA reserves tens of GiB of address space).
                if address_space > 0 {
                    set_limit(libc::RLIMIT_AS, address_space)?;
                }
                // No file grows from here on, not even one ONNX Runtime opened at start-up: a
                // write past the end fails (EFBIG) instead of raising SIGXFSZ.
                // SAFETY: ignoring a signal installs no handler code.
                unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
                set_limit(libc::RLIMIT_FSIZE, 0)?;
                let root = drop_root(args.parent)?;
                seccomp::install(std::process::id())?;
                sealed = true;
                Reply::Sealed {
                    layers: JailLayers {
                        seccomp: true,
                        address_space_limit: address_space,
                        landlock: false,
                        root,
                    },
                }
            }
            Request::WarmUpCuda if !sealed => {
                let options = SessionOptions {
                    device: cordon_config::manifest::Device::Gpu,
                    threads: 1,
                };
                match onnxruntime.session("<CUDA warm-up>", &cuda_warm_up_graph(), options) {
                    Ok(mut session) => {
                        // Run once too: some of CUDA's libraries load at the first run.
                        let input = Tensor {
                            dimensions: vec![1],
                            ty: crate::nn::ElementType::F32,
                            data: 1f32.to_le_bytes().to_vec(),
                        };
                        let ran = onnx::to_ort(&session, &input).and_then(|x| {
                            let inputs = vec![("x".to_string(), SessionInputValue::from(x))];
                            onnx::run(&mut session, "<CUDA warm-up>", inputs, None, 64)
                                .map(|_| ())
                                .map_err(|e| format!("{e:?}"))
                        });
                        match ran {
                            Ok(()) => {
                                warm_up.push(session);
                                Reply::Loaded { graph: u32::MAX }
                            }
                            Err(why) => failed(Failure::Load, &why),
                        }
                    }
                    Err(error) => failed(Failure::Load, &error.to_string()),
                }
            }
            Request::WarmUpCuda => return Err("asked to start CUDA after sealing".into()),
            Request::Load { .. } | Request::Compute { .. } if !sealed => {
                return Err("asked to compute before the jail was sealed".into());
            }
            Request::Load {
                name,
                device,
                threads,
            } => {
                let bytes = protocol::read_frame(&mut socket, protocol::MAX_GRAPH_FRAME_BYTES)
                    .map_err(|e| format!("cannot read graph `{name}`: {e}"))?;
                match onnxruntime.session(&name, &bytes, SessionOptions { device, threads }) {
                    Ok(session) => {
                        sessions.push((name, session));
                        Reply::Loaded {
                            graph: (sessions.len() - 1) as u32,
                        }
                    }
                    Err(error) => failed(Failure::Load, &error.to_string()),
                }
            }
            Request::Compute {
                graph,
                inputs,
                outputs_at,
                outputs_limit,
            } => match sessions.get_mut(graph as usize) {
                Some((name, session)) => compute(
                    session,
                    name,
                    &mut region,
                    inputs,
                    outputs_at,
                    outputs_limit,
                ),
                None => failed(Failure::InvalidArgument, "no such graph"),
            },
        };
        protocol::send(&mut socket, &reply).map_err(|e| e.to_string())?;
        socket.flush().map_err(|e| e.to_string())?;
    }
}

fn failed(failure: Failure, message: &str) -> Reply {
    // ONNX Runtime reports a failed allocation under the address-space cap as an error status
    // (std::bad_alloc, or its arena's own message); name it for what it is.
    let failure = if failure != Failure::InvalidArgument && is_allocation_failure(message) {
        Failure::Memory
    } else {
        failure
    };
    Reply::Failed {
        failure,
        message: cordon_config::names::printable(message, 2048),
    }
}

fn is_allocation_failure(message: &str) -> bool {
    [
        "bad_alloc",
        "Failed to allocate",
        "failed to allocate",
        "Out of memory",
        "out of memory",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// One inference: inputs read in place from the region, outputs written after them.
fn compute(
    session: &mut Session,
    graph: &str,
    region: &mut SharedRegion,
    inputs: Vec<Slot>,
    outputs_at: u64,
    outputs_limit: u64,
) -> Reply {
    // The host is trusted here, but a slot that does not fit is still refused, not followed.
    let mut values: Vec<(String, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
    for slot in inputs {
        if let Err(GraphFailure::Nn(_, message)) =
            onnx::check_input_name(session, graph, &slot.name)
        {
            return failed(Failure::InvalidArgument, &message);
        }
        let fits = Tensor::byte_len(&slot.dimensions, slot.ty) == Some(slot.len as usize)
            && region.contains(slot.offset, slot.len);
        let Some(data) = region.ptr_at(slot.offset).filter(|_| fits) else {
            return failed(
                Failure::InvalidArgument,
                "an input slot does not fit the region",
            );
        };
        // SAFETY: the slot's bytes lie inside the mapping (checked above), which outlives
        // `values`; the host does not touch the region while a request is in flight.
        let view = match unsafe { onnx::tensor_view(data, slot.ty, &slot.dimensions) } {
            Ok(view) => view,
            Err(why) => {
                return failed(
                    Failure::InvalidArgument,
                    &format!("input `{}`: {why}", slot.name),
                );
            }
        };
        let value = match view {
            Some(view) => view,
            None => {
                // Half-precision types have no borrowed form here: copy once.
                let tensor = match region.read(slot.offset, slot.len) {
                    Ok(data) => Tensor {
                        dimensions: slot.dimensions.clone(),
                        ty: slot.ty,
                        data,
                    },
                    Err(why) => return failed(Failure::InvalidArgument, &why),
                };
                match onnx::to_ort(session, &tensor) {
                    Ok(value) => SessionInputValue::from(value),
                    Err(why) => {
                        return failed(
                            Failure::InvalidArgument,
                            &format!("input `{}`: {why}", slot.name),
                        );
                    }
                }
            }
        };
        values.push((slot.name, value));
    }
    // The host enforces the deadline by killing this process; here a graph runs until done.
    let outputs = match onnx::run(session, graph, values, None, outputs_limit) {
        Ok(outputs) => outputs,
        Err(GraphFailure::Nn(ErrorCode::TooLarge, message)) => {
            return failed(Failure::TooLarge, &message);
        }
        Err(GraphFailure::Nn(ErrorCode::InvalidArgument, message)) => {
            return failed(Failure::InvalidArgument, &message);
        }
        Err(GraphFailure::Nn(_, message)) => return failed(Failure::Runtime, &message),
        Err(GraphFailure::WallTime) => return failed(Failure::Runtime, "stopped"),
    };
    let mut slots = Vec::with_capacity(outputs.len());
    let mut at = outputs_at;
    for (name, tensor) in outputs {
        let len = tensor.data.len() as u64;
        if let Err(why) = region.write(at, &tensor.data) {
            return failed(Failure::TooLarge, &format!("output `{name}`: {why}"));
        }
        slots.push(Slot {
            name,
            ty: tensor.ty,
            dimensions: tensor.dimensions,
            offset: at,
            len,
        });
        at = super::align(at.saturating_add(len));
    }
    Reply::Outputs { outputs: slots }
}

/// Dies with the host, and cannot be traced or read through /proc by anyone of the same user.
fn confine_process(parent: u32) -> Result<(), String> {
    // SAFETY: plain prctl calls with constant arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return Err(format!("PR_SET_PDEATHSIG: {}", io::Error::last_os_error()));
        }
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            return Err(format!("PR_SET_DUMPABLE: {}", io::Error::last_os_error()));
        }
    }
    // The parent may have died before PR_SET_PDEATHSIG took effect.
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } as u32 != parent {
        return Err("the host is gone".into());
    }
    Ok(())
}

/// Cordon's own graph for starting CUDA before the worker seals itself: one `Identity` node
/// from a float [1] `x` to `y`, encoded here so that no provider byte is involved.
pub fn cuda_warm_up_graph() -> Vec<u8> {
    fn varint(mut value: u64, out: &mut Vec<u8>) {
        while value >= 0x80 {
            out.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }
    fn number(field: u64, value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(field << 3, &mut out);
        varint(value, &mut out);
        out
    }
    fn bytes(field: u64, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(field << 3 | 2, &mut out);
        varint(content.len() as u64, &mut out);
        out.extend_from_slice(content);
        out
    }
    let float_vector = |name: &str| {
        let shape = bytes(1, &number(1, 1)); // TensorShapeProto.dim { dim_value: 1 }
        let tensor = [number(1, 1), bytes(2, &shape)].concat(); // elem_type FLOAT, shape
        [bytes(1, name.as_bytes()), bytes(2, &bytes(1, &tensor))].concat()
    };
    let node = [bytes(1, b"x"), bytes(2, b"y"), bytes(4, b"Identity")].concat();
    let graph = [
        bytes(1, &node),
        bytes(2, b"cordon-cuda-warm-up"),
        bytes(11, &float_vector("x")),
        bytes(12, &float_vector("y")),
    ]
    .concat();
    [number(1, 8), bytes(7, &graph), bytes(8, &number(2, 17))].concat()
}

/// A worker started by root becomes `nobody` (uid and gid 65534, no supplementary groups), so
/// that it holds no capability and the kernel's same-user checks no longer match the host.
/// Everything the worker needs is open already. Where that cannot be done (a user namespace
/// that maps no `nobody`), the worker stays root behind its filter, and says so.
fn drop_root(parent: u32) -> Result<RootStatus, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(RootStatus::NotRoot);
    }
    const NOBODY: libc::uid_t = 65534;
    // SAFETY: plain system calls with constant arguments; the order (groups, gid, uid) is the
    // one that leaves no privilege behind. Supplementary groups may be locked in a user
    // namespace; the uid change is what matters.
    let dropped = unsafe {
        let _ = libc::setgroups(0, std::ptr::null());
        libc::setresgid(NOBODY, NOBODY, NOBODY) == 0 && libc::setresuid(NOBODY, NOBODY, NOBODY) == 0
    };
    let status = if dropped {
        RootStatus::Dropped
    } else {
        // Still root: at least without any capability (it could otherwise raise its own limits
        // back, or schedule itself in real time).
        let why = io::Error::last_os_error().to_string();
        drop_capabilities()?;
        RootStatus::Kept(why)
    };
    // Changing credentials (even the gid alone) clears the parent-death signal and
    // dumpability: set both again, on every path.
    confine_process(parent)?;
    Ok(status)
}

/// Empties every capability set and the bounding set; fails if the kernel refuses.
fn drop_capabilities() -> Result<(), String> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let none = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: PR_CAPBSET_DROP with each capability number (unknown ones fail harmlessly), then
    // capset with a version-3 header and its two data words.
    unsafe {
        for capability in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0);
        }
        if libc::syscall(libc::SYS_capset, &header, none.as_ptr()) != 0 {
            return Err(format!(
                "cannot drop root's capabilities: {}",
                io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

fn set_limit(resource: libc::__rlimit_resource_t, bytes: u64) -> Result<(), String> {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: a valid resource and a pointer to a live rlimit.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(format!(
            "setrlimit({resource}): {}",
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

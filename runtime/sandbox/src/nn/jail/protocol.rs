//! What the host and its inference worker say to each other over their socket: one frame per
//! message, a little-endian `u32` length and that many bytes of JSON. Graph bytes follow a
//! `Load` request as a second, raw frame. Tensor data never crosses the socket: slots name
//! where it lies in the shared region.
//!
//! Either side may be lied to: the worker may be compromised by a graph, and the host checks
//! every reply (frame size, slot ranges, lengths against dimensions) as it checks a guest.

use std::io::{self, Read, Write};

use crate::nn::ElementType;
use cordon_config::manifest::Device;

/// Largest JSON frame either side accepts: descriptions only, never data.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Largest graph the worker accepts in one `Load` (the package's own bound is lower).
pub const MAX_GRAPH_FRAME_BYTES: usize = 2 * 1024 * 1024 * 1024;

/// A tensor's place in the shared region.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Slot {
    pub name: String,
    pub ty: ElementType,
    pub dimensions: Vec<u32>,
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Request {
    /// Put the jail in place: the address-space cap, no file growth, the system-call filter.
    /// Every graph of the package is loaded after it.
    Seal { address_space: u64 },
    /// Before `Seal`, on a run that uses CUDA: make one CUDA session of Cordon's built-in
    /// one-node graph, so that CUDA loads its libraries and opens its devices while it still
    /// may. Answered with `Loaded`.
    WarmUpCuda,
    /// Create a session for the graph whose bytes follow in the next frame.
    Load {
        name: String,
        device: Device,
        threads: u32,
    },
    /// Run graph `graph` (the order of `Load`s) on `inputs`; write outputs from
    /// `outputs_at`, using at most `outputs_limit` bytes.
    Compute {
        graph: u32,
        inputs: Vec<Slot>,
        outputs_at: u64,
        outputs_limit: u64,
    },
}

/// Which jail layers are in force in the worker, as it reports them after installing them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JailLayers {
    /// The system-call filter: no file opens, sockets, exec, or signals to other processes.
    pub seccomp: bool,
    /// The address-space cap (RLIMIT_AS), in bytes.
    pub address_space_limit: u64,
    /// Landlock: not used (the filter already denies every open); reported for completeness.
    pub landlock: bool,
    /// What became of root, when the worker was started as root.
    pub root: RootStatus,
}

/// Root in the worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RootStatus {
    /// Started as another user.
    #[default]
    NotRoot,
    /// Started as root, became `nobody` before sealing.
    Dropped,
    /// Started as root and could not change user (the reason): root behind the filter.
    Kept(String),
}

impl std::fmt::Display for JailLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let address_space = match self.address_space_limit {
            0 => "uncapped (CUDA)".to_string(),
            bytes => format!("{} MiB", bytes / (1024 * 1024)),
        };
        write!(
            f,
            "seccomp {}, address space {address_space}, landlock {}{}",
            if self.seccomp { "on" } else { "off" },
            if self.landlock { "on" } else { "off" },
            match &self.root {
                RootStatus::NotRoot => String::new(),
                RootStatus::Dropped => ", root dropped to nobody".into(),
                RootStatus::Kept(why) => format!(
                    ", still root (cannot become nobody: {})",
                    cordon_config::names::printable(why, 120)
                ),
            },
        )
    }
}

/// Why a request failed in the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Failure {
    /// ONNX Runtime refused the inputs (wrong name, type or shape).
    InvalidArgument,
    /// ONNX Runtime failed while running the graph.
    Runtime,
    /// An allocation failed under the worker's memory cap.
    Memory,
    /// The outputs do not fit the bytes the host allows.
    TooLarge,
    /// A graph could not be loaded.
    Load,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Reply {
    /// The answer to `Seal`: the jail is in place.
    Sealed {
        layers: JailLayers,
    },
    Loaded {
        graph: u32,
    },
    Outputs {
        outputs: Vec<Slot>,
    },
    Failed {
        failure: Failure,
        message: String,
    },
}

/// How long a side waiting for the other polls its socket before it sleeps in `read`: a
/// sleeping process takes tens of microseconds to wake on a virtualised machine, twice per
/// inference, while the other side's answer often comes sooner than that.
pub const SPIN_BEFORE_SLEEP: std::time::Duration = std::time::Duration::from_micros(300);

/// Polls `socket` (without blocking) until it has bytes to read, for at most `spin`; then the
/// caller's blocking read finds them at once, or sleeps as before.
pub fn spin_until_readable(socket: &impl std::os::fd::AsRawFd, spin: std::time::Duration) {
    let started = std::time::Instant::now();
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    while started.elapsed() < spin {
        // SAFETY: one valid pollfd, a zero timeout.
        if unsafe { libc::poll(&mut poll, 1, 0) } != 0 {
            return;
        }
        std::hint::spin_loop();
    }
}

/// Writes one frame.
pub fn write_frame(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)?;
    out.flush()
}

/// Reads one frame of at most `max` bytes.
pub fn read_frame(input: &mut impl Read, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len}-byte frame is over the {max}-byte limit"),
        ));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Writes a message as a JSON frame.
pub fn send<T: serde::Serialize>(out: &mut impl Write, message: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    write_frame(out, &bytes)
}

/// Reads a JSON frame as a message.
pub fn receive<T: serde::de::DeserializeOwned>(input: &mut impl Read) -> io::Result<T> {
    let bytes = read_frame(input, MAX_MESSAGE_BYTES)?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_frames_are_refused() {
        let mut wire = Vec::new();
        let request = Request::Compute {
            graph: 1,
            inputs: vec![Slot {
                name: "features".into(),
                ty: ElementType::F32,
                dimensions: vec![2, 3],
                offset: 0,
                len: 24,
            }],
            outputs_at: 64,
            outputs_limit: 100,
        };
        send(&mut wire, &request).unwrap();
        let back: Request = receive(&mut wire.as_slice()).unwrap();
        assert!(matches!(back, Request::Compute { graph: 1, .. }));

        let mut huge = Vec::new();
        huge.extend_from_slice(&(MAX_MESSAGE_BYTES as u32 + 1).to_le_bytes());
        let error = receive::<Reply>(&mut huge.as_slice()).unwrap_err();
        assert!(error.to_string().contains("over the"), "{error}");
    }
}

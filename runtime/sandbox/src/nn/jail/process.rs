//! The worker process seen from the host: starting it, checking its jail against what the
//! kernel shows, naming the signal that killed it, and passing on what it writes to stderr.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Mutex, PoisonError};

use super::MAX_WORKER_LOG_LINES;
use super::protocol::{self, JailLayers};

/// Checks what the worker says of its jail against what the kernel shows in
/// /proc/<pid>/status (a compromised worker's word is not taken for it): the seccomp filter in
/// force (`Seccomp: 2`), and, where it says it dropped root, every uid `nobody`.
pub(super) fn check_layers(pid: u32, layers: &JailLayers) -> Result<(), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read the worker's status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    if !layers.seccomp || field("Seccomp:") != ["2"] {
        return Err("said it sealed itself, but the kernel shows no seccomp filter".into());
    }
    if layers.root == protocol::RootStatus::Dropped && field("Uid:") != ["65534"; 4] {
        return Err("said it dropped root, but the kernel shows another user".into());
    }
    Ok(())
}

/// The library path as the worker must be given it: the worker runs in `/`, so a relative
/// path is made absolute; a bare name (`libonnxruntime.so`) stays a name, for the dynamic
/// loader's search path (`LD_LIBRARY_PATH` is passed on).
pub(super) fn library_for_worker(library: &std::path::Path) -> std::io::Result<PathBuf> {
    if library.components().count() > 1 || library.is_absolute() {
        std::path::absolute(library)
    } else {
        Ok(library.to_owned())
    }
}

/// Starts `command` from one thread that lives as long as the process. The worker asks the
/// kernel to kill it when its parent goes (PR_SET_PDEATHSIG), and "parent" there means the
/// thread that forked it: a worker forked by a short-lived thread (instances start side by
/// side) would be killed as soon as that thread ended.
pub(super) fn spawn_from_lasting_thread(command: Command) -> std::io::Result<Child> {
    type Job = (Command, std::sync::mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, inbox) = std::sync::mpsc::channel::<Job>();
        let _ = std::thread::Builder::new()
            .name("cordon-worker-spawner".into())
            .spawn(move || {
                for (mut command, reply) in inbox {
                    let _ = reply.send(command.spawn());
                }
            });
        Mutex::new(jobs)
    });
    let (reply, answer) = std::sync::mpsc::channel();
    let sent = spawner
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .send((command, reply));
    match sent {
        Ok(()) => answer
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the worker spawner is gone"))),
        // The spawner thread could not start: forking from this thread would give a worker that
        // dies when the thread ends, so none is started.
        Err(_) => Err(std::io::Error::other(
            "the thread that starts inference workers could not be started",
        )),
    }
}

pub(super) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGILL => " (SIGILL)",
        libc::SIGFPE => " (SIGFPE)",
        libc::SIGSYS => " (SIGSYS)",
        _ => "",
    }
}

/// Passes the worker's stderr (ONNX Runtime's log lines, a panic message) to the host's,
/// escaped and bounded, and keeps the last line for the error if the worker dies.
pub(super) fn forward_stderr(
    stderr: std::process::ChildStderr,
    pid: u32,
    last_words: &Mutex<String>,
) {
    let mut lines = 0usize;
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Lines are cut at 4 KiB so a worker cannot make the host buffer without bound.
        match (&mut reader).take(4096).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = cordon_config::names::printable(String::from_utf8_lossy(&line).trim_end(), 512);
        if lines < MAX_WORKER_LOG_LINES {
            // Not eprintln!: a closed stderr must not panic this thread.
            let _ = writeln!(std::io::stderr(), "inference worker {pid}: {text}");
        }
        lines += 1;
        *last_words.lock().unwrap_or_else(PoisonError::into_inner) = text;
    }
}

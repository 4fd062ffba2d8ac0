//! Running a command to completion and reading its peak resident set size from the kernel.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};

/// What a finished command printed, how it ended, and its peak RSS in bytes.
pub struct Measured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub peak_rss_bytes: u64,
}

/// Runs `command` to completion, capturing its output, and reads its peak RSS from `wait4`
/// (the kernel's own high-water mark for that one process, unaffected by other children).
pub fn run_measured(command: &mut Command) -> std::io::Result<Measured> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| std::io::Error::other("no stderr"))?;
    // Drain both pipes while the child runs, so that it never blocks on a full one.
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });
    let mut out = String::new();
    stdout.read_to_string(&mut out)?;
    let err = err_reader
        .join()
        .map_err(|_| std::io::Error::other("the stderr reader panicked"))??;

    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `status` and `usage` are valid for writes and the pid is our own child, not yet
    // waited for (`Child` never waits on drop).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Measured {
        status: ExitStatus::from_raw(status),
        stdout: out,
        stderr: err,
        // Linux reports ru_maxrss in KiB.
        peak_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    })
}

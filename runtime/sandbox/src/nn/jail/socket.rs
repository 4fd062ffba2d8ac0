//! The host's side of the worker's socket: length-prefixed frames written and read by a
//! deadline, so that a worker that stops reading or answering cannot hold the run past it.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::protocol::{self, Reply, Request};

/// Sends a request, and the raw frame after it if any, by `deadline`.
pub(super) fn send_until(
    socket: &mut UnixStream,
    request: &Request,
    payload: Option<&[u8]>,
    deadline: Instant,
) -> std::io::Result<()> {
    let message = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    for frame in std::iter::once(message.as_slice()).chain(payload) {
        let len = u32::try_from(frame.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame over 4 GiB")
        })?;
        write_all_until(socket, &len.to_le_bytes(), deadline)?;
        write_all_until(socket, frame, deadline)?;
    }
    Ok(())
}

/// Reads one reply by `deadline`.
pub(super) fn receive_until(socket: &mut UnixStream, deadline: Instant) -> std::io::Result<Reply> {
    protocol::spin_until_readable(socket, protocol::SPIN_BEFORE_SLEEP);
    let mut len = [0u8; 4];
    read_exact_until(socket, &mut len, deadline)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > protocol::MAX_MESSAGE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "a {len}-byte reply is over the {}-byte limit",
                protocol::MAX_MESSAGE_BYTES
            ),
        ));
    }
    let mut bytes = vec![0u8; len];
    read_exact_until(socket, &mut bytes, deadline)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn time_left(deadline: Instant) -> std::io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(std::io::ErrorKind::TimedOut.into())
    } else {
        Ok(left)
    }
}

fn read_exact_until(
    socket: &mut UnixStream,
    buf: &mut [u8],
    deadline: Instant,
) -> std::io::Result<()> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        socket.set_read_timeout(Some(time_left(deadline)?))?;
        match socket.read(rest) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_all_until(socket: &mut UnixStream, buf: &[u8], deadline: Instant) -> std::io::Result<()> {
    let mut written = 0;
    while let Some(rest) = buf.get(written..).filter(|rest| !rest.is_empty()) {
        socket.set_write_timeout(Some(time_left(deadline)?))?;
        match socket.write(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

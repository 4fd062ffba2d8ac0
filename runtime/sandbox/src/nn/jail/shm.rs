//! The tensor exchange region: one anonymous memory file (memfd) mapped by the host and by its
//! inference worker, so that a tensor crosses the process boundary without passing through the
//! socket. The host writes inputs, the worker writes outputs after them; the socket carries only
//! their descriptions.
//!
//! The other side is not trusted: every read or write goes through [`SharedRegion::read`] and
//! [`SharedRegion::write`], which check the range against the region's length and copy through
//! raw pointers (the worker may change the bytes at any time, so no Rust reference to them is
//! ever formed on the host).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A shared mapping of a memfd.
pub struct SharedRegion {
    fd: OwnedFd,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the region is plain bytes; every access goes through bounds-checked copies, and the
// owner (`InferenceWorker`, the worker's loop) uses it from one thread at a time.
unsafe impl Send for SharedRegion {}

impl SharedRegion {
    /// Creates a region of `len` bytes (at least one page). Pages are allocated only when
    /// touched, so a large region costs address space, not memory.
    pub fn create(len: usize) -> io::Result<SharedRegion> {
        let len = len.max(4096);
        // SAFETY: a NUL-terminated name and valid flags; the kernel returns a new fd or -1.
        let raw = unsafe {
            libc::memfd_create(
                c"cordon-tensors".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let size = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "region too large"))?;
        // SAFETY: `fd` is a memfd we own.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Sealed at its size before the worker sees it: a worker that could shrink the file would
        // make the host's next access to the mapping a SIGBUS.
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: F_ADD_SEALS on a memfd created with MFD_ALLOW_SEALING.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(io::Error::last_os_error());
        }
        SharedRegion::map(fd, len)
    }

    /// Maps an existing region (the worker's side, with the fd it inherited).
    pub fn map(fd: OwnedFd, len: usize) -> io::Result<SharedRegion> {
        // SAFETY: mapping `len` bytes of a file we hold open, shared, read-write; the result is
        // checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedRegion {
            fd,
            ptr: ptr.cast(),
            len,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Whether `offset..offset + len` lies inside the region.
    pub fn contains(&self, offset: u64, len: u64) -> bool {
        offset
            .checked_add(len)
            .is_some_and(|end| end <= self.len as u64)
    }

    /// Copies `bytes` to `offset`.
    pub fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), String> {
        if !self.contains(offset, bytes.len() as u64) {
            return Err(format!(
                "{} bytes at {offset} do not fit the {}-byte tensor region",
                bytes.len(),
                self.len
            ));
        }
        // SAFETY: the range was checked to lie inside the mapping; byte copies need no
        // alignment, and `bytes` is host memory that cannot overlap the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.ptr.add(offset as usize),
                bytes.len(),
            )
        };
        Ok(())
    }

    /// Copies `len` bytes from `offset` into a new vector.
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        if !self.contains(offset, len) {
            return Err(format!(
                "{len} bytes at {offset} lie outside the {}-byte tensor region",
                self.len
            ));
        }
        let mut out = vec![0u8; len as usize];
        // SAFETY: as in `write`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.add(offset as usize),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Ok(out)
    }

    /// A raw pointer to `offset`, for the worker to hand ONNX Runtime a tensor over the region
    /// without a copy. The caller checks the range with [`SharedRegion::contains`] first.
    pub fn ptr_at(&self, offset: u64) -> Option<*mut u8> {
        // SAFETY: only computed for an offset inside the mapping.
        self.contains(offset, 0)
            .then(|| unsafe { self.ptr.add(offset as usize) })
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_are_bounds_checked() {
        let mut region = SharedRegion::create(100).unwrap();
        assert_eq!(region.len(), 4096, "at least a page");
        region.write(10, b"tensor").unwrap();
        assert_eq!(region.read(10, 6).unwrap(), b"tensor");
        assert!(region.write(4094, b"abc").is_err());
        assert!(region.read(u64::MAX, 2).is_err(), "offset overflow");
        assert!(region.read(4096, 1).is_err());
        assert!(region.read(4096, 0).is_ok());
        // Sealed: its size cannot change, from this side or the worker's.
        // SAFETY: ftruncate on a descriptor this test owns.
        assert_ne!(unsafe { libc::ftruncate(region.fd().as_raw_fd(), 0) }, 0);
    }
}

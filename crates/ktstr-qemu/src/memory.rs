//! Read-only host view of guest RAM through the shared memory-backend file.
//!
//! Invariant: microvm maps the backend flat at guest physical 0 (RAM is capped below the
//! 3 GiB hole by [`crate::config::MAX_MEMORY_MIB`]), so file offset == guest physical address.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

struct Mapping {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this struct; reads are volatile copies.
unsafe impl Send for Mapping {}
// SAFETY: as above; no interior mutability on the host side.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped exactly once.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// Cloneable, read-only view of guest physical memory. Stays valid after the VM ends
/// (the mapping outlives the file).
#[derive(Clone)]
pub struct GuestMemoryView {
    map: Arc<Mapping>,
}

impl std::fmt::Debug for GuestMemoryView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestMemoryView")
            .field("size", &self.map.len)
            .finish()
    }
}

impl GuestMemoryView {
    pub(crate) fn open(path: &Path, len: usize) -> Result<Self> {
        let file = File::open(path)
            .map_err(|e| Error::io(format!("open guest memory {}", path.display()), e))?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("stat guest memory", e))?
            .len();
        if file_len < len as u64 || len == 0 {
            return Err(Error::InvalidConfig(format!(
                "guest memory file is {file_len} bytes, expected {len}"
            )));
        }
        use std::os::fd::AsRawFd;
        // SAFETY: fresh read-only shared mapping of a file we hold open; result checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::io(
                "mmap guest memory",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(GuestMemoryView {
            map: Arc::new(Mapping {
                ptr: ptr as *const u8,
                len,
            }),
        })
    }

    /// Guest RAM size in bytes.
    pub fn size(&self) -> u64 {
        self.map.len as u64
    }

    /// Copies `buf.len()` bytes from guest physical `addr`. The guest may be writing
    /// concurrently, so the copy is volatile and not atomic as a whole.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let oob = || Error::OutOfBounds {
            addr,
            len: buf.len(),
            size: self.size(),
        };
        let start = usize::try_from(addr).map_err(|_| oob())?;
        let end = start.checked_add(buf.len()).ok_or_else(oob)?;
        if end > self.map.len {
            return Err(oob());
        }
        // Bytes until 8-aligned, then u64 words (fast in debug builds too), then the tail.
        let mut i = 0;
        let head = start.next_multiple_of(8).min(end) - start;
        while i < head {
            // SAFETY: start+i < end <= len, inside the live read-only mapping.
            buf[i] = unsafe { std::ptr::read_volatile(self.map.ptr.add(start + i)) };
            i += 1;
        }
        while i + 8 <= buf.len() {
            // SAFETY: start+i is 8-aligned (mmap is page-aligned) and start+i+8 <= end <= len.
            let w = unsafe { std::ptr::read_volatile(self.map.ptr.add(start + i) as *const u64) };
            buf[i..i + 8].copy_from_slice(&w.to_ne_bytes());
            i += 8;
        }
        while i < buf.len() {
            // SAFETY: start+i < end <= len, inside the live read-only mapping.
            buf[i] = unsafe { std::ptr::read_volatile(self.map.ptr.add(start + i)) };
            i += 1;
        }
        Ok(())
    }

    /// First guest physical address where `needle` occurs, scanning in 1 MiB chunks.
    pub fn find(&self, needle: &[u8]) -> Result<Option<u64>> {
        if needle.is_empty() {
            return Ok(Some(0));
        }
        const CHUNK: usize = 1 << 20;
        let overlap = needle.len() - 1;
        let mut buf = vec![0u8; CHUNK + overlap];
        let mut addr = 0usize;
        while addr < self.map.len {
            let n = (CHUNK + overlap).min(self.map.len - addr);
            self.read(addr as u64, &mut buf[..n])?;
            if let Some(pos) = memmem(&buf[..n], needle) {
                return Ok(Some((addr + pos) as u64));
            }
            addr += CHUNK;
        }
        Ok(None)
    }
}

/// glibc's memmem: fast even in unoptimised builds, unlike a `windows()` scan.
fn memmem(hay: &[u8], needle: &[u8]) -> Option<usize> {
    // SAFETY: both pointers/lengths come from live slices; memmem only reads them.
    let p = unsafe {
        libc::memmem(
            hay.as_ptr().cast(),
            hay.len(),
            needle.as_ptr().cast(),
            needle.len(),
        )
    };
    (!p.is_null()).then(|| p as usize - hay.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bounds_and_find() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let mut data = vec![0u8; 3 << 20];
        let at = (1 << 20) - 3; // straddles a chunk boundary
        data[at..at + 6].copy_from_slice(b"MARKER");
        f.write_all(&data).unwrap();
        let v = GuestMemoryView::open(f.path(), data.len()).unwrap();
        assert_eq!(v.size(), 3 << 20);
        let mut b = [0u8; 6];
        v.read(at as u64, &mut b).unwrap();
        assert_eq!(&b, b"MARKER");
        assert_eq!(v.find(b"MARKER").unwrap(), Some(at as u64));
        assert_eq!(v.find(b"ABSENT").unwrap(), None);
        assert!(matches!(
            v.read(v.size() - 2, &mut b),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            v.read(u64::MAX, &mut b),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(v.read(v.size(), &mut []).is_ok());
    }
}

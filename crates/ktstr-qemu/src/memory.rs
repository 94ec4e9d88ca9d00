//! Guest RAM with no file on disk, and the host's read-only view of it.
//!
//! Each RAM segment is a memfd the host creates and QEMU inherits by fd number: it has no
//! name in any file system, so nothing outlives the last process holding it, even after
//! SIGKILL. Invariant: RAM is flat from guest physical 0 (capped below the PCI hole by the
//! machine's memory limit), and with NUMA the per-node segments follow one another in
//! node order, so a guest physical address is an offset into their concatenation.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
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

impl Mapping {
    /// Volatile copy of `buf.len()` bytes at `offset`; the caller keeps it in bounds.
    fn read(&self, offset: usize, buf: &mut [u8]) {
        debug_assert!(offset + buf.len() <= self.len);
        // Bytes until 8-aligned, then u64 words (fast in debug builds too), then the tail.
        let mut i = 0;
        let head = (offset.next_multiple_of(8) - offset).min(buf.len());
        while i < head {
            // SAFETY: offset+i < offset+buf.len() <= len, inside the live read-only mapping.
            buf[i] = unsafe { std::ptr::read_volatile(self.ptr.add(offset + i)) };
            i += 1;
        }
        while i + 8 <= buf.len() {
            // SAFETY: offset+i is 8-aligned (mmap is page-aligned) and within len.
            let w = unsafe { std::ptr::read_volatile(self.ptr.add(offset + i) as *const u64) };
            buf[i..i + 8].copy_from_slice(&w.to_ne_bytes());
            i += 8;
        }
        while i < buf.len() {
            // SAFETY: offset+i < offset+buf.len() <= len, inside the live read-only mapping.
            buf[i] = unsafe { std::ptr::read_volatile(self.ptr.add(offset + i)) };
            i += 1;
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped exactly once.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// Cloneable, read-only view of guest physical memory. Stays valid after the VM ends
/// (the mappings outlive the files).
#[derive(Clone)]
pub struct GuestMemoryView {
    /// (first guest physical address, mapping), in address order, without gaps.
    segments: Arc<Vec<(u64, Mapping)>>,
    size: u64,
}

impl std::fmt::Debug for GuestMemoryView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestMemoryView")
            .field("size", &self.size)
            .field("segments", &self.segments.len())
            .finish()
    }
}

/// One guest RAM segment of `bytes`: an anonymous shared-memory file (memfd), close-on-exec
/// so that only the QEMU it is handed to inherits it.
pub(crate) fn create_ram(bytes: u64) -> Result<File> {
    const NAME: &CStr = c"ktstr-qemu-ram";
    // SAFETY: NAME is a valid C string; the returned fd is checked before use.
    let fd = unsafe { libc::memfd_create(NAME.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::io(
            "memfd_create for guest RAM",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(bytes)
        .map_err(|e| Error::io("size guest RAM", e))?;
    Ok(file)
}

fn map_file(file: &File, len: usize) -> Result<Mapping> {
    let file_len = file
        .metadata()
        .map_err(|e| Error::io("stat guest memory", e))?
        .len();
    if file_len < len as u64 || len == 0 {
        return Err(Error::InvalidConfig(format!(
            "guest memory file is {file_len} bytes, expected {len}"
        )));
    }
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
    Ok(Mapping {
        ptr: ptr as *const u8,
        len,
    })
}

impl GuestMemoryView {
    /// Maps `files` (file, length) back to back from guest physical 0. The mappings stay
    /// valid after the files are closed.
    pub(crate) fn open(files: &[(&File, usize)]) -> Result<Self> {
        let mut segments = Vec::with_capacity(files.len());
        let mut size = 0u64;
        for &(file, len) in files {
            segments.push((size, map_file(file, len)?));
            size += len as u64;
        }
        Ok(GuestMemoryView {
            segments: Arc::new(segments),
            size,
        })
    }

    /// Guest RAM size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Copies `buf.len()` bytes from guest physical `addr`. The guest may be writing
    /// concurrently, so the copy is volatile and not atomic as a whole.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let oob = || Error::OutOfBounds {
            addr,
            len: buf.len(),
            size: self.size,
        };
        let end = addr.checked_add(buf.len() as u64).ok_or_else(oob)?;
        if end > self.size {
            return Err(oob());
        }
        let mut done = 0usize;
        for (start, map) in self.segments.iter() {
            let seg_end = start + map.len as u64;
            let at = addr + done as u64;
            if done == buf.len() {
                break;
            }
            if at >= seg_end {
                continue;
            }
            // In bounds: at >= start because segments are contiguous and in order.
            let offset = (at - start) as usize;
            let n = (map.len - offset).min(buf.len() - done);
            map.read(offset, &mut buf[done..done + n]);
            done += n;
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
        let size = self.size as usize;
        while addr < size {
            let n = (CHUNK + overlap).min(size - addr);
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
        let v = GuestMemoryView::open(&[(f.as_file(), data.len())]).unwrap();
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

    #[test]
    fn reads_span_node_files() {
        let mut a = tempfile::NamedTempFile::new().unwrap();
        let mut b = tempfile::NamedTempFile::new().unwrap();
        let mut first = vec![0u8; 1 << 20];
        let n = first.len();
        first[n - 3..].copy_from_slice(b"MAR");
        a.write_all(&first).unwrap();
        let mut second = vec![0u8; 1 << 20];
        second[..3].copy_from_slice(b"KER");
        b.write_all(&second).unwrap();
        let v = GuestMemoryView::open(&[(a.as_file(), n), (b.as_file(), n)]).unwrap();
        assert_eq!(v.size(), 2 << 20);
        let mut buf = [0u8; 6];
        v.read(n as u64 - 3, &mut buf).unwrap();
        assert_eq!(&buf, b"MARKER");
        assert_eq!(v.find(b"MARKER").unwrap(), Some(n as u64 - 3));
        assert!(v.read((2 << 20) - 5, &mut buf).is_err());
    }

    #[test]
    fn ram_is_a_nameless_shared_file_the_view_sees_writes_to() {
        use std::os::unix::fs::FileExt;
        let ram = create_ram(2 << 20).unwrap();
        let v = GuestMemoryView::open(&[(&ram, 2 << 20)]).unwrap();
        // Written through another descriptor, as QEMU writes through its own mapping.
        let other = File::options()
            .write(true)
            .open(format!("/proc/self/fd/{}", ram.as_raw_fd()))
            .unwrap();
        other.write_all_at(b"GUEST", 1 << 20).unwrap();
        assert_eq!(v.find(b"GUEST").unwrap(), Some(1 << 20));
        let target = std::fs::read_link(format!("/proc/self/fd/{}", ram.as_raw_fd())).unwrap();
        assert!(
            target
                .to_string_lossy()
                .starts_with("/memfd:ktstr-qemu-ram"),
            "{}",
            target.display()
        );
    }
}

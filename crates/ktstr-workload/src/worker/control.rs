//! The stop flags: one shared `u32` per worker, set by the runner, polled by
//! the worker between work units.

use std::sync::atomic::{AtomicU32, Ordering};

use super::{WorkerError, sys};

/// Shared-memory stop flags, one `u32` slot per worker, mapped before any
/// fork so parent and workers see the same page(s).
#[derive(Debug)]
pub struct ControlPage {
    ptr: *mut AtomicU32,
    slots: usize,
    len: usize,
}

impl ControlPage {
    /// Map `slots` zeroed flags.
    pub fn new(slots: usize) -> Result<Self, WorkerError> {
        let len = (slots.max(1) * size_of::<AtomicU32>()).next_multiple_of(4096);
        // SAFETY: anonymous shared mapping, no file; result checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(sys("mmap control page"));
        }
        Ok(Self {
            ptr: p.cast(),
            slots: slots.max(1),
            len,
        })
    }

    fn slot(&self, i: usize) -> Option<&AtomicU32> {
        // SAFETY: i < slots, the mapping is live for &self and zero-initialised,
        // and AtomicU32 has the layout of u32.
        (i < self.slots).then(|| unsafe { &*self.ptr.add(i) })
    }

    /// Tell worker `i` to stop.
    pub fn stop(&self, i: usize) {
        if let Some(s) = self.slot(i) {
            s.store(1, Ordering::Release);
        }
    }

    /// Tell every worker to stop.
    pub fn stop_all(&self) {
        for i in 0..self.slots {
            self.stop(i);
        }
    }

    pub(super) fn stopped(&self, i: usize) -> bool {
        self.slot(i).is_none_or(|s| s.load(Ordering::Acquire) != 0)
    }
}

impl Drop for ControlPage {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what new() mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

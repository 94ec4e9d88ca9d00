//! The stop flags: one shared `u32` per worker, set by the runner, polled by
//! the worker between work units; and the start gate, one more `u32` after
//! them: the number of steps whose workers may start working.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{WorkerError, sys};

/// How long a worker waiting at the gate sleeps before checking its stop
/// flag again (a worker stopped before its step opened must still end).
const GATE_RECHECK: Duration = Duration::from_millis(50);

/// Shared-memory stop flags, one `u32` slot per worker, and the start gate,
/// mapped before any fork so parent and workers see the same page(s).
#[derive(Debug)]
pub struct ControlPage {
    ptr: *mut AtomicU32,
    slots: usize,
    len: usize,
}

impl ControlPage {
    /// Map `slots` zeroed flags and a closed gate.
    pub fn new(slots: usize) -> Result<Self, WorkerError> {
        let len = ((slots.max(1) + 1) * size_of::<AtomicU32>()).next_multiple_of(4096);
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

    fn gate(&self) -> &AtomicU32 {
        // SAFETY: the word after the last slot is inside the mapping (new()
        // sized it for slots + 1), live for &self, with u32's layout.
        unsafe { &*self.ptr.add(self.slots) }
    }

    /// Let the workers of steps up to `steps` start: a step's workers are
    /// forked and placed one by one, and without the gate the first would
    /// run alone while the others are still being forked (in a slow guest,
    /// ~0.1 s each), which shows as CPU-time unfairness among equals.
    pub fn open_gate(&self, steps: u32) {
        let gate = self.gate();
        gate.fetch_max(steps, Ordering::AcqRel);
        // SAFETY: FUTEX_WAKE on a live, aligned u32 of a shared mapping
        // (not FUTEX_PRIVATE: the waiters are forked processes).
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                gate.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
            )
        };
    }

    /// Block until the gate lets step `step` (1-based) start or worker `i`
    /// is told to stop.
    pub(super) fn wait_at_gate(&self, step: u32, i: usize) {
        let gate = self.gate();
        let recheck = libc::timespec {
            tv_sec: 0,
            tv_nsec: GATE_RECHECK.as_nanos() as libc::c_long,
        };
        loop {
            let now = gate.load(Ordering::Acquire);
            if now >= step || self.stopped(i) {
                return;
            }
            // SAFETY: FUTEX_WAIT on a live, aligned u32 of a shared mapping,
            // with a valid relative timeout; it returns at once if the word
            // is no longer `now`, and any return is followed by a recheck.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    gate.as_ptr(),
                    libc::FUTEX_WAIT,
                    now,
                    &recheck as *const libc::timespec,
                )
            };
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A forked child waiting at the gate for step 1 as worker 0; killed
    /// and reaped on drop if it is still there (a failed assertion).
    struct Waiter(i32);

    impl Waiter {
        fn fork(ctl: &ControlPage) -> Waiter {
            // SAFETY: the child only waits on the shared page and `_exit`s.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork");
            if pid == 0 {
                ctl.wait_at_gate(1, 0);
                // SAFETY: leave without running the test harness's destructors.
                unsafe { libc::_exit(0) }
            }
            Waiter(pid)
        }

        /// Whether it exits within `within`.
        fn exits(&mut self, within: Duration) -> bool {
            let until = Instant::now() + within;
            while Instant::now() < until {
                let mut status = 0;
                // SAFETY: polling our own child with a valid status pointer.
                if unsafe { libc::waitpid(self.0, &mut status, libc::WNOHANG) } == self.0 {
                    self.0 = 0;
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            false
        }
    }

    impl Drop for Waiter {
        fn drop(&mut self) {
            if self.0 > 0 {
                let mut status = 0;
                // SAFETY: killing and reaping our own unreaped child.
                unsafe {
                    libc::kill(self.0, libc::SIGKILL);
                    libc::waitpid(self.0, &mut status, 0);
                }
            }
        }
    }

    #[test]
    fn a_worker_waits_at_the_gate_until_its_step_opens_or_it_is_stopped() {
        let ctl = ControlPage::new(1).unwrap();
        let mut w = Waiter::fork(&ctl);
        assert!(!w.exits(Duration::from_millis(200)), "passed a closed gate");
        ctl.open_gate(1);
        assert!(w.exits(Duration::from_secs(5)), "the open gate held it");

        let stopped = ControlPage::new(1).unwrap();
        let mut w = Waiter::fork(&stopped);
        assert!(!w.exits(Duration::from_millis(200)), "passed a closed gate");
        stopped.stop(0);
        assert!(w.exits(Duration::from_secs(5)), "a stop did not free it");
    }
}

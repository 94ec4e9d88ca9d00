//! A machine-wide bound on concurrent VMs: `N` lock files under
//! `$TMPDIR/ktstr-slots/`; a VM runs while its process holds one with
//! `flock`. Works across libtest threads (each open is its own lock) and
//! nextest processes, and a crashed holder releases its slot with its fd.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::HarnessError;

/// A held slot; released on drop.
pub struct Slot {
    _file: File,
}

/// `KTSTR_MAX_VMS`, else half the host CPUs, at least 1.
pub fn max_vms() -> usize {
    std::env::var("KTSTR_MAX_VMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)))
}

fn dir() -> PathBuf {
    std::env::temp_dir().join("ktstr-slots")
}

impl Slot {
    /// Blocks until one of the [`max_vms`] slots is free.
    pub fn acquire() -> Result<Slot, HarnessError> {
        let dir = dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
        let n = max_vms();
        loop {
            for i in 0..n {
                let path = dir.join(format!("slot-{i}"));
                let file = File::create(&path)
                    .map_err(|e| HarnessError::io(format!("open {}", path.display()), e))?;
                // SAFETY: flock on an fd we own; non-blocking, result checked.
                let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                if rc == 0 {
                    return Ok(Slot { _file: file });
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_and_released_on_drop() {
        // SAFETY: test-local environment change before any slot is taken.
        unsafe { std::env::set_var("KTSTR_MAX_VMS", "1") };
        let a = Slot::acquire().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let _b = Slot::acquire().unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "second slot while the first is held"
        );
        drop(a);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("slot freed on drop");
        h.join().unwrap();
    }
}

//! The one VM-concurrency rule: a machine-wide bound on concurrent VMs.
//! `N` lock files under `$TMPDIR/ktstr-slots/`; a VM runs while its process
//! holds one with `flock`. Works across libtest threads (each open is its own
//! lock) and nextest processes, and a crashed holder releases its slot with
//! its fd.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

/// A held slot; released on drop.
pub struct VmSlot {
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

impl VmSlot {
    /// Blocks until one of the [`max_vms`] slots is free. An error names the
    /// slot file that could not be created or opened.
    pub fn acquire() -> io::Result<VmSlot> {
        let dir = dir();
        let named =
            |what: String| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
        std::fs::create_dir_all(&dir).map_err(named(format!("create {}", dir.display())))?;
        let n = max_vms();
        loop {
            for i in 0..n {
                let path = dir.join(format!("slot-{i}"));
                let file =
                    File::create(&path).map_err(named(format!("open {}", path.display())))?;
                // SAFETY: flock on an fd we own; non-blocking, result checked.
                let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                if rc == 0 {
                    return Ok(VmSlot { _file: file });
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A slot for the rest of a test body: one VM (or one VM after another) at
/// a time per slot. A test must take at most one: with one slot on the
/// machine a second acquisition in the same test waits forever.
///
/// # Panics
/// When `$TMPDIR/ktstr-slots` cannot be used (the test fails naming it).
pub fn vm_slot() -> VmSlot {
    match VmSlot::acquire() {
        Ok(slot) => slot,
        Err(e) => panic!("no VM slot: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_and_released_on_drop() {
        // SAFETY: test-local environment change before any slot is taken.
        unsafe { std::env::set_var("KTSTR_MAX_VMS", "1") };
        let a = VmSlot::acquire().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let _b = VmSlot::acquire().unwrap();
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

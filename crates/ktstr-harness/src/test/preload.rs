//! The monitor's kernel symbols and BTF, loaded on a thread while the VM
//! starts: parsing the vmlinux takes ~0.4 s in a debug test binary, paid by
//! the first test process per kernel (later ones read the on-disk cache, see
//! `monitor::vmlinux_for`), and was paid in series before the scheduler
//! attached. The load is joined before the monitor attaches, and on drop,
//! so the thread never outlives its test.

use std::path::Path;
use std::thread::JoinHandle;

use super::MonitorSpec;

/// A load in progress (or none: the spec samples nothing).
pub(super) struct Preload(Option<JoinHandle<()>>);

impl Preload {
    /// Starts loading `kernel`'s vmlinux if `spec` samples.
    pub(super) fn start(kernel: &Path, spec: MonitorSpec) -> Preload {
        if !spec.samples() {
            return Preload(None);
        }
        let kernel = kernel.to_owned();
        let spawned = std::thread::Builder::new()
            .name("ktstr-vmlinux".into())
            // An error here is the monitor's to report when it attaches.
            .spawn(move || drop(super::monitor::vmlinux_for(&kernel)));
        Preload(spawned.ok())
    }
}

impl Drop for Preload {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}

//! What every backend gives a caller: the bulk channel, a kill handle, a
//! read-only view of guest memory, and a classified outcome.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use ktstr_topology::NumaTopology;

use crate::death::GuestDeath;
use crate::{BackendError, MemoryReadError};

/// What to boot. The command line is appended to the backend's defaults.
#[derive(Clone, Debug)]
pub struct BootSpec {
    pub kernel: PathBuf,
    pub initramfs: Option<PathBuf>,
    pub cmdline: String,
    /// Ignored when `topology` is set.
    pub vcpus: usize,
    pub memory_mib: u64,
    pub deadline: Duration,
    /// The CPU/NUMA shape; `None` is `vcpus` cores in one LLC of one node.
    pub topology: Option<NumaTopology>,
    /// Resume this snapshot directory (from [`Guest::snapshot`] with the same spec)
    /// instead of booting.
    pub restore_from: Option<PathBuf>,
}

impl BootSpec {
    /// vCPUs the guest gets: the topology's, else `vcpus`.
    pub fn effective_vcpus(&self) -> usize {
        self.topology
            .as_ref()
            .map_or(self.vcpus, |t| t.vcpus() as usize)
    }
}

/// How the guest ended, in terms both backends can report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Reboot,
    Shutdown,
    /// The kernel panicked ("Kernel panic - not syncing" on COM1).
    GuestPanic,
    Killed,
    DeadlineExceeded,
    /// The backend itself failed (emulation failure, QEMU error, ...).
    Failed(String),
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub exit: Exit,
    /// Why it ended, read from the consoles ([`GuestDeath::classify`]).
    pub death: GuestDeath,
    pub com1: Vec<u8>,
    /// Everything the guest wrote to COM2 (e.g. the guest init's `PANIC:` line).
    pub com2: Vec<u8>,
    pub run_time: Duration,
}

impl Outcome {
    pub fn com1_text(&self) -> String {
        String::from_utf8_lossy(&self.com1).into_owned()
    }
}

type SendBytes = Box<dyn Fn(&[u8]) + Send + Sync>;
type ReadMemory = Box<dyn Fn(u64, &mut [u8]) -> Result<(), MemoryReadError> + Send + Sync>;
type Finish = Box<dyn FnOnce() -> Result<Outcome, BackendError> + Send>;
type TakeSnapshot = Box<dyn Fn(&Path) -> Result<(), BackendError> + Send + Sync>;

/// A running guest. Dropping it without [`Guest::wait`] kills and reaps it.
pub struct Guest {
    pub(crate) bulk_rx: Option<Receiver<Vec<u8>>>,
    pub(crate) bulk_tx: SendBytes,
    pub(crate) kill: Box<dyn Fn() + Send + Sync>,
    pub(crate) memory: ReadMemory,
    pub(crate) finish: Option<Finish>,
    pub(crate) snapshot: Option<TakeSnapshot>,
}

impl Guest {
    /// Bytes the guest writes to `ktstr.bulk`, delivered while it runs.
    pub fn take_bulk_receiver(&mut self) -> Option<Receiver<Vec<u8>>> {
        self.bulk_rx.take()
    }

    /// Sends bytes to the guest's `ktstr.bulk` port (buffered until it reads).
    pub fn send_bulk(&self, bytes: &[u8]) {
        (self.bulk_tx)(bytes)
    }

    pub fn kill(&self) {
        (self.kill)()
    }

    /// Reads guest-physical memory while the guest runs.
    pub fn read_memory(&self, addr: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        (self.memory)(addr, buf).map_err(|source| BackendError::Memory {
            addr,
            len: buf.len(),
            source,
        })
    }

    /// Pauses the guest, writes a snapshot into `dir` and resumes it. A later
    /// [`BootSpec::restore_from`] with the same spec continues from this point.
    pub fn snapshot(&self, dir: &Path) -> Result<(), BackendError> {
        match &self.snapshot {
            Some(take) => take(dir),
            None => Err(BackendError::SnapshotUnsupported {
                backend: "ktstr-vmm",
                reason: "snapshots are taken by a SnapshotPlan given at build time (ktstr_vmm::snapshot), not yet through this interface".into(),
            }),
        }
    }

    /// Waits for the guest to end.
    pub fn wait(mut self) -> Result<Outcome, BackendError> {
        match self.finish.take() {
            Some(finish) => finish(),
            None => Err(BackendError::Lost),
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(finish) = self.finish.take() {
            (self.kill)();
            let _ = finish();
        }
    }
}

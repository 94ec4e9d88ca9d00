//! What every backend gives a caller: the bulk channel, a kill handle, a
//! read-only view of guest memory, snapshots, and a classified outcome.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use ktstr_topology::NumaTopology;

use crate::death::{GuestDeath, exit_after};
use crate::{BackendError, PhysMemory};

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
    /// The outcome of a run that ended with `exit`: its death read from the
    /// consoles (`cmdline` says what the guest was told, e.g. `panic=-1`),
    /// and a reboot a crash caused counted as that crash.
    pub fn classified(
        exit: Exit,
        com1: Vec<u8>,
        com2: Vec<u8>,
        run_time: Duration,
        cmdline: &str,
    ) -> Outcome {
        let death = GuestDeath::classify(&exit, &com1, &com2, cmdline);
        Outcome {
            exit: exit_after(exit, &death),
            death,
            com1,
            com2,
            run_time,
        }
    }

    pub fn com1_text(&self) -> String {
        String::from_utf8_lossy(&self.com1).into_owned()
    }
}

/// A running guest, whichever backend runs it: what the harness and the
/// conformance suite use. Dropping it without [`Guest::wait`] kills it and
/// reaps it (no VM thread or QEMU process outlives it).
///
/// Callers hold a `Box<dyn Guest>` ([`crate::boot`]): the backend is picked
/// at run time (`KTSTR_BACKEND`), every call is coarse (a bulk write, a
/// snapshot), and each adapter keeps its own fields and `Drop` instead of an
/// enum that would match on the backend in every method.
pub trait Guest: Send {
    /// Bytes the guest writes to `ktstr.bulk`, delivered while it runs;
    /// `None` after the first call.
    fn take_bulk_receiver(&mut self) -> Option<Receiver<Vec<u8>>>;

    /// Sends bytes to the guest's `ktstr.bulk` port (buffered until it reads).
    fn send_bulk(&self, bytes: &[u8]);

    /// Ends the run now; [`Guest::wait`] then reports [`Exit::Killed`].
    fn kill(&self);

    /// A handle reading guest-physical memory from any thread while the
    /// guest runs (and its last contents after it ended).
    fn memory(&self) -> Arc<dyn PhysMemory>;

    /// Reads guest-physical memory while the guest runs.
    fn read_memory(&self, addr: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        self.memory().read(addr, buf)
    }

    /// MSR `index` of vCPU `vcpu`, read while the guest runs (it may pause
    /// it briefly); `Ok(None)` where the backend cannot read vCPU state
    /// (QEMU). E.g. `MSR_LSTAR`, to cross-check the kernel's KASLR offset.
    fn vcpu_msr(&self, vcpu: usize, index: u32) -> Result<Option<u64>, BackendError> {
        let _ = (vcpu, index);
        Ok(None)
    }

    /// Pauses the guest, writes a snapshot into `dir` (created) and resumes
    /// it. A later [`BootSpec::restore_from`] with the same spec continues
    /// from this point, with a fresh bulk channel; a different spec is refused.
    fn snapshot(&self, dir: &Path) -> Result<(), BackendError>;

    /// Waits for the guest to end.
    fn wait(self: Box<Self>) -> Result<Outcome, BackendError>;
}

//! One booted guest and the calls a test makes on it.
//!
//! * `boot`: building the image, then booting or resuming the machine's
//!   snapshot (and taking it after a cold boot).
//! * `attach_snapshot`: the snapshot one step further, with the scheduler
//!   just attached.
//! * `requests`: the request/reply plumbing over the wire, and `exec` and
//!   `run_scenario` on top of it.
//! * `scheduler`: starting, watching and stopping the scheduler under test.
//! * `end`: shutting the guest down and classifying how it ended, and the
//!   error for a VM that ended while the host waited.

mod attach_snapshot;
mod boot;
mod end;
mod requests;
mod scheduler;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use ktstr_backend::{BackendKind, Guest, Outcome};

use crate::HarnessError;
use crate::compress::Compression;
use crate::events::{EventStream, SchedEvent, SysInfo};
use crate::image::{CachedImage, default_cache_dir};
use crate::snapshots;

pub use attach_snapshot::AttachPoint;
pub use end::{GuestExit, RunResult, init_panic_message};
pub use requests::ExecResult;
pub use scheduler::{Attached, Detached};

/// How to boot a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Kernel image.
    pub kernel: PathBuf,
    /// Which VM backend.
    pub backend: BackendKind,
    /// vCPUs (ignored when `topology` is set).
    pub vcpus: usize,
    /// CPU/NUMA shape the guest sees; `None` is `vcpus` flat CPUs.
    pub topology: Option<ktstr_topology::NumaTopology>,
    /// Guest memory.
    pub memory_mib: u64,
    /// Hard deadline of the whole VM.
    pub deadline: Duration,
    /// How long until `SysReady`.
    pub boot_timeout: Duration,
    /// The init binary; `None`: the running executable (see `ktstr_guest::init`).
    pub init: Option<PathBuf>,
    /// Scheduler binaries to pack (each must exist).
    pub schedulers: Vec<PathBuf>,
    /// Host programs to pack with their shared libraries, at
    /// `/usr/bin/<file name>` (each must exist; see [`crate::guest_files`]).
    pub programs: Vec<PathBuf>,
    /// Host files to pack at guest paths (each must exist).
    pub files: Vec<crate::guest_files::GuestFile>,
    /// Initramfs storage format.
    pub compression: Compression,
    /// Strip DWARF from the init binary (see `GuestImage::strip_debug`).
    pub strip_debug: bool,
    /// Extra kernel command line.
    pub cmdline: String,
    /// Initramfs cache directory.
    pub cache_dir: PathBuf,
    /// Resume a snapshot of this machine taken at the guest init's `SysReady`, taking it
    /// on the first boot (see [`crate::snapshots`]); every backend. On by default;
    /// `KTSTR_SNAPSHOTS=0` turns it off.
    pub snapshots: bool,
    /// Where snapshots live.
    pub snapshot_dir: PathBuf,
    /// With `snapshots`: resume the machine with this scheduler already
    /// attached, or take that snapshot when [`Session::attach`] attaches it
    /// (see `attach_snapshot.rs`). `None` by default.
    pub attach_snapshot: Option<AttachPoint>,
}

impl SessionConfig {
    /// Defaults: the backend `ktstr_backend::choose()` picks
    /// (`KTSTR_BACKEND`, else ktstr-vmm on hardware KVM and QEMU TCG
    /// otherwise, since software KVM cannot run guest user space), 2 vCPUs,
    /// 512 MiB, 10 min deadline, this executable as init.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        let backend = ktstr_backend::choose().map_or(BackendKind::QemuTcg, |c| c.kind);
        SessionConfig {
            kernel: kernel.into(),
            backend,
            vcpus: 2,
            topology: None,
            memory_mib: 512,
            deadline: Duration::from_secs(600),
            boot_timeout: Duration::from_secs(120),
            init: None,
            schedulers: Vec::new(),
            programs: Vec::new(),
            files: Vec::new(),
            compression: Compression::None,
            strip_debug: true,
            cmdline: "quiet".into(),
            snapshots: std::env::var("KTSTR_SNAPSHOTS").map_or(true, |v| v != "0"),
            snapshot_dir: snapshots::default_root(&default_cache_dir()),
            attach_snapshot: None,
            cache_dir: default_cache_dir(),
        }
    }
}

/// A booted guest that has reported `SysReady`.
pub struct Session {
    /// The running VM; `None` once it ended and `ended` holds its outcome.
    guest: Option<Box<dyn Guest>>,
    ended: Option<Outcome>,
    events: EventStream,
    seq: u64,
    next_step: u32,
    output: HashMap<u32, (Vec<u8>, Vec<u8>)>,
    sched: VecDeque<SchedEvent>,
    exit_code: Option<i32>,
    sys: SysInfo,
    image: CachedImage,
    packed: Vec<PathBuf>,
    scheduler: Option<Attached>,
    deadline: Duration,
    logs: Vec<String>,
    timings: BootTimings,
    /// When the last scenario request went to the guest.
    scenario_sent: Option<std::time::Instant>,
    attach_snapshot: attach_snapshot::AttachSnapshot,
}

/// Where a session's start-up time went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootTimings {
    /// Building (or hashing and reusing) the initramfs.
    pub image: Duration,
    /// From starting the VM to the guest's `SysReady` (or, restored, to the guest running).
    pub boot: Duration,
    /// The part of `boot` until the VM ran (QEMU up, snapshot loaded).
    pub vm_start: Duration,
    /// After a cold boot: writing the snapshot later sessions resume.
    pub snapshot_save: Duration,
    /// The guest resumed a snapshot instead of booting.
    pub restored: bool,
    /// Writing the attach snapshot (inside [`Session::attach`]).
    pub attach_snapshot_save: Duration,
    /// The snapshot resumed had the scheduler attached already.
    pub attach_resumed: bool,
}

impl BootTimings {
    /// The start-up phases inside [`Session::boot`] other than starting the VM.
    pub fn phases(&self) -> [(crate::test::Phase, Duration); 3] {
        use crate::test::Phase;
        [
            (Phase::Image, self.image),
            (Phase::GuestReady, self.boot.saturating_sub(self.vm_start)),
            (Phase::SnapshotSave, self.snapshot_save),
        ]
    }
}

impl Session {
    /// What the guest reported at boot.
    pub fn sys_info(&self) -> SysInfo {
        self.sys
    }

    /// Image and boot times of this session.
    pub fn timings(&self) -> BootTimings {
        self.timings
    }

    /// The initramfs this session booted.
    pub fn image(&self) -> &CachedImage {
        &self.image
    }

    /// Kill the VM now (the escape key of [`shell`](Self::shell)).
    pub fn kill(&self) {
        if let Some(guest) = &self.guest {
            guest.kill();
        }
    }

    /// How the VM ended, once it has (e.g. after [`HarnessError::GuestDied`]):
    /// its classified death and everything it wrote to COM1 and COM2.
    ///
    /// [`HarnessError::GuestDied`]: crate::HarnessError::GuestDied
    pub fn outcome(&self) -> Option<&Outcome> {
        self.ended.as_ref()
    }

    /// Reads guest-physical memory while the guest runs, without pausing
    /// it (how ktstr-monitor reads the guest kernel's run queues). After
    /// the VM ended this is the same [`HarnessError::GuestDied`] as any call.
    ///
    /// [`HarnessError::GuestDied`]: crate::HarnessError::GuestDied
    pub fn read_guest_memory(&self, addr: u64, buf: &mut [u8]) -> Result<(), HarnessError> {
        match &self.guest {
            Some(guest) => Ok(guest.read_memory(addr, buf)?),
            None => Err(match &self.ended {
                Some(outcome) => HarnessError::GuestDied {
                    during: "a guest memory read".into(),
                    death: outcome.death.clone(),
                    after: Duration::ZERO,
                },
                None => HarnessError::GuestGone {
                    what: "a guest memory read".into(),
                },
            }),
        }
    }

    /// A handle reading guest-physical memory from another thread (the
    /// monitor's sampler) while this session drives the guest; `None`
    /// once the VM ended.
    pub fn guest_memory(&self) -> Option<std::sync::Arc<dyn ktstr_backend::PhysMemory>> {
        self.guest.as_ref().map(|g| g.memory())
    }

    /// MSR `index` of vCPU `vcpu` where the backend can read it (ktstr-vmm),
    /// `Ok(None)` where it cannot (QEMU) or the VM ended.
    pub fn vcpu_msr(&self, vcpu: usize, index: u32) -> Result<Option<u64>, HarnessError> {
        match &self.guest {
            Some(g) => Ok(g.vcpu_msr(vcpu, index)?),
            None => Ok(None),
        }
    }

    /// When the last scenario was sent to the guest (it starts on receipt):
    /// what the monitor's finding times count from.
    pub fn scenario_started(&self) -> Option<std::time::Instant> {
        self.scenario_sent
    }

    /// `Log` lines the guest sent (kept after its VM ends).
    pub fn logs(&self) -> &[String] {
        &self.logs
    }
}

//! Snapshot and restore: boot once, capture the whole machine at a quiescent
//! point, start each test from a copy-on-write restore.
//!
//! Map: [`vcpu_state`] and [`vm_state`] (KVM state, capture/apply),
//! [`machine`] (everything but memory, encoded with `codec`), `capture`
//! (quiesce a parked VM and read it all), [`file`] (the on-disk format:
//! header, checksummed state, page-aligned memory), `host` (is this host able
//! to run that snapshot), `restore` (`Vm::restore`), [`cache`] (snapshots
//! keyed by what shaped the boot), `request` (a snapshot asked for from
//! another thread while the guest runs). The pause itself is in the run loop
//! (`vm.rs`: vCPU threads end, the state is captured, threads start again).

pub mod cache;
pub(crate) mod capture;
pub(crate) mod codec;
pub mod file;
mod host;
pub mod machine;
pub(crate) mod request;
pub(crate) mod restore;
pub mod vcpu_state;
pub mod vm_state;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ExtraDevice;
use crate::devices::bus::{IoDevice, IoSpace};

pub use machine::MachineState;
pub use request::VcpuReadError;

/// Why a snapshot could not be written or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot file is truncated: {what} needs {expected} bytes, the file has {actual}")]
    Truncated {
        what: &'static str,
        expected: u64,
        actual: u64,
    },
    #[error("not a ktstr snapshot (bad magic {found:02x?})")]
    BadMagic { found: [u8; 8] },
    #[error("snapshot format version {found}, this build reads version {expected}; rebuild it")]
    VersionMismatch { found: u32, expected: u32 },
    #[error(
        "snapshot {section} checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupt"
    )]
    ChecksumMismatch {
        section: &'static str,
        stored: u32,
        computed: u32,
    },
    #[error("malformed snapshot state: {0}")]
    Malformed(String),
    #[error("snapshot was taken on an incompatible host: {0}")]
    IncompatibleHost(String),
    #[error("the device at {base:#x} cannot be snapshotted (it does not implement save_state)")]
    UnsupportedDevice { base: u64 },
    #[error("snapshot devices do not match this VM's: {0}")]
    DeviceMismatch(#[from] crate::devices::bus::DeviceMismatchError),
    #[error("snapshot key mismatch: the file was built for a different boot")]
    KeyMismatch,
    #[error("the VM is not running (it ended before the snapshot could be taken)")]
    NotRunning,
    #[error("another snapshot of this VM is being taken")]
    Busy,
    #[error("KVM {op} failed: {source}")]
    Kvm {
        op: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("snapshot I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("guest memory: {0}")]
    Memory(#[from] crate::error::MemoryError),
}

/// When the running VM is paused and captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotTrigger {
    /// The guest writes [`crate::devices::control::REQUEST_SNAPSHOT`] to the control port.
    GuestRequest,
    /// COM1 output first contains this byte string.
    Com1Marker(Vec<u8>),
    /// Only [`crate::InterruptHandle::request_snapshot`] from the host.
    Host,
}

/// What the VM does once the snapshot is on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterSnapshot {
    /// The run ends with [`crate::ExitKind::Snapshotted`].
    Stop,
    /// The guest continues as if nothing happened (it reads generation 0).
    Continue,
}

/// A snapshot to take during a run (see [`crate::VmBuilder::snapshot`]).
#[derive(Clone, Debug)]
pub struct SnapshotPlan {
    pub path: PathBuf,
    pub trigger: SnapshotTrigger,
    pub then: AfterSnapshot,
    /// Written into the file and checked on load (see [`cache::CacheKey`]).
    pub key: String,
}

/// What a taken snapshot looks like; in [`crate::Outcome::snapshot`].
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    /// Bytes allocated on disk (zero pages are holes).
    pub disk_bytes: u64,
    /// Apparent file size.
    pub file_bytes: u64,
    /// Run time until the pause began.
    pub taken_at: Duration,
    /// Time from all vCPUs parked to the file renamed into place.
    pub save_time: Duration,
}

/// How to restore: deadline, output sinks, what the guest sees.
pub struct RestoreOptions {
    pub deadline: Duration,
    /// Read by the guest at the control port's generation register.
    pub generation: u32,
    /// Read by the guest at the control port's input window (at most
    /// [`crate::devices::control::INPUT_MAX`] bytes).
    pub input: Vec<u8>,
    /// Check the memory checksum before mapping (reads the whole section).
    pub verify_memory: bool,
    /// Must match the key the snapshot was written with, when set.
    pub expect_key: Option<String>,
    pub com1_sink: Option<Box<dyn Write + Send>>,
    pub com2_sink: Option<Box<dyn Write + Send>>,
    /// The same extra devices, at the same addresses, as the snapshotted VM.
    pub devices: Vec<ExtraDevice>,
    /// The host side for the virtio-console, required when the snapshotted
    /// VM had one (from [`crate::virtio_console`]; a new one per restore).
    pub virtio_console: Option<crate::ConsoleSender>,
    pub kvm_path: PathBuf,
    pub profile_interval: Option<Duration>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            deadline: crate::config::DEFAULT_DEADLINE,
            generation: 1,
            input: Vec::new(),
            verify_memory: true,
            expect_key: None,
            com1_sink: None,
            com2_sink: None,
            devices: Vec::new(),
            virtio_console: None,
            kvm_path: PathBuf::from("/dev/kvm"),
            profile_interval: None,
        }
    }
}

impl RestoreOptions {
    /// Re-adds a caller device the snapshotted VM had (its state is restored into it).
    pub fn device(
        mut self,
        space: IoSpace,
        base: u64,
        len: u64,
        device: Box<dyn IoDevice>,
    ) -> Self {
        self.devices.push(ExtraDevice {
            space,
            base,
            len,
            device,
        });
        self
    }
}

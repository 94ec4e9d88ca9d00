//! Typed errors for everything a caller can get wrong or a host can lack.

use std::io;
use std::path::PathBuf;

/// Why a VM could not be built or run. Guest behaviour is never an error:
/// it is reported as an [`crate::ExitKind`] in the [`crate::Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error(
        "{path} does not exist: KVM is not available on this host (needs a CPU with virtualization and the kvm module)"
    )]
    KvmMissing { path: PathBuf },
    #[error("permission denied opening {path}: add this user to the 'kvm' group or run as root")]
    KvmPermission { path: PathBuf },
    #[error("cannot open {path} as a KVM device: {source}")]
    KvmOpen { path: PathBuf, source: io::Error },
    #[error("KVM on this host lacks the required capability {0}")]
    MissingCapability(&'static str),
    #[error("no kernel image was configured")]
    NoKernel,
    #[error("kernel image {path} does not exist")]
    KernelMissing { path: PathBuf },
    #[error("cannot read kernel image {path}: {source}")]
    KernelUnreadable { path: PathBuf, source: io::Error },
    #[error(
        "{path} is not a bootable x86_64 kernel (expected an ELF vmlinux or a bzImage): {reason}"
    )]
    NotAKernel { path: PathBuf, reason: String },
    #[error("cannot read initramfs {path}: {source}")]
    InitramfsUnreadable { path: PathBuf, source: io::Error },
    #[error(
        "initramfs of {size} bytes does not fit in guest memory between {low:#x} and {high:#x}; give the VM more memory"
    )]
    InitramfsTooLarge { size: u64, low: u64, high: u64 },
    #[error("guest memory of {mib} MiB is too small: {what} needs at least {needed_mib} MiB")]
    MemoryTooSmall {
        mib: u64,
        needed_mib: u64,
        what: &'static str,
    },
    #[error("guest memory of {mib} MiB exceeds the supported maximum of {max_mib} MiB")]
    MemoryTooLarge { mib: u64, max_mib: u64 },
    #[error("kernel command line is {len} bytes; this kernel accepts at most {max}")]
    CmdlineTooLong { len: usize, max: usize },
    #[error("invalid kernel command line: {0}")]
    CmdlineInvalid(String),
    #[error("a VM needs at least one vCPU")]
    NoVcpus,
    #[error("{requested} vCPUs requested but KVM on this host allows at most {max}")]
    TooManyVcpus { requested: usize, max: usize },
    #[error("{vcpus} vCPUs configured but the topology has {topology}")]
    TopologyVcpus { vcpus: usize, topology: u32 },
    #[error("invalid topology: {0}")]
    Topology(#[from] ktstr_topology::TopologyError),
    #[error("cannot build the vCPU CPUID: {0}")]
    Cpuid(String),
    #[error("cannot build the topology's CPUID leaves: {0}")]
    CpuidTopology(#[from] crate::topology::CpuidError),
    #[error("cannot build ACPI tables: {0}")]
    Acpi(#[from] crate::topology::AcpiError),
    #[error("the VM deadline must be longer than zero")]
    ZeroDeadline,
    #[error("profile interval {interval:?} is shorter than the minimum {min:?}")]
    ProfileIntervalTooShort {
        interval: std::time::Duration,
        min: std::time::Duration,
    },
    #[error("raw guest image of {len} bytes at {addr:#x} does not fit in guest memory")]
    RawImageOutOfRange { addr: u64, len: usize },
    #[error("device at {base:#x} (+{len:#x}) overlaps another device")]
    DeviceOverlap { base: u64, len: u64 },
    #[error("KVM {op} failed: {source}")]
    Kvm {
        op: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("guest memory setup failed: {0}")]
    Memory(String),
    #[error("cannot start a vCPU thread: {0}")]
    Thread(io::Error),
    #[error("the VM can be run only once; build a new one")]
    AlreadyRun,
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

pub type Result<T> = std::result::Result<T, VmmError>;

/// Wraps a failed KVM ioctl with the operation that failed.
pub(crate) fn kvm_op(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
    move |source| VmmError::Kvm { op, source }
}

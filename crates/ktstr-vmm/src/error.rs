//! Typed errors for everything a caller can get wrong or a host can lack.
//!
//! One enum per phase of building and running a VM (configuration, host KVM,
//! guest image, VM setup, run, snapshot), so a message says where it failed;
//! [`VmmError`] wraps them and prefixes the phase.

use std::io;
use std::path::PathBuf;

use ktstr_topology::TopologyError;

use crate::snapshot::SnapshotError;
use crate::topology::{AcpiError, CpuidError};

/// Why a VM could not be built or run. Guest behaviour is never an error:
/// it is reported as an [`crate::ExitKind`] in the [`crate::Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// The configuration is invalid; found before any KVM or file access
    /// (or, for limits only the kernel image knows, while loading it).
    #[error("invalid VM configuration: {0}")]
    Config(#[from] ConfigError),
    /// The host's KVM is missing, inaccessible or lacks something.
    #[error("host KVM: {0}")]
    Host(#[from] HostError),
    /// The kernel, initramfs or raw image could not be loaded.
    #[error("loading the guest image: {0}")]
    Image(#[from] ImageError),
    /// Programming KVM and guest memory for a boot or a restore failed.
    #[error("setting up the VM: {0}")]
    Setup(#[from] SetupError),
    /// Starting or running the VM failed.
    #[error("running the VM: {0}")]
    Run(#[from] RunError),
    /// Taking, loading or restoring a snapshot failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// A configuration the VMM cannot honour.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no kernel image was configured")]
    NoKernel,
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
    CmdlineInvalid(CmdlineError),
    #[error("the snapshot COM1 marker must not be empty")]
    EmptySnapshotMarker,
    #[error("a VM needs at least one vCPU")]
    NoVcpus,
    #[error("{vcpus} vCPUs configured but the topology has {topology}")]
    TopologyVcpus { vcpus: usize, topology: u32 },
    #[error("invalid topology: {0}")]
    Topology(#[from] TopologyError),
    #[error("the VM deadline must be longer than zero")]
    ZeroDeadline,
    #[error("profile interval {interval:?} is shorter than the minimum {min:?}")]
    ProfileIntervalTooShort {
        interval: std::time::Duration,
        min: std::time::Duration,
    },
    #[error("device at {base:#x} (+{len:#x}) overlaps another device")]
    DeviceOverlap { base: u64, len: u64 },
}

/// Why a kernel command line is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    /// The kernel reads a NUL-terminated string.
    #[error("contains a NUL byte")]
    NulByte,
}

/// The host's KVM device, or a capability the VMM needs from it.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
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
    #[error("{requested} vCPUs requested but KVM on this host allows at most {max}")]
    TooManyVcpus { requested: usize, max: usize },
}

/// The guest image (kernel, initramfs, raw code) and where it goes.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
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
    #[error("raw guest image of {len} bytes at {addr:#x} does not fit in guest memory")]
    RawImageOutOfRange { addr: u64, len: usize },
}

/// Building the machine: KVM objects, CPUID, firmware tables, guest memory.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("KVM {op} failed: {source}")]
    Kvm {
        op: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("cannot build the vCPU CPUID: {0}")]
    Cpuid(#[from] VcpuCpuidError),
    #[error("cannot build the topology's CPUID leaves: {0}")]
    CpuidTopology(#[from] CpuidError),
    #[error("cannot build ACPI tables: {0}")]
    Acpi(#[from] AcpiError),
    #[error("guest memory setup failed: {0}")]
    Memory(#[from] MemoryError),
    #[error("MSR list of {entries} entries: {source}")]
    MsrList {
        entries: usize,
        source: vmm_sys_util::fam::Error,
    },
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Why a vCPU's CPUID list (host CPUID, masked, with the topology leaves
/// merged in) could not be built.
#[derive(Debug, thiserror::Error)]
pub enum VcpuCpuidError {
    #[error("vCPU {index} is outside the topology")]
    VcpuOutsideTopology { index: usize },
    #[error("unknown CPU vendor; topology leaves exist for Intel and AMD")]
    UnknownVendor,
    #[error("topology leaf {leaf:#x} has no merge rule")]
    NoMergeRule { leaf: u32 },
    #[error("{entries} entries: {source}")]
    TooManyEntries {
        entries: usize,
        source: vmm_sys_util::fam::Error,
    },
}

/// Mapping guest memory or writing the boot structures into it.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot map guest memory: {0}")]
    Map(#[from] vm_memory::mmap::FromRangesError),
    #[error("guest region at {addr:#x} has no host mapping: {source}")]
    HostAddress {
        addr: u64,
        source: vm_memory::GuestMemoryError,
    },
    /// `what` names the structure: "zero page", "page tables", ….
    #[error("{what}: {source}")]
    Write {
        what: &'static str,
        source: vm_memory::GuestMemoryError,
    },
    #[error("ACPI table at {addr:#x}: {source}")]
    AcpiTable {
        addr: u64,
        source: vm_memory::GuestMemoryError,
    },
    #[error("too many e820 entries ({entries}; the zero page holds {max})")]
    TooManyE820 { entries: usize, max: usize },
    #[error("MP table cannot describe {cpus} CPUs (APIC IDs are 8-bit)")]
    MpTableCpus { cpus: usize },
    #[error("MP table of {len} bytes overflows the reserved area")]
    MpTableOverflow { len: usize },
    #[error("cannot duplicate the snapshot file descriptor: {0}")]
    DupSnapshotFile(io::Error),
    #[error("cannot map the snapshot region at {addr:#x}: {source}")]
    MapSnapshotRegion {
        addr: u64,
        source: vm_memory::mmap::MmapRegionError,
    },
    #[error("region at {addr:#x} overflows")]
    RegionOverflows { addr: u64 },
    #[error("cannot assemble guest memory from its regions: {0}")]
    Regions(vm_memory::GuestRegionCollectionError),
}

/// Starting or running a built VM.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start a vCPU thread: {0}")]
    Thread(io::Error),
    #[error("the VM can be run only once; build a new one")]
    AlreadyRun,
}

pub type Result<T> = std::result::Result<T, VmmError>;

/// Leaf errors that `?` lifts straight into [`VmmError`] through their phase.
macro_rules! from_leaf {
    ($($leaf:ty => $phase:ident),* $(,)?) => {
        $(impl From<$leaf> for VmmError {
            fn from(e: $leaf) -> Self {
                $phase::from(e).into()
            }
        })*
    };
}

from_leaf! {
    TopologyError => ConfigError,
    VcpuCpuidError => SetupError,
    CpuidError => SetupError,
    AcpiError => SetupError,
    MemoryError => SetupError,
    io::Error => SetupError,
}

/// Wraps a failed KVM ioctl with the operation that failed.
pub(crate) fn kvm_op(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
    move |source| SetupError::Kvm { op, source }.into()
}

/// Wraps a failed guest-memory write with the structure being written.
pub(crate) fn memory_write(
    what: &'static str,
) -> impl Fn(vm_memory::GuestMemoryError) -> VmmError + Copy {
    move |source| MemoryError::Write { what, source }.into()
}

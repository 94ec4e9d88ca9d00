//! One interface over ktstr's VM backends, so the same guest, wire channel
//! and tests run on ktstr-vmm (KVM) and on QEMU (TCG where KVM is missing or
//! cannot run guest user space, as on software/nested KVM).
//!
//! Map: `choice` (which backend), `guest` (the [`Guest`] trait, [`BootSpec`],
//! [`Outcome`]), one adapter per backend: `vmm` ([`VmmGuest`]) and `qemu`
//! ([`QemuGuest`]), each with the one mapping of its backend's outcome.

use std::path::PathBuf;

mod choice;
pub mod death;
mod guest;
mod memory;
mod qemu;
mod vmm;

pub use choice::{BackendKind, Choice, choose, choose_from, host_kvm};
pub use death::GuestDeath;
pub use guest::{BootSpec, Exit, Guest, Outcome};
pub use ktstr_qemu::KvmKind;
pub use memory::PhysMemory;
pub use qemu::QemuGuest;
pub use vmm::{VmmGuest, snapshot_key as vmm_snapshot_key};

/// Why a guest could not be started or its run could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("unknown KTSTR_BACKEND value {0:?}: expected kvm, qemu-tcg, qemu-kvm or auto")]
    UnknownBackend(String),
    #[error("ktstr-vmm: {0}")]
    Vmm(#[from] ktstr_vmm::VmmError),
    #[error("QEMU: {0}")]
    Qemu(#[from] ktstr_qemu::Error),
    #[error("ktstr-vmm: {0}")]
    VcpuRead(#[from] ktstr_vmm::VcpuReadError),
    #[error("guest memory read of {len} bytes at {addr:#x} failed: {source}")]
    Memory {
        addr: u64,
        len: usize,
        source: MemoryReadError,
    },
    /// The same on both backends, so a caller can rebuild the snapshot.
    #[error(
        "the snapshot in {dir} was taken from a different machine (kernel, initramfs, command line, shape or memory differ)"
    )]
    SnapshotKeyMismatch { dir: PathBuf },
    #[error("the VM thread ended without an outcome")]
    Lost,
}

impl BackendError {
    /// A failed read of `len` bytes at `addr`, from either backend's error.
    pub(crate) fn memory(addr: u64, len: usize, source: impl Into<MemoryReadError>) -> Self {
        BackendError::Memory {
            addr,
            len,
            source: source.into(),
        }
    }
}

/// Why a backend could not read guest memory: each backend's own error.
#[derive(Debug, thiserror::Error)]
pub enum MemoryReadError {
    #[error(transparent)]
    Vmm(#[from] vm_memory::GuestMemoryError),
    #[error(transparent)]
    Qemu(#[from] ktstr_qemu::Error),
}

/// Boots `spec` on `kind` (or resumes [`BootSpec::restore_from`]).
pub fn boot(kind: BackendKind, spec: &BootSpec) -> Result<Box<dyn Guest>, BackendError> {
    match kind {
        BackendKind::Vmm => vmm::boot(spec),
        BackendKind::QemuTcg => qemu::boot(spec, ktstr_qemu::Accel::Tcg),
        BackendKind::QemuKvm => qemu::boot(spec, ktstr_qemu::Accel::Kvm),
    }
}

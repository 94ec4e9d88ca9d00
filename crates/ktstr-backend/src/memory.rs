//! Guest-physical memory as a handle any thread can keep: what the
//! host-side monitor samples from while the test drives the guest.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::BackendError;

/// Reads guest-physical memory without pausing the guest. Each backend's
/// handle shares its RAM mapping, so it stays readable (the last contents)
/// after the VM ends and costs nothing to clone into an `Arc`.
pub trait PhysMemory: Send + Sync {
    /// Fills `buf` from guest-physical `addr`; the copy races with the guest.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), BackendError>;
}

/// QEMU: the host's read-only mapping of the memfd-backed RAM.
impl PhysMemory for ktstr_qemu::GuestMemoryView {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        let len = buf.len();
        ktstr_qemu::GuestMemoryView::read(self, addr, buf)
            .map_err(|e| BackendError::memory(addr, len, e))
    }
}

/// ktstr-vmm: the VM's own guest memory regions.
impl PhysMemory for GuestMemoryMmap {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        let len = buf.len();
        self.read_slice(buf, GuestAddress(addr))
            .map_err(|e| BackendError::memory(addr, len, e))
    }
}

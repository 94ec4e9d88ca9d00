//! Capturing a parked VM: finish pending I/O, then read every piece of state.

use std::sync::atomic::{AtomicU8, Ordering};

use kvm_ioctls::VcpuFd;
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use super::SnapshotError;
use super::machine::{MachineState, Meta};
use super::vcpu_state::{VcpuState, readable_msrs};
use super::vm_state::VmState;
use crate::error::MemoryError;
use crate::vm::Vm;

/// A vCPU that left `KVM_RUN` on a port or MMIO exit has not finished that
/// instruction: KVM completes it on the next `KVM_RUN`. Entering with
/// `immediate_exit` set completes it and returns at once (KVM's documented
/// way to quiesce before saving), so the saved RIP is past the access.
fn complete_pending_io(vcpu: &mut VcpuFd) -> Result<(), SnapshotError> {
    let flag: *mut u8 = &mut vcpu.get_kvm_run().immediate_exit;
    let flag = flag.cast::<AtomicU8>();
    // SAFETY: the pointer targets this vCPU's live kvm_run mapping; no other
    // thread runs this vCPU (all vCPU threads were joined).
    unsafe { (*flag).store(1, Ordering::SeqCst) };
    let result = vcpu.run().map(|_| ()).map_err(|e| e.errno());
    // SAFETY: as above.
    unsafe { (*flag).store(0, Ordering::SeqCst) };
    match result {
        Err(libc::EINTR) | Err(libc::EAGAIN) => Ok(()),
        Ok(()) => Err(SnapshotError::Malformed(
            "a vCPU exited instead of completing its pending I/O".into(),
        )),
        Err(errno) => Err(SnapshotError::Kvm {
            op: "KVM_RUN (immediate exit)",
            source: kvm_ioctls::Error::new(errno),
        }),
    }
}

pub(crate) fn capture(vm: &mut Vm, key: &str) -> Result<MachineState, SnapshotError> {
    for vcpu in vm.vcpus.iter_mut() {
        complete_pending_io(vcpu)?;
    }
    let first = vm
        .vcpus
        .first()
        .ok_or_else(|| SnapshotError::Malformed("a VM without vCPUs".into()))?;
    let msr_indices = readable_msrs(&vm.kvm, first)?;
    let vcpus = vm
        .vcpus
        .iter()
        .zip(&vm.cpuids)
        .map(|(v, cpuid)| VcpuState::capture(v, &msr_indices, cpuid))
        .collect::<Result<Vec<_>, _>>()?;
    let vm_state = VmState::capture(&vm.vm_fd)?;
    let pio = vm
        .pio
        .save_states()
        .map_err(|base| SnapshotError::UnsupportedDevice { base })?;
    let mmio = vm
        .mmio
        .save_states()
        .map_err(|base| SnapshotError::UnsupportedDevice { base })?;
    let regions = vm
        .memory
        .iter()
        .map(|r| (r.start_addr().0, r.len()))
        .collect();
    Ok(MachineState {
        meta: Meta {
            key: key.to_string(),
            memory_mib: vm.config.memory_mib,
            regions,
            compat_active: vm.compat.active,
            cmdline: vm.cmdline.clone(),
            vcpu_ids: (0..vm.config.vcpus)
                .map(|i| crate::platform::vcpu_id(&vm.config, i))
                .collect::<crate::error::Result<Vec<_>>>()
                .map_err(|e| SnapshotError::Malformed(format!("vCPU ids: {e}")))?,
        },
        vm: vm_state,
        vcpus,
        pio,
        mmio,
    })
}

/// Host views of every guest RAM region, in order.
pub(crate) fn memory_slices(memory: &GuestMemoryMmap) -> Result<Vec<&[u8]>, SnapshotError> {
    memory
        .iter()
        .map(|r| {
            let host = memory.get_host_address(r.start_addr()).map_err(|source| {
                MemoryError::HostAddress {
                    addr: r.start_addr().0,
                    source,
                }
            })?;
            // SAFETY: the region is mapped for `len` bytes and outlives the
            // borrow of `memory`; no vCPU runs while the snapshot is written.
            Ok(unsafe { std::slice::from_raw_parts(host.cast_const(), r.len() as usize) })
        })
        .collect()
}

//! The machine description a kernel boots with, derived from the configured
//! shape: each vCPU's KVM id (= its initial APIC ID) and CPUID, and the
//! firmware tables (ACPI for a topology, an MP table otherwise).

use kvm_bindings::CpuId;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::arch::x86_64::{cpuid, cpuid_topology, mptable};
use crate::config::VmConfig;
use crate::error::{MemoryError, Result, VcpuCpuidError};
use crate::layout;
use crate::topology::{VirtioMmioDevice, build_acpi, cpuid_for_vcpu};

/// KVM vCPU id of vCPU `index`: its topology APIC ID, else `index`.
pub(crate) fn vcpu_id(config: &VmConfig, index: usize) -> Result<u64> {
    match &config.topology {
        Some(t) => t
            .apic_id(index as u32)
            .map(u64::from)
            .ok_or_else(|| VcpuCpuidError::VcpuOutsideTopology { index }.into()),
        None => Ok(index as u64),
    }
}

/// CPUID of vCPU `index`: the host's, masked, with this vCPU's APIC ID and,
/// with a topology, its topology leaves for the host's vendor.
pub(crate) fn vcpu_cpuid(
    config: &VmConfig,
    base: &CpuId,
    index: usize,
    masked: &[cpuid::FeatureBit],
) -> Result<CpuId> {
    let Some(topo) = &config.topology else {
        return Ok(cpuid::for_vcpu(base, index, config.vcpus, masked));
    };
    let apic = vcpu_id(config, index)? as usize;
    let patched = cpuid::for_vcpu(base, apic, config.vcpus, masked);
    let vendor = cpuid_topology::vendor(base).ok_or(VcpuCpuidError::UnknownVendor)?;
    let leaves = cpuid_for_vcpu(topo, vendor, index as u32)?;
    cpuid_topology::merge(&patched, &leaves)
}

/// The virtio-mmio console as ACPI describes it.
const VIRTIO_CONSOLE: VirtioMmioDevice = VirtioMmioDevice {
    base: layout::VIRTIO_MMIO_BASE,
    gsi: layout::VIRTIO_CONSOLE_IRQ,
};

/// Writes the firmware tables the kernel discovers CPUs (and nodes) from;
/// with ACPI they also describe the virtio-mmio console when `console`.
pub(crate) fn write_tables(
    config: &VmConfig,
    memory: &GuestMemoryMmap,
    console: bool,
) -> Result<()> {
    let Some(topo) = &config.topology else {
        return mptable::write(memory, config.vcpus);
    };
    let virtio: &[VirtioMmioDevice] = if console { &[VIRTIO_CONSOLE] } else { &[] };
    let tables = build_acpi(topo, config.memory_mib, virtio)?;
    for (addr, bytes) in &tables.blobs {
        memory
            .write_slice(bytes, GuestAddress(*addr))
            .map_err(|source| MemoryError::AcpiTable {
                addr: *addr,
                source,
            })?;
    }
    Ok(())
}

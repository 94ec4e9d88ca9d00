//! How ktstr-vmm expresses a [`ktstr_topology::NumaTopology`] to the guest:
//! the topology-bearing CPUID leaves, a decoder that reads them back the way
//! Linux does, and the ACPI tables (MADT, SRAT, SLIT). The shape itself and
//! its APIC ID layout live in ktstr-topology.

mod cpuid;
mod decode;

pub use crate::arch::x86_64::acpi::{
    ACPI_TABLES_END, AcpiError, AcpiTables, RSDP_ADDR, VirtioMmioDevice, build_acpi,
};
pub use cpuid::{CpuidLeaf, Vendor, for_all as cpuid_for_all, for_vcpu as cpuid_for_vcpu};
pub use decode::{Decoded, decode};

use ktstr_topology::TopologyError;

/// Why CPUID leaves could not be built for a topology or decoded back.
#[derive(Debug, thiserror::Error)]
pub enum CpuidError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("vCPU {index} does not exist; the topology has {vcpus}")]
    NoSuchVcpu { index: u32, vcpus: u32 },
    #[error("CPUID field {field} cannot hold {value} (at most {max})")]
    Limit {
        field: &'static str,
        value: u64,
        max: u64,
    },
    #[error("vCPU {vcpu} lacks CPUID leaf {leaf:#x} subleaf {subleaf}")]
    MissingLeaf {
        vcpu: usize,
        leaf: u32,
        subleaf: u32,
    },
    #[error("CPUID leaves are inconsistent: {0}")]
    Inconsistent(String),
}

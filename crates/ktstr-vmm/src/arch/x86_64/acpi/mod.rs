//! ACPI tables describing a topology: RSDP, XSDT, a hardware-reduced FADT,
//! a minimal DSDT, MADT, SRAT and SLIT. They live in the BIOS area
//! (0xe0000..1 MiB), inside the range the e820 map already reserves and
//! where Linux scans for the RSDP.

mod dsdt;
mod fadt;
mod madt;
pub(crate) mod sdt;
mod srat;

pub use dsdt::VirtioMmioDevice;
use ktstr_topology::{NumaTopology, TopologyError};

use crate::layout::{self, MIB};

pub const RSDP_ADDR: u64 = 0xe_0000;
/// Tables follow the RSDP up to the end of low memory.
pub const ACPI_TABLES_END: u64 = layout::HIMEM_START;
const TABLE_ALIGN: u64 = 16;

const _: () = assert!(layout::EBDA_START + 0x400 <= RSDP_ADDR);

#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("guest memory of {mib} MiB exceeds the supported maximum of {max_mib} MiB")]
    MemoryTooLarge { mib: u64, max_mib: u64 },
    #[error("ACPI tables end at {end:#x}, past the {limit:#x} limit; the topology is too large")]
    TooLarge { end: u64, limit: u64 },
}

/// Tables ready to copy into guest memory; `blobs` do not overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiTables {
    pub rsdp_addr: u64,
    /// `(guest address, bytes)`, RSDP first.
    pub blobs: Vec<(u64, Vec<u8>)>,
}

impl AcpiTables {
    /// The table whose signature is `sig` (`b"RSD "` for the RSDP).
    pub fn table(&self, sig: &[u8; 4]) -> Option<&[u8]> {
        self.blobs
            .iter()
            .find(|(_, b)| b.starts_with(sig))
            .map(|(_, b)| b.as_slice())
    }
}

/// Builds the tables for `topo` with `memory_mib` of guest RAM laid out as
/// [`layout::ram_ranges`] does, describing the `virtio` devices in the DSDT.
pub fn build_acpi(
    topo: &NumaTopology,
    memory_mib: u64,
    virtio: &[VirtioMmioDevice],
) -> Result<AcpiTables, AcpiError> {
    topo.check()?;
    if memory_mib > layout::MAX_MEMORY_MIB {
        return Err(AcpiError::MemoryTooLarge {
            mib: memory_mib,
            max_mib: layout::MAX_MEMORY_MIB,
        });
    }
    let node_mib = topo.node_memory_mib(memory_mib)?;
    let ranges = srat::memory_ranges(&node_mib, memory_mib * MIB);

    let align = |a: u64| a.next_multiple_of(TABLE_ALIGN);
    let mut next = align(RSDP_ADDR + sdt::RSDP_LEN as u64);
    let mut place = |bytes: Vec<u8>| {
        let at = next;
        next = align(at + bytes.len() as u64);
        (at, bytes)
    };
    let dsdt = place(dsdt::dsdt(virtio));
    let fadt = place(fadt::fadt(dsdt.0));
    let madt = place(madt::madt(topo));
    let srat = place(srat::srat(topo, &ranges));
    let slit = place(srat::slit(topo));
    let xsdt = place(sdt::xsdt(&[fadt.0, madt.0, srat.0, slit.0]));
    let end = xsdt.0 + xsdt.1.len() as u64;
    if end > ACPI_TABLES_END {
        return Err(AcpiError::TooLarge {
            end,
            limit: ACPI_TABLES_END,
        });
    }
    let rsdp = (RSDP_ADDR, sdt::rsdp(xsdt.0));
    Ok(AcpiTables {
        rsdp_addr: RSDP_ADDR,
        blobs: vec![rsdp, xsdt, fadt, dsdt, madt, srat, slit],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktstr_topology::Topology;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn tables_are_checksummed_and_disjoint() {
        let topo = Topology::new(2, 4, 2, 2).to_numa().expect("numa");
        let t = build_acpi(&topo, 512, &[]).expect("acpi");
        for (addr, bytes) in &t.blobs {
            assert_eq!(sum(bytes), 0, "{:?}", &bytes[..4]);
            assert!(*addr >= RSDP_ADDR && addr + bytes.len() as u64 <= ACPI_TABLES_END);
        }
        let mut spans: Vec<(u64, u64)> = t
            .blobs
            .iter()
            .map(|(a, b)| (*a, a + b.len() as u64))
            .collect();
        spans.sort();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0));
        let madt = t.table(b"APIC").expect("madt");
        // 36 header + 8 + 16 LAPIC + 16 x2APIC + IOAPIC 12 + ISO 10.
        assert_eq!(madt.len(), 36 + 8 + 16 * 8 + 16 * 16 + 12 + 10);
    }

    #[test]
    fn too_many_vcpus_do_not_fit() {
        let topo = Topology::new(1, 64, 64, 2).to_numa().expect("numa");
        assert!(matches!(
            build_acpi(&topo, 1024, &[]),
            Err(AcpiError::TooLarge { .. })
        ));
        let small = Topology::new(1, 1, 1, 1).to_numa().expect("numa");
        assert!(matches!(
            build_acpi(&small, u64::MAX, &[]),
            Err(AcpiError::MemoryTooLarge { .. })
        ));
    }
}

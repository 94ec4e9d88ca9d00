//! Guest physical memory map. Everything the VMM writes below 1 MiB has a
//! fixed home here so the loader, boot structures and tests agree.

use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::error::{MemoryError, Result};

pub const MIB: u64 = 1 << 20;
pub const MIN_MEMORY_MIB: u64 = 4;
/// A limit on what one test VM may ask for; far above any realistic need.
pub const MAX_MEMORY_MIB: u64 = 1 << 20;

pub const GDT_ADDR: u64 = 0x500;
pub const IDT_ADDR: u64 = 0x600;
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
pub const PML4_ADDR: u64 = 0x9000;
pub const PDPT_ADDR: u64 = 0xa000;
/// Four page directories mapping the first 4 GiB with 2 MiB pages.
pub const PD_ADDR: u64 = 0xb000;
pub const IDENTITY_MAPPED_GIB: u64 = 4;
pub const CMDLINE_ADDR: u64 = 0x20000;
/// Raw-image vCPU stacks grow down from here, 1 KiB apart per vCPU.
pub const RAW_STACK_TOP: u64 = 0x80000;
pub const RAW_STACK_SIZE: u64 = 0x400;
/// The MP table lives at the start of the (reserved) EBDA.
pub const EBDA_START: u64 = 0x9fc00;
pub const HIMEM_START: u64 = 0x10_0000;
/// KVM needs three pages for the real-mode TSS and one for the identity map
/// (unused in long mode, but KVM requires the addresses to be set).
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;
/// Device MMIO window below 4 GiB; RAM beyond it continues at 4 GiB.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// The virtio-mmio console's registers and its IOAPIC pin.
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
pub const VIRTIO_CONSOLE_IRQ: u32 = 5;
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
pub const LAPIC_ADDR: u64 = 0xfee0_0000;

// The boot structures below 1 MiB must not overlap (checked at compile time).
const _: () = assert!(GDT_ADDR + 0x100 <= IDT_ADDR && IDT_ADDR + 0x1000 <= ZERO_PAGE_ADDR);
const _: () = assert!(
    ZERO_PAGE_ADDR + 0x1000 <= PML4_ADDR && PD_ADDR + IDENTITY_MAPPED_GIB * 0x1000 <= CMDLINE_ADDR
);
const _: () = assert!(
    CMDLINE_ADDR + 0x1000 <= RAW_STACK_TOP - 255 * RAW_STACK_SIZE && RAW_STACK_TOP <= EBDA_START
);

/// RAM ranges `(start, len)` for `mem_bytes` of guest memory.
pub fn ram_ranges(mem_bytes: u64) -> Vec<(u64, u64)> {
    if mem_bytes <= MMIO_GAP_START {
        vec![(0, mem_bytes)]
    } else {
        vec![
            (0, MMIO_GAP_START),
            (MMIO_GAP_END, mem_bytes - MMIO_GAP_START),
        ]
    }
}

/// Highest RAM address below the MMIO gap (exclusive).
pub fn low_ram_end(mem_bytes: u64) -> u64 {
    mem_bytes.min(MMIO_GAP_START)
}

/// Maps anonymous guest memory of `mib` MiB.
pub fn create_memory(mib: u64) -> Result<GuestMemoryMmap> {
    let ranges: Vec<(GuestAddress, usize)> = ram_ranges(mib * MIB)
        .into_iter()
        .map(|(start, len)| (GuestAddress(start), len as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).map_err(|e| MemoryError::Map(e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_memory_is_one_range_large_memory_skips_the_gap() {
        assert_eq!(ram_ranges(256 * MIB), vec![(0, 256 * MIB)]);
        assert_eq!(
            ram_ranges(4096 * MIB),
            vec![(0, MMIO_GAP_START), (MMIO_GAP_END, 1024 * MIB)]
        );
        assert_eq!(low_ram_end(4096 * MIB), MMIO_GAP_START);
    }
}

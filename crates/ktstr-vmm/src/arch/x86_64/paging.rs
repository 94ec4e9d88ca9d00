//! Identity page tables for the first 4 GiB (2 MiB pages): enough for the
//! kernel, zero page, command line and initramfs until Linux builds its own.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::error::{Result, memory_write};
use crate::layout::{IDENTITY_MAPPED_GIB, PD_ADDR, PDPT_ADDR, PML4_ADDR};

const PRESENT_WRITABLE: u64 = 0x3;
const HUGE_PAGE: u64 = 0x80;
const PAGE_2M: u64 = 2 << 20;

pub fn write_identity_map(mem: &GuestMemoryMmap) -> Result<()> {
    let err = memory_write("page tables");
    mem.write_obj(PDPT_ADDR | PRESENT_WRITABLE, GuestAddress(PML4_ADDR))
        .map_err(err)?;
    for gib in 0..IDENTITY_MAPPED_GIB {
        let pd = PD_ADDR + gib * 0x1000;
        mem.write_obj(pd | PRESENT_WRITABLE, GuestAddress(PDPT_ADDR + gib * 8))
            .map_err(err)?;
        for i in 0..512u64 {
            let phys = (gib * 512 + i) * PAGE_2M;
            mem.write_obj(
                phys | PRESENT_WRITABLE | HUGE_PAGE,
                GuestAddress(pd + i * 8),
            )
            .map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout;

    /// Walks the tables the way the MMU would.
    fn translate(mem: &GuestMemoryMmap, va: u64) -> u64 {
        let pml4e: u64 = mem
            .read_obj(GuestAddress(PML4_ADDR + ((va >> 39) & 0x1ff) * 8))
            .expect("pml4e");
        let pdpte: u64 = mem
            .read_obj(GuestAddress((pml4e & !0xfff) + ((va >> 30) & 0x1ff) * 8))
            .expect("pdpte");
        let pde: u64 = mem
            .read_obj(GuestAddress((pdpte & !0xfff) + ((va >> 21) & 0x1ff) * 8))
            .expect("pde");
        assert_eq!(pde & HUGE_PAGE, HUGE_PAGE);
        (pde & !0x1f_ffff & !HUGE_PAGE & !PRESENT_WRITABLE) | (va & 0x1f_ffff)
    }

    #[test]
    fn maps_identity_up_to_4_gib() {
        let mem = layout::create_memory(16).expect("memory");
        write_identity_map(&mem).expect("tables");
        for va in [
            0x0,
            0x1234,
            0x100_0000,
            0x7fff_f123,
            0xfee0_0000,
            0xffff_ffff,
        ] {
            assert_eq!(translate(&mem, va), va);
        }
    }
}

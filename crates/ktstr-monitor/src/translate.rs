//! Guest-virtual to guest-physical: the kernel image (KASLR-shifted), the
//! direct map (`page_offset_base`), and otherwise a walk of the kernel's
//! page tables (per-CPU areas and vmalloc space).

use crate::memory::le_uint;
use crate::{GuestMemoryReader, ReadError};

/// x86-64 page-table entry bits (architecture, not kernel, constants).
const PRESENT: u64 = 1;
const PAGE_SIZE_BIT: u64 = 1 << 7;
/// Physical frame bits 12..=51 of an entry.
const FRAME_MASK: u64 = 0x000f_ffff_ffff_f000;
const PAGE_SIZE: u64 = 4096;

/// How many levels the guest's page tables have (CR4.LA57).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingLevels {
    Four,
    Five,
}

impl PagingLevels {
    /// Index shifts from the top level down.
    fn shifts(self) -> &'static [u32] {
        match self {
            PagingLevels::Four => &[39, 30, 21, 12],
            PagingLevels::Five => &[48, 39, 30, 21, 12],
        }
    }
}

/// Where the running kernel put itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressSpace {
    /// Runtime virtual `[start, end)` of the kernel image.
    pub image: (u64, u64),
    /// Physical address of the image's first byte (`_text`).
    pub image_phys: u64,
    /// Direct map `[page_offset_base, vmalloc_base)`.
    pub direct_map: (u64, u64),
    /// Physical address of the top-level page table.
    pub top_table: u64,
    pub levels: PagingLevels,
}

impl AddressSpace {
    /// Physical address of a kernel-image virtual address, without reading
    /// memory; `None` outside the image.
    pub fn image_to_phys(&self, va: u64) -> Option<u64> {
        let (start, end) = self.image;
        (start..end)
            .contains(&va)
            .then(|| va - start + self.image_phys)
    }

    /// Physical address of `va`.
    pub fn to_phys(&self, mem: &dyn GuestMemoryReader, va: u64) -> Result<u64, ReadError> {
        if let Some(pa) = self.image_to_phys(va) {
            return Ok(pa);
        }
        let (dm_start, dm_end) = self.direct_map;
        if (dm_start..dm_end).contains(&va) {
            return Ok(va - dm_start);
        }
        self.walk(mem, va)
    }

    /// Walks the page tables from the top table down to `va`'s page.
    pub fn walk(&self, mem: &dyn GuestMemoryReader, va: u64) -> Result<u64, ReadError> {
        let mut table = self.top_table;
        let shifts = self.levels.shifts();
        for (depth, &shift) in shifts.iter().enumerate() {
            let level = (shifts.len() - depth) as u8;
            let index = (va >> shift) & 0x1ff;
            let mut e = [0u8; 8];
            mem.read_phys(table + index * 8, &mut e)?;
            let entry = le_uint(&e);
            if entry & PRESENT == 0 {
                return Err(ReadError::NotMapped { va, level });
            }
            // A 1 GiB (level 3) or 2 MiB (level 2) page ends the walk early.
            let leaf = shift == 12 || ((shift == 30 || shift == 21) && entry & PAGE_SIZE_BIT != 0);
            if leaf {
                let in_page = (1u64 << shift) - 1;
                return Ok((entry & FRAME_MASK & !in_page) | (va & in_page));
            }
            table = entry & FRAME_MASK;
        }
        Err(ReadError::NotKernel { va })
    }

    /// Reads guest-virtual memory, translating each page separately (a
    /// range in vmalloc space need not be physically contiguous).
    pub fn read_virt(
        &self,
        mem: &dyn GuestMemoryReader,
        va: u64,
        buf: &mut [u8],
    ) -> Result<(), ReadError> {
        let mut done = 0;
        while done < buf.len() {
            let at = va.wrapping_add(done as u64);
            let in_page = (PAGE_SIZE - at % PAGE_SIZE) as usize;
            let n = in_page.min(buf.len() - done);
            let pa = self.to_phys(mem, at)?;
            mem.read_phys(pa, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Reads a little-endian integer of `size` bytes (1, 2, 4 or 8).
    pub fn read_uint(
        &self,
        mem: &dyn GuestMemoryReader,
        va: u64,
        size: usize,
    ) -> Result<u64, ReadError> {
        let mut b = [0u8; 8];
        let n = size.min(8);
        self.read_virt(mem, va, &mut b[..n])?;
        Ok(le_uint(&b[..n]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::fake::VecMemory;

    const IMAGE: u64 = 0xffff_ffff_8a00_0000;

    fn space(levels: PagingLevels) -> AddressSpace {
        AddressSpace {
            image: (IMAGE, IMAGE + 0x10_0000),
            image_phys: 0x20_0000,
            direct_map: (0xffff_8880_0000_0000, 0xffff_c900_0000_0000),
            top_table: 0x1000,
            levels,
        }
    }

    /// Index of `va` at the level whose shift is `shift`.
    fn idx(va: u64, shift: u32) -> u64 {
        (va >> shift) & 0x1ff
    }

    #[test]
    fn image_and_direct_map_translate_without_reading_memory() {
        let s = space(PagingLevels::Four);
        let empty = VecMemory::new(0);
        assert_eq!(s.to_phys(&empty, IMAGE + 0x1234).ok(), Some(0x20_1234));
        assert_eq!(
            s.to_phys(&empty, 0xffff_8880_0123_4567).ok(),
            Some(0x123_4567)
        );
        assert_eq!(
            s.image_to_phys(IMAGE + 0x10_0000),
            None,
            "one past the image"
        );
    }

    #[test]
    fn four_level_walk_to_a_4k_page_and_a_2m_page() {
        let s = space(PagingLevels::Four);
        let mut m = VecMemory::new(0x10_0000);
        let va = 0xffff_c900_0012_3456u64; // vmalloc space
        // PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000 -> page 0x8_0000.
        m.put_u64(0x1000 + idx(va, 39) * 8, 0x2000 | PRESENT);
        m.put_u64(0x2000 + idx(va, 30) * 8, 0x3000 | PRESENT);
        m.put_u64(0x3000 + idx(va, 21) * 8, 0x4000 | PRESENT);
        // NX (bit 63) and flags are not part of the frame.
        m.put_u64(
            0x4000 + idx(va, 12) * 8,
            0x8_0000 | PRESENT | 1 << 63 | 0x60,
        );
        assert_eq!(s.to_phys(&m, va).ok(), Some(0x8_0456));

        // A 2 MiB page in the same PD.
        let big = va + 0x20_0000;
        m.put_u64(
            0x3000 + idx(big, 21) * 8,
            0x40_0000 | PRESENT | PAGE_SIZE_BIT,
        );
        assert_eq!(s.to_phys(&m, big).ok(), Some(0x40_0000 | (big & 0x1f_ffff)));

        // Not present at the PDPT: named as level 3.
        let hole = va + (1 << 30);
        assert!(matches!(
            s.to_phys(&m, hole),
            Err(ReadError::NotMapped { level: 3, .. })
        ));
    }

    #[test]
    fn five_level_walk_uses_the_extra_top_level_and_1g_pages() {
        let s = space(PagingLevels::Five);
        let mut m = VecMemory::new(0x1_0000);
        let va = 0xff11_0000_4567_89abu64;
        m.put_u64(0x1000 + idx(va, 48) * 8, 0x2000 | PRESENT);
        m.put_u64(0x2000 + idx(va, 39) * 8, 0x3000 | PRESENT);
        m.put_u64(
            0x3000 + idx(va, 30) * 8,
            0x8000_0000 | PRESENT | PAGE_SIZE_BIT,
        );
        assert_eq!(s.walk(&m, va).ok(), Some(0x8000_0000 | (va & 0x3fff_ffff)));
        // The same tables read as 4-level index differently: not mapped.
        assert!(space(PagingLevels::Four).walk(&m, va).is_err());
    }

    #[test]
    fn a_read_across_a_page_boundary_follows_each_page() {
        let s = space(PagingLevels::Four);
        let mut m = VecMemory::new(0x10_0000);
        let va = 0xffff_c900_0000_0ffcu64;
        // Two consecutive virtual pages on physical pages in reverse order.
        m.put_u64(0x1000 + idx(va, 39) * 8, 0x2000 | PRESENT);
        m.put_u64(0x2000 + idx(va, 30) * 8, 0x3000 | PRESENT);
        m.put_u64(0x3000 + idx(va, 21) * 8, 0x4000 | PRESENT);
        m.put_u64(0x4000 + idx(va, 12) * 8, 0x9000 | PRESENT);
        m.put_u64(0x4000 + idx(va + 4, 12) * 8, 0x8000 | PRESENT);
        m.put(0x9ffc, &[1, 2, 3, 4]);
        m.put(0x8000, &[5, 6, 7, 8]);
        let mut buf = [0u8; 8];
        s.read_virt(&m, va, &mut buf).expect("read");
        assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(s.read_uint(&m, va + 2, 4).ok(), Some(0x0605_0403));
    }
}

//! The Linux zero page (`struct boot_params`): e820 map, command line,
//! initramfs location and the setup header, as the 64-bit boot protocol wants.

use linux_loader::loader::bootparam::{boot_params, setup_header};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};

use crate::error::{MemoryError, Result, memory_write};
use crate::layout;

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT: u32 = 0x0100_0000;

#[derive(Clone, Copy, Default)]
#[repr(transparent)]
struct ZeroPage(boot_params);
// SAFETY: boot_params is a plain C struct of integers and arrays of integers;
// any byte pattern is a valid value.
unsafe impl ByteValued for ZeroPage {}

pub struct ZeroPageInputs {
    pub mem_bytes: u64,
    pub cmdline_len: usize,
    pub initramfs: Option<(u64, u64)>,
    pub setup_header: Option<setup_header>,
}

/// Builds and writes the zero page at [`layout::ZERO_PAGE_ADDR`].
pub fn write_zero_page(mem: &GuestMemoryMmap, input: &ZeroPageInputs) -> Result<()> {
    let hdr = match input.setup_header {
        Some(h) => h,
        None => setup_header {
            boot_flag: KERNEL_BOOT_FLAG_MAGIC,
            header: KERNEL_HDR_MAGIC,
            kernel_alignment: KERNEL_MIN_ALIGNMENT,
            ..Default::default()
        },
    };
    let mut params = boot_params {
        hdr,
        ..Default::default()
    };
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.cmd_line_ptr = layout::CMDLINE_ADDR as u32;
    params.hdr.cmdline_size = input.cmdline_len as u32;
    if let Some((addr, size)) = input.initramfs {
        params.hdr.ramdisk_image = addr as u32;
        params.hdr.ramdisk_size = size as u32;
    }
    let mut entries = vec![
        (0, layout::EBDA_START, E820_RAM),
        (
            layout::EBDA_START,
            layout::HIMEM_START - layout::EBDA_START,
            E820_RESERVED,
        ),
    ];
    // Everything below 1 MiB is described above; RAM proper starts at HIMEM.
    for (start, len) in layout::ram_ranges(input.mem_bytes) {
        let (start, end) = (start.max(layout::HIMEM_START), start + len);
        if end > start {
            entries.push((start, end - start, E820_RAM));
        }
    }
    if entries.len() > params.e820_table.len() {
        return Err(MemoryError::TooManyE820 {
            entries: entries.len(),
            max: params.e820_table.len(),
        }
        .into());
    }
    for (slot, (addr, size, type_)) in params.e820_table.iter_mut().zip(&entries) {
        slot.addr = *addr;
        slot.size = *size;
        slot.r#type = *type_;
    }
    params.e820_entries = entries.len() as u8;
    mem.write_obj(ZeroPage(params), GuestAddress(layout::ZERO_PAGE_ADDR))
        .map_err(memory_write("zero page"))
}

/// Writes the NUL-terminated command line at [`layout::CMDLINE_ADDR`].
pub fn write_cmdline(mem: &GuestMemoryMmap, cmdline: &str) -> Result<()> {
    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.push(0);
    mem.write_slice(&bytes, GuestAddress(layout::CMDLINE_ADDR))
        .map_err(memory_write("command line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(mem_mib: u64) -> boot_params {
        let mem = layout::create_memory(mem_mib).expect("memory");
        let input = ZeroPageInputs {
            mem_bytes: mem_mib * layout::MIB,
            cmdline_len: 10,
            initramfs: Some((0x200_0000, 4096)),
            setup_header: None,
        };
        write_zero_page(&mem, &input).expect("zero page");
        let page: ZeroPage = mem
            .read_obj(GuestAddress(layout::ZERO_PAGE_ADDR))
            .expect("read");
        page.0
    }

    fn e820(p: &boot_params) -> Vec<(u64, u64, u32)> {
        p.e820_table[..p.e820_entries as usize]
            .iter()
            .map(|e| (e.addr, e.size, e.r#type))
            .collect()
    }

    #[test]
    fn e820_covers_low_memory_and_himem() {
        let p = read_back(256);
        assert_eq!(
            e820(&p),
            vec![
                (0, 0x9fc00, 1),
                (0x9fc00, 0x60400, 2),
                (0x10_0000, 255 * layout::MIB, 1)
            ]
        );
        assert_eq!({ p.hdr.ramdisk_image }, 0x200_0000);
        assert_eq!({ p.hdr.header }, KERNEL_HDR_MAGIC);
    }

    #[test]
    fn e820_skips_the_mmio_gap() {
        let p = read_back(4096);
        let gap = layout::MMIO_GAP_END - layout::MMIO_GAP_START;
        assert_eq!(
            e820(&p)[2..],
            [
                (0x10_0000, layout::MMIO_GAP_START - 0x10_0000, 1),
                (layout::MMIO_GAP_END, gap, 1)
            ]
        );
    }
}

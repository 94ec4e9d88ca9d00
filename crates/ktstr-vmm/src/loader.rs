//! Puts the guest image (vmlinux, bzImage or raw code) and the initramfs
//! into guest memory and reports where the boot vCPU must start.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::error::{ConfigError, ImageError, Result};
use crate::layout;

/// Offset of the 64-bit entry point (`startup_64`) inside a bzImage's
/// protected-mode part, fixed by the Linux x86 boot protocol.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
/// x86 `COMMAND_LINE_SIZE` for kernels whose header does not say.
pub const DEFAULT_CMDLINE_MAX: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    Elf,
    BzImage,
}

/// Where the kernel landed and how to enter it.
#[derive(Clone, Copy, Debug)]
pub struct LoadedKernel {
    pub format: KernelFormat,
    pub entry: u64,
    pub end: u64,
    /// The bzImage setup header, to be copied into the zero page.
    pub setup_header: Option<setup_header>,
}

impl LoadedKernel {
    /// Longest command line this kernel accepts, excluding the NUL.
    pub fn cmdline_max(&self) -> usize {
        match self.setup_header {
            Some(h) if h.version >= 0x0206 && h.cmdline_size > 0 => h.cmdline_size as usize,
            _ => DEFAULT_CMDLINE_MAX - 1,
        }
    }

    /// Highest address the initramfs may end at, per the boot protocol.
    pub fn initrd_addr_max(&self) -> u64 {
        match self.setup_header {
            Some(h) if h.version >= 0x0203 && h.initrd_addr_max != 0 => {
                u64::from(h.initrd_addr_max)
            }
            _ => 0x7fff_ffff,
        }
    }
}

fn detect_format(file: &mut File, path: &Path) -> Result<KernelFormat> {
    let unreadable = |source| ImageError::KernelUnreadable {
        path: path.to_path_buf(),
        source,
    };
    let mut head = [0u8; 0x206];
    let len = file.metadata().map_err(unreadable)?.len();
    let n = file.read(&mut head).map_err(unreadable)?;
    if n >= 4 && head[..4] == *b"\x7fELF" {
        return Ok(KernelFormat::Elf);
    }
    if n >= 0x206 && head[0x202..0x206] == *b"HdrS" {
        return Ok(KernelFormat::BzImage);
    }
    Err(ImageError::NotAKernel {
        path: path.to_path_buf(),
        reason: format!("no ELF magic and no 'HdrS' boot header ({len} bytes)"),
    }
    .into())
}

/// Loads the kernel at `path` into `mem`.
pub fn load_kernel(mem: &GuestMemoryMmap, path: &Path) -> Result<LoadedKernel> {
    if !path.exists() {
        return Err(ImageError::KernelMissing {
            path: path.to_path_buf(),
        }
        .into());
    }
    let mut file = File::open(path).map_err(|source| ImageError::KernelUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let format = detect_format(&mut file, path)?;
    let needed_end = image_end(&mut file, format).map_err(|reason| ImageError::NotAKernel {
        path: path.to_path_buf(),
        reason,
    })?;
    let mem_end = vm_memory::GuestMemoryBackend::last_addr(mem).0 + 1;
    if needed_end > layout::low_ram_end(mem_end) {
        return Err(ConfigError::MemoryTooSmall {
            mib: mem_end / layout::MIB,
            needed_mib: needed_end.div_ceil(layout::MIB) + 1,
            what: "this kernel image",
        }
        .into());
    }
    let himem = Some(GuestAddress(layout::HIMEM_START));
    let loaded = match format {
        KernelFormat::Elf => Elf::load(mem, None, &mut file, himem),
        KernelFormat::BzImage => BzImage::load(mem, None, &mut file, himem),
    };
    let loaded = loaded.map_err(|e| ImageError::NotAKernel {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let entry = match format {
        KernelFormat::Elf => loaded.kernel_load.0,
        KernelFormat::BzImage => loaded.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET,
    };
    Ok(LoadedKernel {
        format,
        entry,
        end: loaded.kernel_end,
        setup_header: loaded.setup_header,
    })
}

/// Highest guest-physical address the image occupies once loaded (for a
/// bzImage: what the kernel needs in place to decompress and run).
fn image_end(file: &mut File, format: KernelFormat) -> std::result::Result<u64, String> {
    let read_at = |file: &mut File, off: u64, buf: &mut [u8]| -> std::result::Result<(), String> {
        file.seek(SeekFrom::Start(off))
            .and_then(|_| file.read_exact(buf))
            .map_err(|e| format!("truncated header at {off:#x}: {e}"))
    };
    match format {
        KernelFormat::BzImage => {
            let mut init_size = [0u8; 4];
            read_at(file, 0x260, &mut init_size)?;
            Ok(layout::HIMEM_START + u64::from(u32::from_le_bytes(init_size)))
        }
        KernelFormat::Elf => {
            let mut ehdr = [0u8; 64];
            read_at(file, 0, &mut ehdr)?;
            if ehdr[4] != 2 {
                return Err("not a 64-bit ELF".into());
            }
            let phoff = u64::from_le_bytes(ehdr[0x20..0x28].try_into().unwrap_or_default());
            let phentsize = u16::from_le_bytes([ehdr[0x36], ehdr[0x37]]) as u64;
            let phnum = u16::from_le_bytes([ehdr[0x38], ehdr[0x39]]) as u64;
            if phentsize < 0x30 || phnum == 0 {
                return Err("no program headers".into());
            }
            let mut end = 0u64;
            for i in 0..phnum {
                let mut ph = [0u8; 0x30];
                read_at(file, phoff.saturating_add(i * phentsize), &mut ph)?;
                let is_load = u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == 1;
                let paddr = u64::from_le_bytes(ph[0x18..0x20].try_into().unwrap_or_default());
                let memsz = u64::from_le_bytes(ph[0x28..0x30].try_into().unwrap_or_default());
                if is_load {
                    end = end.max(paddr.checked_add(memsz).ok_or("program header overflows")?);
                }
            }
            Ok(end)
        }
    }
}

/// Copies flat code to `load_addr`.
pub fn load_raw(mem: &GuestMemoryMmap, code: &[u8], load_addr: u64) -> Result<()> {
    mem.write_slice(code, GuestAddress(load_addr)).map_err(|_| {
        ImageError::RawImageOutOfRange {
            addr: load_addr,
            len: code.len(),
        }
        .into()
    })
}

/// Places the initramfs as high as allowed above the kernel; returns (addr, size).
pub fn load_initramfs(
    mem: &GuestMemoryMmap,
    path: &Path,
    kernel: &LoadedKernel,
    mem_bytes: u64,
) -> Result<(u64, u64)> {
    let unreadable = |source| ImageError::InitramfsUnreadable {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let size = file.seek(SeekFrom::End(0)).map_err(unreadable)?;
    file.rewind().map_err(unreadable)?;
    let low = align_up(kernel.end.max(layout::HIMEM_START), 0x1000);
    let high = layout::low_ram_end(mem_bytes).min(kernel.initrd_addr_max() + 1);
    let too_large = || ImageError::InitramfsTooLarge { size, low, high };
    let addr = high
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .ok_or_else(too_large)?;
    if addr < low {
        return Err(too_large().into());
    }
    let len = usize::try_from(size).map_err(|_| too_large())?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut file, len)
        .map_err(|e| unreadable(std::io::Error::other(e.to_string())))?;
    Ok((addr, size))
}

fn align_up(v: u64, align: u64) -> u64 {
    v.div_ceil(align) * align
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::VmmError;
    use std::io::Write;

    fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("ktstr-loader-{}-{name}", std::process::id()));
        File::create(&path)
            .and_then(|mut f| f.write_all(bytes))
            .expect("write temp file");
        path
    }

    #[test]
    fn missing_kernel_is_named() {
        let mem = layout::create_memory(16).expect("memory");
        let err = load_kernel(&mem, Path::new("/nonexistent/vmlinux")).unwrap_err();
        assert!(
            matches!(err, VmmError::Image(ImageError::KernelMissing { .. })),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_not_a_kernel() {
        let mem = layout::create_memory(16).expect("memory");
        let path = temp_file("garbage", &[0x42; 4096]);
        let err = load_kernel(&mem, &path).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(
            matches!(err, VmmError::Image(ImageError::NotAKernel { .. })),
            "{err}"
        );
    }

    #[test]
    fn truncated_elf_is_not_a_kernel() {
        let mem = layout::create_memory(16).expect("memory");
        let path = temp_file("trunc-elf", b"\x7fELF\x02\x01\x01");
        let err = load_kernel(&mem, &path).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(
            matches!(err, VmmError::Image(ImageError::NotAKernel { .. })),
            "{err}"
        );
    }
}

//! The kernel image the guest runs: its symbols and struct layouts.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::LoadError;
use crate::btf::Btf;
use crate::layout::KernelLayout;
use crate::symbols::KernelSymbols;

/// What the monitor knows about a kernel before it runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Vmlinux {
    pub symbols: KernelSymbols,
    pub layout: KernelLayout,
}

impl Vmlinux {
    /// Reads an ELF vmlinux with `.symtab` and `.BTF`.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&bytes)
    }

    /// The ELF vmlinux of the kernel a guest boots: `kernel` itself when it
    /// is one, else the `vmlinux` beside it (a bzImage has no symbols).
    pub fn find_for(kernel: &Path) -> Result<PathBuf, LoadError> {
        let is_elf = |p: &Path| {
            let mut magic = [0u8; 4];
            std::fs::File::open(p)
                .and_then(|mut f| f.read_exact(&mut magic))
                .is_ok_and(|()| magic == *b"\x7fELF")
        };
        if is_elf(kernel) {
            return Ok(kernel.to_owned());
        }
        let beside = kernel.with_file_name("vmlinux");
        if is_elf(&beside) {
            return Ok(beside);
        }
        Err(LoadError::NoVmlinux {
            kernel: kernel.to_owned(),
        })
    }

    /// Like [`Vmlinux::load`], from the file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, LoadError> {
        let elf = object::File::parse(bytes)?;
        let symbols = KernelSymbols::parse(&elf)?;
        let btf = Btf::from_vmlinux(&elf)?;
        let layout = KernelLayout::resolve(&btf)?;
        Ok(Vmlinux { symbols, layout })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_and_a_non_elf_file_are_typed_errors() {
        let missing = Vmlinux::load(Path::new("/no/such/vmlinux"));
        assert!(matches!(missing, Err(LoadError::Io { .. })), "{missing:?}");
        let not_elf = Vmlinux::parse(b"#!/bin/sh\necho not a kernel\n");
        assert!(matches!(not_elf, Err(LoadError::Elf(_))), "{not_elf:?}");
    }

    #[test]
    fn find_for_takes_an_elf_kernel_or_the_vmlinux_beside_a_bzimage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bz = dir.path().join("bzImage");
        std::fs::write(&bz, b"MZ not an ELF").expect("write");
        let e = Vmlinux::find_for(&bz).unwrap_err();
        assert!(e.to_string().contains("bzImage"), "{e}");
        let elf = dir.path().join("vmlinux");
        std::fs::write(&elf, b"\x7fELF...").expect("write");
        assert_eq!(Vmlinux::find_for(&bz).expect("beside"), elf);
        assert_eq!(Vmlinux::find_for(&elf).expect("itself"), elf);
    }
}

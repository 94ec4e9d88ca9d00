//! The kernel image the guest runs: its symbols and struct layouts.

use std::path::Path;

use crate::LoadError;
use crate::btf::Btf;
use crate::layout::KernelLayout;
use crate::symbols::KernelSymbols;

/// What the monitor knows about a kernel before it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

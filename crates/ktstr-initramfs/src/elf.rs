//! What the dynamic loader needs from an ELF file: its interpreter, its
//! `DT_NEEDED` names and its search paths.

use std::path::Path;

use object::Endianness;
use object::elf;
use object::read::elf::{Dyn, ElfFile64, FileHeader, ProgramHeader};

use crate::error::Error;

/// Loader-relevant facts about one ELF object.
#[derive(Debug, Default)]
pub(crate) struct ElfInfo {
    /// `e_machine`; a library must match its user's.
    pub(crate) machine: u16,
    /// `PT_INTERP`, for executables that have one.
    pub(crate) interp: Option<String>,
    /// `DT_NEEDED`, in order.
    pub(crate) needed: Vec<String>,
    /// `DT_RPATH` entries (ignored by the loader when `DT_RUNPATH` exists).
    pub(crate) rpath: Vec<String>,
    /// `DT_RUNPATH` entries.
    pub(crate) runpath: Vec<String>,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parse a 64-bit ELF file. 32-bit and non-ELF input is [`Error::NotElf`].
pub(crate) fn parse(path: &Path, data: &[u8]) -> Result<ElfInfo, Error> {
    let not_elf = |why: String| Error::NotElf {
        path: path.to_owned(),
        why,
    };
    let bad = |e: object::read::Error| not_elf(e.to_string());
    let file = ElfFile64::<Endianness>::parse(data).map_err(bad)?;
    let endian = file.endian();
    let mut info = ElfInfo {
        machine: file.elf_header().e_machine(endian),
        ..ElfInfo::default()
    };
    let mut has_dynamic_segment = false;
    for ph in file.elf_program_headers() {
        if let Some(interp) = ph.interpreter(endian, data).map_err(bad)? {
            info.interp = Some(text(interp));
        }
        has_dynamic_segment |= ph.p_type(endian) == elf::PT_DYNAMIC;
    }
    let sections = file.elf_section_table();
    let Some((dyns, link)) = sections.dynamic(endian, data).map_err(bad)? else {
        // Fully stripped objects keep PT_DYNAMIC but no sections; refuse them
        // rather than silently packing without their libraries.
        if has_dynamic_segment {
            return Err(not_elf("PT_DYNAMIC without section headers".into()));
        }
        return Ok(info);
    };
    let strings = sections.strings(endian, data, link).map_err(bad)?;
    for d in dyns {
        let tag = d.tag32(endian);
        if tag == Some(elf::DT_NULL) {
            break;
        }
        let list = match tag {
            Some(elf::DT_NEEDED) => &mut info.needed,
            Some(elf::DT_RPATH) => &mut info.rpath,
            Some(elf::DT_RUNPATH) => &mut info.runpath,
            _ => continue,
        };
        let s = text(d.string(endian, strings).map_err(bad)?);
        if tag == Some(elf::DT_NEEDED) {
            list.push(s);
        } else {
            list.extend(s.split(':').filter(|p| !p.is_empty()).map(str::to_owned));
        }
    }
    Ok(info)
}

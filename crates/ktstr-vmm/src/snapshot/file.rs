//! The snapshot file. Layout (little endian):
//!
//! ```text
//! 0   magic "KTSTRSNP"          8   format version (u32)
//! 12  CRC32C of bytes 16..64    16  state offset (u64)   24 state length (u64)
//! 32  state CRC32C (u32)        36  memory CRC32C (u32)
//! 40  memory offset (u64, page aligned)   48 memory length (u64)   56 reserved
//! 64  state section (see `machine`)
//! memory offset: guest RAM regions back to back, zero pages left as holes
//! ```
//!
//! It is written to a temporary name and renamed, so a reader never sees a
//! half-written file; every section is checksummed, so a corrupt one is
//! refused before anything is applied.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::SnapshotError;
use super::machine::MachineState;

pub const MAGIC: [u8; 8] = *b"KTSTRSNP";
/// Bump on any change to the layout or to the state encoding.
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: u64 = 64;
pub const PAGE: u64 = 4096;

/// The fixed header, as parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub state_offset: u64,
    pub state_len: u64,
    pub state_crc: u32,
    pub mem_crc: u32,
    pub mem_offset: u64,
    pub mem_len: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut h = [0u8; HEADER_LEN as usize];
        h[..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&self.version.to_le_bytes());
        h[16..24].copy_from_slice(&self.state_offset.to_le_bytes());
        h[24..32].copy_from_slice(&self.state_len.to_le_bytes());
        h[32..36].copy_from_slice(&self.state_crc.to_le_bytes());
        h[36..40].copy_from_slice(&self.mem_crc.to_le_bytes());
        h[40..48].copy_from_slice(&self.mem_offset.to_le_bytes());
        h[48..56].copy_from_slice(&self.mem_len.to_le_bytes());
        let crc = crc32c::crc32c(&h[16..]);
        h[12..16].copy_from_slice(&crc.to_le_bytes());
        h
    }

    fn decode(h: &[u8; HEADER_LEN as usize]) -> Result<Self, SnapshotError> {
        let u32_at = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&h[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let mut found = [0u8; 8];
        found.copy_from_slice(&h[..8]);
        if found != MAGIC {
            return Err(SnapshotError::BadMagic { found });
        }
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(SnapshotError::VersionMismatch {
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        let (stored, computed) = (u32_at(12), crc32c::crc32c(&h[16..]));
        if stored != computed {
            return Err(SnapshotError::ChecksumMismatch {
                section: "header",
                stored,
                computed,
            });
        }
        Ok(Self {
            version,
            state_offset: u64_at(16),
            state_len: u64_at(24),
            state_crc: u32_at(32),
            mem_crc: u32_at(36),
            mem_offset: u64_at(40),
            mem_len: u64_at(48),
        })
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn is_zero(page: &[u8]) -> bool {
    let (head, words, tail) = {
        // SAFETY: any bit pattern is a valid u64; align_to only splits the slice.
        unsafe { page.align_to::<u64>() }
    };
    head.iter().all(|b| *b == 0) && words.iter().all(|w| *w == 0) && tail.iter().all(|b| *b == 0)
}

/// Writes `state` and the guest memory `regions` (host slices, in region
/// order) to `path` atomically. Returns the header written.
pub fn write(path: &Path, state: &[u8], regions: &[&[u8]]) -> Result<Header, SnapshotError> {
    let state_offset = HEADER_LEN;
    let mem_offset = (state_offset + state.len() as u64).div_ceil(PAGE) * PAGE;
    let mem_len: u64 = regions.iter().map(|r| r.len() as u64).sum();
    let tmp = temp_name(path);
    let result = (|| {
        let file = File::create(&tmp).map_err(io(&tmp))?;
        file.write_all_at(state, state_offset).map_err(io(&tmp))?;
        let mut mem_crc = 0u32;
        let mut at = mem_offset;
        for region in regions {
            for page in region.chunks(PAGE as usize) {
                mem_crc = crc32c::crc32c_append(mem_crc, page);
                // Zero pages stay holes: smaller on disk, and read back as zeros.
                if !is_zero(page) {
                    file.write_all_at(page, at).map_err(io(&tmp))?;
                }
                at += page.len() as u64;
            }
        }
        file.set_len(mem_offset + mem_len).map_err(io(&tmp))?;
        let header = Header {
            version: FORMAT_VERSION,
            state_offset,
            state_len: state.len() as u64,
            state_crc: crc32c::crc32c(state),
            mem_crc,
            mem_offset,
            mem_len,
        };
        file.write_all_at(&header.encode(), 0).map_err(io(&tmp))?;
        file.sync_data().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
        Ok(header)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

/// An opened, checked snapshot: the machine state decoded, memory not mapped.
pub struct Loaded {
    pub file: File,
    pub header: Header,
    pub machine: MachineState,
    /// Bytes the file occupies on disk.
    pub disk_bytes: u64,
}

/// Opens and validates `path`: header, lengths, state checksum, and (if
/// `verify_memory`) the memory checksum. Nothing is applied on failure.
pub fn open(path: &Path, verify_memory: bool) -> Result<Loaded, SnapshotError> {
    let mut file = File::open(path).map_err(io(path))?;
    let meta = file.metadata().map_err(io(path))?;
    let actual = meta.len();
    let mut h = [0u8; HEADER_LEN as usize];
    if actual < HEADER_LEN {
        return Err(SnapshotError::Truncated {
            what: "the header",
            expected: HEADER_LEN,
            actual,
        });
    }
    file.read_exact(&mut h).map_err(io(path))?;
    let header = Header::decode(&h)?;
    let state_end = header
        .state_offset
        .checked_add(header.state_len)
        .ok_or_else(|| SnapshotError::Malformed("state length overflows".into()))?;
    let end = header
        .mem_offset
        .checked_add(header.mem_len)
        .ok_or_else(|| SnapshotError::Malformed("memory length overflows".into()))?;
    if header.mem_offset % PAGE != 0 || state_end > header.mem_offset {
        return Err(SnapshotError::Malformed(
            "sections overlap or are misaligned".into(),
        ));
    }
    if actual < end {
        return Err(SnapshotError::Truncated {
            what: "guest memory",
            expected: end,
            actual,
        });
    }
    let mut state = vec![0u8; header.state_len as usize];
    file.read_exact_at(&mut state, header.state_offset)
        .map_err(io(path))?;
    let computed = crc32c::crc32c(&state);
    if computed != header.state_crc {
        return Err(SnapshotError::ChecksumMismatch {
            section: "state",
            stored: header.state_crc,
            computed,
        });
    }
    let machine = MachineState::decode(&state)?;
    if machine.memory_bytes() != header.mem_len {
        return Err(SnapshotError::Malformed(format!(
            "regions total {} bytes, memory section {}",
            machine.memory_bytes(),
            header.mem_len
        )));
    }
    if verify_memory {
        let computed = memory_crc(&file, &header).map_err(io(path))?;
        if computed != header.mem_crc {
            return Err(SnapshotError::ChecksumMismatch {
                section: "memory",
                stored: header.mem_crc,
                computed,
            });
        }
    }
    Ok(Loaded {
        file,
        header,
        machine,
        disk_bytes: meta.blocks() * 512,
    })
}

fn memory_crc(file: &File, header: &Header) -> std::io::Result<u32> {
    let mut buf = vec![0u8; 1 << 20];
    let mut crc = 0u32;
    let mut at = 0u64;
    while at < header.mem_len {
        let n = (header.mem_len - at).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], header.mem_offset + at)?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        at += n as u64;
    }
    Ok(crc)
}

//! One error type per phase: loading the vmlinux, attaching to a running
//! guest (reading its boot-time facts), and reading guest state.

use std::path::PathBuf;

/// Reading the vmlinux: its symbols and its BTF.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{kernel} is not an ELF vmlinux and no vmlinux is beside it: the monitor needs its \
         symbols and BTF (point KTSTR_KERNEL at the vmlinux, or keep it next to the bzImage)"
    )]
    NoVmlinux { kernel: PathBuf },
    #[error("not an ELF kernel image: {0}")]
    Elf(#[from] object::Error),
    #[error("vmlinux has no symbol `{0}`")]
    MissingSymbol(&'static str),
    #[error("vmlinux has no .BTF section (built without CONFIG_DEBUG_INFO_BTF?)")]
    NoBtf,
    #[error("vmlinux .BTF does not parse: {0:?}")]
    Btf(btfparse::Error),
    #[error("BTF has no {kind} `{name}`")]
    MissingType {
        kind: &'static str,
        name: &'static str,
    },
    #[error("BTF `{ty}` has no member `{member}`")]
    MissingMember {
        ty: &'static str,
        member: &'static str,
    },
    #[error("BTF `{ty}.{member}` is {size} bytes, not an integer or pointer the monitor can read")]
    UnreadableMember {
        ty: &'static str,
        member: &'static str,
        size: usize,
    },
    #[error("BTF `{ty}.{member}` is a bitfield")]
    Bitfield {
        ty: &'static str,
        member: &'static str,
    },
}

/// A guest-physical read the [`crate::GuestMemoryReader`] could not do.
#[derive(Debug, thiserror::Error)]
#[error("guest-physical read of {len} bytes at {addr:#x}: {source}")]
pub struct MemoryError {
    pub addr: u64,
    pub len: usize,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Reading guest kernel state: a translation or a memory read failed.
/// During sampling these are expected now and then (the guest changes its
/// page tables under us) and are counted, not fatal.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("virtual address {va:#x} is not mapped (level-{level} entry not present)")]
    NotMapped { va: u64, level: u8 },
    #[error("virtual address {va:#x} is not in the kernel image, direct map or page tables")]
    NotKernel { va: u64 },
}

/// Attaching to a running guest.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("reading `{what}`: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: ReadError,
    },
    #[error("`nr_cpu_ids` is {0}: not a plausible CPU count")]
    CpuCount(u32),
    #[error(
        "KASLR offsets disagree: SysReady's `_text` gives {from_sys_ready:#x}, \
         MSR_LSTAR minus `entry_SYSCALL_64` gives {from_lstar:#x}"
    )]
    KaslrMismatch {
        from_sys_ready: i64,
        from_lstar: i64,
    },
}

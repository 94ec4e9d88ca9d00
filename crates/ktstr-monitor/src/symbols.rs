//! Link-time addresses of the kernel symbols the monitor reads, from the
//! vmlinux's ELF symbol table.

use std::collections::HashMap;

use object::{Object, ObjectSymbol};

use crate::LoadError;

/// Link-time addresses (before KASLR). Per-CPU variables (`runqueues`)
/// are offsets into a CPU's per-CPU area, not addresses.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KernelSymbols {
    /// `_text`: the KASLR shift is its runtime address minus this.
    pub text: u64,
    /// `_end`: the kernel image ends here.
    pub end: u64,
    /// `page_offset_base`: holds the start of the direct map.
    pub page_offset_base: u64,
    /// `vmalloc_base`: holds the start of vmalloc space (the direct map ends before it).
    pub vmalloc_base: u64,
    /// `init_top_pgt`: the kernel's top-level page table.
    pub init_top_pgt: u64,
    /// `__pgtable_l5_enabled`: non-zero with 5-level paging (absent without CONFIG_X86_5LEVEL).
    pub pgtable_l5_enabled: Option<u64>,
    /// `__per_cpu_offset`: array of each CPU's per-CPU area offset.
    pub per_cpu_offset: u64,
    /// `nr_cpu_ids`: how many entries of `__per_cpu_offset` are used.
    pub nr_cpu_ids: u64,
    /// `runqueues`: the per-CPU `struct rq`.
    pub runqueues: u64,
    /// `jiffies`: advances while any CPU ticks (the guest is making progress).
    pub jiffies: u64,
    /// `tick_nsec`: nanoseconds per jiffy (1e9 / HZ), to turn jiffies into time.
    pub tick_nsec: Option<u64>,
    /// `entry_SYSCALL_64`: what `MSR_LSTAR` points at, for the KASLR cross-check.
    pub entry_syscall_64: Option<u64>,
    /// sched_ext's enable state (`scx_ops_enable_state_var` in 6.12, `scx_enable_state_var` later).
    pub scx_enable_state: Option<u64>,
    /// sched_ext's root ops (`scx_ops`, a `struct sched_ext_ops`, in 6.12).
    pub scx_ops: Option<u64>,
}

impl KernelSymbols {
    /// Reads the symbol table of an ELF vmlinux.
    pub fn parse(elf: &object::File<'_>) -> Result<Self, LoadError> {
        let wanted = [
            "_text",
            "_end",
            "page_offset_base",
            "vmalloc_base",
            "init_top_pgt",
            "__pgtable_l5_enabled",
            "__per_cpu_offset",
            "nr_cpu_ids",
            "runqueues",
            "jiffies",
            "tick_nsec",
            "entry_SYSCALL_64",
            "scx_ops_enable_state_var",
            "scx_enable_state_var",
            "scx_ops",
        ];
        let mut found: HashMap<&'static str, u64> = HashMap::new();
        for sym in elf.symbols() {
            let Ok(name) = sym.name() else { continue };
            if let Some(w) = wanted.iter().find(|w| **w == name) {
                found.entry(w).or_insert(sym.address());
            }
        }
        let need = |name: &'static str| {
            found
                .get(name)
                .copied()
                .ok_or(LoadError::MissingSymbol(name))
        };
        let opt = |name: &'static str| found.get(name).copied();
        Ok(KernelSymbols {
            text: need("_text")?,
            end: need("_end")?,
            page_offset_base: need("page_offset_base")?,
            vmalloc_base: need("vmalloc_base")?,
            init_top_pgt: need("init_top_pgt")?,
            pgtable_l5_enabled: opt("__pgtable_l5_enabled"),
            per_cpu_offset: need("__per_cpu_offset")?,
            nr_cpu_ids: need("nr_cpu_ids")?,
            runqueues: need("runqueues")?,
            jiffies: need("jiffies")?,
            tick_nsec: opt("tick_nsec"),
            entry_syscall_64: opt("entry_SYSCALL_64"),
            scx_enable_state: opt("scx_ops_enable_state_var").or(opt("scx_enable_state_var")),
            scx_ops: opt("scx_ops"),
        })
    }
}

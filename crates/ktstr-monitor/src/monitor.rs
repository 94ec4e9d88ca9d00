//! Attaching to one running guest: KASLR placement, the address space,
//! and where each CPU's run queue is. Then [`Monitor::sample`] reads the
//! scheduler state of every CPU without pausing the guest.

use std::sync::Arc;
use std::time::Instant;

use crate::sample::{self, Sample};
use crate::translate::{AddressSpace, PagingLevels};
use crate::{AttachError, GuestMemoryReader, ReadError, Vmlinux};

/// `MSR_LSTAR` (x86-64 architecture, not a kernel offset): the 64-bit
/// syscall entry point, where the running kernel put `entry_SYSCALL_64`.
pub const MSR_LSTAR: u32 = 0xc000_0082;

/// Upper bound of a plausible `nr_cpu_ids` (the kernel's NR_CPUS limit).
const MAX_CPUS: u32 = 8192;

/// Where the running kernel was placed, as the guest reported it
/// (`SysReady`: `_text` from kallsyms, the physical base from iomem).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Runtime virtual address of `_text`.
    pub text: u64,
    /// Physical address of `_text`.
    pub phys_base: u64,
}

/// A monitor attached to one guest.
#[derive(Clone, Debug)]
pub struct Monitor {
    pub(crate) vmlinux: Arc<Vmlinux>,
    pub(crate) space: AddressSpace,
    /// KASLR shift: runtime minus link-time address of image symbols.
    pub(crate) shift: u64,
    /// Virtual address of each CPU's `struct rq`, by CPU number.
    pub(crate) rqs: Vec<u64>,
    /// Guest nanoseconds per jiffy (`tick_nsec`), where the kernel has it
    /// and it is plausible (HZ between 10 and 10 000).
    pub(crate) tick_ns: Option<u64>,
    pub(crate) started: Instant,
}

impl Monitor {
    /// Reads the guest's boot-time facts (direct map base, paging mode,
    /// per-CPU offsets) through `mem`.
    pub fn attach(
        vmlinux: Arc<Vmlinux>,
        placement: Placement,
        mem: &dyn GuestMemoryReader,
    ) -> Result<Self, AttachError> {
        let sym = &vmlinux.symbols;
        let shift = placement.text.wrapping_sub(sym.text);
        let at = |link: u64| link.wrapping_add(shift);
        // Image-only first: enough to read the variables below.
        let mut space = AddressSpace {
            image: (placement.text, at(sym.end)),
            image_phys: placement.phys_base,
            direct_map: (0, 0),
            top_table: 0,
            levels: PagingLevels::Four,
        };
        let read = |space: &AddressSpace, what: &'static str, link: u64, size: usize| {
            space
                .read_uint(mem, at(link), size)
                .map_err(|source| AttachError::Read { what, source })
        };
        let page_offset_base = read(&space, "page_offset_base", sym.page_offset_base, 8)?;
        let vmalloc_base = read(&space, "vmalloc_base", sym.vmalloc_base, 8)?;
        let five = match sym.pgtable_l5_enabled {
            Some(l5) => read(&space, "__pgtable_l5_enabled", l5, 4)? != 0,
            None => false,
        };
        let top_table = space
            .image_to_phys(at(sym.init_top_pgt))
            .ok_or(AttachError::Read {
                what: "init_top_pgt",
                source: ReadError::NotKernel {
                    va: at(sym.init_top_pgt),
                },
            })?;
        space.direct_map = (page_offset_base, vmalloc_base);
        space.top_table = top_table;
        space.levels = if five {
            PagingLevels::Five
        } else {
            PagingLevels::Four
        };
        let nr_cpus = read(&space, "nr_cpu_ids", sym.nr_cpu_ids, 4)? as u32;
        if nr_cpus == 0 || nr_cpus > MAX_CPUS {
            return Err(AttachError::CpuCount(nr_cpus));
        }
        let rqs = (0..u64::from(nr_cpus))
            .map(|cpu| {
                let off = read(&space, "__per_cpu_offset", sym.per_cpu_offset + cpu * 8, 8)?;
                Ok(off.wrapping_add(sym.runqueues))
            })
            .collect::<Result<Vec<_>, AttachError>>()?;
        let tick_ns = match sym.tick_nsec {
            Some(at) => Some(read(&space, "tick_nsec", at, 8)?),
            None => None,
        }
        .filter(|ns| (100_000..=100_000_000).contains(ns));
        tracing::debug!(
            shift = format_args!("{shift:#x}"),
            page_offset_base = format_args!("{page_offset_base:#x}"),
            five_level = five,
            nr_cpus,
            "monitor attached"
        );
        Ok(Monitor {
            vmlinux,
            space,
            shift,
            rqs,
            tick_ns,
            started: Instant::now(),
        })
    }

    /// Cross-checks the KASLR shift against `MSR_LSTAR` (which holds the
    /// runtime `entry_SYSCALL_64`), where a backend can read it.
    pub fn check_lstar(&self, lstar: u64) -> Result<(), AttachError> {
        let Some(entry) = self.vmlinux.symbols.entry_syscall_64 else {
            return Ok(());
        };
        let from_lstar = lstar.wrapping_sub(entry);
        if from_lstar == self.shift {
            Ok(())
        } else {
            Err(AttachError::KaslrMismatch {
                from_sys_ready: self.shift as i64,
                from_lstar: from_lstar as i64,
            })
        }
    }

    /// The instant sample times ([`Sample::at`]) count from: the attach.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// CPUs the guest kernel has (`nr_cpu_ids`).
    pub fn cpus(&self) -> usize {
        self.rqs.len()
    }

    /// The address space the monitor translates with.
    pub fn address_space(&self) -> &AddressSpace {
        &self.space
    }

    /// One reading of every CPU. Never fails: a CPU whose state could not
    /// be read or looks torn is `None` and counted in [`Sample::torn`].
    pub fn sample(&self, mem: &dyn GuestMemoryReader) -> Sample {
        sample::take(self, mem)
    }
}

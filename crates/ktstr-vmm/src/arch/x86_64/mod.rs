//! x86_64 boot state: zero page, page tables, GDT, registers, CPUID, MSRs,
//! LAPIC wiring and the MP table.

pub mod acpi;
pub mod boot_params;
pub mod cpuid;
pub mod cpuid_topology;
pub mod gdt;
pub mod lapic;
pub mod mptable;
pub mod msrs;
pub mod paging;
pub mod regs;

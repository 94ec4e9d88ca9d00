//! Register state for entering a guest directly in 64-bit long mode.

use kvm_bindings::{kvm_fpu, kvm_regs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::gdt;
use crate::error::{Result, kvm_op, memory_write};
use crate::layout;

const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const RFLAGS_RESERVED: u64 = 1 << 1;

/// Writes the GDT and an empty IDT (any exception then triple-faults, which
/// the VMM reports as `Shutdown`; Linux installs its own IDT at once).
pub fn write_descriptor_tables(mem: &GuestMemoryMmap) -> Result<()> {
    let err = memory_write("descriptor tables");
    for (i, entry) in gdt::entries().iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(layout::GDT_ADDR + i as u64 * 8))
            .map_err(err)?;
    }
    mem.write_obj(0u64, GuestAddress(layout::IDT_ADDR))
        .map_err(err)
}

/// Initial general-purpose registers of a vCPU entering at `rip`.
#[derive(Clone, Copy, Debug, Default)]
pub struct EntryRegs {
    pub rip: u64,
    pub rsp: u64,
    pub rsi: u64,
    pub rdi: u64,
}

/// Puts `vcpu` in long mode with identity paging, the boot GDT and `entry`.
pub fn enter_long_mode(vcpu: &VcpuFd, entry: EntryRegs) -> Result<()> {
    let mut sregs = vcpu.get_sregs().map_err(kvm_op("KVM_GET_SREGS"))?;
    let entries = gdt::entries();
    let code = gdt::segment(entries[2], gdt::CODE_SELECTOR);
    let data = gdt::segment(entries[3], gdt::DATA_SELECTOR);
    sregs.gdt.base = layout::GDT_ADDR;
    sregs.gdt.limit = (entries.len() * 8 - 1) as u16;
    sregs.idt.base = layout::IDT_ADDR;
    sregs.idt.limit = 7;
    sregs.cs = code;
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.tr = gdt::segment(entries[4], gdt::TSS_SELECTOR);
    sregs.cr3 = layout::PML4_ADDR;
    sregs.cr4 |= CR4_PAE;
    sregs.cr0 |= CR0_PE | CR0_ET | CR0_NE | CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
    vcpu.set_sregs(&sregs).map_err(kvm_op("KVM_SET_SREGS"))?;

    let regs = kvm_regs {
        rip: entry.rip,
        rsp: entry.rsp,
        rbp: entry.rsp,
        rsi: entry.rsi,
        rdi: entry.rdi,
        rflags: RFLAGS_RESERVED,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(kvm_op("KVM_SET_REGS"))?;

    // x87 control word and MXCSR at their architectural reset values.
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(kvm_op("KVM_SET_FPU"))
}

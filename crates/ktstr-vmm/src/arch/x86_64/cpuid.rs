//! Per-vCPU CPUID, derived from what the host's KVM supports: each vCPU gets
//! its own APIC ID, and features the host cannot run are masked.

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_cpuid_entry2};
use kvm_ioctls::Kvm;

use crate::error::{Result, kvm_op};

/// One feature bit to clear: (leaf, register, bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureBit {
    pub leaf: u32,
    pub reg: Reg,
    pub bit: u8,
    pub name: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    Ecx,
    Edx,
    Ebx,
}

pub const POPCNT: FeatureBit = FeatureBit {
    leaf: 1,
    reg: Reg::Ecx,
    bit: 23,
    name: "popcnt",
};
pub const CX16: FeatureBit = FeatureBit {
    leaf: 1,
    reg: Reg::Ecx,
    bit: 13,
    name: "cx16",
};
pub const XSAVE: FeatureBit = FeatureBit {
    leaf: 1,
    reg: Reg::Ecx,
    bit: 26,
    name: "xsave",
};
pub const RDRAND: FeatureBit = FeatureBit {
    leaf: 1,
    reg: Reg::Ecx,
    bit: 30,
    name: "rdrand",
};
const HYPERVISOR: u32 = 1 << 31;

pub fn supported(kvm: &Kvm) -> Result<CpuId> {
    kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm_op("KVM_GET_SUPPORTED_CPUID"))
}

/// CPUID of vCPU `index` out of `count`, with `masked` features cleared.
pub fn for_vcpu(base: &CpuId, index: usize, count: usize, masked: &[FeatureBit]) -> CpuId {
    let mut cpuid = base.clone();
    for entry in cpuid.as_mut_slice() {
        patch_entry(entry, index as u32, count as u32, masked);
    }
    cpuid
}

fn patch_entry(entry: &mut kvm_cpuid_entry2, apic_id: u32, count: u32, masked: &[FeatureBit]) {
    match entry.function {
        1 => {
            entry.ebx = (entry.ebx & 0x0000_ffff) | (apic_id << 24) | (count.min(255) << 16);
            entry.ecx |= HYPERVISOR;
        }
        // Extended topology: EDX is the x2APIC ID on every sub-leaf.
        0xb | 0x1f => entry.edx = apic_id,
        0x8000_001e => entry.eax = apic_id,
        _ => {}
    }
    for bit in masked.iter().filter(|b| b.leaf == entry.function) {
        let reg = match bit.reg {
            Reg::Ecx => &mut entry.ecx,
            Reg::Edx => &mut entry.edx,
            Reg::Ebx => &mut entry.ebx,
        };
        *reg &= !(1 << bit.bit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apic_id_and_masks_are_applied() {
        let base = CpuId::from_entries(&[
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0xff00_0800,
                ecx: (1 << 23) | (1 << 13) | 1,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xb,
                index: 1,
                edx: 0,
                ..Default::default()
            },
        ])
        .expect("cpuid");
        let c = for_vcpu(&base, 3, 4, &[POPCNT]);
        let e = c.as_slice();
        assert_eq!(e[0].ebx >> 24, 3);
        assert_eq!((e[0].ebx >> 16) & 0xff, 4);
        assert_eq!(e[0].ecx & (1 << 23), 0, "popcnt masked");
        assert_ne!(e[0].ecx & (1 << 13), 0, "cx16 kept");
        assert_ne!(e[0].ecx & HYPERVISOR, 0);
        assert_eq!(e[1].edx, 3);
    }
}

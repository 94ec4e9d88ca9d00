//! Local APIC wiring: LINT0 as ExtINT (legacy PIC) and LINT1 as NMI, the
//! way firmware leaves it for an OS that uses the MP table.

use kvm_ioctls::VcpuFd;

use crate::error::{Result, kvm_op};

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const DELIVERY_MODE_EXTINT: u32 = 0x7;
const DELIVERY_MODE_NMI: u32 = 0x4;

fn set_delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

pub fn set_lint(vcpu: &VcpuFd) -> Result<()> {
    let mut lapic = vcpu.get_lapic().map_err(kvm_op("KVM_GET_LAPIC"))?;
    for (offset, mode) in [
        (APIC_LVT0, DELIVERY_MODE_EXTINT),
        (APIC_LVT1, DELIVERY_MODE_NMI),
    ] {
        let bytes: [u8; 4] = std::array::from_fn(|i| lapic.regs[offset + i] as u8);
        let value = set_delivery_mode(u32::from_le_bytes(bytes), mode);
        for (i, b) in value.to_le_bytes().iter().enumerate() {
            lapic.regs[offset + i] = *b as i8;
        }
    }
    vcpu.set_lapic(&lapic).map_err(kvm_op("KVM_SET_LAPIC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_mode_replaces_bits_8_to_10_only() {
        assert_eq!(
            set_delivery_mode(0x0001_0000, DELIVERY_MODE_EXTINT),
            0x0001_0700
        );
        assert_eq!(
            set_delivery_mode(0x0000_07ff, DELIVERY_MODE_NMI),
            0x0000_04ff
        );
    }
}

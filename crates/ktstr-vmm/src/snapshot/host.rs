//! Can this host run a snapshot taken elsewhere? The guest already decided
//! which CPU features and MSRs exist; if a fresh VM on this host would not
//! offer them the restored kernel would fault later, so refuse up front.

use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, kvm_cpuid_entry2};
use kvm_ioctls::Kvm;

use super::SnapshotError;
use super::machine::MachineState;

/// Feature leaves `(function, index)` whose register bits must be a subset
/// of what this host supports. Identity leaves (topology, cache) may differ.
const FEATURE_LEAVES: &[(u32, u32)] = &[(0x1, 0), (0x7, 0), (0x7, 1), (0xd, 1), (0x8000_0001, 0)];

fn find(entries: &[kvm_cpuid_entry2], function: u32, index: u32) -> Option<&kvm_cpuid_entry2> {
    entries
        .iter()
        .find(|e| e.function == function && e.index == index)
}

/// The first saved feature bit this host lacks, as text.
pub(crate) fn cpuid_mismatch(
    saved: &[kvm_cpuid_entry2],
    host: &[kvm_cpuid_entry2],
) -> Option<String> {
    for &(function, index) in FEATURE_LEAVES {
        let Some(s) = find(saved, function, index) else {
            continue;
        };
        let h = find(host, function, index).copied().unwrap_or_default();
        // Leaf 1 ECX bit 27 (OSXSAVE) and EBX (APIC id, counts) mirror guest
        // state, not host features.
        let regs = [
            ("ebx", s.ebx, h.ebx, function != 0x1),
            ("ecx", s.ecx & !(1 << 27), h.ecx, true),
            ("edx", s.edx, h.edx, true),
        ];
        for (name, want, have, checked) in regs {
            // A topology's HTT/CmpLegacy/TopoExt bits are shape, not features.
            let owned = crate::arch::x86_64::cpuid_topology::topology_owned_bits(function, name);
            let missing = want & !have & !owned;
            if checked && missing != 0 {
                return Some(format!(
                    "CPUID leaf {function:#x}.{index} {name} bits {missing:#x} are not supported by this host"
                ));
            }
        }
    }
    None
}

pub(crate) fn check(kvm: &Kvm, machine: &MachineState) -> Result<(), SnapshotError> {
    let host = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|source| SnapshotError::Kvm {
            op: "KVM_GET_SUPPORTED_CPUID",
            source,
        })?;
    let msrs = kvm
        .get_msr_index_list()
        .map_err(|source| SnapshotError::Kvm {
            op: "KVM_GET_MSR_INDEX_LIST",
            source,
        })?;
    for (index, vcpu) in machine.vcpus.iter().enumerate() {
        // What this VMM would give a fresh vCPU here (before compat masking,
        // which only removes bits) is the upper bound a guest may rely on.
        let fresh = crate::arch::x86_64::cpuid::for_vcpu(&host, index, machine.vcpus.len(), &[]);
        if let Some(why) = cpuid_mismatch(&vcpu.cpuid, fresh.as_slice()) {
            return Err(SnapshotError::IncompatibleHost(why));
        }
        if let Some(m) = vcpu
            .msrs
            .iter()
            .find(|m| !msrs.as_slice().contains(&m.index))
        {
            return Err(SnapshotError::IncompatibleHost(format!(
                "MSR {:#x} is saved in the snapshot but this host's KVM does not list it",
                m.index
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_the_host_lacks_is_named() {
        let leaf = |ecx| kvm_cpuid_entry2 {
            function: 1,
            ecx,
            ..Default::default()
        };
        assert_eq!(cpuid_mismatch(&[leaf(0b11)], &[leaf(0b111)]), None);
        let why = cpuid_mismatch(&[leaf(0b1011)], &[leaf(0b0011)]).expect("mismatch");
        assert!(why.contains("ecx bits 0x8"), "{why}");
    }
}

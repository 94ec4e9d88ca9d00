//! Merges a topology's CPUID leaves ([`crate::topology::cpuid_for_vcpu`]) over
//! the host-derived CPUID of one vCPU. Topology leaves (0x4, 0xB, 0x1F,
//! 0x8000_001D, 0x8000_001E) replace the host's outright; in leaves 0x1,
//! 0x8000_0001 and 0x8000_0008 only the topology fields change, so feature
//! bits and address sizes stay the host's.

use kvm_bindings::{CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, kvm_cpuid_entry2};

use crate::error::{Result, VcpuCpuidError};
use crate::topology::{CpuidLeaf, Vendor};

const REPLACED: [u32; 5] = [0x4, 0xb, 0x1f, 0x8000_001d, 0x8000_001e];
const INDEXED: [u32; 4] = [0x4, 0xb, 0x1f, 0x8000_001d];
/// Leaf 1: EBX[31:16] = initial APIC ID and addressable IDs; EDX bit 28 = HTT.
const LEAF1_EBX_TOPOLOGY: u32 = 0xffff_0000;
const LEAF1_EDX_HTT: u32 = 1 << 28;
/// Leaf 0x8000_0001 ECX: CmpLegacy and TopologyExtensions.
const EXT1_ECX_TOPOLOGY: u32 = (1 << 1) | (1 << 22);
/// Leaf 0x8000_0008 ECX: NC and ApicIdCoreIdSize.
const EXT8_ECX_TOPOLOGY: u32 = 0xf0ff;

/// Bits of `(leaf, register)` a topology sets: they describe the guest's
/// shape, not a host capability, so host-compatibility checks ignore them.
pub fn topology_owned_bits(leaf: u32, reg: &str) -> u32 {
    match (leaf, reg) {
        (1, "ebx") => LEAF1_EBX_TOPOLOGY,
        (1, "edx") => LEAF1_EDX_HTT,
        (0x8000_0001, "ecx") => EXT1_ECX_TOPOLOGY,
        (0x8000_0008, "ecx") => EXT8_ECX_TOPOLOGY,
        _ => 0,
    }
}

/// The CPU vendor from leaf 0 (Hygon follows AMD's topology leaves).
pub fn vendor(cpuid: &CpuId) -> Option<Vendor> {
    let leaf0 = cpuid.as_slice().iter().find(|e| e.function == 0)?;
    let mut id = [0u8; 12];
    id[..4].copy_from_slice(&leaf0.ebx.to_le_bytes());
    id[4..8].copy_from_slice(&leaf0.edx.to_le_bytes());
    id[8..].copy_from_slice(&leaf0.ecx.to_le_bytes());
    match &id {
        b"GenuineIntel" => Some(Vendor::Intel),
        b"AuthenticAMD" | b"HygonGenuine" => Some(Vendor::Amd),
        _ => None,
    }
}

/// `base` with `leaves` merged in; also raises the max basic/extended leaf
/// so the guest reads the replaced leaves.
pub fn merge(base: &CpuId, leaves: &[CpuidLeaf]) -> Result<CpuId> {
    let mut entries: Vec<kvm_cpuid_entry2> = base
        .as_slice()
        .iter()
        .filter(|e| !REPLACED.contains(&e.function))
        .copied()
        .collect();
    for l in leaves {
        if REPLACED.contains(&l.leaf) {
            entries.push(kvm_cpuid_entry2 {
                function: l.leaf,
                index: l.subleaf,
                flags: if INDEXED.contains(&l.leaf) {
                    KVM_CPUID_FLAG_SIGNIFCANT_INDEX
                } else {
                    0
                },
                eax: l.eax,
                ebx: l.ebx,
                ecx: l.ecx,
                edx: l.edx,
                ..Default::default()
            });
            continue;
        }
        let entry = find_or_add(&mut entries, l.leaf);
        match l.leaf {
            1 => {
                entry.ebx = (entry.ebx & !LEAF1_EBX_TOPOLOGY) | (l.ebx & LEAF1_EBX_TOPOLOGY);
                entry.edx = (entry.edx & !LEAF1_EDX_HTT) | (l.edx & LEAF1_EDX_HTT);
            }
            0x8000_0001 => {
                entry.ecx = (entry.ecx & !EXT1_ECX_TOPOLOGY) | (l.ecx & EXT1_ECX_TOPOLOGY);
            }
            0x8000_0008 => {
                entry.ecx = (entry.ecx & !EXT8_ECX_TOPOLOGY) | (l.ecx & EXT8_ECX_TOPOLOGY);
            }
            other => {
                return Err(VcpuCpuidError::NoMergeRule { leaf: other }.into());
            }
        }
    }
    for (max_leaf, range) in [
        (0u32, 0..0x8000_0000u32),
        (0x8000_0000, 0x8000_0000..u32::MAX),
    ] {
        let highest = leaves
            .iter()
            .map(|l| l.leaf)
            .filter(|f| range.contains(f))
            .max();
        if let Some(highest) = highest {
            let e = find_or_add(&mut entries, max_leaf);
            e.eax = e.eax.max(highest);
        }
    }
    CpuId::from_entries(&entries).map_err(|source| {
        VcpuCpuidError::TooManyEntries {
            entries: entries.len(),
            source,
        }
        .into()
    })
}

fn find_or_add(entries: &mut Vec<kvm_cpuid_entry2>, function: u32) -> &mut kvm_cpuid_entry2 {
    let at = match entries.iter().position(|e| e.function == function) {
        Some(at) => at,
        None => {
            entries.push(kvm_cpuid_entry2 {
                function,
                ..Default::default()
            });
            entries.len() - 1
        }
    };
    &mut entries[at]
}

/// The merged CPUID as plain leaves, for decoding.
#[cfg(test)]
fn to_leaves(cpuid: &CpuId) -> Vec<CpuidLeaf> {
    cpuid
        .as_slice()
        .iter()
        .map(|e| CpuidLeaf {
            leaf: e.function,
            subleaf: e.index,
            eax: e.eax,
            ebx: e.ebx,
            ecx: e.ecx,
            edx: e.edx,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{cpuid_for_vcpu, decode};
    use ktstr_topology::Topology;

    fn host(vendor: &[u8; 12]) -> CpuId {
        let word =
            |i: usize| u32::from_le_bytes([vendor[i], vendor[i + 1], vendor[i + 2], vendor[i + 3]]);
        CpuId::from_entries(&[
            kvm_cpuid_entry2 {
                function: 0,
                eax: 0xd,
                ebx: word(0),
                edx: word(4),
                ecx: word(8),
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0x0002_0800,
                ecx: 0x8000_0001,
                edx: 0x0780_0000,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xb,
                index: 0,
                ebx: 7,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0x8000_0000,
                eax: 0x8000_0008,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0x8000_0008,
                eax: 0x3030,
                ecx: 0x7,
                ..Default::default()
            },
        ])
        .expect("cpuid")
    }

    #[test]
    fn merged_cpuid_decodes_to_the_topology_for_both_vendors() {
        for (id, v) in [
            (b"GenuineIntel", Vendor::Intel),
            (b"AuthenticAMD", Vendor::Amd),
        ] {
            let base = host(id);
            assert_eq!(vendor(&base), Some(v));
            for text in ["1n2l4c2t", "2n4l2c1t", "1n1l1c1t"] {
                let topo = text
                    .parse::<Topology>()
                    .expect("parse")
                    .to_numa()
                    .expect("numa");
                let per_vcpu: Vec<Vec<CpuidLeaf>> = (0..topo.vcpus())
                    .map(|i| {
                        let leaves = cpuid_for_vcpu(&topo, v, i).expect("leaves");
                        to_leaves(&merge(&base, &leaves).expect("merge"))
                    })
                    .collect();
                let d = decode(&per_vcpu, v).expect("decode");
                assert_eq!(
                    (d.threads_per_core, d.cores_per_llc, d.llcs, d.packages),
                    (
                        topo.threads_per_core,
                        topo.cores_per_llc,
                        topo.nodes.iter().map(|n| n.llcs).sum::<u32>(),
                        topo.nodes.len() as u32
                    ),
                    "{text} {v:?}"
                );
                // Host feature bits and address sizes survive the merge.
                let merged =
                    merge(&base, &cpuid_for_vcpu(&topo, v, 0).expect("leaves")).expect("merge");
                let leaf = |f: u32| {
                    *merged
                        .as_slice()
                        .iter()
                        .find(|e| e.function == f)
                        .expect("leaf")
                };
                assert_eq!(leaf(1).ecx, 0x8000_0001);
                assert_eq!(leaf(0x8000_0008).eax, 0x3030);
                assert!(leaf(0).eax >= if v == Vendor::Intel { 0x1f } else { 0xb });
            }
        }
    }
}

//! Topology-bearing CPUID leaves per vCPU, as plain data. Only the topology
//! bits are set; whoever builds a vCPU's CPUID merges these over the host's.
//!
//! The cache "sharing" fields carry addressable-ID counts (a power of two
//! covering the field), as the SDM/APM define them, so Linux's
//! `apicid >> get_count_order(sharing)` yields the LLC.

use ktstr_topology::{ApicLayout, NumaTopology};

use super::CpuidError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    Intel,
    Amd,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidLeaf {
    pub leaf: u32,
    pub subleaf: u32,
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

const EDX_HTT: u32 = 1 << 28;
const ECX_CMP_LEGACY: u32 = 1 << 1;
const ECX_TOPOEXT: u32 = 1 << 22;
const LEVEL_SMT: u32 = 1;
const LEVEL_CORE: u32 = 2;
const CACHE_DATA: u32 = 1;
const CACHE_INSTR: u32 = 2;
const CACHE_UNIFIED: u32 = 3;
const SELF_INIT: u32 = 1 << 8;
/// 12-bit sharing field of leaves 0x4 and 0x8000_001D.
const MAX_SHARING_BITS: u32 = 12;
/// 4-bit ApicIdCoreIdSize of leaf 0x8000_0008.
const MAX_CORE_ID_SIZE: u32 = 15;

/// Leaves for every vCPU, in vCPU order.
pub fn for_all(topo: &NumaTopology, vendor: Vendor) -> Result<Vec<Vec<CpuidLeaf>>, CpuidError> {
    (0..topo.vcpus())
        .map(|i| for_vcpu(topo, vendor, i))
        .collect()
}

/// Leaves for vCPU `index`.
pub fn for_vcpu(
    topo: &NumaTopology,
    vendor: Vendor,
    index: u32,
) -> Result<Vec<CpuidLeaf>, CpuidError> {
    topo.check()?;
    let cpu = topo.cpu(index).ok_or(CpuidError::NoSuchVcpu {
        index,
        vcpus: topo.vcpus(),
    })?;
    let layout = topo.apic_layout();
    let apic = topo.apic_id_of(&cpu);
    let in_package = topo.node_vcpus(cpu.node);
    if layout.llc_shift() > MAX_SHARING_BITS {
        return Err(CpuidError::Limit {
            field: "cache sharing count",
            value: 1 << layout.llc_shift(),
            max: 1 << MAX_SHARING_BITS,
        });
    }
    let addressable = 1u64 << layout.node_shift();
    let mut out = vec![leaf1(apic, addressable)];
    out.extend(extended_topology(
        0xb,
        &layout,
        topo.threads_per_core,
        in_package,
        apic,
    ));
    match vendor {
        Vendor::Intel => {
            out.extend(extended_topology(
                0x1f,
                &layout,
                topo.threads_per_core,
                in_package,
                apic,
            ));
            out.extend(caches(0x4, &layout, true));
        }
        Vendor::Amd => {
            if layout.node_shift() > MAX_CORE_ID_SIZE {
                return Err(CpuidError::Limit {
                    field: "0x80000008 ApicIdCoreIdSize",
                    value: u64::from(layout.node_shift()),
                    max: u64::from(MAX_CORE_ID_SIZE),
                });
            }
            let cmp = if in_package > 1 { ECX_CMP_LEGACY } else { 0 };
            out.push(CpuidLeaf {
                leaf: 0x8000_0001,
                ecx: cmp | ECX_TOPOEXT,
                ..Default::default()
            });
            out.push(CpuidLeaf {
                leaf: 0x8000_0008,
                // NC saturates like hardware; ApicIdCoreIdSize is what Linux uses.
                ecx: (in_package - 1).min(0xff) as u32 | (layout.node_shift() << 12),
                ..Default::default()
            });
            out.extend(caches(0x8000_001d, &layout, false));
            out.push(CpuidLeaf {
                leaf: 0x8000_001e,
                eax: apic,
                ebx: ((apic >> layout.core_shift()) & 0xff)
                    | ((topo.threads_per_core - 1).min(0xff) << 8),
                // One node per package: NodesPerProcessor - 1 = 0.
                ecx: cpu.node & 0xff,
                ..Default::default()
            });
        }
    }
    Ok(out)
}

fn leaf1(apic: u32, addressable: u64) -> CpuidLeaf {
    CpuidLeaf {
        leaf: 1,
        ebx: ((apic & 0xff) << 24) | ((addressable.min(0xff) as u32) << 16),
        edx: if addressable > 1 { EDX_HTT } else { 0 },
        ..Default::default()
    }
}

/// SMT and core levels plus the terminating invalid level; EDX is the
/// x2APIC ID on every subleaf.
fn extended_topology(
    leaf: u32,
    layout: &ApicLayout,
    threads: u32,
    in_package: u64,
    apic: u32,
) -> [CpuidLeaf; 3] {
    let level = |subleaf: u32, shift: u32, count: u64, kind: u32| CpuidLeaf {
        leaf,
        subleaf,
        eax: shift,
        // EBX is 16 bits; Linux derives domains from the shifts.
        ebx: count.min(0xffff) as u32,
        ecx: subleaf | (kind << 8),
        edx: apic,
    };
    [
        level(0, layout.core_shift(), u64::from(threads), LEVEL_SMT),
        level(1, layout.node_shift(), in_package, LEVEL_CORE),
        level(2, 0, 0, 0),
    ]
}

/// L1d, L1i, L2 per core, L3 per LLC, then the null descriptor.
fn caches(leaf: u32, layout: &ApicLayout, intel: bool) -> Vec<CpuidLeaf> {
    // (type, level, sharing shift, ways, sets)
    let descs = [
        (CACHE_DATA, 1, layout.core_shift(), 8, 64),
        (CACHE_INSTR, 1, layout.core_shift(), 8, 64),
        (CACHE_UNIFIED, 2, layout.core_shift(), 16, 1024),
        (CACHE_UNIFIED, 3, layout.llc_shift(), 16, 16384),
    ];
    // Intel's EAX[31:26] saturates at 64 addressable cores, like hardware.
    let cores = if intel {
        ((1u32 << (layout.node_shift() - layout.core_shift()).min(6)) - 1) << 26
    } else {
        0
    };
    let mut out: Vec<CpuidLeaf> = descs
        .iter()
        .zip(0u32..)
        .map(|(&(kind, level, shift, ways, sets), subleaf)| CpuidLeaf {
            leaf,
            subleaf,
            eax: kind | (level << 5) | SELF_INIT | (((1u32 << shift) - 1) << 14) | cores,
            // 64-byte lines, one partition.
            ebx: ((ways - 1) << 22) | 63,
            ecx: sets - 1,
            ..Default::default()
        })
        .collect();
    out.push(CpuidLeaf {
        leaf,
        subleaf: descs.len() as u32,
        ..Default::default()
    });
    out
}

//! Reconstructs a topology from CPUID leaves the way Linux does: shifts from
//! 0xB (Intel) or 0x8000_001E/0x8000_0008 (AMD), the LLC from the L3 sharing
//! count, then counts distinct core / LLC / package IDs over all vCPUs.

use std::collections::BTreeSet;

use ktstr_topology::count_order;

use super::{CpuidError, CpuidLeaf, Vendor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub threads_per_core: u32,
    pub cores_per_llc: u32,
    pub llcs: u32,
    pub packages: u32,
}

struct Ids {
    apic: u32,
    smt_shift: u32,
    llc_shift: u32,
    pkg_shift: u32,
}

fn get(
    leaves: &[CpuidLeaf],
    vcpu: usize,
    leaf: u32,
    subleaf: u32,
) -> Result<CpuidLeaf, CpuidError> {
    leaves
        .iter()
        .find(|l| l.leaf == leaf && l.subleaf == subleaf)
        .copied()
        .ok_or(CpuidError::MissingLeaf {
            vcpu,
            leaf,
            subleaf,
        })
}

fn inconsistent(msg: String) -> CpuidError {
    CpuidError::Inconsistent(msg)
}

/// log2 of the L3's addressable sharing count, from 0x4 or 0x8000_001D.
fn llc_shift(leaves: &[CpuidLeaf], vcpu: usize, leaf: u32) -> Result<u32, CpuidError> {
    for subleaf in 0.. {
        let l = get(leaves, vcpu, leaf, subleaf)?;
        if l.eax & 0x1f == 0 {
            break;
        }
        if (l.eax >> 5) & 7 == 3 {
            return Ok(count_order(((l.eax >> 14) & 0xfff) + 1));
        }
    }
    Err(inconsistent(format!(
        "vCPU {vcpu} has no L3 in leaf {leaf:#x}"
    )))
}

fn ext_topology(leaves: &[CpuidLeaf], vcpu: usize) -> Result<(u32, u32, u32), CpuidError> {
    let smt = get(leaves, vcpu, 0xb, 0)?;
    let core = get(leaves, vcpu, 0xb, 1)?;
    if (smt.ecx >> 8) & 0xff != 1 || (core.ecx >> 8) & 0xff != 2 {
        return Err(inconsistent(format!("vCPU {vcpu}: 0xB level types")));
    }
    Ok((smt.edx, smt.eax & 0x1f, core.eax & 0x1f))
}

fn ids(leaves: &[CpuidLeaf], vendor: Vendor, vcpu: usize) -> Result<Ids, CpuidError> {
    let (x2apic, smt0b, pkg0b) = ext_topology(leaves, vcpu)?;
    let initial = get(leaves, vcpu, 1, 0)?.ebx >> 24;
    if initial != x2apic & 0xff {
        return Err(inconsistent(format!(
            "vCPU {vcpu}: leaf 1 APIC ID {initial} != {x2apic}"
        )));
    }
    match vendor {
        Vendor::Intel => {
            let l1f = get(leaves, vcpu, 0x1f, 1)?;
            if l1f.eax & 0x1f != pkg0b {
                return Err(inconsistent(format!("vCPU {vcpu}: 0x1F and 0xB disagree")));
            }
            Ok(Ids {
                apic: x2apic,
                smt_shift: smt0b,
                llc_shift: llc_shift(leaves, vcpu, 0x4)?,
                pkg_shift: pkg0b,
            })
        }
        Vendor::Amd => {
            if get(leaves, vcpu, 0x8000_0001, 0)?.ecx & (1 << 22) == 0 {
                return Err(inconsistent(format!("vCPU {vcpu}: TopoExt not set")));
            }
            let e = get(leaves, vcpu, 0x8000_001e, 0)?;
            let threads = ((e.ebx >> 8) & 0xff) + 1;
            let ecx8 = get(leaves, vcpu, 0x8000_0008, 0)?.ecx;
            let pkg_shift = match (ecx8 >> 12) & 0xf {
                0 => count_order((ecx8 & 0xff) + 1),
                s => s,
            };
            let ids = Ids {
                apic: e.eax,
                smt_shift: count_order(threads),
                llc_shift: llc_shift(leaves, vcpu, 0x8000_001d)?,
                pkg_shift,
            };
            if ids.apic != x2apic || ids.smt_shift != smt0b || ids.pkg_shift != pkg0b {
                return Err(inconsistent(format!(
                    "vCPU {vcpu}: AMD leaves disagree with 0xB"
                )));
            }
            if e.ecx & 0xff != (ids.apic >> pkg_shift) & 0xff {
                return Err(inconsistent(format!(
                    "vCPU {vcpu}: node ID is not the package"
                )));
            }
            Ok(ids)
        }
    }
}

/// `per_vcpu[i]` are vCPU i's leaves; every vCPU must be present.
pub fn decode(per_vcpu: &[Vec<CpuidLeaf>], vendor: Vendor) -> Result<Decoded, CpuidError> {
    let mut apics = BTreeSet::new();
    let mut cores = BTreeSet::new();
    let mut llcs = BTreeSet::new();
    let mut pkgs = BTreeSet::new();
    for (vcpu, leaves) in per_vcpu.iter().enumerate() {
        let i = ids(leaves, vendor, vcpu)?;
        let shr = |s: u32| u64::from(i.apic).checked_shr(s).unwrap_or(0);
        if !apics.insert(i.apic) {
            return Err(inconsistent(format!("APIC ID {} appears twice", i.apic)));
        }
        cores.insert(shr(i.smt_shift));
        llcs.insert(shr(i.llc_shift));
        pkgs.insert(shr(i.pkg_shift));
    }
    let n = apics.len() as u32;
    let (c, l, p) = (cores.len() as u32, llcs.len() as u32, pkgs.len() as u32);
    if n == 0 || n % c != 0 || c % l != 0 {
        return Err(inconsistent(format!(
            "{n} CPUs, {c} cores, {l} LLCs do not nest evenly"
        )));
    }
    Ok(Decoded {
        threads_per_core: n / c,
        cores_per_llc: c / l,
        llcs: l,
        packages: p,
    })
}

#[cfg(test)]
mod tests {
    use super::super::cpuid::{for_all, for_vcpu};
    use super::*;
    use ktstr_topology::Topology;

    pub const PRESETS: [&str; 12] = [
        "1n1l1c1t", "1n1l2c1t", "1n2l2c1t", "1n1l1c2t", "2n2l1c1t", "1n1l4c1t", "1n2l4c1t",
        "1n2l2c2t", "2n4l2c1t", "2n2l4c2t", "4n8l2c1t", "1n4l8c2t",
    ];

    #[test]
    fn every_preset_round_trips_for_both_vendors() {
        for s in PRESETS.iter().chain(&["1n2l3c1t", "3n3l3c3t"]) {
            let t: Topology = s.parse().expect(s);
            let numa = t.to_numa().expect(s);
            for vendor in [Vendor::Intel, Vendor::Amd] {
                let leaves = for_all(&numa, vendor).expect(s);
                assert_eq!(leaves.len() as u32, t.vcpus());
                for (i, l) in leaves.iter().enumerate() {
                    let b = l.iter().find(|l| l.leaf == 0xb).expect("0xb");
                    assert_eq!(Some(b.edx), t.apic_id(i as u32), "{s} {vendor:?} vCPU {i}");
                }
                let d = decode(&leaves, vendor).expect(s);
                assert_eq!(
                    d,
                    Decoded {
                        threads_per_core: t.threads_per_core,
                        cores_per_llc: t.cores_per_llc,
                        llcs: t.llcs,
                        packages: t.numa_nodes,
                    },
                    "{s} {vendor:?}"
                );
            }
        }
    }

    #[test]
    fn specific_fields() {
        let numa = Topology::new(1, 2, 4, 2).to_numa().expect("numa");
        let intel = for_all(&numa, Vendor::Intel).expect("intel");
        let l3 = intel[9]
            .iter()
            .find(|l| l.leaf == 4 && l.subleaf == 3)
            .expect("l3");
        assert_eq!((l3.eax >> 14) & 0xfff, 7, "8 threads share an L3");
        assert_eq!(l3.eax >> 26, 7, "8 addressable cores per package");
        let amd = for_all(&numa, Vendor::Amd).expect("amd");
        let e = amd[9].iter().find(|l| l.leaf == 0x8000_001e).expect("1e");
        assert_eq!((e.eax, e.ebx, e.ecx), (9, 4 | (1 << 8), 0));
        let n = amd[9].iter().find(|l| l.leaf == 0x8000_0008).expect("8");
        assert_eq!(n.ecx, 15 | (4 << 12));
    }

    #[test]
    fn fields_too_narrow_for_the_topology_are_errors() {
        // 8192 cores need a 13-bit L3 sharing field.
        let wide_llc = Topology::new(1, 1, 8192, 1).to_numa().expect("numa");
        assert!(matches!(
            for_all(&wide_llc, Vendor::Intel),
            Err(CpuidError::Limit { .. })
        ));
        // 16 bits below the package exceed AMD's 4-bit ApicIdCoreIdSize.
        let wide_pkg = Topology::new(1, 16, 4096, 1).to_numa().expect("numa");
        assert!(matches!(
            for_vcpu(&wide_pkg, Vendor::Amd, 0),
            Err(CpuidError::Limit { .. })
        ));
        assert!(for_vcpu(&wide_pkg, Vendor::Intel, 0).is_ok());
        assert!(matches!(
            for_vcpu(&wide_llc, Vendor::Amd, 0),
            Err(CpuidError::Limit { .. })
        ));
        let small = Topology::new(1, 1, 2, 1).to_numa().expect("numa");
        assert!(matches!(
            for_vcpu(&small, Vendor::Amd, 2),
            Err(CpuidError::NoSuchVcpu { index: 2, vcpus: 2 })
        ));
    }

    #[test]
    fn missing_and_duplicate_leaves_are_errors() {
        let numa = Topology::new(1, 1, 2, 1).to_numa().expect("numa");
        let mut leaves = for_all(&numa, Vendor::Amd).expect("amd");
        leaves[1].retain(|l| l.leaf != 0x8000_001e);
        assert!(matches!(
            decode(&leaves, Vendor::Amd),
            Err(CpuidError::MissingLeaf { vcpu: 1, .. })
        ));
        let mut intel = for_all(&numa, Vendor::Intel).expect("intel");
        intel[1] = intel[0].clone();
        assert!(matches!(
            decode(&intel, Vendor::Intel),
            Err(CpuidError::Inconsistent(_))
        ));
    }
}

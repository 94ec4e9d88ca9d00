//! SRAT (which NUMA node each vCPU and memory range belongs to) and SLIT
//! (the distance matrix).

use ktstr_topology::NumaTopology;
use zerocopy::{Immutable, IntoBytes, KnownLayout};

use super::sdt;
use crate::layout::{self, MIB};

const SRAT_REVISION: u8 = 3;
const SLIT_REVISION: u8 = 1;
const ENABLED: u32 = 1;

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct X2ApicAffinity {
    kind: u8,
    length: u8,
    reserved0: u16,
    proximity_domain: u32,
    x2apic_id: u32,
    flags: u32,
    clock_domain: u32,
    reserved1: u32,
}

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct MemoryAffinity {
    kind: u8,
    length: u8,
    proximity_domain: u32,
    reserved0: u16,
    base: u64,
    len: u64,
    reserved1: u32,
    flags: u32,
    reserved2: u64,
}

const _: () = assert!(size_of::<X2ApicAffinity>() == 24 && size_of::<MemoryAffinity>() == 40);

/// Guest-physical `(node, base, len)` ranges: nodes take consecutive slices
/// of RAM in order, split around the MMIO gap where they straddle it.
pub fn memory_ranges(node_mib: &[u64], mem_bytes: u64) -> Vec<(u32, u64, u64)> {
    let mut ram = layout::ram_ranges(mem_bytes).into_iter();
    let mut current = ram.next();
    let mut out = Vec::new();
    for (node, &mib) in node_mib.iter().enumerate() {
        let mut want = mib * MIB;
        while want > 0 {
            let Some((base, len)) = current else { break };
            let take = want.min(len);
            out.push((node as u32, base, take));
            want -= take;
            current = if take == len {
                ram.next()
            } else {
                Some((base + take, len - take))
            };
        }
    }
    out
}

pub fn srat(topo: &NumaTopology, ranges: &[(u32, u64, u64)]) -> Vec<u8> {
    // Reserved u32 that must be 1 for compatibility, then a reserved u64.
    let mut body = 1u32.to_le_bytes().to_vec();
    body.extend_from_slice(&[0; 8]);
    for cpu in topo.cpus() {
        body.extend_from_slice(
            X2ApicAffinity {
                kind: 2,
                length: 24,
                proximity_domain: cpu.node,
                x2apic_id: topo.apic_id_of(&cpu),
                flags: ENABLED,
                ..Default::default()
            }
            .as_bytes(),
        );
    }
    for &(node, base, len) in ranges {
        body.extend_from_slice(
            MemoryAffinity {
                kind: 1,
                length: 40,
                proximity_domain: node,
                base,
                len,
                flags: ENABLED,
                ..Default::default()
            }
            .as_bytes(),
        );
    }
    sdt::table(b"SRAT", SRAT_REVISION, &body)
}

pub fn slit(topo: &NumaTopology) -> Vec<u8> {
    let mut body = (topo.distances.nodes() as u64).to_le_bytes().to_vec();
    body.extend_from_slice(topo.distances.cells());
    sdt::table(b"SLIT", SLIT_REVISION, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_splits_around_the_gap() {
        let gap = layout::MMIO_GAP_START;
        let r = memory_ranges(&[2048, 2048], 4096 * MIB);
        assert_eq!(
            r,
            vec![
                (0, 0, 2048 * MIB),
                (1, 2048 * MIB, gap - 2048 * MIB),
                (1, layout::MMIO_GAP_END, 4096 * MIB - gap),
            ]
        );
    }
}

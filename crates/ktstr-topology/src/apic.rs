//! APIC ID bit fields derived from a topology. The layout lives here, not in
//! ktstr-vmm, because it is arithmetic on the shape that shape validation
//! needs (IDs must fit 32 bits); ktstr-vmm generates MADT and CPUID from it.
//! From the low bits up:
//! thread, core, LLC (within its node), node (= package). Each field is
//! ceil(log2(count)) bits wide, so IDs are sparse when a count is not a
//! power of two; this is how hardware lays them out and what CPUID shifts
//! describe.

use crate::TopologyError;

/// Highest APIC ID the legacy xAPIC (and the MADT's type-0 entry) can name;
/// 0xff is the broadcast ID.
pub const MAX_XAPIC_ID: u32 = 254;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApicLayout {
    pub smt_bits: u32,
    pub core_bits: u32,
    pub llc_bits: u32,
    pub node_bits: u32,
}

/// ceil(log2(n)), 0 for n <= 1 (Linux's get_count_order).
pub fn count_order(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        u32::BITS - (n - 1).leading_zeros()
    }
}

impl ApicLayout {
    pub fn new(nodes: u32, llcs_per_node: u32, cores_per_llc: u32, threads_per_core: u32) -> Self {
        Self {
            smt_bits: count_order(threads_per_core),
            core_bits: count_order(cores_per_llc),
            llc_bits: count_order(llcs_per_node),
            node_bits: count_order(nodes),
        }
    }

    pub fn core_shift(&self) -> u32 {
        self.smt_bits
    }

    pub fn llc_shift(&self) -> u32 {
        self.smt_bits + self.core_bits
    }

    /// Also the package shift: each NUMA node is one package.
    pub fn node_shift(&self) -> u32 {
        self.llc_shift() + self.llc_bits
    }

    pub fn total_bits(&self) -> u32 {
        self.node_shift() + self.node_bits
    }

    /// IDs must fit the 32 bits of an x2APIC ID.
    pub fn check_width(&self) -> Result<(), TopologyError> {
        match self.total_bits() {
            bits if bits > 32 => Err(TopologyError::ApicIdTooWide { bits }),
            _ => Ok(()),
        }
    }

    /// The APIC ID of (node, LLC within node, core, thread). Callers keep
    /// each part within its field; `total_bits() <= 32` is validated.
    pub fn apic_id(&self, node: u32, llc_in_node: u32, core: u32, thread: u32) -> u32 {
        let shl = |v: u32, s: u32| v.checked_shl(s).unwrap_or(0);
        shl(node, self.node_shift())
            | shl(llc_in_node, self.llc_shift())
            | shl(core, self.core_shift())
            | thread
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_up_to_powers_of_two() {
        assert_eq!(
            (
                count_order(1),
                count_order(2),
                count_order(3),
                count_order(5)
            ),
            (0, 1, 2, 3)
        );
        let l = ApicLayout::new(2, 3, 3, 2);
        assert_eq!((l.core_shift(), l.llc_shift(), l.node_shift()), (1, 3, 5));
        assert_eq!(l.apic_id(1, 2, 1, 1), (1 << 5) | (2 << 3) | (1 << 1) | 1);
    }
}

//! The uniform shape `<nodes>n<llcs>l<cores>c<threads>t` and where each vCPU
//! sits in it.
//!
//! vCPU numbering is node-major: thread varies fastest, then core, then LLC,
//! then node. With `1n2l2c2t`, vCPUs 0-1 are the two threads of core 0 of
//! LLC 0 and vCPUs 4-7 are LLC 1. Each NUMA node is one package (socket).

use crate::numa::check_vcpus;
use crate::{ApicLayout, DistanceMatrix, MAX_XAPIC_ID, NodeSpec, NumaTopology, TopologyError};

/// Where one vCPU sits. `llc` is the machine-wide LLC index, `llc_in_node`
/// its index within its node; `core` and `thread` are within their parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpuLoc {
    pub node: u32,
    pub llc: u32,
    pub llc_in_node: u32,
    pub core: u32,
    pub thread: u32,
}

/// A uniform topology; `llcs` is the machine-wide total, split evenly
/// across nodes. Text form: `1n2l4c2t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Topology {
    pub numa_nodes: u32,
    pub llcs: u32,
    pub cores_per_llc: u32,
    pub threads_per_core: u32,
}

impl Topology {
    pub const fn new(
        numa_nodes: u32,
        llcs: u32,
        cores_per_llc: u32,
        threads_per_core: u32,
    ) -> Self {
        Self {
            numa_nodes,
            llcs,
            cores_per_llc,
            threads_per_core,
        }
    }

    /// Shape checks: no zero dimension, even LLC split, APIC IDs fit 32 bits.
    pub fn check(&self) -> Result<(), TopologyError> {
        for (what, v) in [
            ("numa_nodes", self.numa_nodes),
            ("llcs", self.llcs),
            ("cores_per_llc", self.cores_per_llc),
            ("threads_per_core", self.threads_per_core),
        ] {
            if v == 0 {
                return Err(TopologyError::Zero { what });
            }
        }
        if self.llcs % self.numa_nodes != 0 {
            return Err(TopologyError::LlcsNotDivisible {
                llcs: self.llcs,
                nodes: self.numa_nodes,
            });
        }
        self.apic_layout().check_width()
    }

    /// [`Self::check`] plus a vCPU limit (e.g. KVM's max vCPUs).
    pub fn validate(&self, max_vcpus: u32) -> Result<(), TopologyError> {
        self.check()?;
        let vcpus =
            u64::from(self.llcs) * u64::from(self.cores_per_llc) * u64::from(self.threads_per_core);
        check_vcpus(vcpus, max_vcpus)
    }

    /// Saturates rather than overflows on unvalidated input.
    pub fn vcpus(&self) -> u32 {
        self.llcs
            .saturating_mul(self.cores_per_llc)
            .saturating_mul(self.threads_per_core)
    }

    pub fn llcs_per_node(&self) -> u32 {
        self.llcs.checked_div(self.numa_nodes).unwrap_or(0)
    }

    pub fn apic_layout(&self) -> ApicLayout {
        ApicLayout::new(
            self.numa_nodes,
            self.llcs_per_node(),
            self.cores_per_llc,
            self.threads_per_core,
        )
    }

    /// Location of vCPU `index`, `None` past the last vCPU.
    pub fn cpu(&self, index: u32) -> Option<CpuLoc> {
        if index >= self.vcpus() {
            return None;
        }
        let thread = index % self.threads_per_core;
        let core = (index / self.threads_per_core) % self.cores_per_llc;
        let llc = index / (self.threads_per_core.saturating_mul(self.cores_per_llc));
        let per_node = self.llcs_per_node().max(1);
        Some(CpuLoc {
            node: llc / per_node,
            llc,
            llc_in_node: llc % per_node,
            core,
            thread,
        })
    }

    pub fn apic_id(&self, index: u32) -> Option<u32> {
        let c = self.cpu(index)?;
        Some(
            self.apic_layout()
                .apic_id(c.node, c.llc_in_node, c.core, c.thread),
        )
    }

    /// True when some APIC ID exceeds what xAPIC can address.
    pub fn needs_x2apic(&self) -> bool {
        // IDs grow with the index, so the last vCPU has the highest.
        self.vcpus()
            .checked_sub(1)
            .and_then(|last| self.apic_id(last))
            .is_some_and(|id| id > MAX_XAPIC_ID)
    }

    /// The general form: even LLC split, default distances, even memory.
    pub fn to_numa(&self) -> Result<NumaTopology, TopologyError> {
        self.check()?;
        let n = self.numa_nodes as usize;
        Ok(NumaTopology {
            cores_per_llc: self.cores_per_llc,
            threads_per_core: self.threads_per_core,
            nodes: vec![
                NodeSpec {
                    llcs: self.llcs_per_node(),
                    memory_mib: None,
                };
                n
            ],
            distances: DistanceMatrix::uniform(n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_is_node_major() {
        let t = Topology::new(2, 4, 2, 2);
        assert_eq!(t.vcpus(), 16);
        let c = t.cpu(13).expect("cpu 13");
        assert_eq!(
            (c.node, c.llc, c.llc_in_node, c.core, c.thread),
            (1, 3, 1, 0, 1)
        );
        assert_eq!(t.cpu(16), None);
        // thread 1 bit, core 1 bit, llc 1 bit, node 1 bit.
        assert_eq!(t.apic_id(13), Some(0b1101));
        let numa = t.to_numa().expect("numa");
        for i in 0..t.vcpus() {
            assert_eq!(numa.cpu(i), t.cpu(i));
            assert_eq!(numa.apic_id(i), t.apic_id(i));
        }
    }

    #[test]
    fn sparse_ids_and_x2apic() {
        // 3 cores need 2 bits: core 2 of LLC 1 is 0b1_10.
        let t = Topology::new(1, 2, 3, 1);
        assert_eq!(t.apic_id(5), Some(0b110));
        assert!(!t.needs_x2apic());
        assert!(Topology::new(1, 16, 16, 1).needs_x2apic());
    }

    #[test]
    fn invalid_shapes_are_rejected() {
        assert!(matches!(
            Topology::new(1, 0, 1, 1).check(),
            Err(TopologyError::Zero { what: "llcs" })
        ));
        assert!(matches!(
            Topology::new(2, 3, 1, 1).check(),
            Err(TopologyError::LlcsNotDivisible { llcs: 3, nodes: 2 })
        ));
        assert!(matches!(
            Topology::new(1, 2, 4, 2).validate(8),
            Err(TopologyError::TooManyVcpus { vcpus: 16, max: 8 })
        ));
        assert!(matches!(
            Topology::new(1 << 20, 1 << 20, 1 << 13, 1).check(),
            Err(TopologyError::ApicIdTooWide { .. })
        ));
    }
}

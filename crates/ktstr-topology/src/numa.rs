//! The general shape: nodes that may differ in LLC count and memory, a
//! distance matrix, and how the VM's memory splits across nodes.

use crate::{ApicLayout, CpuLoc, DistanceMatrix, MAX_XAPIC_ID, TopologyError};

/// `vcpus` within `max` (e.g. KVM's max vCPUs).
pub(crate) fn check_vcpus(vcpus: u64, max: u32) -> Result<(), TopologyError> {
    if vcpus > u64::from(max) {
        return Err(TopologyError::TooManyVcpus {
            vcpus,
            max: u64::from(max),
        });
    }
    Ok(())
}

/// One NUMA node of a non-uniform topology. `memory_mib: None` on every
/// node splits the VM's memory evenly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    pub llcs: u32,
    pub memory_mib: Option<u64>,
}

/// A topology whose nodes may differ in LLC count and memory, with a
/// distance matrix. Numbering and APIC layout follow [`Topology`](crate::Topology); the LLC
/// field is sized for the largest node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumaTopology {
    pub cores_per_llc: u32,
    pub threads_per_core: u32,
    pub nodes: Vec<NodeSpec>,
    pub distances: DistanceMatrix,
}

impl NumaTopology {
    pub fn check(&self) -> Result<(), TopologyError> {
        if self.nodes.is_empty() {
            return Err(TopologyError::Zero { what: "numa_nodes" });
        }
        if self.cores_per_llc == 0 {
            return Err(TopologyError::Zero {
                what: "cores_per_llc",
            });
        }
        if self.threads_per_core == 0 {
            return Err(TopologyError::Zero {
                what: "threads_per_core",
            });
        }
        if self.nodes.iter().any(|n| n.llcs == 0) {
            return Err(TopologyError::Zero { what: "llcs" });
        }
        if self.nodes.iter().any(|n| n.memory_mib == Some(0)) {
            return Err(TopologyError::Zero { what: "memory_mib" });
        }
        let given = self.nodes.iter().filter(|n| n.memory_mib.is_some()).count();
        if given != 0 && given != self.nodes.len() {
            return Err(TopologyError::MemoryPartial);
        }
        if self.distances.nodes() != self.nodes.len() {
            return Err(TopologyError::MatrixSize {
                size: self.distances.nodes(),
                nodes: self.nodes.len(),
            });
        }
        self.apic_layout().check_width()
    }

    pub fn validate(&self, max_vcpus: u32) -> Result<(), TopologyError> {
        self.check()?;
        check_vcpus(self.vcpus_u64(), max_vcpus)
    }

    fn per_llc(&self) -> u64 {
        u64::from(self.cores_per_llc) * u64::from(self.threads_per_core)
    }

    fn llcs_total(&self) -> u64 {
        self.nodes.iter().map(|n| u64::from(n.llcs)).sum()
    }

    fn vcpus_u64(&self) -> u64 {
        // Saturating: unvalidated input must not overflow.
        self.llcs_total().saturating_mul(self.per_llc())
    }

    pub fn vcpus(&self) -> u32 {
        u32::try_from(self.vcpus_u64()).unwrap_or(u32::MAX)
    }

    /// vCPUs in node `node` (the package), 0 if out of range.
    pub fn node_vcpus(&self, node: u32) -> u64 {
        self.nodes
            .get(node as usize)
            .map_or(0, |n| u64::from(n.llcs) * self.per_llc())
    }

    pub fn apic_layout(&self) -> ApicLayout {
        let max_llcs = self.nodes.iter().map(|n| n.llcs).max().unwrap_or(0);
        ApicLayout::new(
            self.nodes.len() as u32,
            max_llcs,
            self.cores_per_llc,
            self.threads_per_core,
        )
    }

    pub fn cpu(&self, index: u32) -> Option<CpuLoc> {
        let per_llc = self.per_llc();
        let mut first_llc = 0u32;
        let mut rest = u64::from(index);
        for (node, spec) in self.nodes.iter().enumerate() {
            let in_node = u64::from(spec.llcs) * per_llc;
            if rest < in_node {
                let llc_in_node = (rest / per_llc) as u32;
                let in_llc = (rest % per_llc) as u32;
                return Some(CpuLoc {
                    node: node as u32,
                    llc: first_llc.saturating_add(llc_in_node),
                    llc_in_node,
                    core: in_llc / self.threads_per_core,
                    thread: in_llc % self.threads_per_core,
                });
            }
            rest -= in_node;
            first_llc = first_llc.saturating_add(spec.llcs);
        }
        None
    }

    pub fn cpus(&self) -> impl Iterator<Item = CpuLoc> + '_ {
        (0..self.vcpus()).map_while(|i| self.cpu(i))
    }

    pub fn apic_id_of(&self, c: &CpuLoc) -> u32 {
        self.apic_layout()
            .apic_id(c.node, c.llc_in_node, c.core, c.thread)
    }

    pub fn apic_id(&self, index: u32) -> Option<u32> {
        self.cpu(index).map(|c| self.apic_id_of(&c))
    }

    pub fn needs_x2apic(&self) -> bool {
        self.cpus().any(|c| self.apic_id_of(&c) > MAX_XAPIC_ID)
    }

    /// MiB per node out of `total_mib`: as given, or split evenly with the
    /// remainder on the last node.
    pub fn node_memory_mib(&self, total_mib: u64) -> Result<Vec<u64>, TopologyError> {
        let n = self.nodes.len() as u64;
        if let Some(given) = self
            .nodes
            .iter()
            .map(|s| s.memory_mib)
            .collect::<Option<Vec<u64>>>()
        {
            let nodes_mib = given.iter().fold(0u64, |a, m| a.saturating_add(*m));
            if nodes_mib != total_mib {
                return Err(TopologyError::MemoryMismatch {
                    nodes_mib,
                    total_mib,
                });
            }
            return Ok(given);
        }
        if n == 0 || total_mib < n {
            return Err(TopologyError::MemoryTooSmall {
                total_mib,
                nodes: self.nodes.len(),
            });
        }
        let each = total_mib / n;
        let mut out = vec![each; n as usize];
        if let Some(last) = out.last_mut() {
            *last += total_mib - each * n;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Topology;

    #[test]
    fn non_uniform_nodes_and_memory() {
        let t = NumaTopology {
            cores_per_llc: 2,
            threads_per_core: 1,
            nodes: vec![
                NodeSpec {
                    llcs: 1,
                    memory_mib: Some(100),
                },
                NodeSpec {
                    llcs: 3,
                    memory_mib: Some(300),
                },
            ],
            distances: DistanceMatrix::uniform(2),
        };
        t.validate(8).expect("valid");
        assert_eq!(t.vcpus(), 8);
        let c = t.cpu(2).expect("cpu 2");
        assert_eq!((c.node, c.llc, c.llc_in_node), (1, 1, 0));
        // llc field sized for 3 LLCs: 2 bits above 1 core bit.
        assert_eq!(t.apic_id(2), Some(1 << 3));
        assert_eq!(t.node_memory_mib(400).expect("given"), [100, 300]);
        assert!(t.node_memory_mib(512).is_err());
        let mut wrong = t.clone();
        wrong.distances = DistanceMatrix::uniform(3);
        assert!(matches!(
            wrong.check(),
            Err(TopologyError::MatrixSize { size: 3, nodes: 2 })
        ));
        wrong.distances = DistanceMatrix::uniform(2);
        wrong.nodes[0].memory_mib = None;
        assert!(matches!(wrong.check(), Err(TopologyError::MemoryPartial)));
        let even = Topology::new(2, 2, 1, 1).to_numa().expect("numa");
        assert_eq!(even.node_memory_mib(257).expect("split"), [128, 129]);
    }
}

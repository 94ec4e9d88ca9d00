//! CPU topology shape and its mapping to `-smp`, `-numa` and the machine type.
//!
//! microvm is the fast default but has neither a die level nor ACPI SRAT/SLIT, so a shape
//! with several LLCs per package (dies) or several NUMA nodes boots on `q35` instead. LLCs
//! map to dies, which QEMU 7.2 shares L3 across only for Intel CPU models: under TCG the
//! topology path therefore uses `-cpu max,vendor=GenuineIntel`. Shapes QEMU cannot express
//! are rejected with a [`TopologyError`] before launch.

/// One NUMA node: the vCPUs it holds and its share of guest memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumaNode {
    pub cpus: Vec<u32>,
    pub memory_mib: u64,
}

/// sockets x dies x cores x threads, plus optional NUMA nodes with a distance matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub sockets: u32,
    pub dies: u32,
    pub cores: u32,
    pub threads: u32,
    /// Empty means one implicit node.
    pub numa_nodes: Vec<NumaNode>,
    /// `distances[i][j]`, 10 on the diagonal; empty means QEMU's defaults.
    pub distances: Vec<Vec<u8>>,
}

/// The QEMU machine a shape needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// No PCI, no firmware: the fastest boot.
    Microvm,
    /// PCI, SeaBIOS and full ACPI (SRAT, SLIT): dies and NUMA nodes.
    Q35,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
    #[error("{vcpus} vCPUs is more than the supported {max}")]
    TooManyVcpus { vcpus: u64, max: u32 },
    #[error("NUMA node {node} has no vCPUs or no memory")]
    EmptyNode { node: usize },
    #[error("vCPU {cpu} is in no NUMA node, in two, or does not exist ({vcpus} vCPUs)")]
    CpuPlacement { cpu: u32, vcpus: u32 },
    #[error("NUMA nodes hold {nodes_mib} MiB but the VM has {memory_mib} MiB")]
    NodeMemory { nodes_mib: u64, memory_mib: u64 },
    #[error(
        "distance matrix must be {nodes}x{nodes} with 10 on the diagonal and 11..=255 elsewhere"
    )]
    Distances { nodes: usize },
    #[error(
        "QEMU 7.2 shares L3 per socket on AMD hosts, so {dies} LLCs per package cannot be \
         expressed with -accel kvm here; use -accel tcg or the native VMM"
    )]
    DiesOnAmdKvm { dies: u32 },
    #[error("vCPU count {given} does not match the topology's {expected}")]
    VcpuMismatch { given: u32, expected: u32 },
}

/// Upper bound on vCPUs (q35 and microvm both handle this without x2APIC tricks).
pub const MAX_VCPUS: u32 = 255;

impl Topology {
    /// `sockets` x `cores` x `threads`, one die, no NUMA.
    pub fn new(sockets: u32, cores: u32, threads: u32) -> Self {
        Topology {
            sockets,
            dies: 1,
            cores,
            threads,
            numa_nodes: Vec::new(),
            distances: Vec::new(),
        }
    }

    /// Total vCPUs; saturates so validation can report absurd shapes.
    pub fn vcpus(&self) -> u64 {
        [self.sockets, self.dies, self.cores, self.threads]
            .iter()
            .fold(1u64, |acc, &n| acc.saturating_mul(u64::from(n)))
    }

    /// microvm when it can express the shape, q35 otherwise.
    pub fn machine(&self) -> Machine {
        if self.dies > 1 || self.numa_nodes.len() > 1 {
            Machine::Q35
        } else {
            Machine::Microvm
        }
    }

    /// Checks the shape; returns the vCPU count.
    pub fn validate(&self) -> Result<u32, TopologyError> {
        for (field, v) in [
            ("sockets", self.sockets),
            ("dies", self.dies),
            ("cores", self.cores),
            ("threads", self.threads),
        ] {
            if v == 0 {
                return Err(TopologyError::Zero { field });
            }
        }
        let vcpus = self.vcpus();
        if vcpus > u64::from(MAX_VCPUS) {
            return Err(TopologyError::TooManyVcpus {
                vcpus,
                max: MAX_VCPUS,
            });
        }
        // Checked against MAX_VCPUS above, so it fits.
        let vcpus = vcpus as u32;
        self.validate_nodes(vcpus)?;
        Ok(vcpus)
    }

    fn validate_nodes(&self, vcpus: u32) -> Result<(), TopologyError> {
        let n = self.numa_nodes.len();
        if n == 0 {
            return if self.distances.is_empty() {
                Ok(())
            } else {
                Err(TopologyError::Distances { nodes: 1 })
            };
        }
        let mut owner = vec![false; vcpus as usize];
        for (i, node) in self.numa_nodes.iter().enumerate() {
            if node.cpus.is_empty() || node.memory_mib == 0 {
                return Err(TopologyError::EmptyNode { node: i });
            }
            for &cpu in &node.cpus {
                match owner.get_mut(cpu as usize) {
                    Some(seen @ false) => *seen = true,
                    _ => return Err(TopologyError::CpuPlacement { cpu, vcpus }),
                }
            }
        }
        if let Some(cpu) = owner.iter().position(|&seen| !seen) {
            return Err(TopologyError::CpuPlacement {
                cpu: cpu as u32,
                vcpus,
            });
        }
        if !self.distances.is_empty() {
            let ok = self.distances.len() == n
                && self.distances.iter().enumerate().all(|(i, row)| {
                    row.len() == n
                        && row
                            .iter()
                            .enumerate()
                            .all(|(j, &d)| if i == j { d == 10 } else { d > 10 })
                });
            if !ok {
                return Err(TopologyError::Distances { nodes: n });
            }
        }
        Ok(())
    }

    /// Sum of the nodes' memory, if nodes are given.
    pub fn nodes_memory_mib(&self) -> Option<u64> {
        (!self.numa_nodes.is_empty()).then(|| self.numa_nodes.iter().map(|n| n.memory_mib).sum())
    }

    /// The `-smp` value; call after [`Topology::validate`].
    pub fn smp_arg(&self) -> String {
        let dies = if self.dies > 1 {
            format!(",dies={}", self.dies)
        } else {
            String::new()
        };
        format!(
            "{},sockets={}{dies},cores={},threads={}",
            self.vcpus(),
            self.sockets,
            self.cores,
            self.threads
        )
    }

    /// `-numa` option values (nodes then distances); `memdev(i)` names node i's backend.
    pub fn numa_args(&self, memdev: impl Fn(usize) -> String) -> Vec<String> {
        let mut out = Vec::new();
        for (i, node) in self.numa_nodes.iter().enumerate() {
            let cpus: String = cpu_ranges(&node.cpus)
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        format!(",cpus={a}")
                    } else {
                        format!(",cpus={a}-{b}")
                    }
                })
                .collect();
            out.push(format!("node,nodeid={i}{cpus},memdev={}", memdev(i)));
        }
        for (i, row) in self.distances.iter().enumerate() {
            for (j, d) in row.iter().enumerate() {
                if i != j {
                    out.push(format!("dist,src={i},dst={j},val={d}"));
                }
            }
        }
        out
    }
}

/// Sorted CPU ids folded into inclusive ranges.
fn cpu_ranges(cpus: &[u32]) -> Vec<(u32, u32)> {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for c in sorted {
        match out.last_mut() {
            Some((_, end)) if c == *end + 1 => *end = c,
            _ => out.push((c, c)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_nodes() -> Topology {
        let mut t = Topology::new(2, 1, 1);
        t.numa_nodes = vec![
            NumaNode {
                cpus: vec![0],
                memory_mib: 128,
            },
            NumaNode {
                cpus: vec![1],
                memory_mib: 128,
            },
        ];
        t.distances = vec![vec![10, 20], vec![20, 10]];
        t
    }

    #[test]
    fn flat_shape_maps_to_smp_on_microvm() {
        let t = Topology::new(1, 2, 1);
        assert_eq!(t.validate(), Ok(2));
        assert_eq!(t.smp_arg(), "2,sockets=1,cores=2,threads=1");
        assert_eq!(t.machine(), Machine::Microvm);
        let t = Topology::new(2, 2, 2);
        assert_eq!(t.validate(), Ok(8));
    }

    #[test]
    fn dies_and_nodes_need_q35() {
        let mut t = Topology::new(1, 2, 1);
        t.dies = 2;
        assert_eq!(t.validate(), Ok(4));
        assert_eq!(t.machine(), Machine::Q35);
        assert_eq!(t.smp_arg(), "4,sockets=1,dies=2,cores=2,threads=1");
        let t = two_nodes();
        assert_eq!(t.validate(), Ok(2));
        assert_eq!(t.machine(), Machine::Q35);
        assert_eq!(t.nodes_memory_mib(), Some(256));
        assert_eq!(
            t.numa_args(|i| format!("mem{i}")),
            [
                "node,nodeid=0,cpus=0,memdev=mem0",
                "node,nodeid=1,cpus=1,memdev=mem1",
                "dist,src=0,dst=1,val=20",
                "dist,src=1,dst=0,val=20",
            ]
        );
    }

    #[test]
    fn cpu_lists_fold_into_ranges() {
        assert_eq!(cpu_ranges(&[3, 0, 1, 5, 6]), [(0, 1), (3, 3), (5, 6)]);
    }

    #[test]
    fn rejects_impossible_shapes() {
        assert_eq!(
            Topology::new(0, 1, 1).validate(),
            Err(TopologyError::Zero { field: "sockets" })
        );
        assert!(matches!(
            Topology::new(u32::MAX, u32::MAX, 2).validate(),
            Err(TopologyError::TooManyVcpus { .. })
        ));
        let mut t = two_nodes();
        t.numa_nodes[1].cpus = vec![0];
        assert_eq!(
            t.validate(),
            Err(TopologyError::CpuPlacement { cpu: 0, vcpus: 2 })
        );
        let mut t = two_nodes();
        t.numa_nodes[1].cpus = vec![2];
        assert_eq!(
            t.validate(),
            Err(TopologyError::CpuPlacement { cpu: 2, vcpus: 2 })
        );
        let mut t = two_nodes();
        t.distances[0][0] = 20;
        assert_eq!(t.validate(), Err(TopologyError::Distances { nodes: 2 }));
        let mut t = two_nodes();
        t.numa_nodes[0].memory_mib = 0;
        assert_eq!(t.validate(), Err(TopologyError::EmptyNode { node: 0 }));
    }
}

//! CPU topology shape and its mapping to `-smp`. Only what QEMU's microvm can express
//! is accepted; everything else is rejected with a [`TopologyError`] before launch.

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

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
    #[error("{vcpus} vCPUs is more than the supported {max}")]
    TooManyVcpus { vcpus: u64, max: u32 },
    #[error(
        "QEMU's microvm machine has no die level in its CPU topology (dies={dies}); use dies=1"
    )]
    DiesUnsupported { dies: u32 },
    #[error(
        "QEMU's microvm machine builds no ACPI SRAT/SLIT, so the guest would see one node \
         whatever -numa says ({nodes} nodes requested); NUMA needs the native VMM or a q35 machine"
    )]
    NumaUnsupported { nodes: usize },
    #[error("vCPU count {given} does not match the topology's {expected}")]
    VcpuMismatch { given: u32, expected: u32 },
}

/// Upper bound on vCPUs; microvm's x2APIC-less default keeps us well below QEMU's limit.
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

    /// Checks the shape against what microvm can express.
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
        if self.dies != 1 {
            return Err(TopologyError::DiesUnsupported { dies: self.dies });
        }
        if !self.numa_nodes.is_empty() || !self.distances.is_empty() {
            return Err(TopologyError::NumaUnsupported {
                nodes: self.numa_nodes.len(),
            });
        }
        // Checked against MAX_VCPUS above, so it fits.
        Ok(vcpus as u32)
    }

    /// The `-smp` value; call after [`Topology::validate`].
    pub fn smp_arg(&self) -> String {
        format!(
            "{},sockets={},cores={},threads={}",
            self.vcpus(),
            self.sockets,
            self.cores,
            self.threads
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_shape_maps_to_smp() {
        let t = Topology::new(1, 2, 1);
        assert_eq!(t.validate(), Ok(2));
        assert_eq!(t.smp_arg(), "2,sockets=1,cores=2,threads=1");
        let t = Topology::new(2, 2, 2);
        assert_eq!(t.validate(), Ok(8));
    }

    #[test]
    fn rejects_what_microvm_cannot_express() {
        let mut t = Topology::new(1, 2, 1);
        t.dies = 2;
        assert_eq!(
            t.validate(),
            Err(TopologyError::DiesUnsupported { dies: 2 })
        );
        let mut t = Topology::new(1, 2, 1);
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
        assert_eq!(
            t.validate(),
            Err(TopologyError::NumaUnsupported { nodes: 2 })
        );
        assert_eq!(
            Topology::new(0, 1, 1).validate(),
            Err(TopologyError::Zero { field: "sockets" })
        );
        assert!(matches!(
            Topology::new(u32::MAX, u32::MAX, 2).validate(),
            Err(TopologyError::TooManyVcpus { .. })
        ));
    }
}

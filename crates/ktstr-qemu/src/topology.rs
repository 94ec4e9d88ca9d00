//! Mapping a [`NumaTopology`] onto `-smp`, `-numa` and the machine type: one socket per
//! NUMA node, one die per LLC.
//!
//! Nodes may differ in LLC count: `-smp` is uniform, so every socket gets
//! the largest node's dies, QEMU starts only the first `-smp cpus` slots
//! (node 0's), and the other nodes' CPUs are added as `-device`s at their
//! socket, die, core and thread, leaving the spare slots empty (possible
//! but not present in the guest). APIC IDs then match [`NumaTopology`]'s,
//! whose LLC field is sized for the largest node too.
//!
//! microvm is the fast default but has neither a die level nor ACPI SRAT/SLIT, so a shape
//! with several LLCs per package (dies) or several NUMA nodes boots on `q35` instead. QEMU
//! 7.2 shares L3 across a die only for Intel CPU models: under TCG the topology path
//! therefore uses `-cpu max,vendor=GenuineIntel`. Shapes QEMU cannot express are refused
//! with a [`ShapeError`] before launch.

use ktstr_topology::{NumaTopology, TopologyError, format_cpu_list};

/// The QEMU machine a shape needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// No PCI, no firmware: the fastest boot.
    Microvm,
    /// PCI, SeaBIOS and full ACPI (SRAT, SLIT): dies and NUMA nodes.
    Q35,
}

/// Why QEMU cannot run a shape.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error(transparent)]
    Invalid(#[from] TopologyError),
    #[error("{vcpus} vCPUs is more than the supported {max}")]
    TooManyVcpus { vcpus: u64, max: u32 },
    #[error(
        "QEMU 7.2 shares L3 per socket on AMD hosts, so {dies} LLCs per package cannot be \
         expressed with -accel kvm here; use -accel tcg or the native VMM"
    )]
    DiesOnAmdKvm { dies: u32 },
}

/// Upper bound on vCPUs (q35 and microvm both handle this without x2APIC tricks).
pub const MAX_VCPUS: u32 = 255;

/// Refuses `vcpus` above [`MAX_VCPUS`].
pub(crate) fn check_vcpus(vcpus: u64) -> Result<u32, ShapeError> {
    u32::try_from(vcpus)
        .ok()
        .filter(|&v| v <= MAX_VCPUS)
        .ok_or(ShapeError::TooManyVcpus {
            vcpus,
            max: MAX_VCPUS,
        })
}

/// Dies (= LLCs) per socket: the largest node's LLC count.
pub fn dies(t: &NumaTopology) -> u32 {
    t.nodes.iter().map(|n| n.llcs).max().unwrap_or(0)
}

/// Whether the nodes differ in LLC count (see the module docs).
fn asymmetric(t: &NumaTopology) -> bool {
    t.nodes.iter().any(|n| n.llcs != dies(t))
}

/// CPU slots per socket, present or not.
fn slots_per_socket(t: &NumaTopology) -> u32 {
    dies(t) * t.cores_per_llc * t.threads_per_core
}

/// Checks that QEMU can express the shape; returns the vCPU count.
pub fn validate(t: &NumaTopology) -> Result<u32, ShapeError> {
    t.check()?;
    check_vcpus(u64::from(slots_per_socket(t)) * t.nodes.len() as u64)?;
    check_vcpus(u64::from(t.vcpus()))
}

/// microvm when it can express the shape, q35 otherwise.
pub fn machine(t: &NumaTopology) -> Machine {
    if t.nodes.len() > 1 || t.nodes.iter().any(|n| n.llcs > 1) {
        Machine::Q35
    } else {
        Machine::Microvm
    }
}

/// The `-smp` value; call after [`validate`].
pub fn smp_arg(t: &NumaTopology) -> Result<String, ShapeError> {
    let dies = dies(t);
    let dies = if dies > 1 {
        format!(",dies={dies}")
    } else {
        String::new()
    };
    let cpus = if asymmetric(t) {
        // Node 0 fills the first slots; the rest come as `-device`s.
        format!(
            "{},maxcpus={}",
            t.node_vcpus(0),
            slots_per_socket(t) as usize * t.nodes.len()
        )
    } else {
        t.vcpus().to_string()
    };
    Ok(format!(
        "{cpus},sockets={}{dies},cores={},threads={}",
        t.nodes.len(),
        t.cores_per_llc,
        t.threads_per_core
    ))
}

/// `-device` values adding the CPUs of nodes after the first when the
/// nodes differ (none otherwise); `cpu_type` is e.g. `max-x86_64-cpu`.
pub fn cpu_devices(t: &NumaTopology, cpu_type: &str) -> Vec<String> {
    if !asymmetric(t) {
        return Vec::new();
    }
    t.cpus()
        .filter(|c| c.node > 0)
        .map(|c| {
            format!(
                "{cpu_type},socket-id={},die-id={},core-id={},thread-id={}",
                c.node, c.llc_in_node, c.core, c.thread
            )
        })
        .collect()
}

/// `-numa` option values (nodes then distances); `memdev(i)` names node i's
/// backend. A node holds its socket's slots, present or not.
pub fn numa_args(t: &NumaTopology, memdev: impl Fn(usize) -> String) -> Vec<String> {
    let mut out = Vec::new();
    let slots = slots_per_socket(t);
    for node in 0..t.nodes.len() {
        let first = node as u32 * slots;
        let cpus: Vec<u32> = (first..first + slots).collect();
        // QEMU takes one `cpus=` per range of the kernel-style list.
        let cpus: String = format_cpu_list(&cpus)
            .split(',')
            .map(|range| format!(",cpus={range}"))
            .collect();
        out.push(format!("node,nodeid={node}{cpus},memdev={}", memdev(node)));
    }
    let n = t.nodes.len();
    if n > 1 {
        for i in 0..n {
            for j in (0..n).filter(|&j| j != i) {
                out.push(format!(
                    "dist,src={i},dst={j},val={}",
                    t.distances.get(i, j)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktstr_topology::{DistanceMatrix, NodeSpec, Topology};

    fn shape(text: &str) -> NumaTopology {
        let t: Topology = text.parse().expect(text);
        t.to_numa().expect(text)
    }

    fn two_nodes() -> NumaTopology {
        let mut t = shape("2n2l1c1t");
        for n in &mut t.nodes {
            n.memory_mib = Some(128);
        }
        t
    }

    #[test]
    fn flat_shape_maps_to_smp_on_microvm() {
        let t = shape("1n1l2c1t");
        assert_eq!(validate(&t).expect("valid"), 2);
        assert_eq!(smp_arg(&t).expect("smp"), "2,sockets=1,cores=2,threads=1");
        assert_eq!(machine(&t), Machine::Microvm);
        assert_eq!(validate(&shape("2n2l2c2t")).expect("valid"), 8);
    }

    #[test]
    fn dies_and_nodes_need_q35() {
        let t = shape("1n2l2c1t");
        assert_eq!(validate(&t).expect("valid"), 4);
        assert_eq!(machine(&t), Machine::Q35);
        assert_eq!(
            smp_arg(&t).expect("smp"),
            "4,sockets=1,dies=2,cores=2,threads=1"
        );
        let t = two_nodes();
        assert_eq!(validate(&t).expect("valid"), 2);
        assert_eq!(machine(&t), Machine::Q35);
        assert_eq!(t.node_memory_mib(256).expect("memory"), [128, 128]);
        assert_eq!(
            numa_args(&t, |i| format!("mem{i}")),
            [
                "node,nodeid=0,cpus=0,memdev=mem0",
                "node,nodeid=1,cpus=1,memdev=mem1",
                "dist,src=0,dst=1,val=20",
                "dist,src=1,dst=0,val=20",
            ]
        );
    }

    #[test]
    fn nodes_become_sockets_and_llcs_dies() {
        let t = shape("2n4l2c2t");
        assert_eq!(validate(&t).expect("valid"), 16);
        assert_eq!(
            smp_arg(&t).expect("smp"),
            "16,sockets=2,dies=2,cores=2,threads=2"
        );
        assert_eq!(t.node_memory_mib(512).expect("memory"), [256, 256]);
        assert_eq!(
            numa_args(&t, |i| format!("m{i}")),
            [
                "node,nodeid=0,cpus=0-7,memdev=m0",
                "node,nodeid=1,cpus=8-15,memdev=m1",
                "dist,src=0,dst=1,val=20",
                "dist,src=1,dst=0,val=20",
            ]
        );
        let flat = shape("1n1l2c1t");
        assert_eq!(validate(&flat).expect("valid"), 2);
        assert_eq!(machine(&flat), Machine::Microvm);
    }

    #[test]
    fn cpu_lists_fold_into_ranges() {
        assert_eq!(
            numa_args(&shape("2n4l2c1t"), |i| format!("m{i}"))[..2],
            [
                "node,nodeid=0,cpus=0-3,memdev=m0",
                "node,nodeid=1,cpus=4-7,memdev=m1"
            ]
        );
    }

    #[test]
    fn rejects_impossible_shapes() {
        let mut t = shape("1n1l1c1t");
        t.nodes.clear();
        assert!(matches!(
            validate(&t),
            Err(ShapeError::Invalid(TopologyError::Zero {
                what: "numa_nodes"
            }))
        ));
        assert!(matches!(
            validate(&shape("1n1l256c1t")),
            Err(ShapeError::TooManyVcpus {
                vcpus: 256,
                max: MAX_VCPUS
            })
        ));
        let mut t = two_nodes();
        t.distances = DistanceMatrix::uniform(3);
        assert!(matches!(
            validate(&t),
            Err(ShapeError::Invalid(TopologyError::MatrixSize {
                size: 3,
                nodes: 2
            }))
        ));
        let mut t = two_nodes();
        t.nodes[0].memory_mib = Some(0);
        assert!(matches!(
            validate(&t),
            Err(ShapeError::Invalid(TopologyError::Zero {
                what: "memory_mib"
            }))
        ));
    }

    #[test]
    fn non_uniform_nodes_fill_their_sockets_with_devices() {
        let t = NumaTopology {
            cores_per_llc: 1,
            threads_per_core: 1,
            nodes: vec![
                NodeSpec {
                    llcs: 1,
                    memory_mib: None,
                },
                NodeSpec {
                    llcs: 2,
                    memory_mib: None,
                },
            ],
            distances: DistanceMatrix::uniform(2),
        };
        assert_eq!(validate(&t).expect("valid"), 3);
        assert_eq!(machine(&t), Machine::Q35);
        // Two sockets of two die slots; node 0 uses one, node 1 both.
        assert_eq!(
            smp_arg(&t).expect("smp"),
            "1,maxcpus=4,sockets=2,dies=2,cores=1,threads=1"
        );
        assert_eq!(
            cpu_devices(&t, "max-x86_64-cpu"),
            [
                "max-x86_64-cpu,socket-id=1,die-id=0,core-id=0,thread-id=0",
                "max-x86_64-cpu,socket-id=1,die-id=1,core-id=0,thread-id=0",
            ]
        );
        assert_eq!(
            numa_args(&t, |i| format!("m{i}"))[..2],
            [
                "node,nodeid=0,cpus=0-1,memdev=m0",
                "node,nodeid=1,cpus=2-3,memdev=m1"
            ]
        );
        assert!(cpu_devices(&shape("2n4l2c1t"), "max-x86_64-cpu").is_empty());
    }
}

//! Everything a topology, its distance matrix or its CPUID can get wrong.

/// Why a topology was rejected or could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("topology dimension '{what}' is zero; every dimension needs at least 1")]
    Zero { what: &'static str },
    #[error("{llcs} LLCs cannot be split evenly across {nodes} NUMA nodes")]
    LlcsNotDivisible { llcs: u32, nodes: u32 },
    #[error("topology has {vcpus} vCPUs; at most {max} are allowed")]
    TooManyVcpus { vcpus: u64, max: u64 },
    #[error("vCPU {index} does not exist; the topology has {vcpus}")]
    NoSuchVcpu { index: u32, vcpus: u32 },
    #[error("APIC IDs for this topology need {bits} bits; an x2APIC ID has 32")]
    ApicIdTooWide { bits: u32 },
    #[error("distance matrix row {row} has {len} entries but the matrix has {rows} rows")]
    MatrixNotSquare { row: usize, len: usize, rows: usize },
    #[error("distance matrix is {size}x{size} but the topology has {nodes} NUMA nodes")]
    MatrixSize { size: usize, nodes: usize },
    #[error("local distance of node {node} is {value}; it must be 10")]
    LocalDistance { node: usize, value: u32 },
    #[error(
        "distance from node {from} to node {to} is {value}; remote distances must be in 11..=255"
    )]
    RemoteDistance { from: usize, to: usize, value: u32 },
    #[error("distance matrix is asymmetric: {a}->{b} is {ab} but {b}->{a} is {ba}")]
    Asymmetric {
        a: usize,
        b: usize,
        ab: u32,
        ba: u32,
    },
    #[error("cannot parse topology {input:?}: bad {part}: {reason} (expected e.g. 1n2l4c2t)")]
    Parse {
        input: String,
        part: &'static str,
        reason: String,
    },
    #[error("per-node memory must be given for every node or for none")]
    MemoryPartial,
    #[error("per-node memory adds up to {nodes_mib} MiB but the VM has {total_mib} MiB")]
    MemoryMismatch { nodes_mib: u64, total_mib: u64 },
    #[error("{total_mib} MiB of memory cannot give each of {nodes} NUMA nodes at least 1 MiB")]
    MemoryTooSmall { total_mib: u64, nodes: usize },
    #[error("CPUID field {field} cannot hold {value} (at most {max})")]
    CpuidLimit {
        field: &'static str,
        value: u64,
        max: u64,
    },
    #[error("vCPU {vcpu} lacks CPUID leaf {leaf:#x} subleaf {subleaf}")]
    MissingLeaf {
        vcpu: usize,
        leaf: u32,
        subleaf: u32,
    },
    #[error("CPUID leaves are inconsistent: {0}")]
    Inconsistent(String),
}

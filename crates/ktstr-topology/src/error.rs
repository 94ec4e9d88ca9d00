//! Everything a shape, its distance matrix, a CPU list or a guest's sysfs
//! can get wrong. Not `PartialEq`: the sysfs variant keeps its `io::Error`.

use std::path::PathBuf;

use crate::CpuListFault;

/// Why a topology was rejected, or a CPU list or the guest's view could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("topology dimension '{what}' is zero; every dimension needs at least 1")]
    Zero { what: &'static str },
    #[error("{llcs} LLCs cannot be split evenly across {nodes} NUMA nodes")]
    LlcsNotDivisible { llcs: u32, nodes: u32 },
    #[error("topology has {vcpus} vCPUs; at most {max} are allowed")]
    TooManyVcpus { vcpus: u64, max: u64 },
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
    #[error("no topology preset {name:?}; give one of {known}, or a shape like 1n2l4c2t")]
    UnknownPreset { name: String, known: String },
    #[error("per-node memory must be given for every node or for none")]
    MemoryPartial,
    #[error("per-node memory adds up to {nodes_mib} MiB but the VM has {total_mib} MiB")]
    MemoryMismatch { nodes_mib: u64, total_mib: u64 },
    #[error("{total_mib} MiB of memory cannot give each of {nodes} NUMA nodes at least 1 MiB")]
    MemoryTooSmall { total_mib: u64, nodes: usize },
    #[error("bad CPU list {text:?}: {reason}")]
    CpuList { text: String, reason: CpuListFault },
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad CPU list {text:?} in {}: {reason}", path.display())]
    SysfsCpuList {
        path: PathBuf,
        text: String,
        reason: CpuListFault,
    },
}

//! Resolution of a [`CpusetSpec`] into a sorted CPU list against the guest's
//! [`GuestTopology`] (read and predicted in ktstr-topology).

use std::collections::BTreeSet;

use ktstr_topology::GuestTopology;

use crate::spec::CpusetSpec;

/// A cpuset spec that names CPUs the topology does not have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    /// LLC index past the end.
    #[error("LLC {index} does not exist (guest has {count})")]
    LlcOutOfRange {
        /// Asked index.
        index: u32,
        /// LLCs present.
        count: usize,
    },
    /// Node index past the end.
    #[error("NUMA node {index} does not exist (guest has {count})")]
    NodeOutOfRange {
        /// Asked index.
        index: u32,
        /// Nodes present.
        count: usize,
    },
    /// Slice parameters impossible.
    #[error("slice {index} of {of} is impossible with {cpus} CPUs")]
    BadSlice {
        /// Slice index.
        index: u32,
        /// Slice count.
        of: u32,
        /// CPUs available.
        cpus: usize,
    },
    /// CPU not online in the guest.
    #[error("CPU {0} is not online in the guest")]
    NoSuchCpu(u32),
    /// Range start after end.
    #[error("CPU range {0}..={1} is reversed")]
    ReversedRange(u32, u32),
    /// Empty CPU list.
    #[error("cpuset resolves to no CPUs")]
    Empty,
}

/// Resolving a [`CpusetSpec`]: the workload's question to a [`GuestTopology`].
pub trait ResolveCpuset {
    /// Resolve `spec` into a non-empty sorted CPU list.
    fn resolve(&self, spec: &CpusetSpec) -> Result<Vec<u32>, ResolveError>;
}

impl ResolveCpuset for GuestTopology {
    fn resolve(&self, spec: &CpusetSpec) -> Result<Vec<u32>, ResolveError> {
        let all = self.all_cpus();
        let out = match spec {
            CpusetSpec::All => all,
            CpusetSpec::Llc(i) => {
                self.llcs
                    .get(*i as usize)
                    .cloned()
                    .ok_or(ResolveError::LlcOutOfRange {
                        index: *i,
                        count: self.llcs.len(),
                    })?
            }
            CpusetSpec::Node(i) => {
                self.nodes
                    .get(*i as usize)
                    .cloned()
                    .ok_or(ResolveError::NodeOutOfRange {
                        index: *i,
                        count: self.nodes.len(),
                    })?
            }
            CpusetSpec::Range(a, b) => {
                if a > b {
                    return Err(ResolveError::ReversedRange(*a, *b));
                }
                let cpus: Vec<u32> = (*a..=*b).collect();
                check_online(&cpus, &all)?;
                cpus
            }
            CpusetSpec::Slice { index, of } => slice(&all, *index, *of)?.to_vec(),
            CpusetSpec::Overlap { index, of, extra } => {
                let mut set: BTreeSet<u32> = slice(&all, *index, *of)?.iter().copied().collect();
                let next = slice(&all, (*index + 1) % *of, *of)?;
                set.extend(next.iter().take(*extra as usize).copied());
                set.into_iter().collect()
            }
            CpusetSpec::List(list) => {
                let set: BTreeSet<u32> = list.iter().copied().collect();
                let cpus: Vec<u32> = set.into_iter().collect();
                check_online(&cpus, &all)?;
                cpus
            }
        };
        if out.is_empty() {
            return Err(ResolveError::Empty);
        }
        Ok(out)
    }
}

fn check_online(cpus: &[u32], all: &[u32]) -> Result<(), ResolveError> {
    match cpus.iter().find(|c| !all.contains(c)) {
        Some(c) => Err(ResolveError::NoSuchCpu(*c)),
        None => Ok(()),
    }
}

/// Contiguous slice `index` of `of`; the remainder goes to the first slices.
fn slice(all: &[u32], index: u32, of: u32) -> Result<&[u32], ResolveError> {
    let n = all.len();
    let bad = ResolveError::BadSlice { index, of, cpus: n };
    if of == 0 || index >= of || of as usize > n {
        return Err(bad);
    }
    let (of, index) = (of as usize, index as usize);
    let base = n / of;
    let rem = n % of;
    let start = index * base + index.min(rem);
    let len = base + usize::from(index < rem);
    all.get(start..start + len).ok_or(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> GuestTopology {
        GuestTopology {
            llcs: vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]],
            nodes: vec![vec![0, 1, 2, 3, 4, 5], vec![6, 7]],
        }
    }

    #[test]
    fn resolves_every_spec_kind() {
        let t = topo();
        let cases: Vec<(CpusetSpec, Result<Vec<u32>, ResolveError>)> = vec![
            (CpusetSpec::All, Ok((0..8).collect())),
            (CpusetSpec::Llc(1), Ok(vec![3, 4, 5])),
            (
                CpusetSpec::Llc(3),
                Err(ResolveError::LlcOutOfRange { index: 3, count: 3 }),
            ),
            (CpusetSpec::Node(1), Ok(vec![6, 7])),
            (
                CpusetSpec::Node(2),
                Err(ResolveError::NodeOutOfRange { index: 2, count: 2 }),
            ),
            (CpusetSpec::Range(2, 4), Ok(vec![2, 3, 4])),
            (
                CpusetSpec::Range(4, 2),
                Err(ResolveError::ReversedRange(4, 2)),
            ),
            (CpusetSpec::Range(7, 8), Err(ResolveError::NoSuchCpu(8))),
            (CpusetSpec::Slice { index: 0, of: 3 }, Ok(vec![0, 1, 2])),
            (CpusetSpec::Slice { index: 1, of: 3 }, Ok(vec![3, 4, 5])),
            (CpusetSpec::Slice { index: 2, of: 3 }, Ok(vec![6, 7])),
            (
                CpusetSpec::Slice { index: 3, of: 3 },
                Err(ResolveError::BadSlice {
                    index: 3,
                    of: 3,
                    cpus: 8,
                }),
            ),
            (
                CpusetSpec::Slice { index: 0, of: 9 },
                Err(ResolveError::BadSlice {
                    index: 0,
                    of: 9,
                    cpus: 8,
                }),
            ),
            (
                CpusetSpec::Overlap {
                    index: 0,
                    of: 2,
                    extra: 1,
                },
                Ok(vec![0, 1, 2, 3, 4]),
            ),
            (
                CpusetSpec::Overlap {
                    index: 1,
                    of: 2,
                    extra: 2,
                },
                Ok(vec![0, 1, 4, 5, 6, 7]),
            ),
            (CpusetSpec::List(vec![7, 1, 1]), Ok(vec![1, 7])),
            (CpusetSpec::List(vec![]), Err(ResolveError::Empty)),
            (CpusetSpec::List(vec![9]), Err(ResolveError::NoSuchCpu(9))),
        ];
        for (spec, want) in cases {
            assert_eq!(t.resolve(&spec), want, "{spec:?}");
        }
    }
}

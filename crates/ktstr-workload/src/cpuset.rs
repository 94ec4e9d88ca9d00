//! Guest topology (LLCs and NUMA nodes) and resolution of a [`CpusetSpec`]
//! into a sorted CPU list.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::spec::CpusetSpec;

/// What the workload needs to know about the guest's CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestTopology {
    /// CPUs of each last-level cache, by LLC index.
    pub llcs: Vec<Vec<u32>>,
    /// CPUs of each NUMA node, by node index.
    pub nodes: Vec<Vec<u32>>,
}

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

/// Reading the topology from sysfs failed.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A CPU list did not parse.
    #[error("bad CPU list {text:?} in {path}")]
    BadList {
        /// File.
        path: String,
        /// Its content.
        text: String,
    },
}

/// Parse a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut out = BTreeSet::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b || b - a > 1 << 16 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().ok()?);
            }
        }
    }
    Some(out.into_iter().collect())
}

/// Format CPUs as a kernel CPU list (`0-3,8`), as `cpuset.cpus` takes it.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

fn read_trim(path: &Path) -> Result<String, TopologyError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| TopologyError::Read {
            path: path.display().to_string(),
            source,
        })
}

fn read_list(path: &Path) -> Result<Vec<u32>, TopologyError> {
    let text = read_trim(path)?;
    parse_cpu_list(&text).ok_or_else(|| TopologyError::BadList {
        path: path.display().to_string(),
        text,
    })
}

impl GuestTopology {
    /// One LLC and one node holding CPUs `0..n`.
    pub fn flat(n: u32) -> Self {
        let all: Vec<u32> = (0..n).collect();
        Self {
            llcs: vec![all.clone()],
            nodes: vec![all],
        }
    }

    /// Read online CPUs, LLCs (highest cache level per CPU) and NUMA nodes
    /// from a sysfs tree rooted at `root` (normally `/sys`). Missing cache or
    /// node information collapses to one LLC / one node of all online CPUs.
    pub fn from_sysfs(root: &Path) -> Result<Self, TopologyError> {
        let cpu_dir = root.join("devices/system/cpu");
        let online = read_list(&cpu_dir.join("online"))?;
        let mut llcs: BTreeMap<Vec<u32>, ()> = BTreeMap::new();
        let mut covered = BTreeSet::new();
        for &cpu in &online {
            let cache = cpu_dir.join(format!("cpu{cpu}/cache"));
            let mut best: Option<(u32, Vec<u32>)> = None;
            let Ok(entries) = fs::read_dir(&cache) else {
                continue;
            };
            for e in entries.flatten() {
                let dir = e.path();
                let is_index = dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("index"));
                if !is_index {
                    continue;
                }
                let Ok(kind) = read_trim(&dir.join("type")) else {
                    continue;
                };
                if kind == "Instruction" {
                    continue;
                }
                let Some(level) = read_trim(&dir.join("level"))
                    .ok()
                    .and_then(|l| l.parse::<u32>().ok())
                else {
                    continue;
                };
                let shared = read_list(&dir.join("shared_cpu_list"))?;
                if best.as_ref().is_none_or(|(l, _)| level > *l) {
                    best = Some((level, shared));
                }
            }
            if let Some((_, shared)) = best {
                // Keep only online CPUs: offline ones cannot run workers.
                let shared: Vec<u32> = shared.into_iter().filter(|c| online.contains(c)).collect();
                covered.extend(shared.iter().copied());
                llcs.insert(shared, ());
            }
        }
        let mut llcs: Vec<Vec<u32>> = llcs.into_keys().filter(|l| !l.is_empty()).collect();
        if llcs.is_empty() || covered.len() != online.len() {
            llcs = vec![online.clone()];
        }
        llcs.sort_by_key(|l| l.first().copied());

        let node_dir = root.join("devices/system/node");
        let mut nodes: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        if let Ok(entries) = fs::read_dir(&node_dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(idx) = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("node"))
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let cpus: Vec<u32> = read_list(&e.path().join("cpulist"))?
                    .into_iter()
                    .filter(|c| online.contains(c))
                    .collect();
                // Memory-only nodes have no CPUs to place workers on.
                if !cpus.is_empty() {
                    nodes.insert(idx, cpus);
                }
            }
        }
        let nodes = if nodes.is_empty() {
            vec![online]
        } else {
            nodes.into_values().collect()
        };
        Ok(Self { llcs, nodes })
    }

    /// Every CPU the topology knows, sorted.
    pub fn all_cpus(&self) -> Vec<u32> {
        let set: BTreeSet<u32> = self
            .llcs
            .iter()
            .chain(self.nodes.iter())
            .flatten()
            .copied()
            .collect();
        set.into_iter().collect()
    }

    /// Resolve `spec` into a non-empty sorted CPU list.
    pub fn resolve(&self, spec: &CpusetSpec) -> Result<Vec<u32>, ResolveError> {
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

    #[test]
    fn cpu_lists_parse_and_format() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[5]), "5");
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn reads_llcs_and_nodes_from_a_sysfs_tree() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "devices/system/cpu/online", "0-3\n");
        for cpu in 0..4 {
            let l3 = if cpu < 2 { "0-1" } else { "2-3" };
            let base = format!("devices/system/cpu/cpu{cpu}/cache");
            write(r, &format!("{base}/index0/type"), "Data\n");
            write(r, &format!("{base}/index0/level"), "1\n");
            write(
                r,
                &format!("{base}/index0/shared_cpu_list"),
                &format!("{cpu}\n"),
            );
            write(r, &format!("{base}/index1/type"), "Instruction\n");
            write(r, &format!("{base}/index1/level"), "1\n");
            write(
                r,
                &format!("{base}/index1/shared_cpu_list"),
                &format!("{cpu}\n"),
            );
            write(r, &format!("{base}/index3/type"), "Unified\n");
            write(r, &format!("{base}/index3/level"), "3\n");
            write(
                r,
                &format!("{base}/index3/shared_cpu_list"),
                &format!("{l3}\n"),
            );
        }
        write(r, "devices/system/node/node0/cpulist", "0-1\n");
        write(r, "devices/system/node/node1/cpulist", "2-3\n");
        write(r, "devices/system/node/node2/cpulist", "\n");
        let t = GuestTopology::from_sysfs(r).unwrap();
        assert_eq!(t.llcs, vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(t.nodes, vec![vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn missing_cache_and_node_info_collapses_to_one_domain() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "devices/system/cpu/online", "0-2\n");
        let t = GuestTopology::from_sysfs(dir.path()).unwrap();
        assert_eq!(t, GuestTopology::flat(3));
        assert!(matches!(
            GuestTopology::from_sysfs(&dir.path().join("nope")),
            Err(TopologyError::Read { .. })
        ));
    }
}

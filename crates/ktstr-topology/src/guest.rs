//! The guest's view of its CPUs: which share a last-level cache and which
//! share a NUMA node. Read from a guest's sysfs, or predicted from the
//! [`NumaTopology`] the guest was booted with.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cpulist::cpu_ids;
use crate::{NumaTopology, TopologyError};

/// CPUs grouped by LLC and by node, each group ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestTopology {
    /// CPUs of each last-level cache, by LLC index.
    pub llcs: Vec<Vec<u32>>,
    /// CPUs of each NUMA node, by node index.
    pub nodes: Vec<Vec<u32>>,
}

fn read_trim(path: &Path) -> Result<String, TopologyError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| TopologyError::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn read_list(path: &Path) -> Result<Vec<u32>, TopologyError> {
    let text = read_trim(path)?;
    cpu_ids(&text).map_err(|reason| TopologyError::SysfsCpuList {
        path: path.to_path_buf(),
        text,
        reason,
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

    /// What a guest booted with `topo` reads from sysfs (vCPU i is CPU i).
    pub fn expected(topo: &NumaTopology) -> Self {
        let mut llcs: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        let mut nodes: Vec<Vec<u32>> = vec![Vec::new(); topo.nodes.len()];
        for (cpu, loc) in (0u32..).zip(topo.cpus()) {
            llcs.entry(loc.llc).or_default().push(cpu);
            if let Some(node) = nodes.get_mut(loc.node as usize) {
                node.push(cpu);
            }
        }
        Self {
            llcs: llcs.into_values().collect(),
            nodes,
        }
    }

    /// Read online CPUs, LLCs (highest cache level per CPU) and NUMA nodes
    /// from a sysfs tree rooted at `root` (normally `/sys`). Missing cache or
    /// node information collapses to one LLC / one node of all online CPUs.
    pub fn from_sysfs(root: &Path) -> Result<Self, TopologyError> {
        let cpu_dir = root.join("devices/system/cpu");
        let online = read_list(&cpu_dir.join("online"))?;
        let mut llcs: BTreeSet<Vec<u32>> = BTreeSet::new();
        let mut covered = BTreeSet::new();
        for &cpu in &online {
            let Some(shared) = llc_of(&cpu_dir.join(format!("cpu{cpu}/cache")))? else {
                continue;
            };
            // Keep only online CPUs: offline ones cannot run workers.
            let shared: Vec<u32> = shared.into_iter().filter(|c| online.contains(c)).collect();
            covered.extend(shared.iter().copied());
            llcs.insert(shared);
        }
        let mut llcs: Vec<Vec<u32>> = llcs.into_iter().filter(|l| !l.is_empty()).collect();
        if llcs.is_empty() || covered.len() != online.len() {
            llcs = vec![online.clone()];
        }
        llcs.sort_by_key(|l| l.first().copied());
        let nodes = nodes_of(&root.join("devices/system/node"), &online)?;
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
}

/// `shared_cpu_list` of the highest data or unified cache level under one
/// CPU's `cache/` directory; `None` when sysfs has no cache information.
fn llc_of(cache: &Path) -> Result<Option<Vec<u32>>, TopologyError> {
    let Ok(entries) = fs::read_dir(cache) else {
        return Ok(None);
    };
    let mut best: Option<(u32, Vec<u32>)> = None;
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
    Ok(best.map(|(_, shared)| shared))
}

/// Online CPUs of each node with CPUs, by node number; one node of all
/// online CPUs when sysfs has no node directory.
fn nodes_of(node_dir: &Path, online: &[u32]) -> Result<Vec<Vec<u32>>, TopologyError> {
    let mut nodes: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if let Ok(entries) = fs::read_dir(node_dir) {
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
    Ok(if nodes.is_empty() {
        vec![online.to_vec()]
    } else {
        nodes.into_values().collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Topology;

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

    #[test]
    fn a_bad_list_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "devices/system/cpu/online", "0-4294967295\n");
        let e = GuestTopology::from_sysfs(dir.path()).unwrap_err();
        assert!(
            matches!(&e, TopologyError::SysfsCpuList { path, .. } if path.ends_with("online")),
            "{e:?}"
        );
    }

    #[test]
    fn expected_view_groups_cpus_by_llc_and_node() {
        let t: Topology = "2n4l2c1t".parse().expect("topology");
        let g = GuestTopology::expected(&t.to_numa().expect("numa"));
        assert_eq!(g.llcs, [vec![0, 1], vec![2, 3], vec![4, 5], vec![6, 7]]);
        assert_eq!(g.nodes, [vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
        assert_eq!(g.all_cpus(), (0..8).collect::<Vec<_>>());
    }
}

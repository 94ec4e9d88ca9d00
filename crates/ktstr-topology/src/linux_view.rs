//! What Linux should report for a topology: the sysfs CPU and node lists and
//! the scheduler domains it builds, so a test can compare a guest's view with
//! the [`NumaTopology`] it asked for.
//!
//! Domains follow Linux 6.x on x86: SMT (core siblings), MC (LLC), PKG
//! (package = node here), then one NUMA level per distinct remote distance.
//! A level is dropped when it spans one CPU or no more than the level below
//! (the kernel's "degenerate" rule).

use std::collections::BTreeSet;

use crate::NumaTopology;

/// One CPU as `/sys/devices/system/cpu/cpuN/` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuView {
    pub thread_siblings: Vec<u32>,
    pub core_cpus: Vec<u32>,
    pub package: u32,
    /// `cache/index3/shared_cpu_list`.
    pub llc_cpus: Vec<u32>,
    pub node: u32,
    /// Names of `domain0`, `domain1`, ... under `/sys/kernel/debug/sched/domains/cpuN/`.
    pub domains: Vec<&'static str>,
}

/// One node as `/sys/devices/system/node/nodeN/` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub cpus: Vec<u32>,
    pub distances: Vec<u8>,
    pub memory_mib: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxView {
    pub cpus: Vec<CpuView>,
    pub nodes: Vec<NodeView>,
}

impl LinuxView {
    /// The view a guest with `memory_mib` of RAM should report; node memory
    /// is what the VMM assigns (the guest's MemTotal is somewhat lower).
    pub fn expected(topo: &NumaTopology, memory_mib: u64) -> Self {
        let locs: Vec<_> = topo.cpus().collect();
        let ids = |keep: &dyn Fn(usize) -> bool| -> Vec<u32> {
            (0..locs.len())
                .filter(|&j| keep(j))
                .map(|j| j as u32)
                .collect()
        };
        let node_memory = topo.node_memory_mib(memory_mib).unwrap_or_default();
        let n = topo.nodes.len();
        let nodes: Vec<NodeView> = (0..n)
            .map(|node| NodeView {
                cpus: ids(&|j| locs[j].node as usize == node),
                distances: (0..n).map(|to| topo.distances.get(node, to)).collect(),
                memory_mib: node_memory.get(node).copied().unwrap_or(0),
            })
            .collect();
        let cpus = locs
            .iter()
            .map(|me| {
                let siblings = ids(&|j| {
                    let o = &locs[j];
                    o.llc == me.llc && o.core == me.core
                });
                let llc = ids(&|j| locs[j].llc == me.llc);
                let package = ids(&|j| locs[j].node == me.node);
                let mut levels = vec![
                    ("SMT", siblings.clone()),
                    ("MC", llc.clone()),
                    ("PKG", package),
                ];
                let here = me.node as usize;
                let remote: BTreeSet<u8> = (0..n)
                    .map(|to| topo.distances.get(here, to))
                    .filter(|&d| d > topo.distances.get(here, here))
                    .collect();
                for d in remote {
                    let within = |j: usize| topo.distances.get(here, locs[j].node as usize) <= d;
                    levels.push(("NUMA", ids(&within)));
                }
                CpuView {
                    core_cpus: siblings.clone(),
                    thread_siblings: siblings,
                    package: me.node,
                    llc_cpus: llc,
                    node: me.node,
                    domains: kept_domains(levels),
                }
            })
            .collect();
        LinuxView { cpus, nodes }
    }
}

/// Drops single-CPU levels and levels that span no more than the one below.
fn kept_domains(levels: Vec<(&'static str, Vec<u32>)>) -> Vec<&'static str> {
    let mut kept = Vec::new();
    let mut below = 1usize;
    for (name, span) in levels {
        if span.len() > below {
            kept.push(name);
            below = span.len();
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Topology;

    fn view(text: &str) -> LinuxView {
        let t: Topology = text.parse().unwrap();
        LinuxView::expected(&t.to_numa().unwrap(), 512)
    }

    fn domains(v: &LinuxView, cpu: usize) -> Vec<&'static str> {
        v.cpus[cpu].domains.clone()
    }

    #[test]
    fn domains_follow_the_degenerate_rule() {
        // Checked against Linux 6.12 under QEMU with the same shapes.
        assert_eq!(domains(&view("1n1l2c1t"), 0), ["MC"]);
        assert_eq!(domains(&view("1n2l2c1t"), 3), ["MC", "PKG"]);
        assert_eq!(domains(&view("1n1l1c2t"), 1), ["SMT"]);
        assert_eq!(domains(&view("2n2l1c1t"), 0), ["NUMA"]);
        assert_eq!(domains(&view("2n2l2c2t"), 5), ["SMT", "MC", "NUMA"]);
        assert_eq!(domains(&view("1n1l1c1t"), 0), Vec::<&str>::new());
    }

    #[test]
    fn lists_and_nodes() {
        let v = view("2n4l2c2t");
        let c = &v.cpus[5];
        assert_eq!(c.thread_siblings, [4, 5]);
        assert_eq!(c.llc_cpus, [4, 5, 6, 7]);
        assert_eq!((c.package, c.node), (0, 0));
        assert_eq!(v.nodes[1].cpus, (8..16).collect::<Vec<_>>());
        assert_eq!(v.nodes[1].distances, [20, 10]);
        assert_eq!(v.nodes[0].memory_mib + v.nodes[1].memory_mib, 512);
    }
}

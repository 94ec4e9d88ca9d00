//! The preset catalogue: named machine shapes a gauntlet runs a test on,
//! and [`resolve`], which turns a preset name or the text form (`1n2l4c2t`)
//! into a [`Shape`].
//!
//! Uniform presets are named by their text form; shapes the text form
//! cannot say (nodes with different CPUs, memory and distances) have a name
//! of their own. Every preset belongs to a [`PresetTier`]: CI runs the
//! [`PresetTier::Ci`] subset on every change (few vCPUs, fast to boot under
//! QEMU TCG); the full gauntlet adds the [`PresetTier::Full`] ones.

use crate::{DistanceMatrix, NodeSpec, NumaTopology, Topology, TopologyError};

/// Which gauntlet run a preset belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PresetTier {
    /// Runs on every CI run: cheap to boot, together covering SMT, several
    /// LLCs, several nodes and asymmetric nodes.
    Ci,
    /// Runs in the full gauntlet only (more vCPUs: slow under QEMU TCG).
    Full,
}

/// How a preset's shape is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresetShape {
    /// The `<n>n<l>l<c>c<t>t` form: LLCs split evenly, even memory.
    Uniform(Topology),
    /// Nodes that differ in LLCs (hence CPUs) and memory.
    Asymmetric {
        cores_per_llc: u32,
        threads_per_core: u32,
        /// `(LLCs, memory MiB)` of each node.
        nodes: &'static [(u32, u64)],
        /// The SLIT rows: 10 on the diagonal, symmetric.
        distances: &'static [&'static [u32]],
    },
}

/// One named shape of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// The name tests and `ktstr topo` use; identifier-safe.
    pub name: &'static str,
    pub shape: PresetShape,
    pub tier: PresetTier,
    /// What the shape exercises, in a few words.
    pub about: &'static str,
}

/// A machine shape ready to boot: the topology and, when the shape fixes
/// each node's memory, the VM's total memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub topology: NumaTopology,
    /// `Some` when the nodes' memory is fixed: the VM must have exactly this.
    pub memory_mib: Option<u64>,
}

const fn uniform(
    name: &'static str,
    shape: Topology,
    tier: PresetTier,
    about: &'static str,
) -> Preset {
    Preset {
        name,
        shape: PresetShape::Uniform(shape),
        tier,
        about,
    }
}

use PresetTier::{Ci, Full};

/// Every preset, CI subset first. A test names them in `gauntlet = [...]`
/// or takes all that meet its constraints with `gauntlet = "presets"`.
pub const PRESETS: &[Preset] = &[
    uniform("1n1l1c1t", Topology::new(1, 1, 1, 1), Ci, "one CPU"),
    uniform(
        "1n1l2c1t",
        Topology::new(1, 1, 2, 1),
        Ci,
        "two cores, one LLC",
    ),
    uniform(
        "1n1l1c2t",
        Topology::new(1, 1, 1, 2),
        Ci,
        "one core, SMT on",
    ),
    uniform("1n2l2c1t", Topology::new(1, 2, 2, 1), Ci, "two LLCs"),
    uniform("2n2l1c1t", Topology::new(2, 2, 1, 1), Ci, "two NUMA nodes"),
    Preset {
        name: "numa_asym_2n",
        shape: PresetShape::Asymmetric {
            cores_per_llc: 2,
            threads_per_core: 1,
            nodes: &[(1, 128), (2, 384)],
            distances: &[&[10, 20], &[20, 10]],
        },
        tier: Ci,
        about: "asymmetric NUMA: 2 CPUs/128 MiB and 4 CPUs/384 MiB",
    },
    uniform(
        "1n1l4c1t",
        Topology::new(1, 1, 4, 1),
        Full,
        "four cores, SMT off",
    ),
    uniform(
        "1n1l4c2t",
        Topology::new(1, 1, 4, 2),
        Full,
        "four cores, SMT on",
    ),
    uniform(
        "1n2l2c2t",
        Topology::new(1, 2, 2, 2),
        Full,
        "two LLCs, SMT on",
    ),
    uniform(
        "2n2l2c1t",
        Topology::new(2, 2, 2, 1),
        Full,
        "two nodes of two cores",
    ),
    uniform(
        "2n4l2c1t",
        Topology::new(2, 4, 2, 1),
        Full,
        "two nodes, two LLCs each",
    ),
    uniform(
        "1n8l1c1t",
        Topology::new(1, 8, 1, 1),
        Full,
        "eight single-CPU LLCs",
    ),
    uniform(
        "1n2l4c2t",
        Topology::new(1, 2, 4, 2),
        Full,
        "16 CPUs, two LLCs, SMT",
    ),
    uniform(
        "2n2l4c2t",
        Topology::new(2, 2, 4, 2),
        Full,
        "16 CPUs, two nodes, SMT",
    ),
    uniform(
        "4n8l2c1t",
        Topology::new(4, 8, 2, 1),
        Full,
        "four nodes, eight LLCs",
    ),
    Preset {
        name: "numa_asym_3n",
        shape: PresetShape::Asymmetric {
            cores_per_llc: 2,
            threads_per_core: 2,
            nodes: &[(1, 128), (1, 128), (2, 256)],
            distances: &[&[10, 20, 30], &[20, 10, 20], &[30, 20, 10]],
        },
        tier: Full,
        about: "asymmetric NUMA: 4/4/8 CPUs, 128/128/256 MiB, distances 20 and 30",
    },
    uniform(
        "1n4l8c2t",
        Topology::new(1, 4, 8, 2),
        Full,
        "64 CPUs, four LLCs, SMT",
    ),
    uniform(
        "4n8l4c2t",
        Topology::new(4, 8, 4, 2),
        Full,
        "64 CPUs, four nodes, eight LLCs, SMT",
    ),
];

/// The preset called `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

impl Preset {
    /// The shape with its memory, checked.
    pub fn resolve(&self) -> Result<Shape, TopologyError> {
        match self.shape {
            PresetShape::Uniform(t) => Ok(Shape {
                topology: t.to_numa()?,
                memory_mib: None,
            }),
            PresetShape::Asymmetric {
                cores_per_llc,
                threads_per_core,
                nodes,
                distances,
            } => {
                let rows: Vec<Vec<u32>> = distances.iter().map(|r| r.to_vec()).collect();
                let topology = NumaTopology {
                    cores_per_llc,
                    threads_per_core,
                    nodes: nodes
                        .iter()
                        .map(|&(llcs, mib)| NodeSpec {
                            llcs,
                            memory_mib: Some(mib),
                        })
                        .collect(),
                    distances: DistanceMatrix::from_rows(&rows)?,
                };
                topology.check()?;
                Ok(Shape {
                    topology,
                    memory_mib: Some(nodes.iter().map(|&(_, mib)| mib).sum()),
                })
            }
        }
    }
}

/// A preset name, else the text form `<n>n<l>l<c>c<t>t`.
pub fn resolve(text: &str) -> Result<Shape, TopologyError> {
    let text = text.trim();
    if let Some(p) = preset(text) {
        return p.resolve();
    }
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(TopologyError::UnknownPreset {
            name: text.to_string(),
            known: PRESETS
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(Shape {
        topology: text.parse::<Topology>()?.to_numa()?,
        memory_mib: None,
    })
}

impl Shape {
    /// The VM's memory: the shape's own when it fixes the nodes' memory
    /// (a different `requested` is an error naming both), else
    /// `requested`, else `default_mib`.
    pub fn memory_mib(
        &self,
        requested: Option<u64>,
        default_mib: u64,
    ) -> Result<u64, TopologyError> {
        match (self.memory_mib, requested) {
            (Some(fixed), Some(asked)) if fixed != asked => Err(TopologyError::MemoryMismatch {
                nodes_mib: fixed,
                total_mib: asked,
            }),
            (Some(fixed), _) => Ok(fixed),
            (None, asked) => Ok(asked.unwrap_or(default_mib)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_catalogue_covers_the_shapes_a_gauntlet_needs() {
        assert!(PRESETS.len() >= 16, "{} presets", PRESETS.len());
        let names: BTreeSet<&str> = PRESETS.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), PRESETS.len(), "preset names are unique");
        let shapes: Vec<(Preset, Shape)> = PRESETS
            .iter()
            .map(|p| {
                (
                    *p,
                    p.resolve().unwrap_or_else(|e| panic!("{}: {e}", p.name)),
                )
            })
            .collect();
        for (p, s) in &shapes {
            assert!(
                p.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{} is not identifier-safe",
                p.name
            );
            if let PresetShape::Uniform(t) = p.shape {
                assert_eq!(
                    t.to_string(),
                    p.name,
                    "a uniform preset is named by its text form"
                );
            }
            assert_eq!(resolve(p.name).expect(p.name), *s);
        }
        let asymmetric = shapes.iter().any(|(_, s)| {
            let cpus: BTreeSet<u64> = (0..s.topology.nodes.len() as u32)
                .map(|n| s.topology.node_vcpus(n))
                .collect();
            let mem: BTreeSet<Option<u64>> =
                s.topology.nodes.iter().map(|n| n.memory_mib).collect();
            cpus.len() > 1 && mem.len() > 1
        });
        assert!(asymmetric, "a preset whose nodes differ in CPUs and memory");
        assert!(
            shapes
                .iter()
                .any(|(_, s)| s.topology.nodes.iter().map(|n| n.llcs).sum::<u32>() >= 8)
        );
        assert!(shapes.iter().any(|(_, s)| s.topology.vcpus() >= 64));
        // SMT on and off for the same core count.
        let cores = |s: &Shape, smt: bool| (s.topology.threads_per_core > 1) == smt;
        let core_count = |s: &Shape| s.topology.vcpus() / s.topology.threads_per_core;
        let smt_pair = shapes.iter().any(|(_, on)| {
            cores(on, true)
                && shapes
                    .iter()
                    .any(|(_, off)| cores(off, false) && core_count(off) == core_count(on))
        });
        assert!(smt_pair, "SMT on and off for the same core count");
        let ci: Vec<&Preset> = PRESETS
            .iter()
            .filter(|p| p.tier == PresetTier::Ci)
            .collect();
        assert!(ci.len() >= 4 && ci.len() < PRESETS.len());
    }

    #[test]
    fn resolve_takes_names_and_text_and_checks_memory() {
        let asym = resolve("numa_asym_2n").expect("preset");
        assert_eq!(asym.topology.vcpus(), 6);
        assert_eq!(asym.topology.node_vcpus(0), 2);
        assert_eq!(asym.memory_mib(None, 512).expect("fixed"), 512);
        assert!(matches!(
            asym.memory_mib(Some(1024), 512),
            Err(TopologyError::MemoryMismatch {
                nodes_mib: 512,
                total_mib: 1024
            })
        ));
        let text = resolve("2n4l1c1t").expect("text form");
        assert_eq!(text.topology.vcpus(), 4);
        assert_eq!(text.memory_mib(Some(256), 512).expect("asked"), 256);
        assert!(matches!(
            resolve("no_such_preset"),
            Err(TopologyError::UnknownPreset { .. })
        ));
        assert!(matches!(resolve("1n2x"), Err(TopologyError::Parse { .. })));
    }
}

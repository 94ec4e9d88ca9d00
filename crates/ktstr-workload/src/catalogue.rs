//! Built-in scenarios users can run as they are. Every one validates on any
//! guest with at least 2 CPUs (cpusets are expressed as slices of all CPUs).

use crate::spec::{CgroupSpec, CpusetSpec, Op, Scenario, Step, WorkKind};

fn cg(name: &str, workers: u32, work: WorkKind, cpuset: CpusetSpec) -> CgroupSpec {
    CgroupSpec::new(name, workers, work, cpuset)
}

fn step(duration_ms: u64, ops_before: Vec<Op>, cgroups: Vec<CgroupSpec>) -> Step {
    Step {
        duration_ms,
        ops_before,
        cgroups,
    }
}

fn half(i: u32) -> CpusetSpec {
    CpusetSpec::Slice { index: i, of: 2 }
}

fn scenario(name: &str, steps: Vec<Step>) -> Scenario {
    Scenario {
        name: name.into(),
        steps,
    }
}

/// One cgroup of 4 spinners on every CPU.
pub fn steady() -> Scenario {
    scenario(
        "steady",
        vec![step(
            2000,
            vec![],
            vec![cg("cg_0", 4, WorkKind::Spin, CpusetSpec::All)],
        )],
    )
}

/// Two cgroups of 4 spinners each sharing every CPU.
pub fn oversubscribed() -> Scenario {
    scenario(
        "oversubscribed",
        vec![step(
            2000,
            vec![],
            vec![
                cg("cg_0", 4, WorkKind::Spin, CpusetSpec::All),
                cg("cg_1", 4, WorkKind::Spin, CpusetSpec::All),
            ],
        )],
    )
}

/// Two cgroups of spinners on disjoint halves of the CPUs.
pub fn cpuset_split() -> Scenario {
    scenario(
        "cpuset_split",
        vec![step(
            2000,
            vec![],
            vec![
                cg("cg_0", 2, WorkKind::Spin, half(0)),
                cg("cg_1", 2, WorkKind::Spin, half(1)),
            ],
        )],
    )
}

/// Split cpusets swapped, then widened, while the workers keep running.
pub fn cpuset_churn() -> Scenario {
    let set = |c: &str, s| Op::SetCpuset {
        cgroup: c.into(),
        cpuset: s,
    };
    scenario(
        "cpuset_churn",
        vec![
            step(
                700,
                vec![],
                vec![
                    cg("cg_0", 2, WorkKind::Spin, half(0)),
                    cg("cg_1", 2, WorkKind::Spin, half(1)),
                ],
            ),
            step(
                700,
                vec![set("cg_0", half(1)), set("cg_1", half(0))],
                vec![],
            ),
            step(
                700,
                vec![set("cg_0", CpusetSpec::All), set("cg_1", CpusetSpec::All)],
                vec![],
            ),
        ],
    )
}

/// Cgroups come and go while others run.
pub fn cgroup_churn() -> Scenario {
    scenario(
        "cgroup_churn",
        vec![
            step(
                500,
                vec![],
                vec![cg("cg_0", 2, WorkKind::Spin, CpusetSpec::All)],
            ),
            step(
                500,
                vec![Op::AddCgroup(cg(
                    "cg_1",
                    2,
                    WorkKind::Yield,
                    CpusetSpec::All,
                ))],
                vec![],
            ),
            step(
                500,
                vec![
                    Op::RemoveCgroup {
                        name: "cg_0".into(),
                    },
                    Op::AddCgroup(cg("cg_2", 2, WorkKind::Spin, half(0))),
                ],
                vec![],
            ),
            step(
                500,
                vec![Op::RemoveCgroup {
                    name: "cg_1".into(),
                }],
                vec![],
            ),
        ],
    )
}

/// Two sleep/wake pairs bouncing a token; wake latency measured.
pub fn ping_pong() -> Scenario {
    scenario(
        "ping_pong",
        vec![step(
            2000,
            vec![],
            vec![cg("cg_0", 4, WorkKind::PingPong, CpusetSpec::All)],
        )],
    )
}

/// Spinners next to bursty sleepers and a pseudo-random mix.
pub fn mixed_sleep_spin() -> Scenario {
    scenario(
        "mixed_sleep_spin",
        vec![step(
            2000,
            vec![],
            vec![
                cg("spin", 2, WorkKind::Spin, CpusetSpec::All),
                cg(
                    "bursty",
                    2,
                    WorkKind::Bursty {
                        on_ms: 5,
                        off_ms: 5,
                    },
                    CpusetSpec::All,
                ),
                cg("mixed", 2, WorkKind::Mixed, CpusetSpec::All),
            ],
        )],
    )
}

/// Workers re-pinned to one half, the other half, then everything.
pub fn affinity_churn() -> Scenario {
    let aff = |s| Op::SetAffinity {
        cgroup: "cg_0".into(),
        cpus: s,
    };
    scenario(
        "affinity_churn",
        vec![
            step(
                500,
                vec![],
                vec![cg("cg_0", 2, WorkKind::Spin, CpusetSpec::All)],
            ),
            step(500, vec![aff(half(0))], vec![]),
            step(500, vec![aff(half(1))], vec![]),
            step(500, vec![aff(CpusetSpec::All)], vec![]),
        ],
    )
}

/// fork/exit churn next to a spinner.
pub fn fork_storm() -> Scenario {
    scenario(
        "fork_storm",
        vec![step(
            2000,
            vec![],
            vec![
                cg("forks", 2, WorkKind::ForkChurn, CpusetSpec::All),
                cg("spin", 1, WorkKind::Spin, CpusetSpec::All),
            ],
        )],
    )
}

/// A parent cgroup with two weighted children.
pub fn nested_cgroups() -> Scenario {
    let mut low = cg("low", 2, WorkKind::Spin, CpusetSpec::All);
    low.weight = Some(100);
    let mut high = cg("high", 2, WorkKind::Spin, CpusetSpec::All);
    high.weight = Some(300);
    let mut outer = cg("outer", 0, WorkKind::Spin, CpusetSpec::All);
    outer.children = vec![low, high];
    scenario("nested_cgroups", vec![step(2000, vec![], vec![outer])])
}

/// Two sibling cgroups with 1:4 weights.
pub fn weighted() -> Scenario {
    let mut a = cg("light", 2, WorkKind::Spin, CpusetSpec::All);
    a.weight = Some(50);
    let mut b = cg("heavy", 2, WorkKind::Spin, CpusetSpec::All);
    b.weight = Some(200);
    scenario("weighted", vec![step(2000, vec![], vec![a, b])])
}

/// Tasks of one cgroup moved into another on the other half of the CPUs.
pub fn move_tasks() -> Scenario {
    scenario(
        "move_tasks",
        vec![
            step(
                700,
                vec![],
                vec![
                    cg("src", 2, WorkKind::Spin, half(0)),
                    cg("dst", 1, WorkKind::Spin, half(1)),
                ],
            ),
            step(
                700,
                vec![Op::MoveTasks {
                    from: "src".into(),
                    to: "dst".into(),
                }],
                vec![],
            ),
        ],
    )
}

/// Two cgroups whose cpusets share one CPU (each half plus the next's first).
pub fn overlapping_cpusets() -> Scenario {
    let ov = |index| CpusetSpec::Overlap {
        index,
        of: 2,
        extra: 1,
    };
    scenario(
        "overlapping_cpusets",
        vec![step(
            2000,
            vec![],
            vec![
                cg("cg_0", 2, WorkKind::Spin, ov(0)),
                cg("cg_1", 2, WorkKind::Yield, ov(1)),
            ],
        )],
    )
}

/// Every built-in scenario.
pub fn all() -> Vec<Scenario> {
    vec![
        steady(),
        oversubscribed(),
        cpuset_split(),
        cpuset_churn(),
        cgroup_churn(),
        ping_pong(),
        mixed_sleep_spin(),
        affinity_churn(),
        fork_storm(),
        nested_cgroups(),
        weighted(),
        move_tasks(),
        overlapping_cpusets(),
    ]
}

/// A built-in scenario by name.
pub fn by_name(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use ktstr_topology::GuestTopology;

    #[test]
    fn every_scenario_validates_on_small_and_larger_guests() {
        let topos = [
            GuestTopology::flat(2),
            GuestTopology {
                llcs: vec![vec![0, 1], vec![2, 3]],
                nodes: vec![vec![0, 1, 2, 3]],
            },
            GuestTopology {
                llcs: vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]],
                nodes: vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]],
            },
        ];
        let all = all();
        assert!(all.len() >= 10);
        for sc in &all {
            for t in &topos {
                assert_eq!(sc.validate(t), Ok(()), "{} on {t:?}", sc.name);
            }
            assert_eq!(by_name(&sc.name).as_ref(), Some(sc));
        }
        let names: BTreeSet<&str> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), all.len(), "names must be unique");
        for required in [
            "steady",
            "oversubscribed",
            "cpuset_split",
            "cpuset_churn",
            "cgroup_churn",
            "ping_pong",
            "mixed_sleep_spin",
            "affinity_churn",
            "fork_storm",
            "nested_cgroups",
        ] {
            assert!(names.contains(required), "missing {required}");
        }
    }

    #[test]
    fn split_scenarios_need_two_cpus() {
        assert!(cpuset_split().validate(&GuestTopology::flat(1)).is_err());
        assert_eq!(steady().validate(&GuestTopology::flat(1)), Ok(()));
    }
}

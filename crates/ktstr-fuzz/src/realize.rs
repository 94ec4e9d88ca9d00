//! A [`Plan`] as a [`Scenario`] that validates on the topology: indices are
//! reduced to what exists, ping-pong gets an even worker count, ops with
//! nothing to act on are dropped, and an affinity stays inside its
//! cgroup's cpuset. Cgroups are named `cg_<n>` in creation order, so a
//! shrunk plan gets the same names however it was reached.

use ktstr_topology::GuestTopology;
use ktstr_workload::cpuset::ResolveCpuset;
use ktstr_workload::{CgroupSpec, CpusetSpec, Op, Scenario, Step, WorkKind};

use crate::plan::{CgroupPlan, CpusPick, OpPlan, Plan, WorkPick};

/// The live cgroups while the plan is walked: name and current CPUs.
struct Alive {
    cgroups: Vec<(String, Vec<u32>)>,
    created: usize,
}

impl Alive {
    fn pick(&self, i: usize) -> Option<usize> {
        (!self.cgroups.is_empty()).then(|| i % self.cgroups.len())
    }
}

fn cpuset(topo: &GuestTopology, pick: CpusPick) -> CpusetSpec {
    let cpus = topo.all_cpus().len() as u32;
    let modulo = |i: u32, n: usize| i % (n.max(1) as u32);
    // A slice count the CPUs allow (at least 2 CPUs, else every CPU).
    let slices = |of: u32| of.min(cpus);
    match pick {
        CpusPick::All => CpusetSpec::All,
        CpusPick::Llc(i) => CpusetSpec::Llc(modulo(i, topo.llcs.len())),
        CpusPick::Node(i) => CpusetSpec::Node(modulo(i, topo.nodes.len())),
        CpusPick::Slice { index, of } if slices(of) >= 2 => CpusetSpec::Slice {
            index: index % slices(of),
            of: slices(of),
        },
        CpusPick::Overlap { index, of } if slices(of) >= 2 => CpusetSpec::Overlap {
            index: index % slices(of),
            of: slices(of),
            extra: 1,
        },
        CpusPick::Slice { .. } | CpusPick::Overlap { .. } => CpusetSpec::All,
    }
}

fn work(w: WorkPick) -> WorkKind {
    match w {
        WorkPick::Spin => WorkKind::Spin,
        WorkPick::Yield => WorkKind::Yield,
        WorkPick::Mixed => WorkKind::Mixed,
        WorkPick::Bursty { on_ms, off_ms } => WorkKind::Bursty { on_ms, off_ms },
        WorkPick::PingPong => WorkKind::PingPong,
        WorkPick::ForkChurn => WorkKind::ForkChurn,
    }
}

fn cgroup(topo: &GuestTopology, alive: &mut Alive, c: &CgroupPlan) -> CgroupSpec {
    let name = format!("cg_{}", alive.created);
    alive.created += 1;
    let spec = cpuset(topo, c.cpus);
    let cpus = topo.resolve(&spec).unwrap_or_else(|_| topo.all_cpus());
    alive.cgroups.push((name.clone(), cpus));
    let workers = if c.work == WorkPick::PingPong {
        c.workers + c.workers % 2
    } else {
        c.workers
    };
    CgroupSpec {
        name,
        workers,
        work: work(c.work),
        cpuset: spec,
        weight: c.weight,
        children: Vec::new(),
    }
}

fn op(topo: &GuestTopology, alive: &mut Alive, o: &OpPlan) -> Option<Op> {
    match *o {
        OpPlan::Add(c) => Some(Op::AddCgroup(cgroup(topo, alive, &c))),
        OpPlan::Remove { target } => {
            let i = alive.pick(target)?;
            let (name, _) = alive.cgroups.remove(i);
            Some(Op::RemoveCgroup { name })
        }
        OpPlan::SetCpuset { target, cpus } => {
            let i = alive.pick(target)?;
            let spec = cpuset(topo, cpus);
            alive.cgroups[i].1 = topo.resolve(&spec).ok()?;
            Some(Op::SetCpuset {
                cgroup: alive.cgroups[i].0.clone(),
                cpuset: spec,
            })
        }
        OpPlan::SetAffinity { target, cpus } => {
            let i = alive.pick(target)?;
            let (name, allowed) = &alive.cgroups[i];
            let wanted = topo.resolve(&cpuset(topo, cpus)).ok()?;
            let inside: Vec<u32> = wanted.into_iter().filter(|c| allowed.contains(c)).collect();
            (!inside.is_empty()).then(|| Op::SetAffinity {
                cgroup: name.clone(),
                cpus: CpusetSpec::List(inside),
            })
        }
        OpPlan::MoveTasks { from, to } => {
            let n = alive.cgroups.len();
            if n < 2 {
                return None;
            }
            let from = from % n;
            let to = if to % n == from {
                (from + 1) % n
            } else {
                to % n
            };
            Some(Op::MoveTasks {
                from: alive.cgroups[from].0.clone(),
                to: alive.cgroups[to].0.clone(),
            })
        }
    }
}

/// The scenario `plan` stands for on `topo`, named `name`.
pub fn realize(plan: &Plan, topo: &GuestTopology, name: &str) -> Scenario {
    let mut alive = Alive {
        cgroups: Vec::new(),
        created: 0,
    };
    let steps = plan
        .steps
        .iter()
        .map(|s| {
            let ops_before = s
                .ops
                .iter()
                .filter_map(|o| op(topo, &mut alive, o))
                .collect();
            let cgroups = s
                .cgroups
                .iter()
                .map(|c| cgroup(topo, &mut alive, c))
                .collect();
            Step {
                duration_ms: s.duration_ms,
                ops_before,
                cgroups,
            }
        })
        .collect();
    Scenario {
        name: name.to_string(),
        steps,
    }
}

/// Cgroups the scenario ever creates (steps and `AddCgroup` ops).
pub fn cgroup_count(s: &Scenario) -> usize {
    s.steps
        .iter()
        .map(|st| {
            st.cgroups.len()
                + st.ops_before
                    .iter()
                    .filter(|o| matches!(o, Op::AddCgroup(_)))
                    .count()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    use super::*;
    use crate::plan::{Limits, plans};

    #[test]
    fn every_plan_and_every_shrink_of_it_validates() {
        let shapes = ["1n1l1c1t", "1n1l2c1t", "numa_asym_2n", "2n4l2c1t"];
        let mut runner = TestRunner::deterministic();
        for shape in shapes {
            let topo = ktstr_topology::resolve(shape).expect(shape).topology;
            let guest = GuestTopology::expected(&topo);
            for _ in 0..200 {
                let mut tree = plans(Limits::default())
                    .new_tree(&mut runner)
                    .expect("tree");
                // Down the shrink path as far as it goes.
                for _ in 0..200 {
                    let s = realize(&tree.current(), &guest, "t");
                    if let Err(e) = s.validate(&guest) {
                        panic!("{shape}: {e}\n{s:#?}");
                    }
                    if !tree.simplify() {
                        break;
                    }
                }
            }
        }
    }
}

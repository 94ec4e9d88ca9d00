//! What proptest generates and shrinks: a [`Plan`], an abstract scenario
//! whose references are indices ("the cgroup at index 3 of those alive"),
//! so that any plan, and any smaller plan proptest shrinks it to, maps to
//! a valid [`Scenario`](ktstr_workload::Scenario) ([`crate::realize`]).
//!
//! Shrinking order comes from proptest: vectors lose elements first (fewer
//! steps, cgroups, ops), then numbers move to their lower bound (fewer
//! workers, shorter steps) and enums to their first variant (spin work,
//! the all-CPUs cpuset, no weight).

use proptest::prelude::*;

/// Bounds of the generated plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most steps in a scenario.
    pub max_steps: usize,
    /// Most cgroups a step creates.
    pub max_cgroups_per_step: usize,
    /// Most ops before a step.
    pub max_ops_per_step: usize,
    /// Most workers in one cgroup.
    pub max_workers: u32,
    /// Step duration range, ms.
    pub min_step_ms: u64,
    /// Upper end of the step duration, ms.
    pub max_step_ms: u64,
}

impl Default for Limits {
    /// Small enough that one run takes seconds in a 2-vCPU guest under TCG.
    fn default() -> Self {
        Self {
            max_steps: 4,
            max_cgroups_per_step: 3,
            max_ops_per_step: 2,
            max_workers: 4,
            min_step_ms: 200,
            max_step_ms: 1500,
        }
    }
}

/// A cpuset by kind and free indices; [`crate::realize`] reduces the
/// indices to what the topology has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpusPick {
    /// Every CPU (what shrinking ends at).
    All,
    /// LLC `i mod LLCs`.
    Llc(u32),
    /// Node `i mod nodes`.
    Node(u32),
    /// Slice `index mod of` of `of` (2..=4).
    Slice { index: u32, of: u32 },
    /// The same, plus one CPU of the next slice.
    Overlap { index: u32, of: u32 },
}

/// A work kind; payloads are left out (nothing to run in the guest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkPick {
    Spin,
    Yield,
    Mixed,
    Bursty { on_ms: u32, off_ms: u32 },
    PingPong,
    ForkChurn,
}

/// A cgroup to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupPlan {
    pub workers: u32,
    pub work: WorkPick,
    pub cpus: CpusPick,
    /// `cpu.weight`; `None` keeps the default.
    pub weight: Option<u32>,
}

/// A change before a step; `target`/`from`/`to` index the cgroups alive
/// at that point (modulo their count; ops with nothing to act on vanish).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpPlan {
    SetCpuset { target: usize, cpus: CpusPick },
    SetAffinity { target: usize, cpus: CpusPick },
    MoveTasks { from: usize, to: usize },
    Remove { target: usize },
    Add(CgroupPlan),
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepPlan {
    pub duration_ms: u64,
    pub ops: Vec<OpPlan>,
    pub cgroups: Vec<CgroupPlan>,
}

/// A whole generated scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<StepPlan>,
}

fn cpus() -> impl Strategy<Value = CpusPick> {
    prop_oneof![
        Just(CpusPick::All),
        (0u32..8).prop_map(CpusPick::Llc),
        (0u32..4).prop_map(CpusPick::Node),
        (0u32..4, 2u32..=4).prop_map(|(index, of)| CpusPick::Slice { index, of }),
        (0u32..4, 2u32..=4).prop_map(|(index, of)| CpusPick::Overlap { index, of }),
    ]
}

fn work() -> impl Strategy<Value = WorkPick> {
    prop_oneof![
        Just(WorkPick::Spin),
        Just(WorkPick::Yield),
        Just(WorkPick::Mixed),
        (1u32..=20, 0u32..=20).prop_map(|(on_ms, off_ms)| WorkPick::Bursty { on_ms, off_ms }),
        Just(WorkPick::PingPong),
        Just(WorkPick::ForkChurn),
    ]
}

fn cgroup(limits: Limits) -> impl Strategy<Value = CgroupPlan> {
    (
        1..=limits.max_workers.max(1),
        work(),
        cpus(),
        proptest::option::of(1u32..=10_000),
    )
        .prop_map(|(workers, work, cpus, weight)| CgroupPlan {
            workers,
            work,
            cpus,
            weight,
        })
}

fn op(limits: Limits) -> impl Strategy<Value = OpPlan> {
    prop_oneof![
        (0usize..8, cpus()).prop_map(|(target, cpus)| OpPlan::SetCpuset { target, cpus }),
        (0usize..8, cpus()).prop_map(|(target, cpus)| OpPlan::SetAffinity { target, cpus }),
        (0usize..8, 0usize..8).prop_map(|(from, to)| OpPlan::MoveTasks { from, to }),
        (0usize..8).prop_map(|target| OpPlan::Remove { target }),
        cgroup(limits).prop_map(OpPlan::Add),
    ]
}

fn step(limits: Limits) -> impl Strategy<Value = StepPlan> {
    (
        limits.min_step_ms..=limits.max_step_ms.max(limits.min_step_ms),
        proptest::collection::vec(op(limits), 0..=limits.max_ops_per_step),
        proptest::collection::vec(cgroup(limits), 0..=limits.max_cgroups_per_step),
    )
        .prop_map(|(duration_ms, ops, cgroups)| StepPlan {
            duration_ms,
            ops,
            cgroups,
        })
}

/// Plans of 1..=`max_steps` steps within `limits`.
pub fn plans(limits: Limits) -> impl Strategy<Value = Plan> {
    proptest::collection::vec(step(limits), 1..=limits.max_steps.max(1))
        .prop_map(|steps| Plan { steps })
}

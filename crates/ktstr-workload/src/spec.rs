//! Scenarios as data: what the host declares and the guest runs.
//!
//! Lifetime model: a cgroup listed in `Step::cgroups` is created when that
//! step starts and lives (with its workers running) until an
//! [`Op::RemoveCgroup`] or the end of the scenario. Ops run before the step
//! that holds them, against the cgroups alive at that point.

use std::collections::BTreeSet;

use ktstr_topology::GuestTopology;
use serde::{Deserialize, Serialize};

use crate::cpuset::{ResolveCpuset, ResolveError};
use crate::hotplug::{self, HotplugProblem};
use crate::payload::PayloadSpec;

/// Upper bound on workers in one scenario: each is a process on a small guest.
pub const MAX_WORKERS: usize = 1024;
/// Upper bound on one step's duration (1 hour): a typo guard, not a policy.
pub const MAX_STEP_MS: u64 = 3_600_000;

/// A named sequence of steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    /// Name used in reports and verdict lines.
    pub name: String,
    /// Steps, run in order.
    pub steps: Vec<Step>,
}

/// One phase of a scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// How long the step holds, in ms.
    pub duration_ms: u64,
    /// Changes applied before the step starts.
    #[serde(default)]
    pub ops_before: Vec<Op>,
    /// Cgroups created when the step starts.
    #[serde(default)]
    pub cgroups: Vec<CgroupSpec>,
}

/// A cgroup and its workers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupSpec {
    /// Name, unique in the scenario; children are addressed as `parent/child`.
    pub name: String,
    /// Worker processes placed in this cgroup (0 for a pure parent).
    pub workers: u32,
    /// What each worker does.
    pub work: WorkKind,
    /// CPUs the cgroup may use.
    #[serde(default)]
    pub cpuset: CpusetSpec,
    /// `cpu.weight` (1..=10000); `None` leaves the kernel default (100).
    #[serde(default)]
    pub weight: Option<u32>,
    /// Nested cgroups.
    #[serde(default)]
    pub children: Vec<CgroupSpec>,
}

impl CgroupSpec {
    /// A cgroup of `workers` doing `work` on `cpuset`: default weight, no children.
    pub fn new(name: &str, workers: u32, work: WorkKind, cpuset: CpusetSpec) -> Self {
        CgroupSpec {
            name: name.into(),
            workers,
            work,
            cpuset,
            weight: None,
            children: Vec::new(),
        }
    }
}

/// Which CPUs, expressed against the guest topology.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CpusetSpec {
    /// Every online CPU.
    #[default]
    All,
    /// The CPUs sharing last-level cache `i`.
    Llc(u32),
    /// The CPUs of NUMA node `i`.
    Node(u32),
    /// CPUs `a..=b`.
    Range(u32, u32),
    /// Disjoint contiguous slice `index` of `of` equal slices of all CPUs.
    Slice {
        /// Which slice.
        index: u32,
        /// How many slices.
        of: u32,
    },
    /// Slice `index` of `of`, plus the first `extra` CPUs of the next slice
    /// (wrapping), so neighbours overlap.
    Overlap {
        /// Which slice.
        index: u32,
        /// How many slices.
        of: u32,
        /// CPUs borrowed from the next slice.
        extra: u32,
    },
    /// Exactly these CPUs.
    List(Vec<u32>),
}

/// What a worker does in its loop; each loop turn is one work unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkKind {
    /// Pure CPU burn.
    Spin,
    /// A little work then `sched_yield()`.
    Yield,
    /// Pairs (worker 2k, 2k+1) bounce a token over pipes; wake latency measured.
    PingPong,
    /// Spin `on_ms`, sleep `off_ms`; timer wake latency measured.
    Bursty {
        /// Busy phase, ms.
        on_ms: u32,
        /// Sleep phase, ms.
        off_ms: u32,
    },
    /// A pseudo-random mix of spin, yield and short sleeps.
    Mixed,
    /// `fork()` a child that exits at once, reap it, repeat.
    ForkChurn,
    /// Run an external binary as background load, restarted if it exits
    /// early (never judged by its exit; for one judged run with its exit
    /// status, output and figures, see [`Op::Payload`]).
    Payload {
        /// Absolute path of the binary.
        path: String,
        /// Its arguments (without `argv[0]`).
        args: Vec<String>,
    },
}

impl WorkKind {
    /// Short tag for tables and JSON.
    pub fn tag(&self) -> &'static str {
        match self {
            WorkKind::Spin => "spin",
            WorkKind::Yield => "yield",
            WorkKind::PingPong => "pingpong",
            WorkKind::Bursty { .. } => "bursty",
            WorkKind::Mixed => "mixed",
            WorkKind::ForkChurn => "forkchurn",
            WorkKind::Payload { .. } => "payload",
        }
    }
}

/// A change between steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Create a cgroup (and start its workers).
    AddCgroup(CgroupSpec),
    /// Stop a cgroup's workers and remove it (children included).
    RemoveCgroup {
        /// Cgroup path name.
        name: String,
    },
    /// Change a cgroup's cpuset.
    SetCpuset {
        /// Cgroup path name.
        cgroup: String,
        /// New CPUs.
        cpuset: CpusetSpec,
    },
    /// Move every task of `from` into `to`.
    MoveTasks {
        /// Source cgroup.
        from: String,
        /// Destination cgroup.
        to: String,
    },
    /// `sched_setaffinity` every task of a cgroup.
    SetAffinity {
        /// Cgroup path name.
        cgroup: String,
        /// CPUs to pin to.
        cpus: CpusetSpec,
    },
    /// Take a CPU offline (see [`crate::hotplug`]): its tasks move to other
    /// CPUs; a cgroup left with no online CPU falls back to its parent's.
    CpuOffline {
        /// The CPU (not cpu0).
        cpu: u32,
    },
    /// Bring a CPU an earlier op took offline back online.
    CpuOnline {
        /// The CPU.
        cpu: u32,
    },
    /// Run a program once in its own cgroup; the step holding this op
    /// lasts until it has exited (see [`crate::payload`]).
    Payload(PayloadSpec),
}

/// Why a scenario is not runnable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// Scenario has no steps.
    #[error("scenario {0:?} has no steps")]
    NoSteps(String),
    /// A step lasts 0 ms or absurdly long.
    #[error("step {step}: duration {ms} ms is outside 1..={MAX_STEP_MS}")]
    BadDuration {
        /// Step index.
        step: usize,
        /// Given duration.
        ms: u64,
    },
    /// Bad cgroup name (empty, has '/', '.', or whitespace).
    #[error("cgroup name {0:?} is empty or has '/', '.' or whitespace")]
    BadName(String),
    /// Same name twice.
    #[error("cgroup {0:?} is declared twice")]
    DuplicateCgroup(String),
    /// A leaf cgroup with no workers.
    #[error("cgroup {0:?} has zero workers and no children")]
    ZeroWorkers(String),
    /// cgroup v2 forbids tasks in a cgroup whose children use controllers.
    #[error("cgroup {0:?} has both workers and children (cgroup v2 no-internal-process rule)")]
    InternalProcesses(String),
    /// Ping-pong needs pairs.
    #[error("cgroup {name:?}: ping-pong needs an even worker count, got {workers}")]
    OddPingPong {
        /// Cgroup.
        name: String,
        /// Worker count.
        workers: u32,
    },
    /// Weight outside cgroup v2's range.
    #[error("cgroup {name:?}: cpu.weight {weight} is outside 1..=10000")]
    BadWeight {
        /// Cgroup.
        name: String,
        /// Given weight.
        weight: u32,
    },
    /// Payload path not absolute or empty.
    #[error("cgroup {0:?}: payload path must be absolute")]
    BadPayload(String),
    /// Bursty with on_ms == 0.
    #[error("cgroup {0:?}: bursty on_ms must be > 0")]
    BadDutyCycle(String),
    /// An op names a cgroup that is not alive at that point.
    #[error("step {step}: op names cgroup {name:?}, which does not exist then")]
    UnknownCgroup {
        /// Step index.
        step: usize,
        /// Name.
        name: String,
    },
    /// Tasks moved into a cgroup that has children (no-internal-process rule).
    #[error("step {step}: cannot move tasks into {name:?}, which has child cgroups")]
    MoveIntoParent {
        /// Step index.
        step: usize,
        /// Destination.
        name: String,
    },
    /// Cpuset does not resolve on this topology.
    #[error("cgroup {name:?}: {source}")]
    Cpuset {
        /// Cgroup (or op target).
        name: String,
        /// Resolution failure.
        source: ResolveError,
    },
    /// Child cpuset not inside its parent's.
    #[error("cgroup {child:?}: cpuset {child_cpus:?} is not inside parent's {parent_cpus:?}")]
    ChildOutsideParent {
        /// Child path.
        child: String,
        /// Child CPUs.
        child_cpus: Vec<u32>,
        /// Parent CPUs.
        parent_cpus: Vec<u32>,
    },
    /// A hotplug op that cannot run at that point.
    #[error("step {step}: cpu{cpu} {problem}")]
    Hotplug {
        /// Step index.
        step: usize,
        /// The CPU.
        cpu: u32,
        /// What is wrong.
        problem: HotplugProblem,
    },
    /// `duration_ms` shorter than one millisecond per step.
    #[error("an overall duration of {total_ms} ms cannot hold {steps} steps of at least 1 ms")]
    DurationTooShort {
        /// The requested total.
        total_ms: u64,
        /// Steps in the scenario.
        steps: usize,
    },
    /// A payload's own fields do not make sense.
    #[error("payload {name:?}: {reason}")]
    BadPayloadSpec {
        /// Payload name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Too many workers overall.
    #[error("scenario declares {0} workers, more than {MAX_WORKERS}")]
    TooManyWorkers(usize),
}

/// Count every worker the scenario can ever start (steps and `AddCgroup` ops).
pub fn total_workers(scenario: &Scenario) -> usize {
    fn walk(cg: &CgroupSpec) -> usize {
        cg.workers as usize + cg.children.iter().map(walk).sum::<usize>()
    }
    scenario
        .steps
        .iter()
        .map(|s| {
            s.cgroups.iter().map(walk).sum::<usize>()
                + s.ops_before
                    .iter()
                    .map(|op| match op {
                        Op::AddCgroup(cg) => walk(cg),
                        _ => 0,
                    })
                    .sum::<usize>()
        })
        .sum()
}

impl Step {
    /// How long the step can last: its duration, or its longest payload's
    /// deadline if that is later.
    pub fn longest_ms(&self) -> u64 {
        self.ops_before
            .iter()
            .filter_map(|op| match op {
                Op::Payload(p) => Some(p.timeout_ms),
                _ => None,
            })
            .fold(self.duration_ms, u64::max)
    }
}

impl Scenario {
    /// How long the scenario can last (each step's [`Step::longest_ms`]).
    pub fn longest_ms(&self) -> u64 {
        self.steps.iter().map(Step::longest_ms).sum()
    }

    /// The same scenario with every step lasting `ms` (for short test runs).
    pub fn with_step_ms(mut self, ms: u64) -> Self {
        for s in &mut self.steps {
            s.duration_ms = ms;
        }
        self
    }

    /// The same scenario lasting `total_ms` overall: each step keeps its
    /// share of the whole (the last step takes the rounding), at least 1 ms.
    pub fn with_total_ms(mut self, total_ms: u64) -> Result<Self, SpecError> {
        let steps = self.steps.len();
        if steps == 0 || total_ms < steps as u64 {
            return Err(SpecError::DurationTooShort { total_ms, steps });
        }
        let sum: u64 = self.steps.iter().map(|s| s.duration_ms.max(1)).sum();
        let mut left = total_ms;
        for (i, s) in self.steps.iter_mut().enumerate() {
            let still = (steps - i - 1) as u64;
            let share = if still == 0 {
                left
            } else {
                let scaled =
                    u128::from(s.duration_ms.max(1)) * u128::from(total_ms) / u128::from(sum);
                u64::try_from(scaled)
                    .unwrap_or(u64::MAX)
                    .clamp(1, left - still)
            };
            s.duration_ms = share;
            left -= share;
        }
        Ok(self)
    }

    /// Check that the scenario can run on `topo`; the first problem wins.
    pub fn validate(&self, topo: &GuestTopology) -> Result<(), SpecError> {
        if self.steps.is_empty() {
            return Err(SpecError::NoSteps(self.name.clone()));
        }
        let n = total_workers(self);
        if n > MAX_WORKERS {
            return Err(SpecError::TooManyWorkers(n));
        }
        // Names ever declared (for duplicates) and names alive now (for ops).
        let mut declared = BTreeSet::new();
        let mut alive = BTreeSet::new();
        let mut offline = BTreeSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            if step.duration_ms == 0 || step.duration_ms > MAX_STEP_MS {
                return Err(SpecError::BadDuration {
                    step: i,
                    ms: step.duration_ms,
                });
            }
            for op in &step.ops_before {
                validate_op(op, i, topo, &mut declared, &mut alive, &mut offline)?;
            }
            for cg in &step.cgroups {
                validate_cgroup(cg, "", None, topo, &mut declared, &mut alive)?;
            }
        }
        Ok(())
    }
}

fn require_alive(alive: &BTreeSet<String>, step: usize, name: &str) -> Result<(), SpecError> {
    if alive.contains(name) {
        Ok(())
    } else {
        Err(SpecError::UnknownCgroup {
            step,
            name: name.to_string(),
        })
    }
}

fn validate_op(
    op: &Op,
    step: usize,
    topo: &GuestTopology,
    declared: &mut BTreeSet<String>,
    alive: &mut BTreeSet<String>,
    offline: &mut BTreeSet<u32>,
) -> Result<(), SpecError> {
    let hotplug = |cpu: u32, online: bool, offline: &mut BTreeSet<u32>| {
        hotplug::check(cpu, online, &topo.all_cpus(), offline)
            .map_err(|problem| SpecError::Hotplug { step, cpu, problem })
    };
    let resolve = |name: &str, spec: &CpusetSpec| {
        topo.resolve(spec)
            .map(|_| ())
            .map_err(|source| SpecError::Cpuset {
                name: name.to_string(),
                source,
            })
    };
    match op {
        Op::AddCgroup(cg) => validate_cgroup(cg, "", None, topo, declared, alive),
        Op::RemoveCgroup { name } => {
            require_alive(alive, step, name)?;
            let prefix = format!("{name}/");
            alive.retain(|n| n != name && !n.starts_with(&prefix));
            Ok(())
        }
        Op::SetCpuset { cgroup, cpuset } => {
            require_alive(alive, step, cgroup)?;
            resolve(cgroup, cpuset)
        }
        Op::MoveTasks { from, to } => {
            require_alive(alive, step, from)?;
            require_alive(alive, step, to)?;
            let prefix = format!("{to}/");
            if alive.iter().any(|n| n.starts_with(&prefix)) {
                return Err(SpecError::MoveIntoParent {
                    step,
                    name: to.clone(),
                });
            }
            Ok(())
        }
        Op::SetAffinity { cgroup, cpus } => {
            require_alive(alive, step, cgroup)?;
            resolve(cgroup, cpus)
        }
        Op::CpuOffline { cpu } => hotplug(*cpu, false, offline),
        Op::CpuOnline { cpu } => hotplug(*cpu, true, offline),
        // Its cgroup is its own: declared (no name clash), never alive for ops.
        Op::Payload(p) => {
            check_name(&p.name)?;
            if !declared.insert(p.name.clone()) {
                return Err(SpecError::DuplicateCgroup(p.name.clone()));
            }
            if let Some(reason) = p.problem() {
                return Err(SpecError::BadPayloadSpec {
                    name: p.name.clone(),
                    reason,
                });
            }
            resolve(&p.name, &p.cpuset)
        }
    }
}

/// A cgroup (or payload) name: one non-empty path component.
fn check_name(name: &str) -> Result<(), SpecError> {
    if name.is_empty()
        || name.contains('/')
        || name.starts_with('.')
        || name.chars().any(char::is_whitespace)
    {
        return Err(SpecError::BadName(name.to_owned()));
    }
    Ok(())
}

fn validate_cgroup(
    cg: &CgroupSpec,
    parent_path: &str,
    parent_cpus: Option<&[u32]>,
    topo: &GuestTopology,
    declared: &mut BTreeSet<String>,
    alive: &mut BTreeSet<String>,
) -> Result<(), SpecError> {
    let name = &cg.name;
    check_name(name)?;
    let path = if parent_path.is_empty() {
        name.clone()
    } else {
        format!("{parent_path}/{name}")
    };
    if !declared.insert(path.clone()) {
        return Err(SpecError::DuplicateCgroup(path));
    }
    if cg.workers == 0 && cg.children.is_empty() {
        return Err(SpecError::ZeroWorkers(path));
    }
    if cg.workers > 0 && !cg.children.is_empty() {
        return Err(SpecError::InternalProcesses(path));
    }
    if let Some(w) = cg.weight
        && !(1..=10_000).contains(&w)
    {
        return Err(SpecError::BadWeight {
            name: path,
            weight: w,
        });
    }
    match &cg.work {
        WorkKind::PingPong if cg.workers % 2 != 0 => {
            return Err(SpecError::OddPingPong {
                name: path,
                workers: cg.workers,
            });
        }
        WorkKind::Payload { path: bin, .. } if !bin.starts_with('/') => {
            return Err(SpecError::BadPayload(path));
        }
        WorkKind::Bursty { on_ms: 0, .. } => return Err(SpecError::BadDutyCycle(path)),
        _ => {}
    }
    let cpus = topo
        .resolve(&cg.cpuset)
        .map_err(|source| SpecError::Cpuset {
            name: path.clone(),
            source,
        })?;
    if let Some(pc) = parent_cpus
        && !cpus.iter().all(|c| pc.contains(c))
    {
        return Err(SpecError::ChildOutsideParent {
            child: path,
            child_cpus: cpus,
            parent_cpus: pc.to_vec(),
        });
    }
    alive.insert(path.clone());
    for child in &cg.children {
        validate_cgroup(child, &path, Some(&cpus), topo, declared, alive)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo4() -> GuestTopology {
        GuestTopology {
            llcs: vec![vec![0, 1], vec![2, 3]],
            nodes: vec![vec![0, 1, 2, 3]],
        }
    }

    fn cg(name: &str, workers: u32, work: WorkKind) -> CgroupSpec {
        CgroupSpec {
            name: name.into(),
            workers,
            work,
            cpuset: CpusetSpec::All,
            weight: None,
            children: vec![],
        }
    }

    fn one_step(cgroups: Vec<CgroupSpec>, ops: Vec<Op>) -> Scenario {
        Scenario {
            name: "t".into(),
            steps: vec![Step {
                duration_ms: 100,
                ops_before: ops,
                cgroups,
            }],
        }
    }

    #[test]
    fn rejects_each_bad_input_with_its_error() {
        let t = topo4();
        let cases: Vec<(Scenario, SpecError)> = vec![
            (
                Scenario {
                    name: "e".into(),
                    steps: vec![],
                },
                SpecError::NoSteps("e".into()),
            ),
            (
                one_step(vec![cg("a", 0, WorkKind::Spin)], vec![]),
                SpecError::ZeroWorkers("a".into()),
            ),
            (
                one_step(vec![cg("a", 3, WorkKind::PingPong)], vec![]),
                SpecError::OddPingPong {
                    name: "a".into(),
                    workers: 3,
                },
            ),
            (
                one_step(
                    vec![cg("a", 1, WorkKind::Spin)],
                    vec![Op::RemoveCgroup { name: "b".into() }],
                ),
                SpecError::UnknownCgroup {
                    step: 0,
                    name: "b".into(),
                },
            ),
            (
                one_step(
                    vec![CgroupSpec {
                        cpuset: CpusetSpec::Llc(2),
                        ..cg("a", 1, WorkKind::Spin)
                    }],
                    vec![],
                ),
                SpecError::Cpuset {
                    name: "a".into(),
                    source: ResolveError::LlcOutOfRange { index: 2, count: 2 },
                },
            ),
            (
                one_step(
                    vec![cg("a", 1, WorkKind::Spin), cg("a", 1, WorkKind::Spin)],
                    vec![],
                ),
                SpecError::DuplicateCgroup("a".into()),
            ),
            (
                one_step(vec![cg("a/b", 1, WorkKind::Spin)], vec![]),
                SpecError::BadName("a/b".into()),
            ),
            (
                one_step(
                    vec![CgroupSpec {
                        weight: Some(0),
                        ..cg("a", 1, WorkKind::Spin)
                    }],
                    vec![],
                ),
                SpecError::BadWeight {
                    name: "a".into(),
                    weight: 0,
                },
            ),
            (
                one_step(
                    vec![cg(
                        "a",
                        1,
                        WorkKind::Payload {
                            path: "stress-ng".into(),
                            args: vec![],
                        },
                    )],
                    vec![],
                ),
                SpecError::BadPayload("a".into()),
            ),
            (
                one_step(
                    vec![CgroupSpec {
                        children: vec![cg("b", 1, WorkKind::Spin)],
                        ..cg("a", 1, WorkKind::Spin)
                    }],
                    vec![],
                ),
                SpecError::InternalProcesses("a".into()),
            ),
            (
                one_step(
                    vec![CgroupSpec {
                        cpuset: CpusetSpec::Llc(0),
                        children: vec![CgroupSpec {
                            cpuset: CpusetSpec::Llc(1),
                            ..cg("b", 1, WorkKind::Spin)
                        }],
                        ..cg("a", 0, WorkKind::Spin)
                    }],
                    vec![],
                ),
                SpecError::ChildOutsideParent {
                    child: "a/b".into(),
                    child_cpus: vec![2, 3],
                    parent_cpus: vec![0, 1],
                },
            ),
            (
                Scenario {
                    name: "d".into(),
                    steps: vec![Step {
                        duration_ms: 0,
                        ops_before: vec![],
                        cgroups: vec![cg("a", 1, WorkKind::Spin)],
                    }],
                },
                SpecError::BadDuration { step: 0, ms: 0 },
            ),
            (
                one_step(
                    vec![cg("stress-ng", 1, WorkKind::Spin)],
                    vec![Op::Payload(PayloadSpec::new("stress-ng", ["--cpu", "1"]))],
                ),
                SpecError::DuplicateCgroup("stress-ng".into()),
            ),
            (
                one_step(
                    vec![],
                    vec![Op::Payload(
                        PayloadSpec::new("/bin/x", [""; 0]).timeout_ms(0),
                    )],
                ),
                SpecError::BadPayloadSpec {
                    name: "x".into(),
                    reason: "its timeout_ms is outside 1..=3600000",
                },
            ),
            (
                one_step(
                    vec![],
                    vec![Op::Payload(
                        PayloadSpec::new("x", ["a"]).cpuset(CpusetSpec::Llc(5)),
                    )],
                ),
                SpecError::Cpuset {
                    name: "x".into(),
                    source: ResolveError::LlcOutOfRange { index: 5, count: 2 },
                },
            ),
        ];
        for (sc, want) in cases {
            assert_eq!(sc.validate(&t), Err(want), "scenario {sc:?}");
        }
    }

    #[test]
    fn ops_see_cgroups_from_earlier_steps_and_not_removed_ones() {
        let t = topo4();
        let mut sc = one_step(vec![cg("a", 2, WorkKind::Spin)], vec![]);
        sc.steps.push(Step {
            duration_ms: 10,
            ops_before: vec![
                Op::SetCpuset {
                    cgroup: "a".into(),
                    cpuset: CpusetSpec::Range(0, 1),
                },
                Op::RemoveCgroup { name: "a".into() },
            ],
            cgroups: vec![],
        });
        assert_eq!(sc.validate(&t), Ok(()));
        sc.steps.push(Step {
            duration_ms: 10,
            ops_before: vec![Op::MoveTasks {
                from: "a".into(),
                to: "a".into(),
            }],
            cgroups: vec![],
        });
        assert_eq!(
            sc.validate(&t),
            Err(SpecError::UnknownCgroup {
                step: 2,
                name: "a".into()
            })
        );
    }

    #[test]
    fn tasks_cannot_move_into_a_parent_cgroup() {
        let mut sc = one_step(
            vec![
                cg("a", 1, WorkKind::Spin),
                CgroupSpec {
                    children: vec![cg("c", 1, WorkKind::Spin)],
                    ..cg("p", 0, WorkKind::Spin)
                },
            ],
            vec![],
        );
        let mv = |to: &str| Op::MoveTasks {
            from: "a".into(),
            to: to.into(),
        };
        sc.steps.push(Step {
            duration_ms: 10,
            ops_before: vec![mv("p/c")],
            cgroups: vec![],
        });
        assert_eq!(sc.validate(&topo4()), Ok(()));
        sc.steps[1].ops_before = vec![mv("p")];
        assert_eq!(
            sc.validate(&topo4()),
            Err(SpecError::MoveIntoParent {
                step: 1,
                name: "p".into()
            })
        );
    }

    #[test]
    fn hotplug_ops_are_checked_against_the_topology_and_each_other() {
        let step = |ops: Vec<Op>| Step {
            duration_ms: 10,
            ops_before: ops,
            cgroups: vec![],
        };
        let mut sc = one_step(vec![cg("a", 2, WorkKind::Spin)], vec![]);
        sc.steps.push(step(vec![Op::CpuOffline { cpu: 3 }]));
        sc.steps.push(step(vec![Op::CpuOnline { cpu: 3 }]));
        assert_eq!(sc.validate(&topo4()), Ok(()));
        sc.steps.push(step(vec![Op::CpuOnline { cpu: 3 }]));
        assert_eq!(
            sc.validate(&topo4()),
            Err(SpecError::Hotplug {
                step: 3,
                cpu: 3,
                problem: HotplugProblem::NotOffline
            })
        );
        let sc = one_step(
            vec![cg("a", 1, WorkKind::Spin)],
            vec![Op::CpuOffline { cpu: 0 }],
        );
        let e = sc.validate(&topo4()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "step 0: cpu0 is the boot CPU, which x86 cannot take offline"
        );
    }

    #[test]
    fn an_overall_duration_keeps_each_steps_share() {
        let mut sc = one_step(vec![cg("a", 1, WorkKind::Spin)], vec![]);
        sc.steps.push(Step {
            duration_ms: 300,
            ops_before: vec![],
            cgroups: vec![],
        });
        let d = |s: &Scenario| s.steps.iter().map(|s| s.duration_ms).collect::<Vec<_>>();
        assert_eq!(d(&sc.clone().with_total_ms(2000).unwrap()), [500, 1500]);
        assert_eq!(d(&sc.clone().with_total_ms(3).unwrap()), [1, 2]);
        assert_eq!(
            sc.with_total_ms(1),
            Err(SpecError::DurationTooShort {
                total_ms: 1,
                steps: 2
            })
        );
    }

    #[test]
    fn a_step_lasts_as_long_as_its_slowest_payload_may() {
        let mut sc = PayloadSpec::new("stress-ng", ["--cpu", "1"])
            .timeout_ms(40_000)
            .into_scenario();
        assert_eq!(sc.validate(&topo4()), Ok(()));
        assert_eq!(sc.longest_ms(), 40_000);
        sc.steps[0].duration_ms = 50_000;
        sc.steps.push(Step {
            duration_ms: 10,
            ops_before: vec![],
            cgroups: vec![cg("a", 1, WorkKind::Spin)],
        });
        assert_eq!(sc.longest_ms(), 50_010);
    }

    #[test]
    fn scenario_round_trips_through_json() {
        let sc = one_step(
            vec![cg(
                "a",
                2,
                WorkKind::Bursty {
                    on_ms: 5,
                    off_ms: 5,
                },
            )],
            vec![Op::AddCgroup(cg("b", 1, WorkKind::Yield))],
        );
        let text = serde_json::to_string(&sc).unwrap();
        let back: Scenario = serde_json::from_str(&text).unwrap();
        assert_eq!(back, sc);
        assert_eq!(total_workers(&sc), 3);
    }
}

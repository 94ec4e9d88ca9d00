//! What a scenario run measured, as the runner records it: the data the
//! verdict judges and the table and JSON show.

use ktstr_topology::GuestTopology;
use serde::{Deserialize, Serialize};

use crate::cgroup::Controllers;
use crate::payload::PayloadRecord;
use crate::scx::ScxObservation;
use crate::worker::LatencyStats;

/// One worker's telemetry, in scenario terms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerTelemetry {
    /// Cgroup the worker was created in (its label's first part).
    pub cgroup: String,
    /// Index within that cgroup.
    pub index: u32,
    /// Pid in the guest.
    pub pid: u32,
    /// Work kind tag.
    pub kind: String,
    /// cgroup v2 id of its cgroup.
    pub cgroup_id: u64,
    /// Start, ms after scenario start.
    pub started_at_ms: u64,
    /// CPU time, ns.
    pub cpu_time_ns: u64,
    /// CPU time of reaped children, ns.
    pub children_cpu_ns: u64,
    /// Time runnable but not running, ns (schedstat), if the kernel has it.
    pub run_delay_ns: Option<u64>,
    /// Wall time from start to stop, ns.
    pub wall_ns: u64,
    /// Work units.
    pub work_units: u64,
    /// Voluntary context switches.
    pub voluntary_csw: u64,
    /// Involuntary context switches.
    pub involuntary_csw: u64,
    /// Observed CPU changes (sampled at each work unit).
    pub migrations: u64,
    /// Kernel-counted migrations, if the kernel exposes them.
    pub kernel_migrations: Option<u64>,
    /// CPUs it ran on.
    pub cpus_used: Vec<u32>,
    /// CPU it was last seen on.
    pub last_cpu: Option<u32>,
    /// Every CPU it was ever allowed (union over cpuset/affinity changes).
    pub allowed_cpus: Vec<u32>,
    /// Whether `max_gap_ns` is meaningful.
    pub tracks_progress: bool,
    /// Longest time without progress, ns.
    pub max_gap_ns: u64,
    /// When that gap began, ms after scenario start.
    pub max_gap_at_ms: u64,
    /// CPU it was last seen on before that gap.
    pub max_gap_cpu: Option<u32>,
    /// Wake-up latency for sleep/wake kinds.
    pub wake_latency: Option<LatencyStats>,
    /// Children forked (fork churn, payload runs).
    pub forks: u64,
    /// Payload runs that ended on their own.
    pub payload_exits: u64,
    /// Error the worker reported about itself.
    pub error: Option<String>,
    /// Set when no report came back (crash, kill, timeout).
    pub lost: Option<String>,
}

impl WorkerTelemetry {
    /// `cgroup/index`, as verdict lines name workers.
    pub fn label(&self) -> String {
        format!("{}/{}", self.cgroup, self.index)
    }

    /// Compact fixed-size form for the wire (`worker_id` is the caller's index).
    pub fn to_wire(&self, worker_id: u32) -> ktstr_wire::WorkerReport {
        let lo = self
            .cpus_used
            .iter()
            .filter(|c| **c < 64)
            .fold(0u64, |m, c| m | (1 << c));
        ktstr_wire::WorkerReport {
            worker_id: worker_id.into(),
            pid: self.pid.into(),
            cgroup_id: self.cgroup_id.into(),
            cpu_time_ns: self.cpu_time_ns.into(),
            wall_ns: self.wall_ns.into(),
            work_units: self.work_units.into(),
            voluntary_csw: self.voluntary_csw.into(),
            involuntary_csw: self.involuntary_csw.into(),
            migrations: self.migrations.into(),
            max_gap_ns: self.max_gap_ns.into(),
            cpus_used_lo: lo.into(),
            distinct_cpus: (self.cpus_used.len() as u32).into(),
            last_cpu: self.last_cpu.unwrap_or(u32::MAX).into(),
        }
    }
}

/// A cgroup as it was run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupRecord {
    /// Path name (`a` or `a/b`).
    pub name: String,
    /// Work kind tag.
    pub kind: String,
    /// Workers started in it.
    pub workers: u32,
    /// CPUs at creation.
    pub cpus: Vec<u32>,
    /// Requested `cpu.weight`.
    pub weight: Option<u32>,
    /// Whether `cpu.weight` was actually written.
    pub weight_applied: bool,
}

/// A step as it was run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Step index.
    pub index: usize,
    /// Start, ms after scenario start.
    pub started_at_ms: u64,
    /// Declared duration.
    pub duration_ms: u64,
}

/// Everything a run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub scenario: String,
    /// Topology it ran on.
    pub topology: GuestTopology,
    /// cgroup controllers the run had.
    pub controllers: Controllers,
    /// How cpusets were enforced: `"cgroup"` or `"affinity"` (no cpuset
    /// controller in this hierarchy, so workers were pinned instead).
    pub cpuset_enforcement: String,
    /// Total wall time, ms.
    pub wall_ms: u64,
    /// Steps.
    pub steps: Vec<StepRecord>,
    /// Cgroups.
    pub cgroups: Vec<CgroupRecord>,
    /// Workers, in start order.
    pub workers: Vec<WorkerTelemetry>,
    /// sched_ext state before and after the run.
    pub sched_ext: ScxObservation,
    /// Things a reader should know (fallbacks, ops applied).
    pub notes: Vec<String>,
    /// Payloads, in the order they ended.
    #[serde(default)]
    pub payloads: Vec<PayloadRecord>,
}

impl ScenarioReport {
    /// The report of a run that never reached its scenario (the scheduler
    /// did not attach, the guest died): nothing measured.
    pub fn not_run(scenario: &str, topology: GuestTopology, why: &str) -> Self {
        ScenarioReport {
            scenario: scenario.to_string(),
            topology,
            controllers: Controllers::default(),
            cpuset_enforcement: String::new(),
            wall_ms: 0,
            steps: Vec::new(),
            cgroups: Vec::new(),
            workers: Vec::new(),
            sched_ext: ScxObservation::default(),
            notes: vec![format!("not run: {why}")],
            payloads: Vec::new(),
        }
    }
}

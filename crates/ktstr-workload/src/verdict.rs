//! Pass/fail from a [`ScenarioReport`]: starvation, fairness, isolation,
//! scheduler attachment and optional latency bounds, with wording a
//! scheduler author can act on.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::MonitorFinding;
use crate::report::{ScenarioReport, WorkerTelemetry};
use crate::scx::ScxExit;

/// Limits; `Default` is the stock policy, tests override fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Longest allowed time without progress, ms.
    pub max_gap_ms: u64,
    /// Largest allowed CPU-time spread among a cgroup's workers, percent of
    /// their mean.
    pub max_spread_pct: f64,
    /// Per-cgroup spread limits that replace `max_spread_pct`.
    #[serde(default)]
    pub spread_overrides: BTreeMap<String, f64>,
    /// Bound on each worker's wake-up latency p99, µs.
    #[serde(default)]
    pub max_wake_p99_us: Option<u64>,
    /// Fail when a worker ran on a CPU outside its cpuset.
    pub require_isolation: bool,
    /// Fail when the scheduler exited (sched_ext error exit).
    pub require_scheduler_attached: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_gap_ms: 2_000,
            max_spread_pct: 30.0,
            spread_overrides: BTreeMap::new(),
            max_wake_p99_us: None,
            require_isolation: true,
            require_scheduler_attached: true,
        }
    }
}

/// One way the run failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Failure {
    /// The VM or the guest kernel crashed (panic, oops, triple fault, ...).
    GuestCrashed {
        /// How it died, as the backend classified it.
        detail: String,
    },
    /// The kernel disabled the scheduler with an error: watchdog stall,
    /// `scx_bpf_error()`, a runtime error.
    SchedulerKicked {
        /// `root/ops` name (or binary name before it attached).
        name: String,
        /// The kernel's account.
        exit: ScxExit,
    },
    /// The scheduler process ended (or never attached) without the kernel
    /// reporting an error.
    SchedulerExited {
        /// Binary or `root/ops` name.
        name: String,
        /// How it ended.
        detail: String,
    },
    /// The host-side monitor saw the guest kernel misbehave (a detector
    /// the test made fatal; see [`MonitorFinding`]).
    Monitor(MonitorFinding),
    /// sysfs saw the scheduler gone at the end; nothing else said why.
    SchedulerDetached {
        /// Exit reason as the kernel reported it.
        reason: String,
    },
    /// No report came back from a worker.
    WorkerLost {
        /// `cgroup/index`.
        worker: String,
        /// What happened.
        reason: String,
    },
    /// A worker finished zero work units.
    NoProgress {
        /// `cgroup/index`.
        worker: String,
    },
    /// A worker went too long without progress.
    Stuck {
        /// `cgroup/index`.
        worker: String,
        /// Gap, ms.
        gap_ms: u64,
        /// CPU it was last seen on.
        cpu: Option<u32>,
        /// Gap start, ms after scenario start.
        at_ms: u64,
        /// Limit, ms.
        limit_ms: u64,
    },
    /// A worker ran outside its cpuset.
    OutsideCpuset {
        /// `cgroup/index`.
        worker: String,
        /// CPUs used that were never allowed.
        cpus: Vec<u32>,
        /// What was allowed.
        allowed: Vec<u32>,
    },
    /// CPU time spread among equal workers too wide.
    Unfair {
        /// Cgroup.
        cgroup: String,
        /// Measured spread, percent.
        spread_pct: f64,
        /// Limit, percent.
        limit_pct: f64,
        /// Least CPU time, ms.
        min_ms: u64,
        /// Most CPU time, ms.
        max_ms: u64,
    },
    /// Wake-up p99 above the bound.
    WakeLatency {
        /// `cgroup/index`.
        worker: String,
        /// Measured p99, µs.
        p99_us: u64,
        /// Limit, µs.
        limit_us: u64,
    },
    /// A payload failed: non-zero exit, killed, timed out, did not start,
    /// or its declared figures were not in its output.
    Payload {
        /// Payload name.
        name: String,
        /// What happened, with its last line of output.
        why: String,
    },
    /// The worker reported an error about itself.
    WorkerError {
        /// `cgroup/index`.
        worker: String,
        /// Its words.
        error: String,
    },
}

/// A [`Failure`]'s kind: what `expect_fail` names and the JSON's `root_cause`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// [`Failure::GuestCrashed`].
    GuestCrashed,
    /// [`Failure::SchedulerKicked`].
    SchedulerKicked,
    /// [`Failure::SchedulerExited`].
    SchedulerExited,
    /// [`Failure::Monitor`].
    Monitor,
    /// [`Failure::SchedulerDetached`].
    SchedulerDetached,
    /// [`Failure::Payload`].
    Payload,
    /// [`Failure::WorkerLost`].
    WorkerLost,
    /// [`Failure::NoProgress`].
    NoProgress,
    /// [`Failure::Stuck`].
    Stuck,
    /// [`Failure::OutsideCpuset`].
    OutsideCpuset,
    /// [`Failure::Unfair`].
    Unfair,
    /// [`Failure::WakeLatency`].
    WakeLatency,
    /// [`Failure::WorkerError`].
    WorkerError,
}

impl FailureKind {
    /// Every kind with its name, in root-cause order.
    pub const ALL: [(FailureKind, &'static str); 13] = [
        (FailureKind::GuestCrashed, "guest_crashed"),
        (FailureKind::SchedulerKicked, "scheduler_kicked"),
        (FailureKind::SchedulerExited, "scheduler_exited"),
        (FailureKind::SchedulerDetached, "scheduler_detached"),
        (FailureKind::Monitor, "monitor"),
        (FailureKind::Payload, "payload"),
        (FailureKind::WorkerLost, "worker_lost"),
        (FailureKind::NoProgress, "no_progress"),
        (FailureKind::Stuck, "stuck"),
        (FailureKind::OutsideCpuset, "outside_cpuset"),
        (FailureKind::Unfair, "unfair"),
        (FailureKind::WakeLatency, "wake_latency"),
        (FailureKind::WorkerError, "worker_error"),
    ];

    /// `stuck`, `scheduler_kicked`, ... (the serde name).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("unknown", |(_, n)| n)
    }

    /// The kind named `name`; the error lists the names.
    pub fn from_name(name: &str) -> Result<FailureKind, UnknownFailureKind> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(k, _)| *k)
            .ok_or_else(|| UnknownFailureKind {
                name: name.to_owned(),
            })
    }

    /// Root-cause rank, lowest first: a crash explains everything after it,
    /// a scheduler the kernel kicked out explains starving workers, and so on.
    pub fn rank(self) -> u8 {
        match self {
            FailureKind::GuestCrashed => 0,
            FailureKind::SchedulerKicked => 1,
            FailureKind::SchedulerExited | FailureKind::SchedulerDetached => 2,
            FailureKind::Monitor => 3,
            _ => 4,
        }
    }
}

/// A name that is none of [`FailureKind::ALL`]'s.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown verdict kind {name:?}; one of {}", FailureKind::ALL.map(|(_, n)| n).join(", "))]
pub struct UnknownFailureKind {
    /// The name asked for.
    pub name: String,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Failure {
    /// This failure's kind.
    pub fn kind(&self) -> FailureKind {
        match self {
            Failure::GuestCrashed { .. } => FailureKind::GuestCrashed,
            Failure::SchedulerKicked { .. } => FailureKind::SchedulerKicked,
            Failure::SchedulerExited { .. } => FailureKind::SchedulerExited,
            Failure::Monitor(_) => FailureKind::Monitor,
            Failure::SchedulerDetached { .. } => FailureKind::SchedulerDetached,
            Failure::Payload { .. } => FailureKind::Payload,
            Failure::WorkerLost { .. } => FailureKind::WorkerLost,
            Failure::NoProgress { .. } => FailureKind::NoProgress,
            Failure::Stuck { .. } => FailureKind::Stuck,
            Failure::OutsideCpuset { .. } => FailureKind::OutsideCpuset,
            Failure::Unfair { .. } => FailureKind::Unfair,
            Failure::WakeLatency { .. } => FailureKind::WakeLatency,
            Failure::WorkerError { .. } => FailureKind::WorkerError,
        }
    }
}

fn cpu_name(cpu: Option<u32>) -> String {
    cpu.map_or_else(|| "an unknown cpu".to_string(), |c| format!("cpu{c}"))
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::GuestCrashed { detail } => write!(f, "guest crashed: {detail}"),
            Failure::SchedulerKicked { name, exit } => write!(
                f,
                "the kernel kicked scheduler {name} out: {}",
                exit.describe()
            ),
            Failure::SchedulerExited { name, detail } => {
                write!(f, "scheduler {name} exited: {detail}")
            }
            Failure::SchedulerDetached { reason } => {
                write!(f, "scheduler detached: {reason}")
            }
            Failure::WorkerLost { worker, reason } => write!(f, "worker {worker} lost: {reason}"),
            Failure::NoProgress { worker } => write!(f, "worker {worker} made no progress"),
            Failure::Stuck {
                worker,
                gap_ms,
                cpu,
                at_ms,
                limit_ms: _,
            } => write!(
                f,
                "worker {worker} stuck {gap_ms} ms on {} at +{at_ms} ms",
                cpu_name(*cpu)
            ),
            Failure::OutsideCpuset {
                worker,
                cpus,
                allowed,
            } => write!(
                f,
                "worker {worker} ran on cpus {cpus:?} outside its cpuset {allowed:?}"
            ),
            Failure::Unfair {
                cgroup,
                spread_pct,
                limit_pct,
                min_ms,
                max_ms,
            } => write!(
                f,
                "cgroup {cgroup} unfair: cpu time spread {spread_pct:.0}% (limit {limit_pct:.0}%, {min_ms}..{max_ms} ms)"
            ),
            Failure::WakeLatency {
                worker,
                p99_us,
                limit_us,
            } => write!(
                f,
                "worker {worker} wake-up p99 {p99_us} us over {limit_us} us"
            ),
            Failure::Payload { name, why } => write!(f, "payload {name} {why}"),
            Failure::Monitor(finding) => finding.fmt(f),
            Failure::WorkerError { worker, error } => write!(f, "worker {worker} error: {error}"),
        }
    }
}

/// The outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// No failure.
    pub passed: bool,
    /// Failures, root cause first (see [`FailureKind::rank`]).
    pub failures: Vec<Failure>,
    /// The first failure's kind: what `ktstr run`'s exit and a test's
    /// `expect_fail` go by.
    #[serde(default)]
    pub root_cause: Option<FailureKind>,
    /// Lines explaining the root cause (the scheduler's last stderr lines,
    /// the kernel's sched_ext lines), printed after the headline.
    #[serde(default)]
    pub evidence: Vec<String>,
}

impl Verdict {
    /// `two_cgroups [1n1l2c1t scx_simple] failed: worker cg_1/3 stuck ...`;
    /// `context` is the topology and scheduler label.
    pub fn headline(&self, test: &str, context: &str) -> String {
        match self.failures.split_first() {
            None => format!("{test} [{context}] passed"),
            Some((first, [])) => format!("{test} [{context}] failed: {first}"),
            Some((first, rest)) => {
                format!("{test} [{context}] failed: {first} (+{} more)", rest.len())
            }
        }
    }

    /// From failures in any order: sorted root cause first (stable, so
    /// checks of one rank keep their order), with the evidence lines.
    pub fn from_failures(mut failures: Vec<Failure>, evidence: Vec<String>) -> Verdict {
        failures.sort_by_key(|f| f.kind().rank());
        Verdict {
            passed: failures.is_empty(),
            root_cause: failures.first().map(Failure::kind),
            evidence,
            failures,
        }
    }

    /// Headline, the evidence, every other failure on its own line, then
    /// the per-cgroup table.
    pub fn render(&self, test: &str, context: &str, report: &ScenarioReport) -> String {
        let mut s = self.headline(test, context);
        s.push('\n');
        for line in &self.evidence {
            s.push_str(&format!("  {line}\n"));
        }
        for f in self.failures.iter().skip(1) {
            s.push_str(&format!("  also: {f}\n"));
        }
        s.push_str(&crate::report::table(report));
        s
    }
}

/// Spread of `values` as a percentage of their mean: `(max - min) / mean`.
pub fn spread_pct(values: &[u64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let min = *values.iter().min()? as f64;
    let max = *values.iter().max()? as f64;
    let mean = values.iter().map(|v| *v as f64).sum::<f64>() / values.len() as f64;
    if mean <= 0.0 {
        return Some(0.0);
    }
    Some((max - min) / mean * 100.0)
}

/// Workers whose CPU time is comparable, grouped by creation cgroup: live
/// reports of non-payload workers.
pub fn fairness_groups(report: &ScenarioReport) -> BTreeMap<&str, Vec<&WorkerTelemetry>> {
    let mut groups: BTreeMap<&str, Vec<&WorkerTelemetry>> = BTreeMap::new();
    for w in &report.workers {
        if w.lost.is_none() && w.tracks_progress {
            groups.entry(w.cgroup.as_str()).or_default().push(w);
        }
    }
    groups
}

/// Judge `report`; `sched_exit` is the scheduler's exit reason if it
/// detached (see [`crate::evidence::judge`] for a run the harness watched).
pub fn evaluate(report: &ScenarioReport, t: &Thresholds, sched_exit: Option<&str>) -> Verdict {
    let mut failures = Vec::new();
    // The caller's exit reason wins; else what the guest saw in sysfs.
    let detached = sched_exit
        .map(str::to_string)
        .or_else(|| report.sched_ext.detached());
    if t.require_scheduler_attached
        && let Some(reason) = detached
    {
        failures.push(Failure::SchedulerDetached { reason });
    }
    failures.extend(workload_failures(report, t));
    Verdict::from_failures(failures, Vec::new())
}

/// The workload checks: failed payloads, lost workers, no progress,
/// starvation, isolation, fairness, latency, worker errors.
pub fn workload_failures(report: &ScenarioReport, t: &Thresholds) -> Vec<Failure> {
    let mut failures = Vec::new();
    failures.extend(report.payloads.iter().filter_map(|p| {
        p.failure().map(|why| Failure::Payload {
            name: p.name.clone(),
            why,
        })
    }));
    for w in &report.workers {
        if let Some(reason) = &w.lost {
            failures.push(Failure::WorkerLost {
                worker: w.label(),
                reason: reason.clone(),
            });
        } else if w.work_units == 0 && w.tracks_progress {
            failures.push(Failure::NoProgress { worker: w.label() });
        }
    }
    let mut stuck: Vec<&WorkerTelemetry> = report
        .workers
        .iter()
        .filter(|w| {
            w.lost.is_none() && w.tracks_progress && w.max_gap_ns > t.max_gap_ms * 1_000_000
        })
        .collect();
    stuck.sort_by_key(|w| std::cmp::Reverse(w.max_gap_ns));
    failures.extend(stuck.into_iter().map(|w| Failure::Stuck {
        worker: w.label(),
        gap_ms: w.max_gap_ns / 1_000_000,
        cpu: w.max_gap_cpu,
        at_ms: w.max_gap_at_ms,
        limit_ms: t.max_gap_ms,
    }));
    if t.require_isolation {
        for w in &report.workers {
            let outside: Vec<u32> = w
                .cpus_used
                .iter()
                .filter(|c| !w.allowed_cpus.contains(c))
                .copied()
                .collect();
            if !outside.is_empty() {
                failures.push(Failure::OutsideCpuset {
                    worker: w.label(),
                    cpus: outside,
                    allowed: w.allowed_cpus.clone(),
                });
            }
        }
    }
    for (cgroup, ws) in fairness_groups(report) {
        let times: Vec<u64> = ws.iter().map(|w| w.cpu_time_ns).collect();
        let limit = t
            .spread_overrides
            .get(cgroup)
            .copied()
            .unwrap_or(t.max_spread_pct);
        if let Some(spread) = spread_pct(&times)
            && spread > limit
        {
            failures.push(Failure::Unfair {
                cgroup: cgroup.to_string(),
                spread_pct: spread,
                limit_pct: limit,
                min_ms: times.iter().min().copied().unwrap_or(0) / 1_000_000,
                max_ms: times.iter().max().copied().unwrap_or(0) / 1_000_000,
            });
        }
    }
    if let Some(limit_us) = t.max_wake_p99_us {
        for w in &report.workers {
            if let Some(l) = &w.wake_latency
                && l.p99_ns / 1000 > limit_us
            {
                failures.push(Failure::WakeLatency {
                    worker: w.label(),
                    p99_us: l.p99_ns / 1000,
                    limit_us,
                });
            }
        }
    }
    for w in &report.workers {
        if let Some(e) = &w.error {
            failures.push(Failure::WorkerError {
                worker: w.label(),
                error: e.clone(),
            });
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Controllers;
    use crate::worker::LatencyStats;
    use ktstr_topology::GuestTopology;

    fn worker(cg: &str, i: u32, cpu_ms: u64) -> WorkerTelemetry {
        WorkerTelemetry {
            cgroup: cg.into(),
            index: i,
            pid: 100 + i,
            kind: "spin".into(),
            cpu_time_ns: cpu_ms * 1_000_000,
            wall_ns: 1_000_000_000,
            work_units: 1000,
            cpus_used: vec![0],
            allowed_cpus: vec![0, 1],
            tracks_progress: true,
            max_gap_ns: 5_000_000,
            max_gap_cpu: Some(0),
            ..WorkerTelemetry::default()
        }
    }

    fn report(workers: Vec<WorkerTelemetry>) -> ScenarioReport {
        ScenarioReport {
            scenario: "two_cgroups".into(),
            topology: GuestTopology::flat(2),
            controllers: Controllers::default(),
            cpuset_enforcement: "affinity".into(),
            wall_ms: 1000,
            steps: vec![],
            cgroups: vec![],
            workers,
            sched_ext: Default::default(),
            notes: vec![],
            payloads: vec![],
        }
    }

    #[test]
    fn a_failed_payload_fails_the_run_with_its_own_line() {
        let mut r = report(vec![worker("cg_0", 0, 100)]);
        let ok = crate::PayloadRecord {
            name: "stress-ng".into(),
            argv: vec!["stress-ng".into(), "--cpu".into(), "2".into()],
            step: 0,
            cpus: vec![0, 1],
            started_at_ms: 3,
            wall_ms: 30_012,
            timeout_ms: 120_000,
            end: crate::payload::PayloadEnd::Exited(0),
            stdout_tail: String::new(),
            stderr_tail: "stress-ng: info: successful run completed\n".into(),
            figures: Default::default(),
            figures_error: None,
        };
        r.payloads.push(ok.clone());
        assert!(evaluate(&r, &Thresholds::default(), None).passed);
        r.payloads[0].end = crate::payload::PayloadEnd::Exited(2);
        r.payloads[0].stderr_tail = "stress-ng: fail: cpu stressor failed\n".into();
        let v = evaluate(&r, &Thresholds::default(), None);
        assert_eq!(
            v.headline("t", "c"),
            "t [c] failed: payload stress-ng exited with status 2 after 30012 ms; \
             last output: \"stress-ng: fail: cpu stressor failed\""
        );
        // A kicked scheduler stays the headline; the payload follows.
        let v = evaluate(&r, &Thresholds::default(), Some("runnable task stall"));
        assert!(matches!(v.failures[0], Failure::SchedulerDetached { .. }));
        assert!(matches!(v.failures[1], Failure::Payload { .. }));
        assert!(v.render("t", "c", &r).contains("payload stress-ng"));
    }

    #[test]
    fn each_check_fires_and_is_worded_for_a_human() {
        type Case = (
            &'static str,
            Box<dyn Fn(&mut Vec<WorkerTelemetry>)>,
            Thresholds,
            Option<&'static str>,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "healthy",
                Box::new(|_| {}),
                Thresholds::default(),
                None,
                "two_cgroups [1n1l2c1t scx_simple] passed",
            ),
            (
                "stuck",
                Box::new(|w| {
                    w[3].max_gap_ns = 3_500_000_000;
                    w[3].max_gap_cpu = Some(1);
                    w[3].max_gap_at_ms = 1200;
                }),
                Thresholds::default(),
                None,
                "two_cgroups [1n1l2c1t scx_simple] failed: worker cg_1/1 stuck 3500 ms on cpu1 at +1200 ms",
            ),
            (
                "no progress",
                Box::new(|w| w[0].work_units = 0),
                Thresholds::default(),
                None,
                "two_cgroups [1n1l2c1t scx_simple] failed: worker cg_0/0 made no progress",
            ),
            (
                "lost",
                Box::new(|w| w[1].lost = Some("killed by signal 9".into())),
                Thresholds::default(),
                None,
                "two_cgroups [1n1l2c1t scx_simple] failed: worker cg_0/1 lost: killed by signal 9",
            ),
            (
                "outside cpuset",
                Box::new(|w| w[2].cpus_used = vec![0, 3]),
                Thresholds::default(),
                None,
                "two_cgroups [1n1l2c1t scx_simple] failed: worker cg_1/0 ran on cpus [3] outside its cpuset [0, 1]",
            ),
            (
                "isolation off",
                Box::new(|w| w[2].cpus_used = vec![0, 3]),
                Thresholds {
                    require_isolation: false,
                    ..Thresholds::default()
                },
                None,
                "two_cgroups [1n1l2c1t scx_simple] passed",
            ),
            (
                "unfair",
                Box::new(|w| w[2].cpu_time_ns = 300_000_000),
                Thresholds::default(),
                None,
                "two_cgroups [1n1l2c1t scx_simple] failed: cgroup cg_1 unfair: cpu time spread 100% (limit 30%, 300..900 ms)",
            ),
            (
                "unfair but overridden",
                Box::new(|w| w[2].cpu_time_ns = 300_000_000),
                Thresholds {
                    spread_overrides: [("cg_1".to_string(), 150.0)].into(),
                    ..Thresholds::default()
                },
                None,
                "two_cgroups [1n1l2c1t scx_simple] passed",
            ),
            (
                "scheduler detached",
                Box::new(|_| {}),
                Thresholds::default(),
                Some("runtime error (watchdog)"),
                "two_cgroups [1n1l2c1t scx_simple] failed: scheduler detached: runtime error (watchdog)",
            ),
            (
                "detach tolerated",
                Box::new(|_| {}),
                Thresholds {
                    require_scheduler_attached: false,
                    ..Thresholds::default()
                },
                Some("unregistered from user space"),
                "two_cgroups [1n1l2c1t scx_simple] passed",
            ),
            (
                "latency",
                Box::new(|w| {
                    w[0].wake_latency = Some(LatencyStats {
                        samples: 10,
                        p50_ns: 10_000,
                        p99_ns: 900_000,
                        max_ns: 1_000_000,
                    })
                }),
                Thresholds {
                    max_wake_p99_us: Some(500),
                    ..Thresholds::default()
                },
                None,
                "two_cgroups [1n1l2c1t scx_simple] failed: worker cg_0/0 wake-up p99 900 us over 500 us",
            ),
        ];
        for (name, mutate, t, exit, want) in cases {
            let mut ws = vec![
                worker("cg_0", 0, 500),
                worker("cg_0", 1, 520),
                worker("cg_1", 0, 900),
                worker("cg_1", 1, 900),
            ];
            mutate(&mut ws);
            let r = report(ws);
            let v = evaluate(&r, &t, exit);
            assert_eq!(
                v.headline("two_cgroups", "1n1l2c1t scx_simple"),
                want,
                "case {name}"
            );
            assert_eq!(v.passed, v.failures.is_empty(), "case {name}");
        }
    }

    #[test]
    fn stuck_workers_are_listed_worst_first_and_render_has_a_table() {
        let mut ws = vec![
            worker("a", 0, 100),
            worker("a", 1, 100),
            worker("a", 2, 100),
        ];
        ws[0].max_gap_ns = 2_500_000_000;
        ws[2].max_gap_ns = 4_000_000_000;
        let r = report(ws);
        let v = evaluate(&r, &Thresholds::default(), None);
        let text = v.render("t", "ctx", &r);
        let mut lines = text.lines();
        assert!(
            lines.next().unwrap().contains("worker a/2 stuck 4000 ms"),
            "{text}"
        );
        assert!(
            lines
                .next()
                .unwrap()
                .contains("also: worker a/0 stuck 2500 ms"),
            "{text}"
        );
        assert!(text.contains("cgroup"), "{text}");
    }

    #[test]
    fn a_detach_seen_in_sysfs_fails_the_run_unless_tolerated() {
        use crate::scx::{ScxObservation, ScxSample};
        let mut r = report(vec![worker("a", 0, 100)]);
        let s = |state: &str| ScxSample {
            state: state.into(),
            ops: Some("qmap".into()),
            enable_seq: Some(1),
        };
        r.sched_ext = ScxObservation {
            start: Some(s("enabled")),
            end: Some(s("disabled")),
        };
        let v = evaluate(&r, &Thresholds::default(), None);
        assert_eq!(
            v.headline("t", "c"),
            "t [c] failed: scheduler detached: sched_ext qmap was enabled at the start, disabled at the end"
        );
        // The harness's own exit reason is preferred.
        let v = evaluate(&r, &Thresholds::default(), Some("scx_bpf_error (qmap)"));
        assert_eq!(
            v.headline("t", "c"),
            "t [c] failed: scheduler detached: scx_bpf_error (qmap)"
        );
        let tolerant = Thresholds {
            require_scheduler_attached: false,
            ..Thresholds::default()
        };
        assert!(evaluate(&r, &tolerant, None).passed);
    }

    #[test]
    fn spread_is_relative_to_the_mean() {
        assert_eq!(spread_pct(&[100]), None);
        assert_eq!(spread_pct(&[100, 100]), Some(0.0));
        assert_eq!(spread_pct(&[50, 150]), Some(100.0));
        assert_eq!(spread_pct(&[0, 0]), Some(0.0));
    }
}

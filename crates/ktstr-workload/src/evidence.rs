//! The verdict of a run the harness watched: besides the guest's report,
//! how the VM ended, how the scheduler ended (the kernel's account and the
//! scheduler's own last words) and the monitor's findings, judged root cause
//! first (see [`FailureKind::rank`](crate::verdict::FailureKind::rank)).

use crate::MonitorFinding;
use crate::report::ScenarioReport;
use crate::scx::{ScxExit, disable_reason};
use crate::verdict::{Failure, Thresholds, Verdict, workload_failures};

/// How many of the scheduler's last stderr lines a failed verdict shows.
pub const STDERR_TAIL_LINES: usize = 12;

/// What the harness saw besides the guest's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunEvidence {
    /// The VM or guest kernel died mid-run: how (the report is then empty).
    pub crash: Option<String>,
    /// The sched_ext scheduler under test; `None` for the EEVDF baseline.
    pub scheduler: Option<SchedulerRun>,
    /// The host-side monitor's findings.
    pub monitor: Vec<MonitorFinding>,
}

/// One scheduler's run, as the harness watched it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerRun {
    /// `root/ops` name, or the binary's before it attached.
    pub name: String,
    /// How it ended before the harness stopped it (`exit code 1`, ...);
    /// `None`: attached until the end.
    pub ended: Option<String>,
    /// The kernel's `sched_ext:` lines of the run.
    pub kernel_lines: Vec<String>,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// The kernel's disable line of each time sched_ext asked it to restart
    /// (CPU hotplug without `ops.cpu_online/offline`) and it attached again.
    pub restarts: Vec<String>,
}

impl SchedulerRun {
    /// Why it ended, root cause first: kicked out by the kernel (with the
    /// `scx_bpf_error` text) or exited.
    fn failure(&self) -> Option<Failure> {
        let ended = self.ended.as_ref()?;
        let name = self.name.clone();
        Some(match ScxExit::parse(&self.kernel_lines, &self.stderr) {
            Some(exit) if exit.is_error() => Failure::SchedulerKicked { name, exit },
            Some(exit) => Failure::SchedulerExited {
                name,
                detail: format!("{ended}; the kernel says {}", exit.describe()),
            },
            None => Failure::SchedulerExited {
                name,
                detail: ended.clone(),
            },
        })
    }

    /// The scheduler's last stderr lines, then the kernel's sched_ext lines.
    fn explanation(&self) -> Vec<String> {
        let mut out = Vec::new();
        let (lines, dump) = without_debug_dump(&self.stderr);
        if !lines.is_empty() {
            let tail = &lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..];
            let dump = if dump > 0 {
                format!(" (its {dump}-line sched_ext debug dump left out)")
            } else {
                String::new()
            };
            out.push(format!(
                "{} stderr, last {} lines{dump}:",
                self.name,
                tail.len()
            ));
            out.extend(tail.iter().map(|l| format!("  {l}")));
        }
        if !self.kernel_lines.is_empty() {
            out.push("kernel:".to_string());
            out.extend(self.kernel_lines.iter().map(|l| format!("  {l}")));
        }
        out
    }
}

/// Non-empty stderr lines without the debug dump tools/sched_ext's
/// `UEI_REPORT` prints before its `EXIT:` line (`DEBUG DUMP`, a rule, the
/// dump, a rule), and how many lines the dump had: hundreds of lines of
/// task state that would push the scheduler's own last words out of a tail.
fn without_debug_dump(stderr: &str) -> (Vec<&str>, usize) {
    #[derive(Clone, Copy, PartialEq)]
    enum At {
        Outside,
        Header,
        Dump,
    }
    let mut kept = Vec::new();
    let mut dumped = 0;
    let mut at = At::Outside;
    for line in stderr.lines() {
        let rule = line.starts_with("=====");
        let next = match at {
            At::Outside if line.trim() == "DEBUG DUMP" => At::Header,
            At::Header if rule => At::Dump,
            At::Dump if rule => At::Outside,
            other => other,
        };
        if at == At::Outside && next == At::Outside {
            if !line.is_empty() {
                kept.push(line);
            }
        } else {
            dumped += 1;
        }
        at = next;
    }
    (kept, dumped)
}

/// Judge a watched run: the crash, the scheduler's end, the monitor's
/// findings, then the workload checks, in that order. Where the harness
/// watched the scheduler its account replaces sysfs's start/end samples (a
/// restart it saw is not a detach).
pub fn judge(report: &ScenarioReport, t: &Thresholds, seen: &RunEvidence) -> Verdict {
    let mut failures = Vec::new();
    failures.extend(
        seen.crash
            .clone()
            .map(|detail| Failure::GuestCrashed { detail }),
    );
    match &seen.scheduler {
        Some(run) => {
            if t.require_scheduler_attached {
                failures.extend(run.failure());
            }
        }
        None => {
            if t.require_scheduler_attached
                && let Some(reason) = report.sched_ext.detached()
            {
                failures.push(Failure::SchedulerDetached { reason });
            }
        }
    }
    failures.extend(seen.monitor.iter().cloned().map(Failure::Monitor));
    if seen.crash.is_none() {
        failures.extend(workload_failures(report, t));
    }
    let mut evidence = Vec::new();
    if let Some(run) = &seen.scheduler {
        if !failures.is_empty() {
            evidence = run.explanation();
        }
        for line in &run.restarts {
            let why = disable_reason(std::slice::from_ref(line)).unwrap_or(line);
            evidence.push(format!("note: {} attached again after: {why}", run.name));
        }
    }
    Verdict::from_failures(failures, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Controllers;
    use crate::report::WorkerTelemetry;
    use crate::verdict::FailureKind;
    use ktstr_topology::GuestTopology;

    fn report(gap_ms: u64) -> ScenarioReport {
        ScenarioReport {
            scenario: "s".into(),
            topology: GuestTopology::flat(2),
            controllers: Controllers::default(),
            cpuset_enforcement: "cgroup".into(),
            wall_ms: 1000,
            steps: vec![],
            cgroups: vec![],
            workers: vec![WorkerTelemetry {
                cgroup: "cg".into(),
                work_units: 10,
                tracks_progress: true,
                max_gap_ns: gap_ms * 1_000_000,
                allowed_cpus: vec![0, 1],
                cpus_used: vec![0],
                ..WorkerTelemetry::default()
            }],
            sched_ext: Default::default(),
            notes: vec![],
            payloads: vec![],
        }
    }

    fn kicked_qmap() -> SchedulerRun {
        SchedulerRun {
            name: "qmap".into(),
            ended: Some("exit code 0".into()),
            kernel_lines: vec![
                "sched_ext: BPF scheduler \"qmap\" disabled (scx_bpf_error)".into(),
                "sched_ext: qmap: test triggering error".into(),
            ],
            stderr: "stats 1\nstats 2\n\nDEBUG DUMP\n=====\n\ntask a\ntask b\n\n=====\n\n\
                     EXIT: scx_bpf_error (test triggering error)\n"
                .into(),
            restarts: vec![],
        }
    }

    #[test]
    fn the_root_cause_leads_then_the_schedulers_words_then_the_rest() {
        // The workers starved because the scheduler was kicked out: the
        // kick is the headline, the starvation an "also".
        let seen = RunEvidence {
            scheduler: Some(kicked_qmap()),
            ..RunEvidence::default()
        };
        let r = report(5000);
        let v = judge(&r, &Thresholds::default(), &seen);
        assert_eq!(v.root_cause, Some(FailureKind::SchedulerKicked));
        let text = v.render("t", "ctx", &r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "t [ctx] failed: the kernel kicked scheduler qmap out: scx_bpf_error: test triggering error (+1 more)"
        );
        assert_eq!(
            lines[1],
            "  qmap stderr, last 3 lines (its 7-line sched_ext debug dump left out):"
        );
        assert_eq!(lines[4], "    EXIT: scx_bpf_error (test triggering error)");
        assert_eq!(lines[5], "  kernel:");
        assert!(
            lines[8].starts_with("  also: worker cg/0 stuck 5000 ms"),
            "{text}"
        );
    }

    #[test]
    fn a_crash_outranks_everything_and_a_monitor_finding_outranks_workers() {
        let finding = MonitorFinding {
            detector: crate::MonitorDetector::DeepLocalDsq,
            cpu: Some(1),
            from_ms: 1000,
            from_scenario_ms: None,
            lasted_ms: 3000,
            detail: "local DSQ 40 deep".into(),
        };
        let seen = RunEvidence {
            crash: Some("kernel panic: Oops".into()),
            scheduler: Some(kicked_qmap()),
            monitor: vec![finding.clone()],
        };
        let v = judge(&report(5000), &Thresholds::default(), &seen);
        let kinds: Vec<FailureKind> = v.failures.iter().map(Failure::kind).collect();
        assert_eq!(
            kinds,
            [
                FailureKind::GuestCrashed,
                FailureKind::SchedulerKicked,
                FailureKind::Monitor
            ],
            "after a crash the (empty) report is not judged"
        );
        let seen = RunEvidence {
            monitor: vec![finding],
            ..RunEvidence::default()
        };
        let v = judge(&report(5000), &Thresholds::default(), &seen);
        assert_eq!(v.root_cause, Some(FailureKind::Monitor));
        assert_eq!(v.failures[1].kind(), FailureKind::Stuck);
    }

    #[test]
    fn a_restart_the_kernel_asked_for_is_a_note_and_an_exit_without_error_is_exited() {
        let mut run = SchedulerRun {
            name: "simple".into(),
            restarts: vec![
                "sched_ext: BPF scheduler \"simple\" disabled (unregistered from the main kernel)"
                    .into(),
            ],
            ..SchedulerRun::default()
        };
        let seen = RunEvidence {
            scheduler: Some(run.clone()),
            ..RunEvidence::default()
        };
        let v = judge(&report(10), &Thresholds::default(), &seen);
        assert!(v.passed, "{v:?}");
        assert_eq!(
            v.evidence,
            ["note: simple attached again after: unregistered from the main kernel"]
        );
        run.ended = Some("exit code 1".into());
        run.restarts.clear();
        let seen = RunEvidence {
            scheduler: Some(run),
            ..RunEvidence::default()
        };
        let v = judge(&report(10), &Thresholds::default(), &seen);
        assert_eq!(v.root_cause, Some(FailureKind::SchedulerExited));
        assert_eq!(
            v.headline("t", "c"),
            "t [c] failed: scheduler simple exited: exit code 1"
        );
    }
}

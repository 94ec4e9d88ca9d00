//! One run of a scenario and how it ended, reduced to a [`FailureKind`]:
//! "fails the same way" while shrinking means "the same kind".

use std::fmt;
use std::path::Path;

use ktstr_harness::HarnessError;
use ktstr_harness::test::{KtstrTest, try_run_scenario};
use ktstr_workload::{Failure, Scenario, Thresholds};

use crate::FuzzError;

/// The way a run failed: what "fails the same way" compares while
/// shrinking. Coarse on purpose: a task that never gets a CPU shows up as
/// a watchdog kick, a stuck worker, a worker without progress or one that
/// could not even start, depending on which task the scheduler stalls and
/// which timer fires first; all of them are [`STARVATION`]. Otherwise the
/// kind is the verdict's first failure, or the kernel's disable cause
/// (`scheduler kicked (scx_bpf_error)`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FailureKind(pub String);

/// A runnable task did not get to run (see [`FailureKind`]).
pub const STARVATION: &str = "starvation (a runnable task did not get to run)";

/// A detach the harness saw only in sysfs ("enabled at the start, disabled
/// at the end"), without the kernel's reason.
pub const DETACHED: &str = "scheduler detached";

impl FailureKind {
    /// Whether `other` is the same failure: the same kind, or a detach seen
    /// without its reason next to one seen with it (a stall kick reaches the
    /// harness either way, depending on timing: seen in 1 of 12 runs of an
    /// idle step under `scx_qmap -t 10`).
    pub fn same_way(&self, other: &FailureKind) -> bool {
        let with_reason =
            |k: &FailureKind| k.0 == STARVATION || k.0.starts_with("scheduler kicked");
        self == other
            || (self.0 == DETACHED && with_reason(other))
            || (other.0 == DETACHED && with_reason(self))
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed {
        kind: FailureKind,
        /// The verdict's headline or the error, for the report.
        headline: String,
    },
}

impl Outcome {
    /// The failure kind, `None` for a pass.
    pub fn kind(&self) -> Option<&FailureKind> {
        match self {
            Outcome::Passed => None,
            Outcome::Failed { kind, .. } => Some(kind),
        }
    }
}

/// Runs a scenario and says how it ended. An `Err` means the run itself
/// could not happen (no kernel, bad input): the search stops.
pub trait Judge {
    fn judge(&mut self, scenario: &Scenario) -> Result<Outcome, FuzzError>;
}

/// The cause in a sched_ext disable message: `... disabled (runnable task
/// stall)` gives `runnable task stall`.
fn disable_cause(reason: &str) -> Option<&str> {
    let rest = &reason[reason.find("disabled (")? + "disabled (".len()..];
    rest.split(')').next().filter(|c| !c.is_empty())
}

/// The kind of a detach reason as `evaluate` receives it from the harness.
fn detach_kind(reason: &str) -> String {
    if disable_cause(reason) == Some("runnable task stall") {
        return STARVATION.into();
    }
    let who = if reason.contains("kicked") {
        "scheduler kicked"
    } else if reason.contains("exited") {
        "scheduler exited"
    } else {
        DETACHED
    };
    match disable_cause(reason) {
        Some(cause) => format!("{who} ({cause})"),
        None => who.to_string(),
    }
}

/// The kind of a kick whose reason the kernel gave, worded as [`detach_kind`]
/// words the same kick seen only in sysfs, so both read alike.
fn kicked_kind(reason: &str) -> Option<String> {
    (!reason.is_empty()).then(|| detach_kind(&format!("kicked: disabled ({reason})")))
}

/// The kind of a failed verdict: a detach with a cause other than a stall
/// (`scx_bpf_error`, ...) first, then starvation if any worker shows it
/// (the detach may then carry no cause: "disabled at the end"), else the
/// most severe failure (`failures` is ordered).
pub fn verdict_kind(failures: &[Failure]) -> Option<FailureKind> {
    let caused = failures.iter().find_map(|f| match f {
        Failure::SchedulerDetached { reason } => disable_cause(reason)
            .filter(|c| *c != "runnable task stall")
            .map(|_| detach_kind(reason)),
        Failure::SchedulerKicked { exit, .. } => {
            kicked_kind(&exit.reason).filter(|k| k != STARVATION)
        }
        _ => None,
    });
    let starved = failures.iter().any(|f| match f {
        Failure::NoProgress { .. } | Failure::Stuck { .. } => true,
        Failure::SchedulerDetached { reason } => detach_kind(reason) == STARVATION,
        Failure::SchedulerKicked { exit, .. } => {
            kicked_kind(&exit.reason).as_deref() == Some(STARVATION)
        }
        Failure::Monitor(m) => m.detector == ktstr_workload::MonitorDetector::Stall,
        _ => false,
    });
    let kind = match (caused, starved, failures.first()?) {
        (Some(kind), _, _) => kind,
        (None, true, _) => STARVATION.into(),
        (None, false, Failure::SchedulerDetached { reason }) => detach_kind(reason),
        (None, false, Failure::WorkerLost { .. }) => "worker lost".into(),
        (None, false, Failure::OutsideCpuset { .. }) => "worker outside its cpuset".into(),
        (None, false, Failure::Unfair { .. }) => "unfair".into(),
        (None, false, Failure::WakeLatency { .. }) => "wake latency".into(),
        (None, false, Failure::WorkerError { .. }) => "worker error".into(),
        (None, false, Failure::NoProgress { .. } | Failure::Stuck { .. }) => STARVATION.into(),
        (None, false, Failure::GuestCrashed { .. }) => "guest died".into(),
        (None, false, Failure::SchedulerKicked { exit, .. }) => {
            kicked_kind(&exit.reason).unwrap_or_else(|| "scheduler kicked".into())
        }
        (None, false, Failure::SchedulerExited { .. }) => "scheduler exited".into(),
        (None, false, Failure::Monitor(m)) => format!("monitor {}", m.detector),
        (None, false, Failure::Payload { .. }) => "payload failed".into(),
    };
    Some(FailureKind(kind))
}

/// The kind of a harness error that is the scheduler's or the guest's
/// doing; `None` for errors that mean the run could not happen.
pub fn error_kind(e: &HarnessError) -> Option<FailureKind> {
    let kind = match e {
        HarnessError::SchedulerKicked { reason, .. } => detach_kind(&format!("kicked: {reason}")),
        HarnessError::SchedulerExited { reason, .. } => detach_kind(&format!("exited: {reason}")),
        HarnessError::SchedulerExitedBeforeAttach { .. } => {
            "scheduler exited before attaching".into()
        }
        HarnessError::AttachTimeout { .. } => "scheduler did not attach".into(),
        HarnessError::GuestDied { .. } | HarnessError::GuestGone { .. } => "guest died".into(),
        HarnessError::GuestPanic(_) => "guest init panicked".into(),
        HarnessError::Timeout { .. } => "timed out".into(),
        // The guest's runner gives a worker 5 s to report ready: a worker
        // the scheduler never runs fails there before the watchdog fires.
        HarnessError::Guest { message, .. } if message.contains("did not start") => {
            STARVATION.into()
        }
        HarnessError::Guest { what, .. } if what.starts_with("scenario") => {
            "guest could not run the scenario".into()
        }
        _ => return None,
    };
    Some(FailureKind(kind))
}

/// Thresholds for generated scenarios: the stock ones without the
/// fairness check (moves, cpuset changes and weights make equal CPU time
/// among a cgroup's workers no promise).
pub fn fuzz_thresholds(t: &mut Thresholds) {
    t.max_spread_pct = 1e9;
}

/// Runs each scenario in a real guest through the harness, as the
/// `#[ktstr_test]` `template` would (its topology, scheduler, arguments).
pub struct VmJudge {
    pub template: KtstrTest,
}

impl Judge for VmJudge {
    fn judge(&mut self, scenario: &Scenario) -> Result<Outcome, FuzzError> {
        match try_run_scenario(&self.template, scenario.clone()) {
            Ok(o) if o.verdict.passed => Ok(Outcome::Passed),
            Ok(o) => {
                let kind = verdict_kind(&o.verdict.failures)
                    .ok_or_else(|| FuzzError::NoFailure(self.template.name.to_string()))?;
                Ok(Outcome::Failed {
                    kind,
                    headline: o.verdict.headline(&scenario.name, &o.context),
                })
            }
            Err(e) => match error_kind(&e) {
                Some(kind) => Ok(Outcome::Failed {
                    kind,
                    headline: e.to_string(),
                }),
                None => Err(FuzzError::Run(e)),
            },
        }
    }
}

/// The scheduler's file name, for labels.
pub fn scheduler_label(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or(path.to_string(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_keep_the_kernel_cause_and_drop_the_details() {
        let stall = "the kernel kicked scheduler qmap out: sched_ext: BPF scheduler \"qmap\" \
                     disabled (runnable task stall) kworker/0:1[12] failed to run for 5.2s";
        assert_eq!(detach_kind(stall), STARVATION);
        assert_eq!(
            detach_kind("the kernel kicked scheduler qmap out: disabled (scx_bpf_error) boom"),
            "scheduler kicked (scx_bpf_error)"
        );
        let other = stall
            .replace("5.2s", "6.0s")
            .replace("kworker/0:1[12]", "w[9]");
        assert_eq!(detach_kind(stall), detach_kind(&other));
        assert_eq!(
            detach_kind("scheduler qmap exited while attached (code 1): gone"),
            "scheduler exited"
        );
        let f = [Failure::NoProgress {
            worker: "cg_0/0".into(),
        }];
        assert_eq!(verdict_kind(&f), Some(FailureKind(STARVATION.into())));
        assert_eq!(verdict_kind(&[]), None);
        // A detach seen only in sysfs has no cause; stuck workers say why.
        let at_end = Failure::SchedulerDetached {
            reason: "sched_ext qmap was enabled at the start, disabled at the end".into(),
        };
        let stuck = Failure::Stuck {
            worker: "cg_0/0".into(),
            gap_ms: 6079,
            cpu: Some(1),
            at_ms: 116,
            limit_ms: 2000,
        };
        assert_eq!(
            verdict_kind(&[at_end.clone(), stuck.clone()]),
            Some(FailureKind(STARVATION.into()))
        );
        let detached = verdict_kind(&[at_end]).expect("a kind");
        assert_eq!(detached, FailureKind(DETACHED.into()));
        assert!(detached.same_way(&FailureKind(STARVATION.into())));
        assert!(FailureKind(STARVATION.into()).same_way(&detached));
        assert!(!FailureKind("unfair".into()).same_way(&detached));
        let bpf_error = Failure::SchedulerDetached {
            reason: "the kernel kicked scheduler qmap out: disabled (scx_bpf_error) x".into(),
        };
        assert_eq!(
            verdict_kind(&[bpf_error, stuck]),
            Some(FailureKind("scheduler kicked (scx_bpf_error)".into()))
        );
    }
}

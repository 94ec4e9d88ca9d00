//! One run of a scenario and how it ended, reduced to a [`FailureKind`]:
//! "fails the same way" while shrinking means "the same kind".

use std::fmt;
use std::path::Path;

use ktstr_harness::HarnessError;
use ktstr_harness::test::{KtstrTest, try_run_scenario};
use ktstr_workload::{Failure, FailureKind as VerdictKind, Scenario, Thresholds};

use crate::FuzzError;

/// The way a run failed: what "fails the same way" compares while
/// shrinking. It is the verdict's root cause as ktstr-workload ranks it
/// ([`VerdictKind::rank`]), with one coarsening: a task that never gets a
/// CPU shows up as a watchdog kick, a stuck worker, a worker without
/// progress, a monitor stall or one that could not even start, depending on
/// which task the scheduler stalls and which timer fires first; all of them
/// are [`FailureKind::Starvation`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// A runnable task did not get to run.
    Starvation,
    /// The verdict's root cause, with the cause the kernel gave when it
    /// disabled the scheduler (`scx_bpf_error`), if it gave one.
    Verdict {
        root: VerdictKind,
        cause: Option<String>,
    },
    /// The run ended early, the scheduler's or the guest's doing.
    Run(RunEnd),
}

/// How a run that produced no verdict ended (from [`HarnessError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunEnd {
    /// The scheduler exited before it attached.
    ExitedBeforeAttach,
    /// The scheduler did not attach in time.
    NoAttach,
    /// The guest died or went away.
    GuestDied,
    /// The guest's init panicked.
    InitPanicked,
    /// The run timed out.
    TimedOut,
    /// The guest could not run the scenario.
    ScenarioRefused,
}

impl RunEnd {
    fn describe(self) -> &'static str {
        match self {
            RunEnd::ExitedBeforeAttach => "scheduler exited before attaching",
            RunEnd::NoAttach => "scheduler did not attach",
            RunEnd::GuestDied => "guest died",
            RunEnd::InitPanicked => "guest init panicked",
            RunEnd::TimedOut => "timed out",
            RunEnd::ScenarioRefused => "guest could not run the scenario",
        }
    }
}

/// The kernel's cause for the watchdog's kick of a scheduler that left a
/// task unrun.
const STALL_CAUSE: &str = "runnable task stall";

impl FailureKind {
    /// Whether `other` is the same failure: the same kind, or a detach seen
    /// without its reason next to a kick seen with it (a stall kick reaches
    /// the harness either way, depending on timing: seen in 1 of 12 runs of
    /// an idle step under `scx_qmap -t 10`).
    pub fn same_way(&self, other: &FailureKind) -> bool {
        let reasonless_detach = |k: &FailureKind| {
            matches!(
                k,
                FailureKind::Verdict {
                    root: VerdictKind::SchedulerDetached,
                    cause: None
                }
            )
        };
        let kick_with_reason = |k: &FailureKind| match k {
            FailureKind::Starvation => true,
            FailureKind::Verdict {
                root: VerdictKind::SchedulerKicked,
                cause,
            } => cause.is_some(),
            _ => false,
        };
        self == other
            || (reasonless_detach(self) && kick_with_reason(other))
            || (reasonless_detach(other) && kick_with_reason(self))
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Starvation => {
                f.write_str("starvation (a runnable task did not get to run)")
            }
            FailureKind::Verdict { root, cause: None } => write!(f, "{root}"),
            FailureKind::Verdict {
                root,
                cause: Some(c),
            } => write!(f, "{root} ({c})"),
            FailureKind::Run(end) => f.write_str(end.describe()),
        }
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

/// A scheduler's end as a kind: a detach whose reason says the kernel
/// kicked it is the kick itself, seen in sysfs instead of the exit record.
fn scheduler_end(root: VerdictKind, reason: &str) -> FailureKind {
    if disable_cause(reason) == Some(STALL_CAUSE) {
        return FailureKind::Starvation;
    }
    let root = match root {
        VerdictKind::SchedulerDetached if reason.contains("kicked") => VerdictKind::SchedulerKicked,
        VerdictKind::SchedulerDetached if reason.contains("exited") => VerdictKind::SchedulerExited,
        other => other,
    };
    FailureKind::Verdict {
        root,
        cause: disable_cause(reason).map(str::to_owned),
    }
}

/// A failure's kind; a scheduler's end carries the kernel's cause.
fn failure_kind(f: &Failure) -> FailureKind {
    match f {
        Failure::SchedulerDetached { reason } => scheduler_end(f.kind(), reason),
        Failure::SchedulerKicked { exit, .. } if !exit.reason.is_empty() => {
            scheduler_end(f.kind(), &format!("disabled ({})", exit.reason))
        }
        Failure::NoProgress { .. } | Failure::Stuck { .. } => FailureKind::Starvation,
        Failure::Monitor(m) if m.detector == ktstr_workload::MonitorDetector::Stall => {
            FailureKind::Starvation
        }
        _ => FailureKind::Verdict {
            root: f.kind(),
            cause: None,
        },
    }
}

/// The kind of a failed verdict (`failures` in root-cause order): a
/// scheduler end with a cause other than a stall (`scx_bpf_error`, ...)
/// first, then starvation if any failure shows it (the detach may then
/// carry no cause: "disabled at the end"), else the root cause.
pub fn verdict_kind(failures: &[Failure]) -> Option<FailureKind> {
    let kinds: Vec<FailureKind> = failures.iter().map(failure_kind).collect();
    let caused = kinds
        .iter()
        .find(|k| matches!(k, FailureKind::Verdict { cause: Some(_), .. }));
    let starved = kinds.iter().find(|k| **k == FailureKind::Starvation);
    caused.or(starved).or(kinds.first()).cloned()
}

/// The kind of a harness error that is the scheduler's or the guest's
/// doing; `None` for errors that mean the run could not happen.
pub fn error_kind(e: &HarnessError) -> Option<FailureKind> {
    let kind = match e {
        HarnessError::SchedulerKicked { reason, .. } => {
            scheduler_end(VerdictKind::SchedulerKicked, reason)
        }
        HarnessError::SchedulerExited { reason, .. } => {
            scheduler_end(VerdictKind::SchedulerExited, reason)
        }
        HarnessError::SchedulerExitedBeforeAttach { .. } => {
            FailureKind::Run(RunEnd::ExitedBeforeAttach)
        }
        HarnessError::AttachTimeout { .. } => FailureKind::Run(RunEnd::NoAttach),
        HarnessError::GuestDied { .. } | HarnessError::GuestGone { .. } => {
            FailureKind::Run(RunEnd::GuestDied)
        }
        HarnessError::GuestPanic(_) => FailureKind::Run(RunEnd::InitPanicked),
        HarnessError::Timeout { .. } => FailureKind::Run(RunEnd::TimedOut),
        // The guest's runner gives a worker 5 s to report ready: a worker
        // the scheduler never runs fails there before the watchdog fires.
        HarnessError::Guest { message, .. } if message.contains("did not start") => {
            FailureKind::Starvation
        }
        HarnessError::Guest { what, .. } if what.starts_with("scenario") => {
            FailureKind::Run(RunEnd::ScenarioRefused)
        }
        _ => return None,
    };
    Some(kind)
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

    fn kicked(cause: &str) -> FailureKind {
        FailureKind::Verdict {
            root: VerdictKind::SchedulerKicked,
            cause: Some(cause.into()),
        }
    }

    #[test]
    fn kinds_keep_the_kernel_cause_and_drop_the_details() {
        let stall = "the kernel kicked scheduler qmap out: sched_ext: BPF scheduler \"qmap\" \
                     disabled (runnable task stall) kworker/0:1[12] failed to run for 5.2s";
        let detached = |reason: &str| Failure::SchedulerDetached {
            reason: reason.into(),
        };
        assert_eq!(
            verdict_kind(&[detached(stall)]),
            Some(FailureKind::Starvation)
        );
        assert_eq!(
            verdict_kind(&[detached(
                "the kernel kicked scheduler qmap out: disabled (scx_bpf_error) boom"
            )]),
            Some(kicked("scx_bpf_error"))
        );
        let other = stall
            .replace("5.2s", "6.0s")
            .replace("kworker/0:1[12]", "w[9]");
        assert_eq!(
            verdict_kind(&[detached(stall)]),
            verdict_kind(&[detached(&other)])
        );
        assert_eq!(
            verdict_kind(&[detached(
                "scheduler qmap exited while attached (code 1): gone"
            )]),
            Some(FailureKind::Verdict {
                root: VerdictKind::SchedulerExited,
                cause: None
            })
        );
        let f = [Failure::NoProgress {
            worker: "cg_0/0".into(),
        }];
        assert_eq!(verdict_kind(&f), Some(FailureKind::Starvation));
        assert_eq!(verdict_kind(&[]), None);
        // A detach seen only in sysfs has no cause; stuck workers say why.
        let at_end = detached("sched_ext qmap was enabled at the start, disabled at the end");
        let stuck = Failure::Stuck {
            worker: "cg_0/0".into(),
            gap_ms: 6079,
            cpu: Some(1),
            at_ms: 116,
            limit_ms: 2000,
        };
        assert_eq!(
            verdict_kind(&[at_end.clone(), stuck.clone()]),
            Some(FailureKind::Starvation)
        );
        let reasonless = verdict_kind(&[at_end]).expect("a kind");
        assert_eq!(
            reasonless,
            FailureKind::Verdict {
                root: VerdictKind::SchedulerDetached,
                cause: None
            }
        );
        assert!(reasonless.same_way(&FailureKind::Starvation));
        assert!(FailureKind::Starvation.same_way(&reasonless));
        assert!(reasonless.same_way(&kicked("scx_bpf_error")));
        let unfair = FailureKind::Verdict {
            root: VerdictKind::Unfair,
            cause: None,
        };
        assert!(!unfair.same_way(&reasonless));
        let bpf_error =
            detached("the kernel kicked scheduler qmap out: disabled (scx_bpf_error) x");
        assert_eq!(
            verdict_kind(&[bpf_error, stuck]),
            Some(kicked("scx_bpf_error"))
        );
        assert_eq!(
            kicked("scx_bpf_error").to_string(),
            "scheduler_kicked (scx_bpf_error)"
        );
    }
}

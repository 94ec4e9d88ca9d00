//! One test's run, watched: the scheduler started, the scenario run, and
//! everything that can end it early (the scheduler not attaching, the
//! kernel kicking it out, the guest dying) kept as evidence for the verdict
//! instead of aborting it. Only what says nothing about the scheduler
//! (bad input, a backend failure) stays an error.

use std::path::Path;
use std::time::Duration;

use ktstr_topology::GuestTopology;
use ktstr_wire::SchedState;
use ktstr_workload::{RunEvidence, Scenario, ScenarioReport, SchedulerRun};

use super::phases::{Phase, PhaseClock};
use crate::error::HarnessError;
use crate::session::Session;

/// How long a scheduler may take to attach.
const ATTACH_DEADLINE: Duration = Duration::from_secs(60);

/// How long a run cut short waits for the kernel to end a scheduler that
/// is still attached: a scheduler that starves tasks is kicked by the
/// sched_ext watchdog within its timeout (scx_qmap asks for 5 s, checked
/// every half of it), and that kick, not the worker it kept from starting,
/// is the root cause. A longer timeout (the kernel allows 30 s) ends after
/// this; the verdict then rests on what the monitor saw.
const KICK_GRACE: Duration = Duration::from_secs(10);

/// The guest's report (empty when the scenario did not run) and the rest.
pub(super) struct Watched {
    pub report: ScenarioReport,
    pub evidence: RunEvidence,
    /// The guest could not finish the scenario (a worker that never
    /// started, a missed deadline) while it lived on: the caller decides
    /// whether that error stands or a finding explains it.
    pub cut_short: Option<HarnessError>,
}

/// Start `scheduler` (if any), run `scenario`, stop the scheduler; each
/// step is a lap of `clock`.
pub(super) fn run(
    session: &mut Session,
    scheduler: Option<&Path>,
    args: &[&str],
    scenario: &Scenario,
    topology: &GuestTopology,
    clock: &mut PhaseClock,
) -> Result<Watched, HarnessError> {
    let not_run = |why: &str| ScenarioReport::not_run(&scenario.name, topology.clone(), why);
    let mut evidence = RunEvidence::default();
    if let Some(path) = scheduler {
        if let Err(e) = session.attach(path, args, ATTACH_DEADLINE) {
            let why = e.to_string();
            match e {
                HarnessError::SchedulerExitedBeforeAttach {
                    name,
                    exit,
                    stderr,
                    kernel_log,
                } => {
                    evidence.scheduler = Some(SchedulerRun {
                        name,
                        ended: Some(format!("{exit} before attaching")),
                        kernel_lines: kernel_log,
                        stderr,
                        restarts: Vec::new(),
                    })
                }
                HarnessError::AttachTimeout {
                    name,
                    deadline,
                    stderr,
                } => {
                    evidence.scheduler = Some(SchedulerRun {
                        name,
                        ended: Some(format!("did not attach within {deadline:?}")),
                        stderr,
                        ..SchedulerRun::default()
                    })
                }
                other => evidence.crash = Some(crash(other)?),
            }
            return Ok(Watched {
                report: not_run(&why),
                evidence,
                cut_short: None,
            });
        }
    }
    clock.lap(Phase::SchedulerAttach);
    let saved = session.timings().attach_snapshot_save;
    clock.split(Phase::SchedulerAttach, &[(Phase::SnapshotSave, saved)]);
    let mut cut_short = None;
    let report = match session.run_scenario(scenario) {
        Ok(r) => r,
        Err(HarnessError::Guest { what, message }) => {
            let e = HarnessError::Guest { what, message };
            let why = e.to_string();
            cut_short = Some(e);
            not_run(&why)
        }
        Err(e) => {
            let why = e.to_string();
            evidence.crash = Some(crash(e)?);
            not_run(&why)
        }
    };
    clock.lap(Phase::Scenario);
    if scheduler.is_some() && cut_short.is_some() && scheduler_run(session).ended.is_none() {
        // A guest error (not a death): the scheduler may be why. Give the
        // kernel's watchdog its time; its end, if it comes, joins the
        // scheduler's events below.
        if let Err(e) = session.watch_scheduler(KICK_GRACE) {
            tracing::info!("after the run was cut short: {e}");
        }
    }
    if scheduler.is_some() {
        // Stopping hands the output over, so keep it first; the account is
        // read after the stop: the guest finishes watching a restart in
        // progress (and reports it) before it stops the scheduler.
        let stderr = session.scheduler_stderr().unwrap_or_default();
        if scheduler_run(session).ended.is_none() && evidence.crash.is_none() {
            session.stop_scheduler(Duration::from_secs(2))?;
        }
        evidence.scheduler = Some(SchedulerRun {
            stderr,
            ..scheduler_run(session)
        });
    }
    clock.lap(Phase::SchedulerStop);
    Ok(Watched {
        report,
        evidence,
        cut_short,
    })
}

/// The guest died (a verdict: the scheduler may have crashed it), or an
/// error that says nothing about the scheduler.
fn crash(e: HarnessError) -> Result<String, HarnessError> {
    match e {
        HarnessError::GuestDied { death, .. } => Ok(death.summary()),
        HarnessError::GuestPanic(message) => Ok(format!("guest init panicked: {message}")),
        other => Err(other),
    }
}

/// The scheduler's run from the session's `SchedulerState` reports (its
/// stderr left for the caller).
fn scheduler_run(session: &Session) -> SchedulerRun {
    let mut run = SchedulerRun::default();
    for e in session.scheduler_events() {
        match e.state {
            SchedState::Attached if run.name.is_empty() => run.name = e.name.clone(),
            // Attached again: sched_ext asked it to restart (reason = the
            // kernel's disable line).
            SchedState::Attached => run.restarts.push(e.reason.clone()),
            SchedState::Exited if run.ended.is_none() => {
                run.ended = Some(format!("exit code {}", e.exit_code));
                run.kernel_lines = e
                    .reason
                    .lines()
                    .filter(|l| l.starts_with("sched_ext:"))
                    .map(str::to_string)
                    .collect();
            }
            _ => {}
        }
    }
    run
}

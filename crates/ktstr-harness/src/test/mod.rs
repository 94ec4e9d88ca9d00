//! The runner behind `#[ktstr_test]`: one VM per test with the declared
//! topology, the scheduler attached (none = the kernel's EEVDF baseline), the
//! scenario run by the guest init, and a verdict with numbers.
//!
//! Inputs are checked before any VM starts: the kernel (`KTSTR_KERNEL`, else
//! the newest kernel `ktstr kernel build` cached), the scheduler (a path, or a
//! name looked up in `KTSTR_SCHEDULERS`, the kernel cache, then `PATH`), the
//! topology, and the scenario against the CPUs that topology gives; the rules
//! are `ktstr_testenv`'s. Under the default harness a test that cannot run
//! fails saying what is missing; under [`test_main`] (see [`registry`]) it is
//! reported ignored by name instead, outside CI.
//!
//! VMs from all tests of all test processes (libtest threads or nextest
//! processes) share `ktstr_testenv`'s machine-wide VM slots: at most
//! `KTSTR_MAX_VMS` (default: host CPUs / 2, at least 1) run at once. A result
//! lands in `target/ktstr/<test>.json`, with the host-side monitor's samples
//! and findings (see [`monitor`](MonitorSpec)) and a timeline SVG beside it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ktstr_topology::{GuestTopology, NumaTopology};
use ktstr_workload::report::TestResult;
use ktstr_workload::{Scenario, ScenarioReport, Thresholds, Verdict, judge};

use crate::error::HarnessError;
use crate::session::{BootTimings, Session, SessionConfig};

mod expect;
pub mod gauntlet;
mod monitor;
pub mod phases;
mod preload;
pub mod registry;
pub mod watchdog;
mod watched;

pub use expect::{Expect, Unexpected};
pub use monitor::{BackendMemory, MonitorPolicy, MonitorRecord, MonitorSpec, Monitored};
pub use phases::{Phase, PhaseTimings};
pub use registry::{KTSTR_TESTS, Registered, backend_needs, needs, test_main, test_main_with};

/// One declared test (what `#[ktstr_test]` expands to).
#[derive(Clone, Copy)]
pub struct KtstrTest {
    /// Test name (`gauntlet/<test>/<topology>[/<flags>]` for gauntlet members).
    pub name: &'static str,
    /// Topology in text form, e.g. `1n2l4c1t`, or a preset name.
    pub topology: &'static str,
    /// Scheduler binary: a path or a name; `None` = EEVDF.
    pub scheduler: Option<&'static str>,
    /// Scheduler arguments.
    pub args: &'static [&'static str],
    /// Guest memory; `None` = the preset's own, else 512 MiB.
    pub memory_mib: Option<u64>,
    /// Override every step's duration.
    pub step_ms: Option<u64>,
    /// Deadline of the whole VM; `None` = scenario time + 5 min.
    pub timeout_s: Option<u64>,
    /// The scenario's overall duration (steps keep their shares).
    pub duration_ms: Option<u64>,
    /// sched_ext watchdog timeout for the scheduler (see [`watchdog`]).
    pub watchdog_timeout_ms: Option<u64>,
    /// What the verdict must be (`expect_fail`, `expect_scx_error`).
    pub expect: Expect,
    /// Adjusts the default thresholds.
    pub thresholds: fn(&mut Thresholds),
    /// Builds the scenario.
    pub scenario: fn() -> Scenario,
    /// Host programs packed into the guest with their libraries (names on
    /// `PATH` or paths; see [`crate::guest_files`]).
    pub programs: &'static [&'static str],
    /// Host files packed into the guest: `(host path, guest path)`.
    pub files: &'static [(&'static str, &'static str)],
    /// What the host-side monitor's findings do to the verdict.
    pub monitor: MonitorSpec,
    /// Always attach the scheduler in this test's own VM, never resume a
    /// snapshot taken right after an earlier test attached it (see
    /// `session/attach_snapshot.rs`): for a test that asserts on the attach.
    pub fresh_attach: bool,
}

fn no_threshold_overrides(_: &mut Thresholds) {}

impl KtstrTest {
    /// `name` running `scenario` on `topology` under EEVDF, every other key
    /// at the default `#[ktstr_test]` gives it: the base for tests built by
    /// hand (`KtstrTest { scheduler: Some("scx_qmap"), ..KtstrTest::new(..) }`).
    pub const fn new(
        name: &'static str,
        topology: &'static str,
        scenario: fn() -> Scenario,
    ) -> KtstrTest {
        KtstrTest {
            name,
            topology,
            scheduler: None,
            args: &[],
            memory_mib: None,
            step_ms: None,
            timeout_s: None,
            duration_ms: None,
            watchdog_timeout_ms: None,
            expect: Expect::PASS,
            thresholds: no_threshold_overrides,
            scenario,
            programs: &[],
            files: &[],
            monitor: MonitorSpec::DEFAULT,
            fresh_attach: false,
        }
    }
}

/// What a test run produced.
#[derive(Debug)]
pub struct TestOutcome {
    /// Topology and scheduler, as printed in verdict lines.
    pub context: String,
    /// The test passed: its verdict passed, or failed the way it expected.
    pub passed: bool,
    /// The verdict.
    pub verdict: Verdict,
    /// Full telemetry.
    pub report: ScenarioReport,
    /// The JSON result file.
    pub json: PathBuf,
    /// Image, boot/restore times.
    pub boot: BootTimings,
    /// The rendered verdict and per-cgroup table, after a line saying how
    /// it met or missed the test's expectation, if it had one.
    pub rendered: String,
    /// Where the test's wall time went (also in the JSON, as `"phases"`).
    pub phases: PhaseTimings,
    /// What the host-side monitor saw (its record is in the JSON too).
    pub monitored: Monitored,
}

/// Runs `t` and panics with the verdict (headline + table) if it failed.
pub fn run(t: &KtstrTest) {
    match try_run(t) {
        Ok(o) if o.passed => eprint!("{}", o.rendered),
        Ok(o) => panic!("{}(result: {})", o.rendered, o.json.display()),
        Err(e) => panic!("{} [{}] could not run: {e}", t.name, context(t)),
    }
}

fn context(t: &KtstrTest) -> String {
    let sched = t.scheduler.map_or("eevdf".to_string(), |s| {
        let name = Path::new(s)
            .file_name()
            .map_or(s.to_string(), |n| n.to_string_lossy().into_owned());
        std::iter::once(name)
            .chain(t.args.iter().map(|a| a.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    });
    format!("{} {sched}", t.topology)
}

/// Runs `t`: checks inputs, boots (or resumes), attaches, runs, evaluates.
pub fn try_run(t: &KtstrTest) -> Result<TestOutcome, HarnessError> {
    try_run_scenario(t, (t.scenario)())
}

/// [`try_run`] with `scenario` in place of `t.scenario` (generated
/// scenarios: ktstr-fuzz runs many under one declaration).
pub fn try_run_scenario(t: &KtstrTest, scenario: Scenario) -> Result<TestOutcome, HarnessError> {
    let mut clock = phases::PhaseClock::start();
    let kernel = find_kernel()?;
    let invalid = |reason: String| HarnessError::InvalidTest {
        test: t.name.into(),
        reason,
    };
    let shape = ktstr_topology::resolve(t.topology).map_err(|e| invalid(e.to_string()))?;
    let memory_mib = shape
        .memory_mib(t.memory_mib, 512)
        .map_err(|e| invalid(e.to_string()))?;
    let topo: NumaTopology = shape.topology;
    let scheduler = t.scheduler.map(find_scheduler).transpose()?;
    if let (Some(ms), Some(path)) = (t.watchdog_timeout_ms, &scheduler) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        return Err(invalid(watchdog::refusal(&name, ms)));
    }
    let (programs, files) = crate::guest_files::declared(t.programs, t.files)?;
    let mut scenario = scenario;
    if let Some(ms) = t.step_ms {
        scenario = scenario.with_step_ms(ms);
    }
    if let Some(ms) = t.duration_ms {
        scenario = scenario
            .with_total_ms(ms)
            .map_err(|e| invalid(e.to_string()))?;
    }
    let guest_topology = GuestTopology::expected(&topo);
    scenario
        .validate(&guest_topology)
        .map_err(|e| invalid(e.to_string()))?;
    let steps_ms: u64 = scenario.longest_ms();
    let preload = preload::Preload::start(&kernel, t.monitor);
    clock.lap(Phase::Inputs);

    let _slot =
        ktstr_testenv::VmSlot::acquire().map_err(|e| HarnessError::io("take a VM slot", e))?;
    clock.lap(Phase::Slot);
    let mut cfg = SessionConfig::new(&kernel);
    cfg.topology = Some(topo.clone());
    cfg.memory_mib = memory_mib;
    cfg.schedulers = scheduler.iter().cloned().collect();
    (cfg.programs, cfg.files) = (programs, files);
    cfg.deadline = t.timeout_s.map_or(
        Duration::from_millis(steps_ms) + Duration::from_secs(300),
        Duration::from_secs,
    );
    if let (Some(path), false) = (&scheduler, t.fresh_attach) {
        cfg.attach_snapshot = Some(crate::session::AttachPoint::new(path, t.args));
    }
    let mut session = Session::boot(&cfg)?;
    let boot = session.timings();
    clock.lap(Phase::VmStart);
    clock.split(Phase::VmStart, &boot.phases());
    drop(preload);
    let watch = monitor::Watch::start(&session, &kernel, t.monitor);
    clock.lap(Phase::MonitorStart);
    let watched = watched::run(
        &mut session,
        scheduler.as_deref(),
        t.args,
        &scenario,
        &guest_topology,
        &mut clock,
    );
    // The sampler thread is joined whatever the run's outcome.
    let json = result_path(t.name);
    let monitored = watch.finish(t.name, &json, session.scenario_started());
    // A run cut short (a worker that never started, a scenario past its
    // deadline) in a guest the monitor saw wedged is that wedge's verdict.
    // The scheduler's account of a run cut short is kept (a kick that
    // explains the unstarted worker leads the verdict).
    let (mut watched, cut_short) = match watched {
        Ok(mut w) => match w.cut_short.take() {
            Some(e) => (w, Some(monitored.explains(e)?)),
            None => (w, None),
        },
        Err(e) => {
            let why = monitored.explains(e)?;
            let report = ScenarioReport::not_run(&scenario.name, guest_topology.clone(), &why);
            let evidence = ktstr_workload::RunEvidence::default();
            let cut_short = None;
            (
                watched::Watched {
                    report,
                    evidence,
                    cut_short,
                },
                Some(why),
            )
        }
    };
    if watched.evidence.crash.is_none() {
        // Everything the verdict needs has arrived: end the VM instead of
        // waiting for the guest to power off.
        session.end()?;
    }
    clock.lap(Phase::Shutdown);
    let report = watched.report;
    clock.note(
        boot.restored,
        boot.attach_resumed,
        Duration::from_millis(report.wall_ms),
    );

    let mut thresholds = Thresholds::default();
    (t.thresholds)(&mut thresholds);
    watched.evidence.monitor = monitored.failures.clone();
    let verdict = judge(&report, &thresholds, &watched.evidence);
    let context = context(t);
    let mut rendered = verdict.render(t.name, &context, &report) + &monitored.notes();
    if let Some(why) = cut_short {
        rendered += &format!("  the run did not complete: {why}\n");
    }
    let expected = t.expect.check(&verdict);
    let line = match &expected {
        Ok(Some(line)) => Some(line.clone()),
        Err(e) => Some(e.to_string()),
        Ok(None) => None,
    };
    if let (Some(line), false) = (line, t.expect == Expect::PASS) {
        rendered = format!("{} [{context}]: {line}\n{rendered}", t.name);
    }
    let result = TestResult::new(t.name, &context, verdict.clone(), report.clone());
    // Timed up to the write itself, which is the one step the file cannot include.
    clock.lap(Phase::Result);
    let record = monitor::ResultFile {
        result: &result,
        monitor: &monitored.record,
        phases: clock.timings(),
    };
    ktstr_workload::report::json(&json, &record)
        .map_err(|e| HarnessError::io("write the JSON result", std::io::Error::other(e)))?;
    clock.lap(Phase::Result);
    Ok(TestOutcome {
        context,
        passed: expected.is_ok(),
        verdict,
        report,
        json,
        boot,
        rendered,
        phases: clock.timings(),
        monitored,
    })
}

/// `target/ktstr/<name>.json`, `/` in the name becoming `__`.
pub fn result_path(name: &str) -> PathBuf {
    let file = format!("{}.json", name.replace('/', "__"));
    target_dir().join("ktstr").join(file)
}

fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

/// Where cached kernels are looked for after `KTSTR_KERNEL`.
pub fn kernel_cache_dir() -> Option<PathBuf> {
    ktstr_testenv::kernels_dir()
}

/// `KTSTR_KERNEL`, else the newest cached kernel; an error says how to get one.
pub fn find_kernel() -> Result<PathBuf, HarnessError> {
    ktstr_testenv::find_kernel().map_err(HarnessError::NoKernel)
}

/// A path as is; a bare name from `KTSTR_SCHEDULERS`, the kernel cache, then `PATH`.
pub fn find_scheduler(name: &str) -> Result<PathBuf, HarnessError> {
    ktstr_testenv::find_scheduler(name).map_err(HarnessError::NoScheduler)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert!(
            result_path("gauntlet/t/1n1l2c1t/-f").ends_with("ktstr/gauntlet__t__1n1l2c1t__-f.json")
        );
        let t: NumaTopology = "2n4l2c1t"
            .parse::<ktstr_topology::Topology>()
            .unwrap()
            .to_numa()
            .unwrap();
        let g = GuestTopology::expected(&t);
        assert_eq!(g.llcs, vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6, 7]]);
        assert_eq!(g.nodes, vec![(0..4).collect::<Vec<_>>(), (4..8).collect()]);
        assert!(matches!(
            find_scheduler("/nonexistent/scx_x"),
            Err(HarnessError::NoScheduler(_))
        ));
        // A bare name that resolves nowhere says how to build it.
        match find_scheduler("scx_no_such_scheduler") {
            Err(e @ HarnessError::NoScheduler(_)) => {
                assert!(
                    e.to_string().contains("sched build scx_no_such_scheduler"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}

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
//! lands in `target/ktstr/<test>.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ktstr_topology::{GuestTopology, NumaTopology};
use ktstr_workload::report::TestResult;
use ktstr_workload::{Scenario, ScenarioReport, Thresholds, Verdict, evaluate};

use crate::error::HarnessError;
use crate::session::{BootTimings, Session, SessionConfig};

pub mod gauntlet;
pub mod registry;

pub use registry::{KTSTR_TESTS, Registered, backend_needs, needs, test_main};

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
    /// Adjusts the default thresholds.
    pub thresholds: fn(&mut Thresholds),
    /// Builds the scenario.
    pub scenario: fn() -> Scenario,
}

/// What a test run produced.
#[derive(Debug)]
pub struct TestOutcome {
    /// Topology and scheduler, as printed in verdict lines.
    pub context: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Full telemetry.
    pub report: ScenarioReport,
    /// The JSON result file.
    pub json: PathBuf,
    /// Image, boot/restore times.
    pub boot: BootTimings,
    /// The rendered verdict and per-cgroup table.
    pub rendered: String,
}

/// Runs `t` and panics with the verdict (headline + table) if it failed.
pub fn run(t: &KtstrTest) {
    match try_run(t) {
        Ok(o) if o.verdict.passed => eprint!("{}", o.rendered),
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
    let kernel = find_kernel()?;
    let invalid = |e: ktstr_topology::TopologyError| HarnessError::InvalidTest {
        test: t.name.into(),
        reason: e.to_string(),
    };
    let shape = ktstr_topology::resolve(t.topology).map_err(invalid)?;
    let memory_mib = shape.memory_mib(t.memory_mib, 512).map_err(invalid)?;
    let topo: NumaTopology = shape.topology;
    let scheduler = t.scheduler.map(find_scheduler).transpose()?;
    let mut scenario = scenario;
    if let Some(ms) = t.step_ms {
        scenario = scenario.with_step_ms(ms);
    }
    scenario
        .validate(&GuestTopology::expected(&topo))
        .map_err(|e| HarnessError::InvalidTest {
            test: t.name.into(),
            reason: e.to_string(),
        })?;
    let steps_ms: u64 = scenario.steps.iter().map(|s| s.duration_ms).sum();

    let _slot =
        ktstr_testenv::VmSlot::acquire().map_err(|e| HarnessError::io("take a VM slot", e))?;
    let mut cfg = SessionConfig::new(&kernel);
    cfg.topology = Some(topo.clone());
    cfg.memory_mib = memory_mib;
    cfg.schedulers = scheduler.iter().cloned().collect();
    cfg.deadline = t.timeout_s.map_or(
        Duration::from_millis(steps_ms) + Duration::from_secs(300),
        Duration::from_secs,
    );
    let mut session = Session::boot(&cfg)?;
    if let Some(path) = &scheduler {
        session.start_scheduler(path, t.args, Duration::from_secs(60))?;
    }
    let report = session.run_scenario(&scenario)?;
    let sched_exit = session.scheduler_exit().map(|e| e.to_string());
    if scheduler.is_some() && sched_exit.is_none() {
        session.stop_scheduler(Duration::from_secs(2))?;
    }
    let boot = session.timings();
    session.shutdown()?;

    let mut thresholds = Thresholds::default();
    (t.thresholds)(&mut thresholds);
    let verdict = evaluate(&report, &thresholds, sched_exit.as_deref());
    let context = context(t);
    let rendered = verdict.render(t.name, &context, &report);
    let json = result_path(t.name);
    ktstr_workload::report::json(
        &json,
        &TestResult::new(t.name, &context, verdict.clone(), report.clone()),
    )
    .map_err(|e| HarnessError::io("write the JSON result", std::io::Error::other(e)))?;
    Ok(TestOutcome {
        context,
        verdict,
        report,
        json,
        boot,
        rendered,
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

//! Generated scenarios that shrink. [`plan`] holds proptest strategies for
//! abstract scenarios, [`realize`] turns one into a [`Scenario`] valid on a
//! topology, [`search`] runs generated scenarios from a seed until one
//! fails and shrinks it (fewer steps, cgroups, ops and workers, shorter
//! steps, simpler work and cpusets) to the smallest that fails the same way
//! ([`judge::FailureKind`]), and [`render`] writes it out as a
//! `#[ktstr_test]`.
//!
//! From a test or a program: [`fuzz`]; from the shell: `ktstr fuzz
//! --scheduler S --seed N --runs K`. Every run is a real guest (a snapshot
//! restore plus the scenario), so the shrink budget bounds the cost.

pub mod judge;
pub mod plan;
pub mod realize;
pub mod render;
pub mod search;

use ktstr_harness::HarnessError;
use ktstr_harness::test::KtstrTest;
use ktstr_topology::GuestTopology;
use ktstr_workload::Scenario;

pub use judge::{FailureKind, Judge, Outcome, VmJudge};
pub use plan::Limits;
pub use search::{Finding, Found, Search};

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    /// The run itself could not happen (kernel, scheduler, backend, bad
    /// input): not a finding.
    #[error("could not run a generated scenario: {0}")]
    Run(#[source] HarnessError),
    #[error("bad topology: {0}")]
    Topology(#[from] ktstr_topology::TopologyError),
    #[error("proptest could not generate a scenario: {reason}")]
    Generate { reason: String },
    #[error("serialising a scenario: {0}")]
    Json(#[source] serde_json::Error),
    #[error("{0}: a failed verdict listed no failure")]
    NoFailure(String),
}

/// What to fuzz.
#[derive(Clone, Debug)]
pub struct FuzzRun {
    /// A shape or preset name.
    pub topology: String,
    /// Memory in MiB; `None` = the preset's own, else 512.
    pub memory_mib: Option<u64>,
    /// A scheduler path or name; `None` = EEVDF.
    pub scheduler: Option<String>,
    pub args: Vec<String>,
    pub search: Search,
}

/// The search's result and, for a failure, the test to paste.
#[derive(Clone, Debug)]
pub struct FuzzReport {
    pub finding: Finding,
    /// The shrunk scenario as a `#[ktstr_test]`.
    pub test: Option<String>,
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn unused_scenario() -> Scenario {
    Scenario {
        name: "generated".into(),
        steps: Vec::new(),
    }
}

/// The `#[ktstr_test]` declaration every generated scenario runs under.
/// `KtstrTest` holds `'static` strings (it is what the macro builds as a
/// constant): one search leaks these few strings once.
pub fn template(run: &FuzzRun, name: &str) -> KtstrTest {
    let args: Vec<&'static str> = run.args.iter().cloned().map(leak).collect();
    KtstrTest {
        scheduler: run.scheduler.clone().map(leak),
        args: Box::leak(args.into_boxed_slice()),
        memory_mib: run.memory_mib,
        thresholds: judge::fuzz_thresholds,
        ..KtstrTest::new(
            leak(name.to_string()),
            leak(run.topology.clone()),
            unused_scenario,
        )
    }
}

/// `fuzz_<scheduler>_seed<N>`: the generated test's function name.
pub fn test_name(run: &FuzzRun) -> String {
    let sched = run
        .scheduler
        .as_deref()
        .map_or("eevdf".to_string(), judge::scheduler_label);
    let clean: String = sched
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("fuzz_{clean}_seed{}", run.search.seed)
}

/// Searches with `judge` (a [`VmJudge`] for real guests) and renders a
/// failure as a `#[ktstr_test]`.
pub fn fuzz_with<J: Judge>(run: &FuzzRun, judge: &mut J) -> Result<FuzzReport, FuzzError> {
    let shape = ktstr_topology::resolve(&run.topology)?;
    let guest = GuestTopology::expected(&shape.topology);
    let name = test_name(run);
    let finding = search::search(&run.search, &guest, &name, judge)?;
    let test = match &finding {
        Finding::AllPassed { .. } => None,
        Finding::Failed(found) => {
            let comment = format!(
                "Found by `ktstr fuzz` (seed {}, run {}): {}; shrunk in {} runs.",
                run.search.seed, found.run, found.kind, found.shrink_runs
            );
            Some(render::ktstr_test(
                &render::TestHeader {
                    name: &name,
                    topology: &run.topology,
                    scheduler: run.scheduler.as_deref(),
                    args: &run.args,
                    comment: &comment,
                },
                &found.shrunk,
            ))
        }
    };
    Ok(FuzzReport { finding, test })
}

/// [`fuzz_with`] in real guests through the harness.
pub fn fuzz(run: &FuzzRun) -> Result<FuzzReport, FuzzError> {
    let mut judge = VmJudge {
        template: template(run, &test_name(run)),
    };
    fuzz_with(run, &mut judge)
}

/// For a `#[test]` (or a test under `ktstr_testenv`'s runner): fuzzes
/// `run` in real guests and fails, printing the shrunk `#[ktstr_test]` to
/// paste, when a generated scenario fails; a run that cannot happen fails
/// with its error. An assertion, so it panics by design.
///
/// ```no_run
/// # use ktstr_fuzz::{FuzzRun, Search, Limits};
/// ktstr_fuzz::assert_survives(&FuzzRun {
///     topology: "1n2l2c1t".into(),
///     memory_mib: None,
///     scheduler: Some("scx_simple".into()),
///     args: Vec::new(),
///     search: Search {
///         seed: 1,
///         runs: 5,
///         shrink_budget: 20,
///         confirm_passes: 1,
///         limits: Limits::default(),
///     },
/// });
/// ```
pub fn assert_survives(run: &FuzzRun) {
    match fuzz(run) {
        Ok(FuzzReport {
            finding: Finding::AllPassed { .. },
            ..
        }) => {}
        Ok(FuzzReport {
            finding: Finding::Failed(found),
            test,
        }) => panic!(
            "generated scenario {} failed: {}\n{}\nsmallest scenario failing the same way:\n{}",
            found.run,
            found.kind,
            found.headline,
            test.unwrap_or_default()
        ),
        Err(e) => panic!("fuzzing {} could not run: {e}", test_name(run)),
    }
}

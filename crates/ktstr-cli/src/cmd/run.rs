//! `ktstr run`: a catalogue scenario under a scheduler, judged by the same
//! runner `#[ktstr_test]` uses (`ktstr_harness::test::try_run`).

use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use ktstr_harness::test::{KtstrTest, try_run};
use ktstr_topology::GuestTopology;
use ktstr_workload::{Scenario, catalogue};

use crate::cli::RunArgs;
use crate::exit::{Inconclusive, Status};

/// The scenario `try_run` runs. `KtstrTest` holds plain `fn` pointers (it
/// is what `#[ktstr_test]` builds as a static), so the chosen scenario is
/// handed over here; it is set once, before the run.
static CHOSEN: OnceLock<Scenario> = OnceLock::new();

fn chosen() -> Scenario {
    CHOSEN.get().cloned().unwrap_or_else(|| Scenario {
        name: "unset".into(),
        steps: Vec::new(),
    })
}

pub fn run(args: &RunArgs) -> anyhow::Result<Status> {
    let scenario = catalogue::by_name(&args.scenario).ok_or_else(|| {
        let names: Vec<String> = catalogue::all().into_iter().map(|s| s.name).collect();
        anyhow!(
            "unknown scenario {:?}: one of {} (see `ktstr scenarios`)",
            args.scenario,
            names.join(", ")
        )
    })?;
    let (topology, memory_mib) = super::parse_topology(&args.vm.topology, args.vm.memory_mib)?;
    scenario
        .validate(&GuestTopology::expected(&topology))
        .with_context(|| {
            format!(
                "scenario {} does not fit topology {}",
                scenario.name, args.vm.topology
            )
        })?;
    let scheduler = super::prepare(&args.scheduler, !args.vm.no_build)?;
    let name = format!("ktstr-run/{}", scenario.name);
    let _ = CHOSEN.set(scenario);
    // One run per process: these few strings live until exit.
    let test = KtstrTest {
        scheduler: scheduler.map(|p| leak(p.display().to_string())),
        memory_mib: Some(memory_mib),
        ..KtstrTest::new(leak(name), leak(args.vm.topology.clone()), chosen)
    };
    match try_run(&test) {
        Ok(outcome) => {
            if args.json.json {
                let text = std::fs::read_to_string(&outcome.json)
                    .with_context(|| format!("read {}", outcome.json.display()))?;
                println!("{}", text.trim_end());
            } else {
                print!("{}", outcome.rendered);
                println!("result: {}", outcome.json.display());
            }
            Ok(Status::of_verdict(&outcome.verdict))
        }
        // The scheduler failing (to attach, kicked out, exited) and the
        // guest crashing are verdicts; what is left says nothing about them.
        Err(e) => Err(Inconclusive(e).into()),
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

//! `ktstr fuzz`: generated scenarios from a seed under a scheduler
//! (ktstr-fuzz), the first failure shrunk and printed as a `#[ktstr_test]`.

use anyhow::Context;
use ktstr_fuzz::realize::cgroup_count;
use ktstr_fuzz::{Finding, FuzzError, FuzzRun, Limits, Search};

use crate::cli::FuzzArgs;
use crate::exit::{Inconclusive, Status};

pub fn run(args: &FuzzArgs) -> anyhow::Result<Status> {
    // Bad input first: the shape (and the memory it fixes).
    let (_, memory_mib) = super::parse_topology(&args.vm.topology, args.vm.memory_mib)?;
    let scheduler = super::prepare(&args.scheduler, !args.vm.no_build)?;
    let run = FuzzRun {
        topology: args.vm.topology.clone(),
        memory_mib: Some(memory_mib),
        // The name as given: the harness resolves it the same way, and the
        // printed test then reads `scheduler = "scx_qmap"`, not a path.
        scheduler: scheduler.map(|_| args.scheduler.clone()),
        args: args.args.clone(),
        search: Search {
            seed: args.seed,
            runs: args.runs,
            shrink_budget: args.shrink_budget,
            confirm_passes: args.confirm_passes,
            limits: Limits {
                max_steps: args.max_steps.max(1),
                min_step_ms: args.min_step_ms.max(1),
                max_step_ms: args.max_step_ms.max(args.min_step_ms),
                ..Limits::default()
            },
        },
    };
    let report = match ktstr_fuzz::fuzz(&run) {
        Ok(r) => r,
        Err(FuzzError::Run(e)) => return Err(Inconclusive(e).into()),
        Err(e) => return Err(e.into()),
    };
    let found = match report.finding {
        Finding::AllPassed { runs } => {
            eprintln!(
                "ktstr fuzz: seed {}: all {runs} generated scenarios passed",
                args.seed
            );
            return Ok(Status::Success);
        }
        Finding::Failed(found) => found,
    };
    let test = report.test.unwrap_or_default();
    eprintln!(
        "ktstr fuzz: seed {} run {} failed: {}\n  as generated: {} steps, {} cgroups; \
         shrunk: {} steps, {} cgroups ({} search + {} shrink runs)\n  {}",
        args.seed,
        found.run,
        found.kind,
        found.original.steps.len(),
        cgroup_count(&found.original),
        found.shrunk.steps.len(),
        cgroup_count(&found.shrunk),
        found.search_runs,
        found.shrink_runs,
        found.headline,
    );
    print!("{test}");
    if let Some(path) = &args.out {
        std::fs::write(path, &test).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(Status::Failed)
}

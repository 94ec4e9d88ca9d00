//! Scheduler tests as a scheduler author writes them: each `#[ktstr_test]`
//! boots a VM with its topology (resuming a snapshot after the first),
//! attaches the scheduler, runs the scenario and checks the verdict.
//!
//! Needs `KTSTR_KERNEL` and, for the sched_ext schedulers, `KTSTR_SCHEDULERS`
//! (a directory holding `scx_simple` and `scx_qmap`); `.ci/run` sets both.
//! Without them the tests are reported ignored (see `Cargo.toml`: this target
//! runs `ktstr_harness::test::test_main`).

use ktstr_harness::ktstr_test;
use ktstr_harness::workload::{CgroupSpec, CpusetSpec, Scenario, Step, WorkKind, catalogue};

fn spinners(name: &str, workers: u32, cpuset: CpusetSpec) -> CgroupSpec {
    CgroupSpec {
        name: name.into(),
        workers,
        work: WorkKind::Spin,
        cpuset,
        weight: None,
        children: Vec::new(),
    }
}

/// Two cgroups of two spinners sharing every CPU.
fn two_cgroups() -> Scenario {
    Scenario {
        name: "two_cgroups".into(),
        steps: vec![Step {
            duration_ms: 2000,
            ops_before: Vec::new(),
            cgroups: vec![
                spinners("cg_0", 2, CpusetSpec::All),
                spinners("cg_1", 2, CpusetSpec::All),
            ],
        }],
    }
}

#[ktstr_test(topology = "1n1l2c1t")]
fn eevdf_two_cgroups() -> Scenario {
    two_cgroups()
}

#[ktstr_test(topology = "1n1l2c1t", scheduler = "scx_simple")]
fn scx_simple_two_cgroups() -> Scenario {
    two_cgroups()
}

#[ktstr_test(topology = "1n2l2c1t", scheduler = "scx_simple")]
fn scx_simple_cpuset_split() -> Scenario {
    catalogue::cpuset_split()
}

#[ktstr_test(topology = "1n1l2c1t", scheduler = "scx_qmap", args = ["-s", "20000"])]
fn scx_qmap_two_cgroups() -> Scenario {
    two_cgroups()
}

#[ktstr_test(topology = "1n2l2c1t", scheduler = "scx_qmap")]
fn scx_qmap_cpuset_split() -> Scenario {
    catalogue::cpuset_split()
}

/// `gauntlet_steady::t1n1l2c1t`, `::tnuma_asym_2n`, ...: one test per preset
/// with 2+ CPUs. CI runs the members on the CI subset of presets; the rest
/// are reported ignored unless `KTSTR_GAUNTLET=full`.
#[ktstr_test(
    gauntlet = "presets",
    scheduler = "scx_simple",
    min_cpus = 2,
    step_ms = 1500
)]
fn steady() -> Scenario {
    catalogue::steady()
}

fn main() -> std::process::ExitCode {
    ktstr_harness::test::test_main()
}

//! Scenarios the example tests share.

use ktstr_harness::workload::{CgroupSpec, CpusetSpec, Op, Scenario, Step, WorkKind};

/// Spinners on every CPU and one confined to cpu1, while cpu1 goes
/// offline and comes back (not in the catalogue: the catalogue also runs
/// on hosts, and this one would take a host CPU offline).
pub fn cpu_hotplug() -> Scenario {
    let cg = |name: &str, workers, cpuset| CgroupSpec::new(name, workers, WorkKind::Spin, cpuset);
    let step = |ops_before, cgroups| Step {
        duration_ms: 1500,
        ops_before,
        cgroups,
    };
    Scenario {
        name: "cpu_hotplug".into(),
        steps: vec![
            step(
                Vec::new(),
                vec![
                    cg("all", 2, CpusetSpec::All),
                    cg("cpu1", 1, CpusetSpec::List(vec![1])),
                ],
            ),
            step(vec![Op::CpuOffline { cpu: 1 }], Vec::new()),
            step(vec![Op::CpuOnline { cpu: 1 }], Vec::new()),
        ],
    }
}

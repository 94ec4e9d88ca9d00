//! Scenarios, workers, telemetry and verdicts for ktstr.
//!
//! Data flow:
//!
//! 1. The host declares a [`Scenario`] as data (or picks one from
//!    [`catalogue`]) and sends it to the guest (it is serde-serialisable).
//! 2. Inside the guest, `ktstr-guest` reads [`ktstr_topology::GuestTopology::from_sysfs`] and
//!    calls [`run_scenario`]: per step it applies the [`Op`]s, creates cgroup v2
//!    directories ([`cgroup`]), forks one process per worker ([`worker`]) that
//!    measures itself (CPU time, switches, migrations, CPUs used, longest gap
//!    without progress, wake-up latency), then stops, collects and tears
//!    everything down. sched_ext's sysfs state is sampled before and after
//!    ([`scx`]). The result is a [`ScenarioReport`] (JSON, or
//!    [`WorkerTelemetry::to_wire`] for the fixed wire record).
//!
//!    Where the hierarchy lacks the `cpuset` controller (a hybrid v1/v2
//!    host), cpusets are enforced with `sched_setaffinity` and the report
//!    says so; where `cpu` is missing, `cpu.weight` is recorded as not applied.
//! 3. The host calls [`evaluate`] with [`Thresholds`] and the scheduler's exit
//!    reason, gets a [`Verdict`] whose headline reads like
//!    `two_cgroups [1n1l2c1t scx_simple] failed: worker cg_1/3 stuck 3500 ms on cpu1 at +1200 ms`,
//!    prints [`report::table`] and writes [`report::json`] under `target/ktstr/`.

#![warn(missing_docs)]

pub mod catalogue;
pub mod cgroup;
pub mod cpuset;
pub mod evidence;
pub mod hotplug;
pub mod monitor_finding;
pub mod payload;
pub mod protocol;
pub mod report;
pub mod runner;
pub mod scx;
pub mod spec;
pub mod verdict;
pub mod worker;

pub use evidence::{RunEvidence, SchedulerRun, judge};
pub use monitor_finding::{MonitorDetector, MonitorFinding};
pub use payload::{Figures, PayloadRecord, PayloadSpec};
pub use report::{ScenarioReport, WorkerTelemetry};
pub use runner::{RunError, RunOptions, run_scenario};
pub use spec::{CgroupSpec, CpusetSpec, Op, Scenario, SpecError, Step, WorkKind};
pub use verdict::{Failure, FailureKind, Thresholds, UnknownFailureKind, Verdict, evaluate};

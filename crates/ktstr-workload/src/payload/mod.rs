//! Payloads: a program nobody here wrote (stress-ng, cyclictest, a test
//! suite) run once in the guest, in its own cgroup, and judged by how it
//! ended.
//!
//! A payload is declared as [`Op::Payload`](crate::Op::Payload) in a step:
//! it starts with that step, and the step lasts until its duration has
//! passed *and* its payloads have exited, so a step holding only a payload
//! is "run this program" and a payload beside a step's cgroups runs next
//! to their workers. A payload still running at its own `timeout_ms` is
//! killed (its whole cgroup) and counts as failed; so does a non-zero exit,
//! a signal, a failure to start, or [`Figures`] that its output lacks.
//!
//! This differs from [`WorkKind::Payload`](crate::WorkKind::Payload), a
//! worker that restarts a binary in a loop as background load and is never
//! judged by its exit.
//!
//! * `record`: what a run of one payload left behind ([`PayloadRecord`]).
//! * `process`: starting it in its cgroup, watching, killing, reaping.
//! * `figures`: numbers parsed from known programs' output.
//! * `output`: the bounded tail of its stdout and stderr.

mod figures;
mod output;
mod process;
mod record;
mod spawn;

use serde::{Deserialize, Serialize};

use crate::spec::{CpusetSpec, MAX_STEP_MS};

pub use figures::Figures;
pub(crate) use process::{LivePayload, Placement};
pub use record::{PayloadEnd, PayloadRecord};

/// Where the harness packs declared host programs in the guest (on the
/// guest init's `PATH`), so a payload can name them without a path.
pub const GUEST_PROGRAM_DIR: &str = "/usr/bin";

/// A payload's deadline when the spec sets none: generous for a program
/// under emulation, short enough that a hang ends the test.
pub const DEFAULT_TIMEOUT_MS: u64 = 120_000;

/// One run of an external program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadSpec {
    /// Name in reports, and of its cgroup (unique among the scenario's
    /// cgroups and payloads).
    pub name: String,
    /// The program: an absolute path, or a name looked up on `PATH` (in the
    /// guest, declared programs are in [`GUEST_PROGRAM_DIR`]).
    pub program: String,
    /// Its arguments (without `argv[0]`).
    pub args: Vec<String>,
    /// CPUs its cgroup may use.
    #[serde(default)]
    pub cpuset: CpusetSpec,
    /// Killed (and failed) when still running this long after its start.
    pub timeout_ms: u64,
    /// Numbers to parse from its output into the report.
    #[serde(default)]
    pub figures: Option<Figures>,
}

impl PayloadSpec {
    /// `program` with `args`, named after the program's file name, on every
    /// CPU, with the [`DEFAULT_TIMEOUT_MS`] deadline.
    pub fn new<S: AsRef<str>>(program: &str, args: impl IntoIterator<Item = S>) -> Self {
        let name = program.rsplit('/').next().unwrap_or(program).to_owned();
        PayloadSpec {
            name,
            program: program.to_owned(),
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            cpuset: CpusetSpec::All,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            figures: None,
        }
    }

    /// The same payload under another name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// The same payload with another deadline.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = ms;
        self
    }

    /// The same payload confined to `cpuset`.
    pub fn cpuset(mut self, cpuset: CpusetSpec) -> Self {
        self.cpuset = cpuset;
        self
    }

    /// The same payload with its output parsed as `figures`.
    pub fn figures(mut self, figures: Figures) -> Self {
        self.figures = Some(figures);
        self
    }

    /// A scenario of one step that runs just this payload (the step lasts
    /// as long as the payload does).
    pub fn into_scenario(self) -> crate::Scenario {
        crate::Scenario {
            name: self.name.clone(),
            steps: vec![crate::Step {
                duration_ms: 1,
                ops_before: vec![crate::Op::Payload(self)],
                cgroups: Vec::new(),
            }],
        }
    }

    /// What is wrong with the spec itself, if anything (the name is checked
    /// with the cgroup names).
    pub(crate) fn problem(&self) -> Option<&'static str> {
        if self.program.is_empty() {
            Some("its program is empty")
        } else if self.timeout_ms == 0 || self.timeout_ms > MAX_STEP_MS {
            Some("its timeout_ms is outside 1..=3600000")
        } else if std::iter::once(&self.program)
            .chain(&self.args)
            .any(|a| a.contains('\0'))
        {
            Some("its program or an argument contains a NUL byte")
        } else {
            None
        }
    }
}

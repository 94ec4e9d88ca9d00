//! What a run produced: how it ended, what the guest printed, how long it took.

use std::time::Duration;

use crate::profile::Profile;
use crate::snapshot::SnapshotInfo;

/// How the VM ended. Guest behaviour is classified here, never returned as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// The guest reset the machine (i8042 0xFE, KVM reset event).
    Reboot,
    /// Triple fault or power-off.
    Shutdown,
    /// [`crate::InterruptHandle::kill`] was called.
    Killed,
    /// The run exceeded its configured deadline.
    DeadlineExceeded,
    /// A VMM thread serving this vCPU panicked.
    VcpuPanicked { vcpu: usize, message: String },
    /// The host's KVM could not emulate a guest instruction and no shim applied.
    EmulationFailure {
        vcpu: usize,
        rip: u64,
        bytes: Vec<u8>,
    },
    /// The configured snapshot was saved and the plan said to stop.
    Snapshotted,
    /// Anything else KVM reported that the VMM cannot continue from.
    InternalError { vcpu: usize, detail: String },
}

impl ExitKind {
    /// Stable lower-case name, as printed in JSON by the examples.
    pub fn name(&self) -> &'static str {
        match self {
            ExitKind::Reboot => "reboot",
            ExitKind::Shutdown => "shutdown",
            ExitKind::Killed => "killed",
            ExitKind::DeadlineExceeded => "deadline_exceeded",
            ExitKind::VcpuPanicked { .. } => "vcpu_panicked",
            ExitKind::EmulationFailure { .. } => "emulation_failure",
            ExitKind::InternalError { .. } => "internal_error",
            ExitKind::Snapshotted => "snapshotted",
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// KVM objects, guest memory, image loading, boot structures.
    pub setup: Duration,
    /// From starting the vCPUs until every vCPU thread was joined.
    pub run: Duration,
}

/// A compatibility shim the VMM applied during the run, with a count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShimUse {
    pub name: &'static str,
    pub count: u64,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub exit: ExitKind,
    pub com1: Vec<u8>,
    pub com2: Vec<u8>,
    pub timings: Timings,
    pub vcpus: usize,
    /// Guest accesses to ports/addresses with no device.
    pub unhandled_io: u64,
    pub shims: Vec<ShimUse>,
    pub profile: Option<Profile>,
    /// The snapshot this run saved, if any.
    pub snapshot: Option<SnapshotInfo>,
}

impl Outcome {
    pub fn com1_text(&self) -> String {
        String::from_utf8_lossy(&self.com1).into_owned()
    }

    pub fn com2_text(&self) -> String {
        String::from_utf8_lossy(&self.com2).into_owned()
    }

    pub fn shim_count(&self, name: &str) -> u64 {
        self.shims
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.count)
            .sum()
    }
}

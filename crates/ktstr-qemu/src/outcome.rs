//! What a run produced: how it ended, what the guest printed, how long it took.

use std::process::ExitStatus;
use std::time::Duration;

use crate::qmp::QmpEvent;

/// How the run ended. Guest behaviour is classified here, never returned as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// The guest reset the machine (QMP SHUTDOWN reason guest-reset; `reboot=t` triple fault).
    Reboot,
    /// The guest powered off (QMP SHUTDOWN reason guest-shutdown, ACPI S5).
    Shutdown,
    /// QEMU saw the guest panic (QMP GUEST_PANICKED, or SHUTDOWN reason
    /// guest-panic: a paravirtual panic device). A panic the guest only
    /// printed (`panic=-1` then resets) is a [`ExitKind::Reboot`] here;
    /// reading the console is `ktstr-backend`'s `death` module's job.
    GuestPanic,
    /// [`crate::KillHandle::kill`] was called.
    Killed,
    /// The run exceeded its deadline.
    DeadlineExceeded,
    /// QEMU ended on its own for a reason that is not a guest reset/power-off.
    QemuFailed { status: ExitStatus, stderr: String },
}

impl ExitKind {
    /// Stable lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            ExitKind::Reboot => "reboot",
            ExitKind::Shutdown => "shutdown",
            ExitKind::GuestPanic => "guest_panic",
            ExitKind::Killed => "killed",
            ExitKind::DeadlineExceeded => "deadline_exceeded",
            ExitKind::QemuFailed { .. } => "qemu_failed",
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// Spawn until QEMU connected every socket and the guest was resumed.
    pub startup: Duration,
    /// Spawn until QEMU was reaped.
    pub total: Duration,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub exit: ExitKind,
    pub com1: Vec<u8>,
    pub com2: Vec<u8>,
    pub status: ExitStatus,
    pub timings: Timings,
    /// QEMU's stderr (usually empty).
    pub stderr: String,
}

impl Outcome {
    pub fn com1_text(&self) -> String {
        String::from_utf8_lossy(&self.com1).into_owned()
    }

    pub fn com2_text(&self) -> String {
        String::from_utf8_lossy(&self.com2).into_owned()
    }
}

/// What the run observed, in one place so classification is a pure function.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    pub killed: bool,
    pub deadline: bool,
    pub events: Vec<QmpEvent>,
}

/// Host-side causes win over guest ones: a kill or deadline is what ended the run even if
/// the guest also did something on its way down.
pub(crate) fn classify(obs: &Observed, status: ExitStatus, stderr: &str) -> ExitKind {
    if obs.killed {
        return ExitKind::Killed;
    }
    if obs.deadline {
        return ExitKind::DeadlineExceeded;
    }
    let guest_panicked = obs.events.iter().any(|e| match e {
        QmpEvent::GuestPanicked => true,
        QmpEvent::Shutdown { reason } => reason == "guest-panic",
    });
    if guest_panicked {
        return ExitKind::GuestPanic;
    }
    let reason = obs.events.iter().rev().find_map(|e| match e {
        QmpEvent::Shutdown { reason } => Some(reason.as_str()),
        QmpEvent::GuestPanicked => None,
    });
    match reason {
        Some("guest-reset") if status.success() => ExitKind::Reboot,
        Some("guest-shutdown") if status.success() => ExitKind::Shutdown,
        _ => ExitKind::QemuFailed {
            status,
            stderr: stderr.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn shutdown(r: &str) -> QmpEvent {
        QmpEvent::Shutdown { reason: r.into() }
    }

    #[test]
    fn classification() {
        let ok = ExitStatus::from_raw(0);
        let bad = ExitStatus::from_raw(1 << 8);
        let obs = |events: Vec<QmpEvent>| Observed {
            events,
            ..Default::default()
        };
        assert_eq!(
            classify(&obs(vec![shutdown("guest-reset")]), ok, ""),
            ExitKind::Reboot
        );
        assert_eq!(
            classify(&obs(vec![shutdown("guest-shutdown")]), ok, ""),
            ExitKind::Shutdown
        );
        assert_eq!(
            classify(&obs(vec![shutdown("guest-panic")]), ok, ""),
            ExitKind::GuestPanic
        );
        let mut o = obs(vec![QmpEvent::GuestPanicked, shutdown("guest-reset")]);
        assert_eq!(classify(&o, ok, ""), ExitKind::GuestPanic);
        o.deadline = true;
        assert_eq!(classify(&o, ok, ""), ExitKind::DeadlineExceeded);
        o.killed = true;
        assert_eq!(classify(&o, ok, ""), ExitKind::Killed);
        assert!(matches!(
            classify(&obs(vec![shutdown("host-signal")]), ok, "x"),
            ExitKind::QemuFailed { .. }
        ));
        assert!(
            matches!(classify(&obs(vec![]), bad, "boom"), ExitKind::QemuFailed { stderr, .. } if stderr == "boom")
        );
    }
}

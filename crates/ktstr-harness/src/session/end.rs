//! The end of a session: power off or a provoked init failure, how the
//! guest ended, classified; and the VM's end noticed mid-request, reported
//! by its root cause.

use std::time::{Duration, Instant};

use ktstr_backend::{BackendError, GuestDeath, Outcome};
use ktstr_guest::proto::Request;
use ktstr_wire::Command;

use super::Session;
use super::requests::unexpected;
use crate::error::HarnessError;

/// How the guest ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// Init sent `Exit { code }` and powered off.
    Exited(i32),
    /// Anything else: why the VM ended ([`GuestDeath`]), e.g. the init's
    /// `PANIC:` line, a kernel panic, or the host's kill.
    Died(GuestDeath),
}

/// The typed end of a session.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Classified exit.
    pub exit: GuestExit,
    /// The backend's view (COM1, COM2, run time).
    pub outcome: Outcome,
}

impl Session {
    /// Ask init to power off; returns how the guest ended (at once if its
    /// VM already has).
    pub fn shutdown(mut self) -> Result<RunResult, HarnessError> {
        if self.guest.is_none() {
            return self.finish();
        }
        self.send(Command::Shutdown)?;
        let until = Instant::now() + Duration::from_secs(60).min(self.deadline);
        while self.exit_code.is_none() {
            if self.next_event(until).is_err() {
                break;
            }
        }
        if self.exit_code.is_none() {
            // No `Exit`: init is stuck or gone; do not wait out the deadline.
            self.kill();
        }
        self.finish()
    }

    /// End the VM from the host, without the guest's power-off: for a caller
    /// that has every result it wants (the guest, resumed from a snapshot or
    /// not, is thrown away either way). How the guest ended is still
    /// classified, so a death before the kill shows as that death.
    pub fn end(self) -> Result<RunResult, HarnessError> {
        self.kill();
        self.finish()
    }

    /// Make init panic (tests the panic path) and collect the end.
    pub fn trigger_init_panic(self, message: &str) -> Result<RunResult, HarnessError> {
        self.fatal(&Request::Panic {
            message: message.to_owned(),
        })
    }

    /// Make init raise fatal `signal` (tests the signal path) and collect the end.
    pub fn trigger_init_signal(self, signal: i32) -> Result<RunResult, HarnessError> {
        self.fatal(&Request::Raise { signal })
    }

    fn fatal(mut self, req: &Request) -> Result<RunResult, HarnessError> {
        match self.request(req, Duration::from_secs(60)) {
            Err(
                HarnessError::GuestDied { .. }
                | HarnessError::GuestGone { .. }
                | HarnessError::Timeout { .. },
            ) => {}
            Err(e) => return Err(e),
            Ok(r) => return Err(unexpected("panic", r)),
        }
        self.finish()
    }

    fn finish(mut self) -> Result<RunResult, HarnessError> {
        // Drain anything still buffered so a late `Exit` counts.
        while self.next_event(Instant::now()).is_ok() {}
        let code = self.exit_code;
        let outcome = self.collect_end()?.clone();
        let exit = classify(code, &outcome);
        Ok(RunResult { exit, outcome })
    }

    /// Waits for the VM to end (once) and keeps its outcome for
    /// [`Session::outcome`].
    pub(super) fn collect_end(&mut self) -> Result<&Outcome, BackendError> {
        if let Some(guest) = self.guest.take() {
            self.ended = Some(guest.wait()?);
        }
        self.ended.as_ref().ok_or(BackendError::Lost)
    }

    /// The error for a guest whose channel closed while the host waited
    /// `waited` for `during`. The channel closes only when the VM has ended
    /// (QEMU exited; ktstr-vmm's `Vm::run` returned), so collecting the
    /// outcome does not wait: the error comes at once, never as a timeout.
    pub(crate) fn died(&mut self, during: &str, waited: Duration) -> HarnessError {
        match self.collect_end() {
            Ok(outcome) => HarnessError::GuestDied {
                during: during.to_owned(),
                death: outcome.death.clone(),
                after: waited,
            },
            Err(e) => {
                tracing::warn!(error = %e, "the guest's channel closed; no outcome");
                HarnessError::GuestGone {
                    what: during.to_owned(),
                }
            }
        }
    }
}

/// The `PANIC:` line of init on COM2, if any.
pub fn init_panic_message(com2: &[u8]) -> Option<String> {
    ktstr_backend::death::console::init_panic(&String::from_utf8_lossy(com2))
}

/// The guest's own `Exit` wins when its VM then reset as asked (or silently);
/// any other end is a death.
fn classify(code: Option<i32>, outcome: &Outcome) -> GuestExit {
    match (code, &outcome.death) {
        (Some(c), GuestDeath::Rebooted { .. } | GuestDeath::UnrequestedReset { .. }) => {
            GuestExit::Exited(c)
        }
        (_, death) => GuestExit::Died(death.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktstr_backend::Exit;

    #[test]
    fn finds_the_panic_line_on_com2() {
        assert_eq!(
            init_panic_message(b"noise\r\nPANIC: boom at src/x.rs:3\r\n"),
            Some("boom at src/x.rs:3".into())
        );
        assert_eq!(init_panic_message(b"nothing"), None);
    }

    fn outcome(exit: Exit, com1: &str, com2: &str) -> Outcome {
        Outcome {
            death: GuestDeath::classify(&exit, com1.as_bytes(), com2.as_bytes(), ""),
            exit,
            com1: com1.as_bytes().to_vec(),
            com2: com2.as_bytes().to_vec(),
            run_time: Duration::ZERO,
        }
    }

    #[test]
    fn an_exit_code_counts_only_when_the_vm_then_reset_as_asked() {
        let clean = "[ 2.8] reboot: Restarting system\n";
        assert_eq!(
            classify(Some(0), &outcome(Exit::Reboot, clean, "")),
            GuestExit::Exited(0)
        );
        assert_eq!(
            classify(Some(3), &outcome(Exit::Shutdown, "", "")),
            GuestExit::Exited(3)
        );
        assert_eq!(
            classify(Some(0), &outcome(Exit::Reboot, clean, "PANIC: boom\n")),
            GuestExit::Died(GuestDeath::InitPanic("boom".into()))
        );
        assert!(matches!(
            classify(None, &outcome(Exit::Reboot, clean, "")),
            GuestExit::Died(GuestDeath::Rebooted { .. })
        ));
        assert!(matches!(
            classify(Some(0), &outcome(Exit::Killed, clean, "")),
            GuestExit::Died(GuestDeath::Killed { .. })
        ));
        let panic = "[ 2.7] Kernel panic - not syncing: sysrq triggered crash\n";
        assert!(matches!(
            classify(Some(0), &outcome(Exit::GuestPanic, panic, "")),
            GuestExit::Died(GuestDeath::KernelCrash(_))
        ));
    }
}

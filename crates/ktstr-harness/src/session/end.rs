//! The end of a session: power off or a provoked init failure, then how the
//! guest ended, classified.

use std::time::{Duration, Instant};

use ktstr_backend::{Exit as BackendExit, Outcome};
use ktstr_guest::init::panic::PANIC_PREFIX;
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
    /// Init panicked: the `PANIC:` line from COM2.
    InitPanic(String),
    /// The kernel panicked.
    KernelPanic,
    /// The VM ended without an `Exit` (e.g. init failed early).
    NoExit(BackendExit),
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
    /// Ask init to power off; returns how the guest ended.
    pub fn shutdown(mut self) -> Result<RunResult, HarnessError> {
        self.send(Command::Shutdown)?;
        let until = Instant::now() + Duration::from_secs(60).min(self.deadline);
        while self.exit_code.is_none() {
            if self.next_event(until).is_err() {
                break;
            }
        }
        if self.exit_code.is_none() {
            // No `Exit`: init is stuck or gone; do not wait out the deadline.
            self.guest.kill();
        }
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
            Err(HarnessError::GuestGone { .. } | HarnessError::Timeout { .. }) => {}
            Err(e) => return Err(e),
            Ok(r) => return Err(unexpected("panic", r)),
        }
        self.finish()
    }

    fn finish(mut self) -> Result<RunResult, HarnessError> {
        // Drain anything still buffered so a late `Exit` counts.
        while self.next_event(Instant::now()).is_ok() {}
        let code = self.exit_code;
        let outcome = self.guest.wait()?;
        let exit = classify(code, &outcome);
        Ok(RunResult { exit, outcome })
    }
}

/// The `PANIC:` line of init on COM2, if any.
pub fn init_panic_message(com2: &[u8]) -> Option<String> {
    String::from_utf8_lossy(com2).lines().find_map(|l| {
        l.trim_start_matches('\0')
            .strip_prefix(PANIC_PREFIX)
            .map(|m| m.trim_end().to_owned())
    })
}

fn classify(code: Option<i32>, outcome: &Outcome) -> GuestExit {
    if let Some(m) = init_panic_message(&outcome.com2) {
        return GuestExit::InitPanic(m);
    }
    if outcome.exit == BackendExit::GuestPanic {
        return GuestExit::KernelPanic;
    }
    match (code, &outcome.exit) {
        (Some(c), BackendExit::Reboot | BackendExit::Shutdown) => GuestExit::Exited(c),
        (_, other) => GuestExit::NoExit(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_panic_line_on_com2() {
        assert_eq!(
            init_panic_message(b"noise\r\nPANIC: boom at src/x.rs:3\r\n"),
            Some("boom at src/x.rs:3".into())
        );
        assert_eq!(init_panic_message(b"nothing"), None);
    }
}

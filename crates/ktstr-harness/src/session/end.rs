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

/// Why a guest ended before its init reported `SysReady`, read from what it
/// left on its consoles: the root cause, not the wait it cut short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EarlyDeath {
    /// The kernel could not start the init (the kernel's panic message).
    InitNotStarted(String),
    /// The init started and panicked (its `PANIC:` line on COM2).
    InitPanic(String),
    /// The kernel panicked (its `Kernel panic - not syncing:` message).
    KernelPanic(String),
    /// The VM ended without either (e.g. a reset or a backend failure).
    Ended(BackendExit),
}

impl std::fmt::Display for EarlyDeath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EarlyDeath::InitNotStarted(m) => write!(f, "the kernel could not start init: {m}"),
            EarlyDeath::InitPanic(m) => write!(f, "the guest init panicked: {m}"),
            EarlyDeath::KernelPanic(m) => write!(f, "the guest kernel panicked: {m}"),
            EarlyDeath::Ended(exit) => {
                write!(f, "the VM ended ({exit:?}) with no panic on its consoles")
            }
        }
    }
}

/// The kernel's panic message on COM1, if it panicked.
fn kernel_panic_message(com1: &[u8]) -> Option<String> {
    const PANIC: &str = "Kernel panic - not syncing: ";
    String::from_utf8_lossy(com1).lines().find_map(|l| {
        l.split_once(PANIC)
            .map(|(_, m)| m.trim_end().trim_end_matches(" ]---").to_owned())
    })
}

/// The `rdinit=` program of a kernel command line (the last one wins), else
/// the kernel's default `/init`.
fn requested_rdinit(cmdline: &str) -> &str {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|w| w.strip_prefix("rdinit="))
        .unwrap_or("/init")
}

/// Classifies a guest booted with `cmdline` that ended before `SysReady`.
pub(crate) fn early_death(outcome: &Outcome, cmdline: &str) -> EarlyDeath {
    if let Some(m) = init_panic_message(&outcome.com2) {
        return EarlyDeath::InitPanic(m);
    }
    match kernel_panic_message(&outcome.com1) {
        // init/main.c: a failing `init=` program, or no init at all.
        Some(m) if m.starts_with("Requested init") || m.starts_with("No working init found") => {
            EarlyDeath::InitNotStarted(m)
        }
        // init/main.c: an `rdinit=` program missing from the initramfs makes the
        // kernel fall back silently to a root device, which a ktstr guest has not.
        Some(m) if m.starts_with("VFS: Unable to mount root fs") => {
            let init = requested_rdinit(cmdline);
            EarlyDeath::InitNotStarted(format!(
                "{m} (the initramfs has no {init}, so the kernel looked for a root device)"
            ))
        }
        Some(m) => EarlyDeath::KernelPanic(m),
        None => EarlyDeath::Ended(outcome.exit.clone()),
    }
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

    fn ended(com1: &str, com2: &str) -> EarlyDeath {
        early_death(
            &Outcome {
                exit: BackendExit::Reboot,
                com1: com1.as_bytes().to_vec(),
                com2: com2.as_bytes().to_vec(),
                run_time: Duration::ZERO,
            },
            "console=ttyS0 quiet rdinit=/no/such/init",
        )
    }

    #[test]
    fn an_early_death_is_named_by_its_root_cause() {
        let no_init = "[    0.9] Failed to execute /no/such/init (error -2)\n\
                       [    0.9] Kernel panic - not syncing: Requested init /no/such/init failed (error -2).\n";
        assert_eq!(
            ended(no_init, ""),
            EarlyDeath::InitNotStarted("Requested init /no/such/init failed (error -2).".into())
        );
        let no_rdinit = "[    1.7] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n";
        assert_eq!(
            ended(no_rdinit, ""),
            EarlyDeath::InitNotStarted(
                "VFS: Unable to mount root fs on unknown-block(0,0) (the initramfs has no \
                 /no/such/init, so the kernel looked for a root device)"
                    .into()
            )
        );
        let oops = "[    2.1] Kernel panic - not syncing: Fatal exception in interrupt\n\
                    [    2.1] ---[ end Kernel panic - not syncing: Fatal exception in interrupt ]---\n";
        assert_eq!(
            ended(oops, ""),
            EarlyDeath::KernelPanic("Fatal exception in interrupt".into())
        );
        assert_eq!(
            ended("Run /init as init process\n", "PANIC: boom at src/x.rs:3\n"),
            EarlyDeath::InitPanic("boom at src/x.rs:3".into())
        );
        assert_eq!(
            ended("Run /init\n", ""),
            EarlyDeath::Ended(BackendExit::Reboot)
        );
    }
}

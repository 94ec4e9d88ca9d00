//! Everything a harness call can fail on, each naming what was wrong.

use std::path::PathBuf;
use std::time::Duration;

/// Why a session call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// A scheduler binary given to the session does not exist (checked
    /// before any VM boots).
    #[error("scheduler binary {0} does not exist")]
    SchedulerNotFound(PathBuf),
    /// Neither `KTSTR_KERNEL` nor the kernel cache location names a kernel
    /// (the rule is `ktstr_testenv::find_kernel`).
    #[error("no test kernel: {0}")]
    NoKernel(ktstr_testenv::Missing),
    /// A scheduler named by a test resolves nowhere (`KTSTR_SCHEDULERS`,
    /// the kernel cache, `PATH`); the message says how to build it.
    #[error("no scheduler: {0}")]
    NoScheduler(ktstr_testenv::Missing),
    /// A program a test declared for its guest resolves nowhere; the
    /// message names it and how to install it.
    #[error("no program for the guest: {0}")]
    NoProgram(ktstr_testenv::Missing),
    /// A program or file given to the session does not exist (checked
    /// before any VM boots).
    #[error("{0} (to be packed into the guest) does not exist")]
    GuestFileNotFound(PathBuf),
    /// A file's guest path cannot hold it.
    #[error("guest path {guest:?} is unusable: {reason}")]
    BadGuestPath {
        /// The path given.
        guest: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// The test's own declaration cannot run (topology, scenario).
    #[error("test {test} is invalid: {reason}")]
    InvalidTest {
        /// Test name.
        test: String,
        /// What is wrong.
        reason: String,
    },
    /// The kernel image does not exist.
    #[error("kernel image {0} does not exist")]
    KernelNotFound(PathBuf),
    /// `start_scheduler` named a binary the session did not pack.
    #[error("scheduler {0} was not packed into this session's initramfs")]
    SchedulerNotPacked(PathBuf),
    /// The scheduler process exited before the kernel reported it attached.
    #[error("scheduler {name} exited before attaching ({exit}); stderr:\n{stderr}")]
    SchedulerExitedBeforeAttach {
        /// Binary name.
        name: String,
        /// How it exited, e.g. `code 1`.
        exit: String,
        /// Its stderr (tail).
        stderr: String,
        /// sched_ext kernel log lines meanwhile.
        kernel_log: Vec<String>,
    },
    /// The scheduler did not attach within the deadline (it was killed).
    #[error("scheduler {name} did not attach within {deadline:?}; stderr:\n{stderr}")]
    AttachTimeout {
        /// Binary name.
        name: String,
        /// The deadline.
        deadline: Duration,
        /// Its stderr (tail).
        stderr: String,
    },
    /// A different scheduler than expected attached.
    #[error("expected scheduler {expected:?} to attach, but {found:?} did")]
    WrongScheduler {
        /// Expected `root/ops`.
        expected: String,
        /// What `root/ops` said.
        found: String,
    },
    /// The kernel disabled the scheduler with an error while it ran.
    #[error("the kernel kicked scheduler {name} out: {reason}")]
    SchedulerKicked {
        /// `root/ops` name.
        name: String,
        /// The kernel's log lines, e.g. `... disabled (runnable task stall)`.
        reason: String,
        /// Its exit code (128+signal if killed; -1 if it had not exited).
        exit_code: i64,
        /// Everything the scheduler wrote (stdout then stderr).
        scheduler_output: String,
    },
    /// The scheduler process exited on its own while attached.
    #[error("scheduler {name} exited while attached (code {exit_code}): {reason}")]
    SchedulerExited {
        /// `root/ops` name.
        name: String,
        /// Kernel log lines or a description.
        reason: String,
        /// Its exit code.
        exit_code: i64,
        /// Everything the scheduler wrote (stdout then stderr).
        scheduler_output: String,
    },
    /// The guest refused or failed a request.
    #[error("guest could not {what}: {message}")]
    Guest {
        /// The request.
        what: String,
        /// The guest's reason.
        message: String,
    },
    /// No answer in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The wait.
        after: Duration,
    },
    /// The guest's channel closed while we waited, and the backend could not
    /// say how its VM ended (see [`HarnessError::GuestDied`] for when it can).
    #[error("guest ended while waiting for {what}; the backend did not report how")]
    GuestGone {
        /// What was awaited.
        what: String,
    },
    /// The guest init panicked (its `PANIC:` line).
    #[error("guest init panicked: {0}")]
    GuestPanic(String),
    /// The guest's VM ended while the host waited for something (its boot,
    /// an `exec`, a scheduler, a scenario, a shell): reported the moment its
    /// channel closed, by root cause first.
    #[error("{} (while waiting {after:.1?} for {during}){}", .death.summary(), .death.indented_lines())]
    GuestDied {
        /// What the host was waiting for, e.g. `exec ["sh", "-c", ...]`.
        during: String,
        /// How the guest died, with the relevant console lines.
        death: ktstr_backend::GuestDeath,
        /// How long the host had waited for `during`.
        after: Duration,
    },
    /// The guest was still running but never reported `SysReady`.
    #[error("guest did not become ready within {after:?}; COM1 tail:\n{com1_tail}")]
    BootFailed {
        /// The wait.
        after: Duration,
        /// Last lines of the console.
        com1_tail: String,
    },
    /// A reply the host could not understand.
    #[error("bad reply to {what}: {detail}")]
    Protocol {
        /// The request.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// Building the initramfs failed.
    #[error("initramfs: {0}")]
    Initramfs(#[from] ktstr_initramfs::Error),
    /// Compressing the initramfs failed.
    #[error("compress initramfs with {tool}: {detail}")]
    Compress {
        /// The tool run.
        tool: &'static str,
        /// What failed.
        detail: String,
    },
    /// File I/O on the host.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The VM backend failed.
    #[error("backend: {0}")]
    Backend(#[from] ktstr_backend::BackendError),
}

impl HarnessError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            what: what.into(),
            source,
        }
    }
}

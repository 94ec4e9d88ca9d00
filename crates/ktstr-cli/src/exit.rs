//! Exit statuses, the one mapping from an outcome to a process exit code.

use std::process::ExitCode;

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done, or a passing verdict.
    Success,
    /// A failing verdict, or `doctor` found something missing.
    Failed,
    /// The guest ran but gave no verdict (it died, timed out, ...).
    Inconclusive,
    /// Bad input, a missing prerequisite, or a build that failed.
    Error,
    /// A guest command's own exit status (`ktstr shell --exec`).
    Code(u8),
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> ExitCode {
        ExitCode::from(match s {
            Status::Success => 0,
            Status::Failed => 1,
            Status::Inconclusive => 2,
            Status::Error => 3,
            Status::Code(c) => c,
        })
    }
}

/// An error that ends the command with [`Status::Inconclusive`] instead of
/// [`Status::Error`]: the guest was started, so the input was fine.
#[derive(Debug, thiserror::Error)]
#[error("inconclusive: {0}")]
pub struct Inconclusive(pub ktstr_harness::HarnessError);

/// The status an error ends the command with.
pub fn status_of(e: &anyhow::Error) -> Status {
    if e.downcast_ref::<Inconclusive>().is_some() {
        Status::Inconclusive
    } else {
        Status::Error
    }
}

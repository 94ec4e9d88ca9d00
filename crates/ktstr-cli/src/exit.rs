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

impl Status {
    /// `ktstr run`'s status for a verdict, the same one its JSON holds:
    /// `passed` is success, any failure (its `root_cause` says which: a
    /// guest crash, the scheduler kicked out or exited, a monitor finding,
    /// a workload check) is [`Status::Failed`].
    pub fn of_verdict(v: &ktstr_workload::Verdict) -> Status {
        if v.passed {
            Status::Success
        } else {
            Status::Failed
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use ktstr_workload::{Failure, FailureKind, Verdict};

    #[test]
    fn the_exit_status_and_the_json_say_the_same() {
        let crash = Verdict::from_failures(
            vec![
                Failure::NoProgress {
                    worker: "a/0".into(),
                },
                Failure::GuestCrashed {
                    detail: "kernel panic".into(),
                },
            ],
            Vec::new(),
        );
        let json = serde_json::to_value(&crash).unwrap();
        assert_eq!(json["passed"], false);
        assert_eq!(json["root_cause"], FailureKind::GuestCrashed.name());
        assert_eq!(Status::of_verdict(&crash), Status::Failed);
        let pass = Verdict::from_failures(Vec::new(), Vec::new());
        assert_eq!(
            serde_json::to_value(&pass).unwrap()["root_cause"],
            serde_json::Value::Null
        );
        assert_eq!(Status::of_verdict(&pass), Status::Success);
    }
}

//! What a test expects to go wrong (`expect_fail`, `expect_scx_error`):
//! such a test passes only when its verdict failed in that way, and fails
//! when it passed or failed some other way.

use ktstr_workload::{Failure, FailureKind, Verdict};

/// A test's expectation of its verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// The verdict must fail with this root cause.
    pub fail: Option<FailureKind>,
    /// The kernel must kick the scheduler out, its reason or
    /// `scx_bpf_error()` message containing this text.
    pub scx_error: Option<&'static str>,
}

impl Expect {
    /// The verdict must pass.
    pub const PASS: Expect = Expect {
        fail: None,
        scx_error: None,
    };

    /// `Ok(None)`: passed as a plain test; `Ok(Some(line))`: failed the
    /// expected way (`line` says so); `Err`: not what was expected.
    pub fn check(&self, v: &Verdict) -> Result<Option<String>, Unexpected> {
        if *self == Expect::PASS {
            return if v.passed {
                Ok(None)
            } else {
                Err(Unexpected::Failed)
            };
        }
        let wanted = self.describe();
        let Some(first) = v.failures.first() else {
            return Err(Unexpected::Passed { wanted });
        };
        let kind_ok = self.fail.is_none_or(|k| first.kind() == k);
        let text_ok = self.scx_error.is_none_or(|text| match first {
            Failure::SchedulerKicked { exit, .. } => exit.describe().contains(text),
            _ => false,
        });
        if kind_ok && text_ok {
            Ok(Some(format!("failed as expected ({wanted}): {first}")))
        } else {
            Err(Unexpected::OtherCause {
                wanted,
                root: first.to_string(),
            })
        }
    }

    fn describe(&self) -> String {
        match (self.fail, self.scx_error) {
            (_, Some(text)) => {
                format!("the kernel to kick the scheduler out with an error containing {text:?}")
            }
            (Some(kind), None) => format!("a `{kind}` failure"),
            (None, None) => "a pass".into(),
        }
    }
}

/// A verdict that is not what the test expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unexpected {
    /// A test expecting a pass failed (its verdict says how).
    #[error("failed")]
    Failed,
    /// A test expecting a failure passed.
    #[error("expected {wanted}, but the verdict passed")]
    Passed {
        /// What was expected, in words.
        wanted: String,
    },
    /// It failed, but not in the expected way.
    #[error("expected {wanted}, but the root cause is: {root}")]
    OtherCause {
        /// What was expected, in words.
        wanted: String,
        /// The verdict's first failure, rendered.
        root: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktstr_workload::scx::ScxExit;

    fn kicked(message: &str) -> Verdict {
        Verdict::from_failures(
            vec![Failure::SchedulerKicked {
                name: "qmap".into(),
                exit: ScxExit {
                    reason: "scx_bpf_error".into(),
                    message: message.into(),
                },
            }],
            Vec::new(),
        )
    }

    #[test]
    fn an_expected_failure_passes_only_when_it_happens_that_way() {
        let error = Expect {
            fail: None,
            scx_error: Some("test triggering error"),
        };
        assert!(
            error
                .check(&kicked("test triggering error"))
                .is_ok_and(|l| l.is_some())
        );
        let wrong = error.check(&kicked("something else")).unwrap_err();
        assert!(
            wrong
                .to_string()
                .contains("but the root cause is: the kernel kicked"),
            "{wrong}"
        );
        let passed = Verdict::from_failures(Vec::new(), Vec::new());
        assert!(
            error
                .check(&passed)
                .unwrap_err()
                .to_string()
                .ends_with("but the verdict passed")
        );
        let stuck = Expect {
            fail: Some(FailureKind::Stuck),
            scx_error: None,
        };
        assert!(stuck.check(&kicked("x")).is_err());
        assert_eq!(Expect::PASS.check(&passed), Ok(None));
        assert_eq!(Expect::PASS.check(&kicked("x")), Err(Unexpected::Failed));
    }
}

//! The one CI rule.

/// `CI=true` exactly (what GitHub Actions, GitLab and `.ci/run` set). Under
/// CI a missing prerequisite fails a test instead of ignoring it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

//! What sched_ext looked like, read from sysfs at the start and end of a
//! run: a scheduler that was attached at the start and is gone (or was
//! re-attached) at the end detached during the run.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One reading of `/sys/kernel/sched_ext`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScxSample {
    /// `state`: `enabled`, `disabled`, `enabling`, `disabling`.
    pub state: String,
    /// `root/ops`: the attached scheduler's name, if any.
    pub ops: Option<String>,
    /// `enable_seq`: bumps on every attach.
    pub enable_seq: Option<u64>,
}

/// Read sched_ext's sysfs under `sysfs` (normally `/sys`); None when the
/// kernel has no sched_ext.
pub fn sample(sysfs: &Path) -> Option<ScxSample> {
    let dir = sysfs.join("kernel/sched_ext");
    let read = |rel: &str| {
        std::fs::read_to_string(dir.join(rel))
            .ok()
            .map(|s| s.trim().to_string())
    };
    Some(ScxSample {
        state: read("state")?,
        ops: read("root/ops").filter(|s| !s.is_empty()),
        enable_seq: read("enable_seq").and_then(|s| s.parse().ok()),
    })
}

/// sched_ext before and after a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScxObservation {
    /// Before the first step.
    pub start: Option<ScxSample>,
    /// After the workers stopped.
    pub end: Option<ScxSample>,
}

impl ScxObservation {
    /// Why the scheduler attached at the start is not the one attached at
    /// the end, if so.
    pub fn detached(&self) -> Option<String> {
        let (start, end) = (self.start.as_ref()?, self.end.as_ref()?);
        if start.state != "enabled" {
            return None;
        }
        let name = start.ops.as_deref().unwrap_or("scheduler");
        if end.state != "enabled" {
            return Some(format!(
                "sched_ext {name} was enabled at the start, {} at the end",
                end.state
            ));
        }
        if start.enable_seq != end.enable_seq || start.ops != end.ops {
            return Some(format!(
                "sched_ext {name} was replaced during the run (now {}, enable_seq {:?} -> {:?})",
                end.ops.as_deref().unwrap_or("?"),
                start.enable_seq,
                end.enable_seq
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(state: &str, ops: Option<&str>, seq: u64) -> Option<ScxSample> {
        Some(ScxSample {
            state: state.into(),
            ops: ops.map(Into::into),
            enable_seq: Some(seq),
        })
    }

    #[test]
    fn detach_is_derived_from_start_and_end() {
        let obs = |start, end| ScxObservation { start, end };
        assert_eq!(
            obs(
                s("enabled", Some("simple"), 1),
                s("enabled", Some("simple"), 1)
            )
            .detached(),
            None
        );
        assert_eq!(
            obs(s("disabled", None, 0), s("disabled", None, 0)).detached(),
            None
        );
        assert_eq!(obs(None, None).detached(), None);
        assert_eq!(
            obs(s("enabled", Some("qmap"), 1), s("disabled", None, 1))
                .detached()
                .as_deref(),
            Some("sched_ext qmap was enabled at the start, disabled at the end")
        );
        assert!(
            obs(s("enabled", Some("qmap"), 1), s("enabled", Some("qmap"), 2))
                .detached()
                .is_some_and(|r| r.contains("replaced"))
        );
    }

    #[test]
    fn reads_a_sysfs_tree() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("kernel/sched_ext/root");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(d.path().join("kernel/sched_ext/state"), "enabled\n").unwrap();
        std::fs::write(d.path().join("kernel/sched_ext/enable_seq"), "3\n").unwrap();
        std::fs::write(dir.join("ops"), "simple\n").unwrap();
        assert_eq!(sample(d.path()), s("enabled", Some("simple"), 3));
        assert_eq!(sample(&d.path().join("none")), None);
    }
}

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

/// The `X` of `sched_ext: BPF scheduler "name" disabled (X)`, if a line
/// reports a disable (the first such line: one run has one disable).
pub fn disable_reason(lines: &[String]) -> Option<&str> {
    lines.iter().find_map(|l| {
        let (_, rest) = l.split_once(" disabled (")?;
        rest.strip_suffix(')')
    })
}

/// A clean unregistration (the scheduler left on its own or was stopped),
/// as opposed to the kernel disabling it with an error.
pub fn is_clean_unregister(reason: &str) -> bool {
    reason.starts_with("unregistered from user space")
        || reason.starts_with("unregistered from BPF")
}

/// sched_ext's restart request: the kernel unregisters a scheduler that
/// lacks `ops.cpu_online/offline` on every CPU hotplug, and the scheduler
/// is expected to attach again (Linux 6.12 `handle_hotplug`).
pub fn is_restart_request(reason: &str) -> bool {
    reason.starts_with("unregistered from the main kernel")
}

/// How the kernel said it disabled a scheduler, from its log and the
/// scheduler's own `EXIT:` line (`UEI_REPORT` in tools/sched_ext).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScxExit {
    /// The exit kind's words: `scx_bpf_error`, `runnable task stall`, ...
    pub reason: String,
    /// The message with it (the `scx_bpf_error()` text, the stalled task),
    /// empty when there was none.
    pub message: String,
}

/// The scheduler's last `EXIT: reason (message)` line (`UEI_REPORT`).
fn exit_line(stderr: &str) -> Option<ScxExit> {
    let line = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("EXIT: "))?;
    let (reason, message) = match line.split_once(" (") {
        Some((r, m)) => (r, m.strip_suffix(')').unwrap_or(m)),
        None => (line, ""),
    };
    Some(ScxExit {
        reason: reason.to_string(),
        message: message.to_string(),
    })
}

impl ScxExit {
    /// From kernel lines (`disabled (reason)` then `sched_ext: name: message`),
    /// else from the scheduler's stderr (`EXIT: reason (message)`). The
    /// kernel logs reason and message as two records, so a capture can end
    /// between them: a kernel reason without its message takes the message
    /// of the scheduler's `EXIT:` line for the same reason (both print the
    /// one `scx_exit_info`).
    pub fn parse(kernel_lines: &[String], stderr: &str) -> Option<ScxExit> {
        let reported = exit_line(stderr);
        let Some(reason) = disable_reason(kernel_lines) else {
            return reported;
        };
        // pr_err("sched_ext: %s: %s\n", ops name, msg) follows the disable line.
        let logged = kernel_lines
            .iter()
            .skip_while(|l| !l.contains(" disabled ("))
            .skip(1)
            .find_map(|l| {
                let rest = l.strip_prefix("sched_ext: ")?;
                let (_, msg) = rest.split_once(": ")?;
                Some(msg.to_string())
            });
        let message = logged
            .or_else(|| reported.filter(|r| r.reason == reason).map(|r| r.message))
            .unwrap_or_default();
        Some(ScxExit {
            reason: reason.to_string(),
            message,
        })
    }

    /// Whether the kernel disabled the scheduler with an error, rather than
    /// a clean unregistration or a hotplug restart request.
    pub fn is_error(&self) -> bool {
        !is_clean_unregister(&self.reason) && !is_restart_request(&self.reason)
    }

    /// `reason` or `reason: message`.
    pub fn describe(&self) -> String {
        if self.message.is_empty() {
            self.reason.clone()
        } else {
            format!("{}: {}", self.reason, self.message)
        }
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

    #[test]
    fn the_kernels_exit_account_is_parsed_from_kmsg_or_stderr() {
        let kmsg = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let lines = kmsg(&[
            "sched_ext: BPF scheduler \"qmap\" enabled",
            "sched_ext: BPF scheduler \"qmap\" disabled (scx_bpf_error)",
            "sched_ext: qmap: test triggering error",
        ]);
        let e = ScxExit::parse(&lines, "").unwrap();
        assert_eq!(e.reason, "scx_bpf_error");
        assert_eq!(e.message, "test triggering error");
        assert!(e.is_error());
        assert_eq!(e.describe(), "scx_bpf_error: test triggering error");
        let stall = kmsg(&["sched_ext: BPF scheduler \"qmap\" disabled (runnable task stall)"]);
        assert_eq!(ScxExit::parse(&stall, "").unwrap().message, "");
        // Captured between the kernel's two records: the message comes from
        // the scheduler's EXIT line, but only for the same reason.
        let cut = &lines[..2];
        let stderr = "EXIT: scx_bpf_error (test triggering error)\n";
        assert_eq!(
            ScxExit::parse(cut, stderr).unwrap().describe(),
            "scx_bpf_error: test triggering error"
        );
        let other = "EXIT: runnable task stall (watchdog failed to check in)\n";
        assert_eq!(ScxExit::parse(cut, other).unwrap().message, "");
        // No kernel line (kmsg unavailable): the scheduler's own EXIT line.
        let e =
            ScxExit::parse(&[], "stats\nEXIT: scx_bpf_error (test triggering error)\n").unwrap();
        assert_eq!(e.describe(), "scx_bpf_error: test triggering error");
        assert_eq!(ScxExit::parse(&[], "no exit here"), None);
        for (reason, error) in [
            ("unregistered from user space", false),
            ("unregistered from BPF", false),
            ("unregistered from the main kernel", false),
            ("runnable task stall", true),
        ] {
            let e = ScxExit {
                reason: reason.into(),
                message: String::new(),
            };
            assert_eq!(e.is_error(), error, "{reason}");
        }
        assert!(is_restart_request("unregistered from the main kernel"));
    }
}

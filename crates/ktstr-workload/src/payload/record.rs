//! What one payload run left behind, and whether that is a failure.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How a payload ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayloadEnd {
    /// It exited with this status.
    Exited(i32),
    /// A signal it did not get from the runner ended it.
    Killed(i32),
    /// Still running at its `timeout_ms`: the runner killed its cgroup.
    TimedOut,
    /// It never ran (the program is missing, not executable, ...).
    NotStarted(String),
}

impl fmt::Display for PayloadEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadEnd::Exited(code) => write!(f, "exited with status {code}"),
            PayloadEnd::Killed(sig) => write!(f, "was killed by signal {sig}"),
            PayloadEnd::TimedOut => write!(f, "did not finish before its timeout (killed)"),
            PayloadEnd::NotStarted(why) => write!(f, "could not start: {why}"),
        }
    }
}

/// One payload as it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PayloadRecord {
    /// Its name (and cgroup).
    pub name: String,
    /// Program and arguments as started.
    pub argv: Vec<String>,
    /// Index of the step it ran in.
    pub step: usize,
    /// CPUs its cgroup allowed.
    pub cpus: Vec<u32>,
    /// Start, ms after scenario start.
    pub started_at_ms: u64,
    /// From start to end, ms.
    pub wall_ms: u64,
    /// Its deadline, ms.
    pub timeout_ms: u64,
    /// How it ended.
    pub end: PayloadEnd,
    /// The end of its stdout (at most [`TAIL_BYTES`](super::output::TAIL_BYTES)).
    pub stdout_tail: String,
    /// The end of its stderr.
    pub stderr_tail: String,
    /// Numbers parsed from its output (see [`super::Figures`]).
    #[serde(default)]
    pub figures: BTreeMap<String, f64>,
    /// Why the declared figures could not be parsed.
    #[serde(default)]
    pub figures_error: Option<String>,
}

impl PayloadRecord {
    /// Why this run fails the verdict, in words; `None` if it passed.
    pub fn failure(&self) -> Option<String> {
        let last_words = || {
            let line = last_line(&self.stderr_tail).or_else(|| last_line(&self.stdout_tail));
            line.map_or_else(String::new, |l| format!("; last output: {l:?}"))
        };
        match &self.end {
            PayloadEnd::Exited(0) => self
                .figures_error
                .as_ref()
                .map(|e| format!("exited 0 but its figures are missing: {e}")),
            PayloadEnd::TimedOut => Some(format!(
                "did not finish within its timeout of {} ms (killed){}",
                self.timeout_ms,
                last_words()
            )),
            end => Some(format!("{end} after {} ms{}", self.wall_ms, last_words())),
        }
    }
}

impl PayloadRecord {
    /// One line for the verdict table: `payload cyclictest: exited with
    /// status 0 in 10012 ms; wakeup_p50_us=57 wakeup_p99_us=120 ...`.
    pub fn summary(&self) -> String {
        let mut s = format!("payload {}: {} in {} ms", self.name, self.end, self.wall_ms);
        if !self.figures.is_empty() {
            let figures: Vec<String> = self
                .figures
                .iter()
                .map(|(k, v)| format!("{k}={}", (v * 100.0).round() / 100.0))
                .collect();
            s.push_str(&format!("; {}", figures.join(" ")));
        }
        s
    }
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(end: PayloadEnd, stderr: &str) -> PayloadRecord {
        PayloadRecord {
            name: "p".into(),
            argv: vec!["p".into()],
            step: 0,
            cpus: vec![0],
            started_at_ms: 0,
            wall_ms: 12,
            timeout_ms: 100,
            end,
            stdout_tail: "out\n".into(),
            stderr_tail: stderr.into(),
            figures: BTreeMap::new(),
            figures_error: None,
        }
    }

    #[test]
    fn each_way_of_ending_reads_as_what_happened() {
        assert_eq!(record(PayloadEnd::Exited(0), "").failure(), None);
        assert_eq!(
            record(PayloadEnd::Exited(2), "a\nstressor failed\n\n").failure(),
            Some("exited with status 2 after 12 ms; last output: \"stressor failed\"".into())
        );
        assert_eq!(
            record(PayloadEnd::Killed(9), "").failure(),
            Some("was killed by signal 9 after 12 ms; last output: \"out\"".into())
        );
        assert_eq!(
            record(PayloadEnd::TimedOut, "").failure(),
            Some(
                "did not finish within its timeout of 100 ms (killed); last output: \"out\"".into()
            )
        );
        let mut r = record(PayloadEnd::Exited(0), "");
        r.figures.insert("wakeup_p99_us".into(), 120.0);
        r.figures.insert("wakeup_avg_us".into(), 61.237);
        assert_eq!(
            r.summary(),
            "payload p: exited with status 0 in 12 ms; wakeup_avg_us=61.24 wakeup_p99_us=120"
        );
        r.figures_error = Some("no histogram".into());
        assert_eq!(
            r.failure(),
            Some("exited 0 but its figures are missing: no histogram".into())
        );
    }
}

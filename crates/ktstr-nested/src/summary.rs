//! Reading L1's console: the markers of [`crate::markers`] and each test
//! binary's libtest summary (`test result: ok. N passed; M failed; K
//! ignored; ...`), folded into per-suite results and the tier's verdict.

use crate::markers::{DONE, END, FAIL, READY, RUN};

/// What one test binary did in L1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuiteResult {
    /// `package/test`.
    pub name: String,
    /// From its libtest summary (`None` if it printed none).
    pub counts: Option<Counts>,
    /// Its exit code (`None` if L1 ended while it ran).
    pub exit_code: Option<i32>,
    /// Wall time in L1, seconds.
    pub secs: u64,
}

/// A libtest summary's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Tests that passed.
    pub passed: u32,
    /// Tests that failed.
    pub failed: u32,
    /// Tests that were ignored (a prerequisite missing in L1).
    pub ignored: u32,
}

/// Why the tier failed; each names what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TierFailure {
    /// L1's `/init` found it cannot run the tier.
    #[error("L1 is broken: {0}")]
    L1Broken(String),
    /// L1 ended (deadline, crash, reset) before its `/init` finished.
    #[error("L1 ended before running every test binary: {0}")]
    L1Ended(String),
    /// L1 stopped making progress (no heartbeat, see [`crate::watchdog`])
    /// and the host killed it.
    #[error("L1 stopped making progress (no heartbeat for {silent_s} s) during {during}")]
    L1Stalled {
        /// Seconds without a heartbeat.
        silent_s: u64,
        /// What ran then ([`Summary::running`]).
        during: String,
    },
    /// A suite was never started.
    #[error("{0}: never ran")]
    NotRun(String),
    /// A suite printed no libtest summary (crashed, or L1 ended under it).
    #[error("{name}: no test summary (exit code {exit_code:?})")]
    NoSummary {
        /// The suite.
        name: String,
        /// Its exit code, if it ended.
        exit_code: Option<i32>,
    },
    /// Tests failed.
    #[error("{name}: {failed} failed")]
    Failed {
        /// The suite.
        name: String,
        /// How many.
        failed: u32,
    },
    /// Tests were ignored: in this tier every selected test must run.
    #[error("{name}: {ignored} ignored (each selected test must run here)")]
    Ignored {
        /// The suite.
        name: String,
        /// How many.
        ignored: u32,
    },
    /// The filter matched nothing.
    #[error("{0}: ran no test")]
    Empty(String),
    /// The binary exited non-zero although its summary showed no failure.
    #[error("{name}: exit code {exit_code}")]
    ExitCode {
        /// The suite.
        name: String,
        /// Its exit code.
        exit_code: i32,
    },
}

/// Folds L1's console lines, one at a time.
#[derive(Debug, Default)]
pub struct Summary {
    /// Suites in the order they ran.
    pub suites: Vec<SuiteResult>,
    /// The text after each [`FAIL`] marker.
    pub broken: Vec<String>,
    /// The [`READY`] line's details, once seen.
    pub ready: Option<String>,
    /// Whether [`END`] was seen.
    pub ended: bool,
    /// The last libtest `test NAME ...` line's test, in the last suite.
    pub last_test: Option<String>,
}

impl Summary {
    /// Takes one console line (colour codes and `\r` are ignored).
    pub fn feed(&mut self, raw: &str) {
        let line = strip_ansi(raw);
        let line = line.trim();
        if let Some(rest) = line.split_once(FAIL).map(|(_, r)| r.trim()) {
            self.broken.push(rest.to_owned());
        } else if let Some(rest) = line.strip_prefix(READY) {
            self.ready = Some(rest.trim().to_owned());
        } else if let Some(name) = line.strip_prefix(RUN) {
            self.suites.push(SuiteResult {
                name: name.trim().to_owned(),
                ..SuiteResult::default()
            });
            self.last_test = None;
        } else if let Some(rest) = line.strip_prefix(DONE) {
            if let Some(s) = self.suites.last_mut() {
                s.exit_code = field(rest, "rc=");
                s.secs = field(rest, "secs=").unwrap_or(0);
            }
        } else if line == END {
            self.ended = true;
        } else if let Some(counts) = parse_result(line) {
            if let Some(s) = self.suites.last_mut() {
                s.counts = Some(counts);
            }
        } else if let Some((test, _)) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.split_once(" ..."))
        {
            self.last_test = Some(test.trim().to_owned());
        }
    }

    /// What L1 was running, for a stall's message: the suite still without
    /// its [`DONE`] line and its last test, else L1's own start or end.
    pub fn running(&self) -> String {
        match self.suites.last() {
            Some(s) if s.exit_code.is_none() => match &self.last_test {
                Some(t) => format!("{} (test {t})", s.name),
                None => format!("{} (before its first test)", s.name),
            },
            Some(_) if self.ended => "L1's power-off".to_owned(),
            Some(s) => format!("L1's init, after {}", s.name),
            None if self.ready.is_some() => "L1's init, before the first test binary".to_owned(),
            None => "L1's boot (KVM not up yet)".to_owned(),
        }
    }

    /// The suites that ran to their [`DONE`] line.
    pub fn finished(&self) -> impl Iterator<Item = &SuiteResult> {
        self.suites.iter().filter(|s| s.exit_code.is_some())
    }

    /// Total counts over every suite.
    pub fn totals(&self) -> Counts {
        self.suites
            .iter()
            .filter_map(|s| s.counts)
            .fold(Counts::default(), |a, c| Counts {
                passed: a.passed + c.passed,
                failed: a.failed + c.failed,
                ignored: a.ignored + c.ignored,
            })
    }

    /// Every reason the tier failed, given the suites that were meant to run
    /// and, if L1 did not power off cleanly, how it ended
    /// ([`TierFailure::L1Ended`] or [`TierFailure::L1Stalled`]). Empty = passed.
    pub fn failures(&self, expected: &[String], l1_end: Option<TierFailure>) -> Vec<TierFailure> {
        let mut out: Vec<TierFailure> = self
            .broken
            .iter()
            .cloned()
            .map(TierFailure::L1Broken)
            .collect();
        if let Some(how) = l1_end {
            out.push(how);
        } else if !self.ended && out.is_empty() {
            out.push(TierFailure::L1Ended("without the end marker".into()));
        }
        for name in expected {
            if !self.suites.iter().any(|s| &s.name == name) && self.broken.is_empty() {
                out.push(TierFailure::NotRun(name.clone()));
            }
        }
        for s in &self.suites {
            out.extend(suite_failure(s));
        }
        out
    }
}

fn suite_failure(s: &SuiteResult) -> Option<TierFailure> {
    let name = s.name.clone();
    let Some(c) = s.counts else {
        return Some(TierFailure::NoSummary {
            name,
            exit_code: s.exit_code,
        });
    };
    if c.failed > 0 {
        Some(TierFailure::Failed {
            name,
            failed: c.failed,
        })
    } else if c.ignored > 0 {
        Some(TierFailure::Ignored {
            name,
            ignored: c.ignored,
        })
    } else if c.passed == 0 {
        Some(TierFailure::Empty(name))
    } else {
        match s.exit_code {
            Some(0) => None,
            Some(exit_code) => Some(TierFailure::ExitCode { name, exit_code }),
            None => Some(TierFailure::NoSummary {
                name,
                exit_code: None,
            }),
        }
    }
}

/// `key<number>` among the whitespace-separated words of `text`.
fn field<T: std::str::FromStr>(text: &str, key: &str) -> Option<T> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
}

/// The counts of a libtest summary line.
fn parse_result(line: &str) -> Option<Counts> {
    let rest = line.strip_prefix("test result: ")?;
    let count = |what: &str| {
        rest.split(';').find_map(|part| {
            part.trim()
                .strip_suffix(what)?
                .trim()
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
    };
    Some(Counts {
        passed: count("passed")?,
        failed: count("failed")?,
        ignored: count("ignored")?,
    })
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`) and `\r`.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(text: &str) -> Summary {
        let mut s = Summary::default();
        text.lines().for_each(|l| s.feed(l));
        s
    }

    #[test]
    fn libtest_summaries_parse_with_colour() {
        assert_eq!(
            parse_result(
                "test result: FAILED. 0 passed; 1 failed; 2 ignored; 0 measured; 15 filtered out; finished in 13.45s"
            ),
            Some(Counts {
                passed: 0,
                failed: 1,
                ignored: 2
            })
        );
        let s = fed(
            "NESTED-RUN a/b\n\u{1b}[31mFAILED\u{1b}[0m\ntest result: \u{1b}[32mok\u{1b}[0m. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\r\nNESTED-DONE a/b rc=0 secs=7\nNESTED-END",
        );
        assert_eq!(
            s.suites,
            [SuiteResult {
                name: "a/b".into(),
                counts: Some(Counts {
                    passed: 3,
                    failed: 0,
                    ignored: 0
                }),
                exit_code: Some(0),
                secs: 7
            }]
        );
        assert!(s.failures(&["a/b".into()], None).is_empty());
    }

    #[test]
    fn a_broken_l1_names_what_is_missing() {
        let s = fed(
            "[    3.1] something\nNESTED-FAIL: module kvm-amd did not load: insmod: can't insert\n",
        );
        // The script powers L1 off after the marker: a clean end.
        let f = s.failures(&["a/b".into()], None);
        assert_eq!(
            f,
            [TierFailure::L1Broken(
                "module kvm-amd did not load: insmod: can't insert".into()
            )]
        );
        assert!(f[0].to_string().contains("kvm-amd"), "{}", f[0]);
    }

    #[test]
    fn failures_ignores_missing_suites_and_deadlines_are_each_reported() {
        let s = fed(
            "NESTED-RUN a/x\ntest result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured\nNESTED-DONE a/x rc=101 secs=1\n\
             NESTED-RUN a/y\ntest result: ok. 1 passed; 0 failed; 1 ignored; 0 measured\nNESTED-DONE a/y rc=0 secs=1\n\
             NESTED-RUN a/z\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured\nNESTED-DONE a/z rc=0 secs=1\n\
             NESTED-RUN a/w\n",
        );
        let want: Vec<String> = ["a/x", "a/y", "a/z", "a/w", "a/v"]
            .map(String::from)
            .to_vec();
        assert_eq!(s.running(), "a/w (before its first test)");
        let f = s.failures(
            &want,
            Some(TierFailure::L1Ended("deadline exceeded".into())),
        );
        assert_eq!(
            f,
            [
                TierFailure::L1Ended("deadline exceeded".into()),
                TierFailure::NotRun("a/v".into()),
                TierFailure::Failed {
                    name: "a/x".into(),
                    failed: 1
                },
                TierFailure::Ignored {
                    name: "a/y".into(),
                    ignored: 1
                },
                TierFailure::Empty("a/z".into()),
                TierFailure::NoSummary {
                    name: "a/w".into(),
                    exit_code: None
                },
            ]
        );
        assert_eq!(
            s.totals(),
            Counts {
                passed: 2,
                failed: 1,
                ignored: 1
            }
        );
    }
}

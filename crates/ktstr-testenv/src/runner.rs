//! A test runner (libtest-mimic) that checks each test's prerequisites at
//! run time: a missing one makes the test *ignored* by name, with a stderr
//! line saying what is missing and how to get it; under `CI=true` the test
//! runs instead and fails naming it. `--list`, filters, `--ignored`,
//! `--include-ignored`, `--nocapture` and `--test-threads` work as in libtest.

use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};

use crate::ci::in_ci;
use crate::kernel::Missing;
use crate::need::Need;

/// What a test body returns: `()` or a `Result` (an `Err` fails the test,
/// as under libtest).
pub trait TestOutcome {
    /// Panics (fails the test) on an error.
    fn check(self);
}

impl TestOutcome for () {
    fn check(self) {}
}

impl<E: std::fmt::Debug> TestOutcome for Result<(), E> {
    fn check(self) {
        if let Err(e) = self {
            panic!("Error: {e:?}");
        }
    }
}

/// One test: its libtest name, what it needs, and its body (a panic fails it).
pub struct Test {
    name: String,
    needs: Vec<Need>,
    body: Box<dyn FnOnce() + Send + 'static>,
}

impl Test {
    /// A test called `name` (the name `#[test]` would give it).
    pub fn new<R: TestOutcome>(
        name: impl Into<String>,
        needs: &[Need],
        body: impl FnOnce() -> R + Send + 'static,
    ) -> Self {
        Test {
            name: name.into(),
            needs: needs.to_vec(),
            body: Box::new(|| body().check()),
        }
    }

    /// The libtest name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Tests `f1, f2, …` (functions in scope), each named after its function
/// and needing `needs`: `tests![&[Need::Kernel, Need::Qemu]; boots, reboots]`.
#[macro_export]
macro_rules! tests {
    ($needs:expr; $($f:ident),+ $(,)?) => {
        ::std::vec![$($crate::Test::new(::core::stringify!($f), $needs, $f)),+]
    };
}

fn missing(needs: &[Need]) -> Vec<(Need, Missing)> {
    needs
        .iter()
        .filter_map(|n| n.check().err().map(|m| (*n, m)))
        .collect()
}

fn describe(missing: &[(Need, Missing)]) -> String {
    missing
        .iter()
        .map(|(_, m)| m.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs `tests` as libtest would, with the prerequisite rule above; the
/// exit code is libtest's.
pub fn run(mut tests: Vec<Test>) -> ExitCode {
    let args = Arguments::from_args();
    // libtest's order.
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    let ci = in_ci();
    let trials = tests
        .into_iter()
        .map(|t| {
            let missing = missing(&t.needs);
            let ignored = !missing.is_empty()
                && (!ci || missing.iter().any(|(n, _)| n.stays_ignored_under_ci()));
            let what = describe(&missing);
            let name = t.name;
            let body = t.body;
            // The prerequisites are checked again in the body: an ignored
            // test run anyway (`--include-ignored`, CI) fails naming them.
            let trial = Trial::test(name, move || {
                if what.is_empty() {
                    body();
                    Ok(())
                } else {
                    let rule = if ci {
                        "CI=true: a missing prerequisite fails the test; "
                    } else {
                        ""
                    };
                    Err(Failed::from(format!("{rule}{what}")))
                }
            })
            .with_ignored_flag(ignored);
            if !args.list && args.is_ignored(&trial) && !args.is_filtered_out(&trial) {
                eprintln!("ignored {}: {}", trial.name(), describe(&missing));
            }
            trial
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

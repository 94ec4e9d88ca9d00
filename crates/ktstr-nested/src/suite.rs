//! Which test binaries run in L1: a [`Suite`] names a cargo package, one of
//! its test targets and the arguments (filter, `--skip`) it runs with;
//! [`build`] compiles them with `cargo test --no-run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;
use crate::host_command::run;

/// One test binary and the arguments it runs with in L1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suite {
    /// The cargo package, e.g. `ktstr-vmm`.
    pub package: String,
    /// Its test target, e.g. `kernel_boot`.
    pub test: String,
    /// libtest arguments: a name filter and `--skip` options.
    pub args: Vec<String>,
}

impl Suite {
    /// `package/test`, the suite's name in progress lines and results.
    pub fn name(&self) -> String {
        format!("{}/{}", self.package, self.test)
    }
}

/// Parses `PACKAGE/TEST[=ARGS]`, ARGS split at whitespace, e.g.
/// `ktstr-backend/conformance=vmm::` or `ktstr-harness/guest=--skip snap`.
impl std::str::FromStr for Suite {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (target, args) = s.split_once('=').unwrap_or((s, ""));
        let (package, test) = target
            .split_once('/')
            .filter(|(p, t)| !p.is_empty() && !t.is_empty())
            .ok_or_else(|| format!("{s:?} is not PACKAGE/TEST[=ARGS]"))?;
        Ok(Suite {
            package: package.to_owned(),
            test: test.to_owned(),
            args: args.split_whitespace().map(str::to_owned).collect(),
        })
    }
}

/// What needs KVM with hardware semantics: exactly issue 12's item-2 list
/// (kernel-boot token at 1 and 2 vCPUs; the vmm snapshot test; harness
/// sessions on ktstr-vmm: exec and shell, scx_simple and scx_qmap
/// lifecycles, the `scx_qmap -T` kick, a second session resuming the
/// first one's snapshot; the backend conformance suite on ktstr-vmm with
/// the wire echo and every CI topology preset; `tests/schedulers.rs`,
/// [`scheduler_scenarios`]).
/// One entry per test binary: add a line to add one. Each skip says why.
pub fn default_suites() -> Vec<Suite> {
    [
        // Skipped: the tiny-init boots at 1 and 2 vCPUs need only KVM; they
        // run on this host's KVM in the main tier (the compat layer's proof).
        "ktstr-vmm/kernel_boot=kernel_boots_busybox_and_reports_nproc",
        "ktstr-vmm/kernel_snapshot",
        "ktstr-backend/conformance=vmm::",
        // Skipped: the backend-neutral resume test (the ktstr-vmm one below
        // asserts the resume and the clean slate); the clean-slate rounds
        // and the death-naming tests (init panic, an init that never starts,
        // a panic during exec, an unasked reset, OOM), whose harness code is
        // backend-neutral and runs on QEMU in the main tier, while
        // ktstr-vmm's own panic classification runs in conformance above;
        // the QEMU snapshot-file corruption test (QEMU's files); the
        // 50-toggle regression for multi-threaded TCG (a QEMU hazard); the
        // two resumed-attach tests (attach snapshots are QEMU-only so far:
        // ktstr_harness's session/boot.rs says why); the guest clock's pace
        // over three cold boots (the fallback it guards against is TCG's:
        // a TSC judged by lagging jiffies; ktstr-vmm guests have kvm-clock).
        "ktstr-harness/guest=--skip a_second_session_resumes_the_first_ones_snapshot \
         --skip a_restored_session_leaves_nothing_for_the_next \
         --skip init_panic_reaches_the_host_as_a_com2_line \
         --skip an_init_that_never_starts_is_named_not_timed_out \
         --skip a_kernel_panic_during_exec_is_named_at_once \
         --skip a_reset_nobody_asked_for_is_named \
         --skip out_of_memory_is_named_in_the_exec_result_and_as_a_death \
         --skip a_corrupt_truncated_or_foreign_snapshot_is_rebuilt \
         --skip a_resumed_attach_leaves_nothing_for_the_next \
         --skip a_resumed_attach_looks_like_a_fresh_one_and_a_failed_attach_takes_none \
         --skip sched_ext_toggles_50_times_in_one_smp_guest_without_a_kernel_crash \
         --skip guest_time_keeps_the_hosts_pace_with_every_vcpu_busy",
        &scheduler_scenarios(),
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// `tests/schedulers.rs` on ktstr-vmm. In L1 (one emulated vCPU) its
/// 2-vCPU guests see steal time, which sched_ext and EEVDF account, and a
/// fork-and-place of a worker takes 30-130 ms, which the workload's start
/// gate keeps out of the fairness verdicts (2026-11-30: 8 of 8, see the
/// README's nested-tier row). Its `gauntlet_steady` members run on the CI
/// subset of presets, as on QEMU (one cold L2 boot each: no snapshot to
/// resume across shapes; 5 members in 206 s). The members on full-tier
/// presets are skipped here rather than reported ignored, since the tier
/// requires every selected test to run; they are named from the catalogue,
/// so a new preset needs no edit. (`1n1l1c2t` once ran past its VM deadline
/// before its scheduler started: the lost pause fixed in ktstr-vmm's run
/// loop, 2026-11-30; 5 of 5 after.)
pub fn scheduler_scenarios() -> String {
    let mut suite = String::from("ktstr-examples/schedulers=");
    for p in ktstr_topology::PRESETS
        .iter()
        .filter(|p| p.tier == ktstr_topology::PresetTier::Full)
    {
        suite.push_str(&format!("--skip gauntlet_steady::t{} ", p.name));
    }
    suite.trim_end().to_string()
}

/// A built suite: where its binary is.
#[derive(Clone, Debug)]
pub struct Built {
    /// The suite.
    pub suite: Suite,
    /// The test executable on the host.
    pub executable: PathBuf,
}

impl Built {
    /// The `CARGO_TARGET_TMPDIR` compiled into the binary (tests write logs
    /// there): `<target>/tmp` for cargo's `<target>/<profile>/deps/<exe>`.
    pub fn target_tmpdir(&self) -> Option<PathBuf> {
        self.executable.ancestors().nth(3).map(|t| t.join("tmp"))
    }
}

/// Builds every suite's test binary (`cargo test --no-run`, `--release` if
/// asked) in the workspace at `root`, one cargo call per package.
pub fn build(root: &Path, suites: &[Suite], release: bool) -> Result<Vec<Built>, Error> {
    let mut by_package: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in suites {
        by_package.entry(&s.package).or_default().push(&s.test);
    }
    let mut executables: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    for (package, tests) in by_package {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(root)
            .args(["test", "--no-run", "--message-format=json", "-p", package]);
        if release {
            cmd.arg("--release");
        }
        for t in tests {
            cmd.args(["--test", t]);
        }
        let out = run("build the test binaries", &mut cmd)?;
        for (test, exe) in test_executables(&String::from_utf8_lossy(&out.stdout)) {
            executables.insert((package.to_owned(), test), exe);
        }
    }
    suites
        .iter()
        .map(|s| {
            executables
                .get(&(s.package.clone(), s.test.clone()))
                .map(|exe| Built {
                    suite: s.clone(),
                    executable: exe.clone(),
                })
                .ok_or_else(|| Error::NoTestBinary { suite: s.name() })
        })
        .collect()
}

/// `(test target, executable)` of every test-target artifact in cargo's
/// `--message-format=json` output.
fn test_executables(json_lines: &str) -> Vec<(String, PathBuf)> {
    executables_of_kind(json_lines, "test")
}

/// `(target, executable)` of every artifact of target `kind` (`test`,
/// `bin`, `example`) in cargo's `--message-format=json` output.
pub(crate) fn executables_of_kind(json_lines: &str, kind: &str) -> Vec<(String, PathBuf)> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == kind))
        })
        .filter_map(|m| {
            Some((
                m["target"]["name"].as_str()?.to_owned(),
                PathBuf::from(m["executable"].as_str()?),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_parse_with_and_without_arguments() {
        let s: Suite = "ktstr-harness/guest=--skip snapshot x"
            .parse()
            .expect("parse");
        assert_eq!(s.package, "ktstr-harness");
        assert_eq!(s.test, "guest");
        assert_eq!(s.args, ["--skip", "snapshot", "x"]);
        let s: Suite = "ktstr-backend/conformance=vmm::".parse().expect("parse");
        assert_eq!(
            (s.name().as_str(), s.args.as_slice()),
            ("ktstr-backend/conformance", &["vmm::".to_owned()][..])
        );
        assert!("kernel_boot".parse::<Suite>().is_err());
        assert!("/x".parse::<Suite>().is_err());
        let defaults = default_suites();
        assert_eq!(defaults.len(), 5);
        assert_eq!(defaults[4].name(), "ktstr-examples/schedulers");
        assert_eq!(defaults[3].name(), "ktstr-harness/guest");
        assert_eq!(
            defaults[3].args.iter().filter(|a| *a == "--skip").count(),
            12
        );
        assert_eq!(defaults[0].args, ["kernel_boots_busybox_and_reports_nproc"]);
    }

    #[test]
    fn only_test_targets_with_executables_are_taken() {
        let json = r#"{"reason":"compiler-artifact","target":{"name":"ktstr_vmm","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","target":{"name":"kernel_boot","kind":["test"]},"executable":"/t/kernel_boot-1"}
{"reason":"build-finished","success":true}
not json"#;
        assert_eq!(
            test_executables(json),
            [("kernel_boot".to_owned(), PathBuf::from("/t/kernel_boot-1"))]
        );
    }
}

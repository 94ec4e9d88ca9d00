//! Programs nobody here wrote, run in the guest as payloads: the scheduler
//! survives stress-ng (as the sched_ext CI defines it: ~30 s of stress-ng,
//! then still attached), cyclictest's wake-up latency lands in the report,
//! a payload that fails fails the verdict naming it, and a declared file is
//! in the guest.
//!
//! stress-ng (Debian) links 27 shared libraries (libcrypto, libEGL, libjpeg,
//! ...): `programs = ["stress-ng"]` packs it with all of them, no packing
//! step by the author. Without stress-ng or cyclictest (`apt-get install
//! stress-ng rt-tests`) these tests are reported ignored by name, and fail
//! under `CI=true`.

use ktstr_harness::ktstr_test;
use ktstr_harness::test::{KtstrTest, needs, test_main_with, try_run};
use ktstr_harness::workload::payload::PayloadEnd;
use ktstr_harness::workload::{
    CgroupSpec, CpusetSpec, Failure, Figures, Op, PayloadSpec, Scenario, Step, WorkKind,
};
use ktstr_testenv::Test;

/// What scx CI runs against a scheduler, in this guest's busybox world:
/// CPU hogs, context switching through pipes and `sched_yield` storms on
/// every CPU, for 30 s (`0` workers = one per online CPU).
fn stress_ng_30s() -> Scenario {
    PayloadSpec::new(
        "stress-ng",
        [
            "--cpu",
            "0",
            "--switch",
            "0",
            "--yield",
            "0",
            "--timeout",
            "30s",
            "--metrics-brief",
        ],
    )
    .figures(Figures::StressNg)
    .timeout_ms(120_000)
    .into_scenario()
}

#[ktstr_test(topology = "1n1l2c1t", scheduler = "scx_simple", programs = ["stress-ng"])]
fn scx_simple_survives_stress_ng() -> Scenario {
    stress_ng_30s()
}

#[ktstr_test(topology = "1n1l2c1t", scheduler = "scx_qmap", programs = ["stress-ng"])]
fn scx_qmap_survives_stress_ng() -> Scenario {
    stress_ng_30s()
}

/// cyclictest's timer wake-ups (normal policy, so the scheduler under test
/// places them) beside two spinners for 5 s; its histogram becomes
/// `wakeup_p50_us` / `wakeup_p99_us` / `wakeup_max_us` in the report.
fn cyclictest_beside_spinners() -> Scenario {
    let cyclictest = PayloadSpec::new(
        "cyclictest",
        [
            "-q",
            "-D",
            "5",
            "-t",
            "2",
            "-i",
            "1000",
            "--policy=other",
            "-h",
            "50000",
            "--default-system",
        ],
    )
    .figures(Figures::Cyclictest)
    .timeout_ms(60_000);
    Scenario {
        name: "cyclictest_beside_spinners".into(),
        steps: vec![Step {
            duration_ms: 5000,
            ops_before: vec![Op::Payload(cyclictest)],
            cgroups: vec![CgroupSpec {
                name: "spin".into(),
                workers: 2,
                work: WorkKind::Spin,
                cpuset: CpusetSpec::All,
                weight: None,
                children: Vec::new(),
            }],
        }],
    }
}

#[ktstr_test(topology = "1n1l2c1t", programs = ["cyclictest"], max_gap_ms = 3000)]
fn eevdf_cyclictest_wakeup_latency() -> Scenario {
    cyclictest_beside_spinners()
}

#[ktstr_test(topology = "1n1l2c1t", scheduler = "scx_simple", programs = ["cyclictest"], max_gap_ms = 3000)]
fn scx_simple_cyclictest_wakeup_latency() -> Scenario {
    cyclictest_beside_spinners()
}

/// A declared file is in the guest at its path: busybox `grep` finds this
/// file's own `fn main` there, or exits 1 and fails the verdict.
#[ktstr_test(topology = "1n1l2c1t", files = [("tests/payloads.rs", "/opt/ktstr/payloads.rs")])]
fn a_declared_file_is_in_the_guest() -> Scenario {
    PayloadSpec::new("/bin/grep", ["-q", "^fn main", "/opt/ktstr/payloads.rs"])
        .timeout_ms(30_000)
        .into_scenario()
}

fn stress_ng_bad_option() -> Scenario {
    PayloadSpec::new(
        "stress-ng",
        ["--cpu", "1", "--timeout", "1s", "--no-such-stressor"],
    )
    .into_scenario()
}

const STRESS_NG_FAILS: KtstrTest = KtstrTest {
    programs: &["stress-ng"],
    ..KtstrTest::new("stress_ng_fails", "1n1l2c1t", stress_ng_bad_option)
};

fn a_failing_payload_fails_the_verdict_naming_it() {
    let o = try_run(&STRESS_NG_FAILS).expect("the run itself works");
    eprint!("{}", o.rendered);
    assert!(!o.verdict.passed, "{}", o.rendered);
    assert!(
        matches!(&o.verdict.failures[0], Failure::Payload { name, .. } if name == "stress-ng"),
        "{}",
        o.rendered
    );
    assert!(
        o.rendered.starts_with(
            "stress_ng_fails [1n1l2c1t eevdf] failed: payload stress-ng exited with status 1 after"
        ),
        "{}",
        o.rendered
    );
    let p = &o.report.payloads[0];
    assert_eq!(p.end, PayloadEnd::Exited(1));
    assert!(p.stderr_tail.contains("no-such-stressor"), "{p:?}");
}

fn main() -> std::process::ExitCode {
    test_main_with(vec![Test::new(
        "a_failing_payload_fails_the_verdict_naming_it",
        &needs(&STRESS_NG_FAILS),
        a_failing_payload_fails_the_verdict_naming_it,
    )])
}

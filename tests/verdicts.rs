//! The checks can fail: a scheduler the kernel kicks out mid-run fails the
//! test with the kernel's reason in the headline, a stopped worker fails
//! the starvation check naming it, a CPU wedged by the scheduler fails with
//! the host-side monitor's finding first; a test expecting an
//! `scx_bpf_error` fails when the text differs; a scheduler sched_ext asks
//! to restart on CPU hotplug survives it.

use ktstr_harness::test::{Expect, KtstrTest, needs, try_run};
use ktstr_harness::workload::{Failure, FailureKind, Scenario, catalogue};
use ktstr_testenv::Test;

mod scenarios;

fn steady() -> Scenario {
    catalogue::steady().with_step_ms(12_000)
}

const QMAP_STALL: KtstrTest = KtstrTest {
    scheduler: Some("scx_qmap"),
    // Stall every 2nd kernel thread: the sched_ext watchdog disables it.
    args: &["-T", "2"],
    ..KtstrTest::new("qmap_stall", "1n1l2c1t", steady)
};

fn a_scheduler_kicked_out_mid_run_fails_the_verdict_with_the_kernels_reason() {
    let o = try_run(&QMAP_STALL).expect("the run itself works");
    eprint!("{}", o.rendered);
    assert!(!o.verdict.passed, "{}", o.rendered);
    let kicked = o.verdict.failures.iter().find_map(|f| match f {
        Failure::SchedulerKicked { exit, .. } => Some(exit.describe()),
        _ => None,
    });
    let reason = kicked.unwrap_or_else(|| panic!("no kick failure:\n{}", o.rendered));
    assert!(reason.contains("runnable task stall"), "{reason}");
    // Failure first: line 1 names the kernel's reason, whatever the
    // starving workers did meanwhile.
    let first = o.rendered.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("qmap_stall [1n1l2c1t scx_qmap -T 2] failed: the kernel kicked scheduler qmap out: runnable task stall"),
        "{}",
        o.rendered
    );
    assert_eq!(o.verdict.root_cause, Some(FailureKind::SchedulerKicked));
    assert!(o.rendered.contains("\n  kernel:\n"), "{}", o.rendered);
    assert!(o.json.is_file());
}

fn detach_tolerated(t: &mut ktstr_harness::workload::Thresholds) {
    t.require_scheduler_attached = false;
}

/// The same wedge as [`QMAP_STALL`] (`scx_qmap -T 2`: every 2nd kernel
/// thread it is given stays runnable, never dispatched, on its CPU), with
/// the kernel's watchdog kick tolerated, so that the verdict shows what the
/// monitor alone found, before the kick. The stranded kernel threads
/// (rcu_sched, kworkers, ksoftirqd) can hold up the scenario itself: in 2
/// of 8 runs a worker did not start within its 5 s or the scenario missed
/// its deadline. The monitor's finding is then still the verdict's first
/// line (the harness reports a run cut short in a guest the monitor saw
/// wedged as that finding, with the error as a note), which is what this
/// test checks. (`-t 2`, user threads, strands whichever user thread comes
/// second: the guest agent as often as a worker.)
const QMAP_WEDGE: KtstrTest = KtstrTest {
    name: "qmap_kthread_stall",
    step_ms: Some(8_000),
    thresholds: detach_tolerated,
    ..QMAP_STALL
};

fn a_wedged_cpu_fails_with_the_monitors_finding_in_the_first_line() {
    let o = try_run(&QMAP_WEDGE).expect("the run itself works");
    eprint!("{}", o.rendered);
    let first = o.rendered.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(
            "qmap_kthread_stall [1n1l2c1t scx_qmap -T 2] failed: monitor: stall on cpu"
        ),
        "{}",
        o.rendered
    );
    // When in the scenario it began (the stall starts as qmap attaches,
    // before the scenario, so the time may be negative).
    assert!(first.contains(" from scenario "), "{first}");
    let record = &o.monitored.record;
    let started = record.scenario_started_ms.expect("the scenario started");
    for f in &record.findings {
        use ktstr_monitor::Finding::{DeepLocalDsq, Imbalance, Stall};
        let (Stall { from, .. } | DeepLocalDsq { from, .. } | Imbalance { from, .. }) = &f.finding;
        let from = from.as_millis() as i64;
        assert_eq!(f.from_scenario_ms, Some(from - started), "{f:?}");
    }
    // The monitor found it while qmap was still enabled: before the
    // kernel's watchdog kicked it out, not because of the kick.
    let kicked = record
        .samples
        .windows(2)
        .find(|w| w[0].scx.enabled() && !w[1].scx.enabled())
        .map(|w| w[1].at);
    let stall_from = record.findings.iter().find_map(|f| match &f.finding {
        ktstr_monitor::Finding::Stall { from, .. } => Some(*from),
        _ => None,
    });
    let (Some(from), Some(kicked)) = (stall_from, kicked) else {
        panic!("stall {stall_from:?}, kick {kicked:?}:\n{}", o.rendered);
    };
    assert!(from < kicked, "stall from {from:?}, kicked at {kicked:?}");
    let svg = o.monitored.timeline.as_ref().expect("a timeline");
    let svg = std::fs::read_to_string(svg).expect("read the timeline");
    // The finding's red box and the kick's dashed line.
    assert!(svg.contains(r##"stroke="#d00000""##), "no finding drawn");
    assert!(svg.contains("sched_ext disabled"), "no kick drawn");
    assert!(o.rendered.contains("timeline: "), "{}", o.rendered);
}

/// `scx_qmap -e 1000` calls `scx_bpf_error("test triggering error")` after
/// 1000 enqueues (ping-pong enqueues often; yielders did not reach 1000 on
/// the lean kernel); this test expects other text, so it must fail.
const QMAP_ERROR_WRONG_TEXT: KtstrTest = KtstrTest {
    name: "qmap_error_wrong_text",
    args: &["-e", "1000"],
    expect: Expect {
        fail: None,
        scx_error: Some("a message qmap never sends"),
    },
    scenario: catalogue::ping_pong,
    duration_ms: Some(4000),
    ..QMAP_STALL
};

fn an_expected_scx_error_with_other_text_fails_the_test() {
    let o = try_run(&QMAP_ERROR_WRONG_TEXT).expect("the run itself works");
    eprint!("{}", o.rendered);
    assert!(!o.passed, "{}", o.rendered);
    // It failed for the right reason: the error did happen, with its text.
    match o.verdict.failures.first() {
        Some(Failure::SchedulerKicked { exit, .. }) => {
            assert_eq!(exit.reason, "scx_bpf_error");
            assert_eq!(exit.message, "test triggering error");
        }
        other => panic!("root cause {other:?}:\n{}", o.rendered),
    }
    let first = o.rendered.lines().next().unwrap_or_default();
    assert!(
        first.contains("expected the kernel to kick the scheduler out with an error containing \"a message qmap never sends\", but the root cause is: the kernel kicked scheduler qmap out: scx_bpf_error: test triggering error"),
        "{}",
        o.rendered
    );
    // The same run expecting the right text passes.
    let right = Expect {
        fail: None,
        scx_error: Some("test triggering error"),
    };
    assert!(right.check(&o.verdict).is_ok_and(|l| l.is_some()));
}

/// scx_simple has no ops.cpu_online/offline: sched_ext asks it to restart
/// on each hotplug, and it does.
const SIMPLE_HOTPLUG: KtstrTest = KtstrTest {
    name: "scx_simple_cpu_hotplug",
    scheduler: Some("scx_simple"),
    args: &[],
    scenario: scenarios::cpu_hotplug,
    ..QMAP_STALL
};

fn a_scheduler_sched_ext_restarts_on_hotplug_survives_it() {
    let o = try_run(&SIMPLE_HOTPLUG).expect("the run itself works");
    eprint!("{}", o.rendered);
    assert!(o.passed, "{}", o.rendered);
    assert!(
        o.verdict
            .evidence
            .iter()
            .any(|l| l == "note: simple attached again after: unregistered from the main kernel"),
        "the kernel did not ask scx_simple to restart:\n{}",
        o.rendered
    );
    // The worker confined to cpu1 ran on cpu0 while cpu1 was offline.
    let pinned = o.report.workers.iter().find(|w| w.cgroup == "cpu1");
    let cpus = pinned.map(|w| w.cpus_used.clone()).unwrap_or_default();
    assert!(
        cpus.contains(&0) && cpus.contains(&1),
        "{cpus:?}\n{}",
        o.rendered
    );
    assert!(
        o.report.notes.iter().any(|n| n == "applied cpu1 offline"),
        "{:?}",
        o.report.notes
    );
}

fn main() -> std::process::ExitCode {
    ktstr_testenv::run(vec![
        Test::new(
            "a_scheduler_kicked_out_mid_run_fails_the_verdict_with_the_kernels_reason",
            &needs(&QMAP_STALL),
            a_scheduler_kicked_out_mid_run_fails_the_verdict_with_the_kernels_reason,
        ),
        Test::new(
            "a_wedged_cpu_fails_with_the_monitors_finding_in_the_first_line",
            &needs(&QMAP_WEDGE),
            a_wedged_cpu_fails_with_the_monitors_finding_in_the_first_line,
        ),
        Test::new(
            "an_expected_scx_error_with_other_text_fails_the_test",
            &needs(&QMAP_ERROR_WRONG_TEXT),
            an_expected_scx_error_with_other_text_fails_the_test,
        ),
        Test::new(
            "a_scheduler_sched_ext_restarts_on_hotplug_survives_it",
            &needs(&SIMPLE_HOTPLUG),
            a_scheduler_sched_ext_restarts_on_hotplug_survives_it,
        ),
    ])
}

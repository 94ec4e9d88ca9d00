//! The checks can fail: a scheduler the kernel kicks out mid-run fails the
//! test with the kernel's reason, a stopped worker fails the starvation
//! check naming it, and a CPU wedged by the scheduler fails with the
//! host-side monitor's finding first.

use ktstr_harness::test::{KtstrTest, MonitorSpec, needs, try_run};
use ktstr_harness::workload::{Failure, Scenario, catalogue};
use ktstr_testenv::Test;

fn no_overrides(_: &mut ktstr_harness::workload::Thresholds) {}

fn steady() -> Scenario {
    catalogue::steady().with_step_ms(12_000)
}

const QMAP_STALL: KtstrTest = KtstrTest {
    name: "qmap_stall",
    topology: "1n1l2c1t",
    scheduler: Some("scx_qmap"),
    // Stall every 2nd kernel thread: the sched_ext watchdog disables it.
    args: &["-T", "2"],
    memory_mib: None,
    step_ms: None,
    timeout_s: None,
    thresholds: no_overrides,
    scenario: steady,
    programs: &[],
    files: &[],
    monitor: MonitorSpec::DEFAULT,
};

fn a_scheduler_kicked_out_mid_run_fails_the_verdict_with_the_kernels_reason() {
    let o = try_run(&QMAP_STALL).expect("the run itself works");
    eprint!("{}", o.rendered);
    assert!(!o.verdict.passed, "{}", o.rendered);
    let detached = o.verdict.failures.iter().find_map(|f| match f {
        Failure::SchedulerDetached { reason } => Some(reason.clone()),
        _ => None,
    });
    let reason = detached.unwrap_or_else(|| panic!("no detach failure:\n{}", o.rendered));
    assert!(
        reason.contains("runnable task stall") || reason.contains("watchdog"),
        "{reason}"
    );
    assert!(
        o.rendered
            .starts_with("qmap_stall [1n1l2c1t scx_qmap -T 2] failed"),
        "{}",
        o.rendered
    );
    assert!(o.json.is_file());
}

fn detach_tolerated(t: &mut ktstr_harness::workload::Thresholds) {
    t.require_scheduler_attached = false;
}

/// scx_qmap never dispatches every 2nd user thread it is given (`-t 2`):
/// those tasks stay runnable, unrun, on their CPU while the CPU runs others.
/// The kernel's watchdog kicks qmap out seconds later; the detach is
/// tolerated here so that the verdict shows what the monitor alone found.
const QMAP_WEDGE: KtstrTest = KtstrTest {
    name: "qmap_user_stall",
    topology: "1n1l2c1t",
    scheduler: Some("scx_qmap"),
    args: &["-t", "2"],
    memory_mib: None,
    step_ms: Some(8_000),
    timeout_s: None,
    thresholds: detach_tolerated,
    scenario: catalogue::steady,
    monitor: MonitorSpec::DEFAULT,
    programs: &[],
    files: &[],
};

fn a_wedged_cpu_fails_with_the_monitors_finding_in_the_first_line() {
    let o = try_run(&QMAP_WEDGE).expect("the run itself works");
    eprint!("{}", o.rendered);
    let first = o.rendered.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("qmap_user_stall [1n1l2c1t scx_qmap -t 2] failed: monitor: stall on cpu"),
        "{}",
        o.rendered
    );
    let record = &o.monitored.record;
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
    ])
}

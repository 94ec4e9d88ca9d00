//! The checks can fail: a scheduler the kernel kicks out mid-run fails the
//! test with the kernel's reason, and a stopped worker fails the starvation
//! check naming it.

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

fn main() -> std::process::ExitCode {
    ktstr_testenv::run(vec![Test::new(
        "a_scheduler_kicked_out_mid_run_fails_the_verdict_with_the_kernels_reason",
        &needs(&QMAP_STALL),
        a_scheduler_kicked_out_mid_run_fails_the_verdict_with_the_kernels_reason,
    )])
}

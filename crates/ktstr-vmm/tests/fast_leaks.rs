//! Fast tier: 100 VMs, killed, rebooted and timed out, leave no fd and no
//! thread behind. Its own binary so no other test's threads blur the count.

mod common;

use std::time::Duration;

use common::*;
use ktstr_vmm::ExitKind;

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_hundred_vms_leave_fds_and_threads_at_baseline() {
    if !kvm_available() {
        return;
    }
    let reboot_code = assemble(|a| {
        out_str(a, COM1, b"x")?;
        reboot(a)
    });
    let spin_code = assemble(spin_forever);
    // Warm up once so lazily created process-wide state is not counted.
    run(raw_vm(reboot_code.clone()));
    let (fds, threads) = (count("/proc/self/fd"), count("/proc/self/task"));
    for i in 0..100 {
        let outcome = match i % 3 {
            0 => run(raw_vm(reboot_code.clone()).vcpus(2)),
            1 => run(raw_vm(spin_code.clone()).deadline(Duration::from_millis(5))),
            _ => {
                let vm = raw_vm(spin_code.clone()).vcpus(2).build().expect("build");
                vm.interrupt_handle().kill();
                vm.run().expect("run")
            }
        };
        let expected = [
            ExitKind::Reboot,
            ExitKind::DeadlineExceeded,
            ExitKind::Killed,
        ][i % 3]
            .clone();
        assert_eq!(outcome.exit, expected);
    }
    assert_eq!(count("/proc/self/fd"), fds, "fds back to baseline");
    assert_eq!(
        count("/proc/self/task"),
        threads,
        "threads back to baseline"
    );
}

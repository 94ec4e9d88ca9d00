//! Fast tier: 100 VMs, killed, rebooted and timed out, and 30 snapshot
//! restores leave no fd, no thread and no file behind. Its own binary so no
//! other test's threads blur the count; the tests here run one at a time.

mod common;

use std::time::Duration;

use common::*;
use iced_x86::code_asm::*;
use ktstr_vmm::{AfterSnapshot, ExitKind, RestoreOptions, SnapshotPlan, SnapshotTrigger, Vm};

/// The counts are process-wide: one test at a time.
static ONE_TEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn a_hundred_vms_leave_fds_and_threads_at_baseline() {
    let reboot_code = assemble(|a| {
        out_str(a, COM1, b"x")?;
        reboot(a)
    });
    let _one = ONE_TEST.lock().unwrap_or_else(|p| p.into_inner());
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

fn snapshot_restores_leave_fds_threads_and_files_at_baseline() {
    let _one = ONE_TEST.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("leak.snap");
    // vCPU 0 prints "a" (the snapshot marker), then "b"; vCPU 1 halts.
    let code = assemble(|a| {
        let mut ap = a.create_label();
        a.test(rdi, rdi)?;
        a.jnz(ap)?;
        out_str(a, COM1, b"a")?;
        out_str(a, COM1, b"b")?;
        reboot(a)?;
        a.set_label(&mut ap)?;
        a.nop()?;
        halt_forever(a)
    });
    let snapshot = |path: &std::path::Path| {
        raw_vm(code.clone())
            .vcpus(2)
            .snapshot(SnapshotPlan {
                path: path.to_path_buf(),
                trigger: SnapshotTrigger::Com1Marker(b"a".to_vec()),
                then: AfterSnapshot::Stop,
                key: String::new(),
            })
            .build()
            .expect("build")
            .run()
            .expect("run")
    };
    // Warm up once so lazily created process-wide state is not counted.
    snapshot(&path);
    let (fds, threads) = (count("/proc/self/fd"), count("/proc/self/task"));
    for i in 0..30 {
        if i % 10 == 0 {
            assert_eq!(snapshot(&path).exit, ExitKind::Snapshotted);
        }
        let outcome = Vm::restore(&path, RestoreOptions::default())
            .expect("restore")
            .run()
            .expect("run");
        assert_eq!(outcome.exit, ExitKind::Reboot);
        assert_eq!(outcome.com1_text(), "b");
    }
    assert_eq!(count("/proc/self/fd"), fds, "fds back to baseline");
    assert_eq!(
        count("/proc/self/task"),
        threads,
        "threads back to baseline"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("leak.snap")],
        "no temporary files"
    );
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![&[Need::Kvm]; a_hundred_vms_leave_fds_and_threads_at_baseline, snapshot_restores_leave_fds_threads_and_files_at_baseline],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}

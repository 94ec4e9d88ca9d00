//! Boot once, test many, on QEMU: a busybox `/init` asks for a snapshot and
//! waits for a command on the bulk port; each of 5 restores gets its own
//! command and returns its own output. One restore also runs 10 s to show the
//! restored kernel keeps working (no RCU stall or watchdog report).

mod common;

use std::time::{Duration, Instant};

use common::{NEEDS, Watch, builder, initramfs, test_env, vm_slot};
use ktstr_qemu::{AfterSnapshot, Error, ExitKind, QemuSnapshot, snapshot_key};

const READY: &str = "KTSTR-SNAPSHOT-READY";

/// Announces the quiescent point, then runs whatever line arrives on the bulk port.
const INIT: &str = "exec 3<>/dev/vport0p1\n\
     echo KTSTR-SNAPSHOT-READY\n\
     read -r cmd <&3\n\
     eval \"$cmd\"";

const SPLATS: [&str; 5] = [
    "rcu_sched self-detected stall",
    "rcu: INFO",
    "watchdog: BUG: soft lockup",
    "clocksource: timekeeping watchdog",
    "hung_task",
];

fn five_restores_each_run_their_own_command() {
    let _slot = vm_slot();
    let env = test_env();
    let initrd = initramfs(INIT);
    let dir = tempfile::tempdir().expect("temp dir");
    let snap_dir = dir.path().join("snap");

    let (mut watch, sink) = Watch::new();
    let cold = Instant::now();
    let vm = builder(&env, initrd.path())
        .vcpus(2)
        .com1_sink(Box::new(sink))
        .spawn()
        .expect("spawn");
    let boot = watch
        .wait_for(READY, Duration::from_secs(90))
        .unwrap_or_else(|| panic!("no {READY} on COM1:\n{}", watch.text()));
    let cold_to_ready = cold.elapsed();
    let t = Instant::now();
    let snap = vm
        .snapshot(&snap_dir, AfterSnapshot::StayPaused)
        .expect("snapshot");
    let save = t.elapsed();
    vm.kill_handle().kill();
    assert_eq!(vm.wait().expect("outcome").exit, ExitKind::Killed);

    let key = snapshot_key(builder(&env, initrd.path()).vcpus(2).config()).expect("key");
    let mut restore_times = Vec::new();
    for i in 1..=5 {
        let snap = QemuSnapshot::open(snap.dir(), &key).expect("open snapshot");
        let (mut out, sink) = Watch::new();
        let t = Instant::now();
        let vm = builder(&env, initrd.path())
            .vcpus(2)
            .com1_sink(Box::new(sink))
            .restore(snap)
            .spawn()
            .expect("restore");
        let token = format!("restored-{i}-{:x}", std::process::id());
        // The last restore also proves the kernel keeps working for 10 s.
        let cmd = if i == 5 {
            format!("sleep 10; echo {token} up=$(cut -d' ' -f1 /proc/uptime)\n")
        } else {
            format!("echo {token} nproc=$(nproc)\n")
        };
        vm.bulk_sender()
            .expect("bulk port")
            .send(cmd.as_bytes())
            .expect("send");
        let first = out
            .wait_for(&token, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("restore {i}: no {token}:\n{}", out.text()));
        restore_times.push(
            t.elapsed()
                - if i == 5 {
                    Duration::from_secs(10)
                } else {
                    Duration::ZERO
                },
        );
        let outcome = vm.wait().expect("outcome");
        let com1 = outcome.com1_text();
        assert_eq!(outcome.exit, ExitKind::Reboot, "restore {i}:\n{com1}");
        assert!(
            !com1.contains(READY),
            "restore {i} booted instead of resuming:\n{com1}"
        );
        for s in SPLATS {
            assert!(!com1.contains(s), "restore {i}: {s:?} in COM1:\n{com1}");
        }
        if i < 5 {
            assert!(com1.contains(&format!("{token} nproc=2")), "{com1}");
        }
        eprintln!("restore {i}: first output after {first:?}");
    }
    restore_times.sort();
    eprintln!(
        "cold boot to {READY}: {cold_to_ready:?} (wait {boot:?}); snapshot written in {save:?}; \
         restore to its command's output: median {:?} of {restore_times:?}",
        restore_times[restore_times.len() / 2]
    );
}

fn a_snapshot_is_refused_for_another_machine_or_when_corrupt() {
    let _slot = vm_slot();
    let env = test_env();
    let initrd = initramfs(INIT);
    let dir = tempfile::tempdir().expect("temp dir");
    let snap_dir = dir.path().join("snap");
    let (mut watch, sink) = Watch::new();
    let vm = builder(&env, initrd.path())
        .com1_sink(Box::new(sink))
        .spawn()
        .expect("spawn");
    watch
        .wait_for(READY, Duration::from_secs(90))
        .expect("ready");
    let snap = vm
        .snapshot(&snap_dir, AfterSnapshot::StayPaused)
        .expect("snapshot");
    vm.kill_handle().kill();
    vm.wait().expect("outcome");

    // Same snapshot, different machine: refused before QEMU starts.
    let e = builder(&env, initrd.path())
        .vcpus(2)
        .restore(snap.clone())
        .spawn()
        .err()
        .expect("a 2-vCPU restore of a 1-vCPU snapshot must fail");
    assert!(matches!(e, Error::SnapshotKeyMismatch { .. }), "{e:?}");
    let key = snapshot_key(builder(&env, initrd.path()).config()).expect("key");
    assert!(matches!(
        QemuSnapshot::open(snap.dir(), "another key"),
        Err(Error::SnapshotKeyMismatch { .. })
    ));
    // One flipped byte in guest RAM: detected by the manifest's CRC as the
    // restore loads RAM, before QEMU starts.
    let ram = snap.dir().join("ram0");
    let mut bytes = std::fs::read(&ram).expect("read ram");
    bytes[1 << 20] ^= 0xff;
    std::fs::write(&ram, bytes).expect("write ram");
    let opened = QemuSnapshot::open(snap.dir(), &key).expect("RAM is checked as it loads");
    let e = builder(&env, initrd.path())
        .restore(opened)
        .spawn()
        .err()
        .expect("corrupt");
    assert!(matches!(e, Error::SnapshotInvalid { .. }), "{e:?}");
    assert!(e.to_string().contains("ram0"), "{e}");
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![NEEDS; five_restores_each_run_their_own_command, a_snapshot_is_refused_for_another_machine_or_when_corrupt],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}

//! Kernel tier: boot the real kernel (`KTSTR_KERNEL`) once, snapshot it, and
//! restore it 5 times. Each restored kernel must carry on as a cold boot
//! would, with no RCU stall, soft lockup or unstable-clocksource splat, no
//! printk-clock jump, and its log on hvc0 through the restored virtio queues.
//!
//! On software KVM (kvm-pvm) guest user space cannot make system calls, so
//! the snapshot is taken at a late COM1 marker and each restore must reach
//! `/init` (which faults, and `panic=-1` reboots). On hardware KVM a busybox
//! `/init` asks for the snapshot through the control port, and each restore
//! runs its own command, read from the control port's input window.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Need, busybox, is_software_kvm, test_env, tiny_init, vm_slot};
use ktstr_vmm::snapshot::cache::{CacheKey, SnapshotCache};
use ktstr_vmm::{
    AfterSnapshot, ExitKind, RestoreOptions, SnapshotPlan, SnapshotTrigger, Vm, VmBuilder,
};

const RESTORES: u32 = 5;
/// Late in boot, ~15 s of guest time before `/init` on kvm-pvm: each restore
/// still runs the last initcalls, frees init memory and starts `/init`.
const PVM_MARKER: &str = "Loading compiled-in X.509 certificates";
/// The restored kernel's printk clock may move on from the snapshot's by at
/// most this much (it must not jump by the time the file sat on disk).
const MAX_CLOCK_STEP_S: f64 = 60.0;
const SPLATS: &[&str] = &[
    "self-detected stall",
    "rcu_sched detected stall",
    "rcu: INFO",
    "watchdog: BUG: soft lockup",
    "hard LOCKUP",
    "is unstable",
];

/// Asks for the snapshot through /dev/port, then runs the command the
/// restoring host put in the control port's input window.
const SNAPSHOT_INIT: &str = "#!/bin/sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mknod /dev/port c 1 4
$B mknod /dev/kmsg c 1 11
echo KTSTR-SNAP-REQUEST
$B printf '\\132' | $B dd of=/dev/port bs=1 seek=3585 count=1 2>/dev/null
gen=$($B dd if=/dev/port bs=1 skip=3584 count=1 2>/dev/null | $B od -An -tu1 | $B tr -d ' ')
cmd=$($B dd if=/dev/port bs=1 skip=3712 count=128 2>/dev/null | $B tr -d '\\000')
echo \"KTSTR-RESTORED gen=$gen\"
echo \"KTSTR-RESTORED-LOG gen=$gen\" > /dev/kmsg
eval \"$cmd\"
$B reboot -f
";

fn initramfs(dir: &Path, busybox: Option<&Path>) -> PathBuf {
    let init = match busybox {
        Some(busybox) => common::Init::Busybox {
            busybox,
            script: SNAPSHOT_INIT,
        },
        None => common::Init::Tiny(tiny_init::build("KTSTR-SNAP-TINY ")),
    };
    common::initramfs(&dir.join("initramfs.cpio"), init)
}

/// Records when the first byte arrives.
struct FirstByte(Arc<Mutex<Option<Instant>>>);
impl Write for FirstByte {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let mut at = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if at.is_none() && !b.is_empty() {
            *at = Some(Instant::now());
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// printk timestamps `[   12.345678]` in order of appearance.
fn printk_times(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix('[')?;
            rest.split(']').next()?.trim().parse().ok()
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn kernel_snapshot_restores_five_times_and_keeps_working() {
    let _slot = vm_slot();
    let kernel = test_env().kernel;
    let software = is_software_kvm();
    let bb = if software { None } else { Some(busybox()) };
    let dir = tempfile::tempdir().expect("tempdir");
    let initramfs = initramfs(dir.path(), bb.as_deref());
    let trigger = if software {
        SnapshotTrigger::Com1Marker(PVM_MARKER.as_bytes().to_vec())
    } else {
        SnapshotTrigger::GuestRequest
    };
    // The virtio-console is attached so its queues, live under the guest's
    // driver, go through the snapshot too; hvc0 must carry the restored log.
    let cold_console = ktstr_vmm::virtio_console();
    let vcpus = std::env::var("KTSTR_SNAPSHOT_VCPUS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let builder = || {
        VmBuilder::new()
            .kernel(&kernel)
            .initramfs(&initramfs)
            .virtio_console(&cold_console.sender)
            .cmdline("console=hvc0 console=ttyS0 rdinit=/init")
            .vcpus(vcpus)
            .memory_mib(256)
            .deadline(Duration::from_secs(1200))
    };
    let key = CacheKey::for_config(builder().config(), &format!("{trigger:?} virtio-console"))
        .expect("key");
    let cache = SnapshotCache::new(dir.path().join("cache"));
    let mut cold = None;
    let snap = cache
        .get_or_build(&key, |path| {
            let outcome = builder()
                .snapshot(SnapshotPlan {
                    path: path.to_path_buf(),
                    trigger: trigger.clone(),
                    then: AfterSnapshot::Stop,
                    key: key.material.clone(),
                })
                .build()?
                .run()?;
            assert_eq!(
                outcome.exit,
                ExitKind::Snapshotted,
                "COM1 tail:\n{}",
                tail(&outcome.com1_text())
            );
            cold = Some(outcome);
            Ok(())
        })
        .expect("cold boot and snapshot");
    let cold = cold.expect("the cache was empty, so a cold boot ran");
    let cold_clock = printk_times(&cold.com1_text()).last().copied();
    let info = cold.snapshot.clone().expect("snapshot info");
    eprintln!(
        "cold boot ({vcpus} vCPUs) to the snapshot point: {:?} (+{:?} setup), save {:?}, file {} MiB apparent / {} MiB on disk",
        info.taken_at,
        cold.timings.setup,
        info.save_time,
        info.file_bytes >> 20,
        info.disk_bytes >> 20
    );

    let mut to_first_output = Vec::new();
    for generation in 1..=RESTORES {
        let first = Arc::new(Mutex::new(None));
        let command = format!("echo KTSTR-CMD-{generation}-$((6*7))");
        let began = Instant::now();
        let console = ktstr_vmm::virtio_console();
        let vm = Vm::restore(
            snap.path(),
            RestoreOptions {
                virtio_console: Some(console.sender.clone()),
                generation,
                input: command.into_bytes(),
                expect_key: Some(key.material.clone()),
                deadline: Duration::from_secs(if software { 240 } else { 30 }),
                com1_sink: Some(Box::new(FirstByte(first.clone()))),
                ..Default::default()
            },
        )
        .expect("restore");
        let outcome = vm.run().expect("run restored");
        let first = first
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t - began);
        let com1 = outcome.com1_text();
        let hvc0: Vec<u8> = console.console_output.try_iter().flatten().collect();
        let hvc0 = String::from_utf8_lossy(&hvc0);
        eprintln!(
            "restore {generation}: {:?} after {:?}, first COM1 byte after {first:?}",
            outcome.exit, outcome.timings.run
        );
        to_first_output.extend(first);
        let times = printk_times(&com1);
        if let (Some(before), Some(after), Some(end)) = (cold_clock, times.first(), times.last()) {
            eprintln!(
                "restore {generation}: printk clock {before:.3} s at the snapshot, {after:.3} s at the first restored line, {end:.3} s at the last"
            );
            assert!(
                *after >= before && after - before < MAX_CLOCK_STEP_S,
                "restore {generation}: the guest clock jumped from {before} to {after}"
            );
        }
        for splat in SPLATS {
            assert!(
                !com1.contains(splat),
                "restore {generation}: {splat:?} in COM1:\n{}",
                tail(&com1)
            );
        }
        assert_eq!(
            outcome.exit,
            ExitKind::Reboot,
            "restore {generation}; COM1 tail:\n{}",
            tail(&com1)
        );
        // A kernel log line printed after the restore: on software KVM the
        // snapshot precedes /init; on hardware KVM /init itself asked for it
        // (so "Run /init" is before it) and logs a line once restored.
        let restored_log = if software {
            "Run /init as init process".to_owned()
        } else {
            format!("KTSTR-RESTORED-LOG gen={generation}")
        };
        assert!(
            hvc0.contains(&restored_log),
            "restore {generation}: the restored virtio queues carry hvc0 ({restored_log:?}); hvc0 tail:\n{}",
            tail(&hvc0)
        );
        if software {
            assert!(
                com1.contains("Run /init as init process") && com1.contains("init[1]: segfault at"),
                "restore {generation} reached /init; COM1 tail:\n{}",
                tail(&com1)
            );
        } else {
            assert!(
                com1.contains(&format!("KTSTR-RESTORED gen={generation}")),
                "{}",
                tail(&com1)
            );
            assert!(
                com1.contains(&format!("KTSTR-CMD-{generation}-42")),
                "{}",
                tail(&com1)
            );
        }
    }
    if !to_first_output.is_empty() {
        eprintln!(
            "FIGURE kernel: restore-to-first-COM1-output median {:?} over {} restores vs cold boot to the same point {:?}",
            median(to_first_output),
            RESTORES,
            info.taken_at + cold.timings.setup
        );
    }
}

fn main() -> std::process::ExitCode {
    // Busybox only where guest user space runs (see the module doc).
    let mut needs = vec![Need::Kvm, Need::Kernel];
    if !is_software_kvm() {
        needs.push(Need::Busybox);
    }
    let tests =
        [ktstr_testenv::tests![&needs; kernel_snapshot_restores_five_times_and_keeps_working]];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}

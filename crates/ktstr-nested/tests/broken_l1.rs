//! A broken L1 fails at once, saying why, instead of hanging the tier: a
//! missing module is named by L1's init (its `NESTED-FAIL:` line), and an L1
//! that stops making progress (its heartbeat stops) is killed by the host's
//! watchdog with QEMU's view of its vCPU.

use std::time::{Duration, Instant};

use ktstr_nested::init_script::prologue;
use ktstr_nested::l1_boot::{self, L1End, L1Machine};
use ktstr_nested::l1_initramfs;
use ktstr_nested::l1_kernel::{self, DEFAULT_PACKAGE, L1Kernel, MODULES};
use ktstr_nested::summary::{Summary, TierFailure};
use ktstr_qemu::ExitKind;
use ktstr_testenv::{Need, test_env, vm_slot};

/// Small: these L1s run no L2.
const L1_MEMORY_MIB: u64 = 1024;
/// A whole L1 boot under TCG on a loaded 2-core host takes well under this.
const L1_DEADLINE: Duration = Duration::from_secs(300);

fn l1_kernel() -> L1Kernel {
    let dir = l1_kernel::package_dir(DEFAULT_PACKAGE).expect("a cache directory");
    l1_kernel::fetch(DEFAULT_PACKAGE, &dir, &mut |p| eprintln!("{p}")).expect("L1 kernel")
}

/// Boots L1 with `init` as its `/init`; its console lines and how it ended.
fn boot_l1(init: String, stall_after: Duration) -> (Vec<String>, L1End) {
    let _slot = vm_slot();
    let kernel = l1_kernel();
    let busybox = ktstr_testenv::find_busybox().expect("busybox");
    let mut archive = l1_initramfs::base(&kernel, &busybox, &test_env().kernel).expect("base");
    archive
        .add_file("init", 0o755, init.into_bytes())
        .expect("init");
    let (cpio, _) = l1_initramfs::write_temp(&archive).expect("cpio");
    let machine = L1Machine {
        memory_mib: L1_MEMORY_MIB,
        deadline: L1_DEADLINE,
        stall_after,
        ..L1Machine::default()
    };
    let mut lines = Vec::new();
    let end = l1_boot::run(&machine, &kernel.vmlinuz, cpio, &mut |l| {
        eprintln!("L1| {l}");
        lines.push(l.to_owned());
    })
    .expect("L1 ran");
    (lines, end)
}

fn a_missing_module_is_named_and_l1_powers_off() {
    let mut modules: Vec<&str> = MODULES[..MODULES.len() - 1].to_vec();
    modules.push("no-such-module");
    let init = prologue(&modules) + "echo NOT-REACHED\npoweroff -f\n";
    let (lines, end) = boot_l1(init, Duration::from_secs(240));
    assert!(matches!(end, L1End::Exited(ExitKind::Shutdown)), "{end:?}");
    let mut summary = Summary::default();
    lines.iter().for_each(|l| summary.feed(l));
    let failures = summary.failures(&["p/t".to_owned()], None);
    assert!(
        matches!(&failures[..], [TierFailure::L1Broken(why)]
            if why.starts_with("module no-such-module did not load")),
        "{failures:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("NOT-REACHED")));
}

fn an_l1_whose_heartbeat_stops_is_killed_with_its_vcpu_state() {
    let stall_after = Duration::from_secs(20);
    // L1 comes up with KVM and its heartbeat, then the beats stop while
    // it idles: to the host, an L1 that no longer makes progress.
    let init = prologue(&MODULES) + "kill $!\necho BEATS-STOPPED\nexec sleep 100000\n";
    let started = Instant::now();
    let (lines, end) = boot_l1(init, stall_after);
    let stall = match end {
        L1End::Stalled(s) => s,
        other => panic!("{other:?}; console:\n{}", lines.join("\n")),
    };
    assert!(lines.iter().any(|l| l.contains("BEATS-STOPPED")));
    assert!(stall.silent_s >= stall_after.as_secs(), "{stall:?}");
    assert!(stall.last_uptime.is_some(), "L1 beat before it stopped");
    let dump = stall.diagnostics.join("\n");
    assert!(dump.contains("RIP="), "info registers: {dump}");
    assert!(dump.contains("(info lapic)"), "{dump}");
    assert!(
        started.elapsed() < L1_DEADLINE,
        "the watchdog, not the deadline, ended L1"
    );
}

fn main() -> std::process::ExitCode {
    let needs = [
        Need::Qemu,
        Need::Busybox,
        Need::Kernel,
        Need::Program {
            name: "dpkg-deb",
            package: "dpkg",
        },
    ];
    let tests = ktstr_testenv::tests![&needs; a_missing_module_is_named_and_l1_powers_off, an_l1_whose_heartbeat_stops_is_killed_with_its_vcpu_state];
    ktstr_testenv::run(tests)
}

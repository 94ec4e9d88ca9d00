//! One conformance suite, run against every backend: boot to /init and
//! reboot, a kernel panic classified from the console, the wire channel
//! round trip, snapshot and restore, guest memory read by the host while the
//! guest runs, kill, and deadline. Real kernel (`KTSTR_KERNEL`), real
//! VMs. On software KVM (kvm-pvm) guest user space cannot run, so the
//! ktstr-vmm cases that need it check the kernel's side instead and say so.

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use ktstr_backend::{BackendError, BackendKind, BootSpec, Exit, Guest, GuestDeath, boot};
use ktstr_initramfs::Archive;
use ktstr_testenv::{Missing, Need, Test, find_kernel, test_env, vm_slot};
use ktstr_vmm::compat::detect_host;
use ktstr_wire::{Command, Message, VecDecoder, encode};

/// `__START_KERNEL_map`: kernel image virtual = physical + this (no KASLR).
const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

/// The software KVM module behind `/dev/kvm`, if any (the one probe).
fn software_kvm_module() -> Option<&'static str> {
    detect_host().software_module()
}

fn software_kvm() -> bool {
    software_kvm_module().is_some()
}

/// The kernel's `boot_command_line` is found (see [`reads_guest_memory`]).
fn kernel_symbols() -> Result<(), Missing> {
    let kernel = find_kernel()?;
    symbol_phys(&kernel, "boot_command_line")
        .map(drop)
        .ok_or_else(|| {
            Missing::new(
                "the kernel's symbols",
                "KTSTR_KERNEL must be a vmlinux or sit next to its System.map",
            )
        })
}

/// User space runs everywhere except ktstr-vmm on software KVM.
fn user_space_runs(kind: BackendKind) -> bool {
    !(kind == BackendKind::Vmm && software_kvm())
}

/// The busybox initramfs with `init` as `/init`; the file goes away when the
/// returned path drops, even when an assertion fails first.
fn initramfs(init: &str) -> tempfile::TempPath {
    let mut a = Archive::new();
    let add = |a: &mut Archive| -> Result<(), ktstr_initramfs::Error> {
        a.add_dir("proc", 0o755)?;
        a.add_dir("sys", 0o755)?;
        a.add_dir("dev", 0o755)?;
        a.add_char_dev("dev/console", 0o600, 5, 1)?;
        a.add_elf_with_libs("bin/busybox", ktstr_testenv::BUSYBOX)?;
        a.add_symlink("bin/sh", "busybox")?;
        a.add_file("init", 0o755, init.as_bytes())?;
        Ok(())
    };
    add(&mut a).expect("initramfs (needs busybox-static)");
    let mut file = tempfile::Builder::new()
        .prefix("ktstr-conformance-")
        .suffix(".cpio")
        .tempfile()
        .expect("temp file");
    std::io::Write::write_all(&mut file, &a.to_bytes().expect("archive")).expect("write initramfs");
    file.into_temp_path()
}

/// Boots `kind` with `cpio` as the initramfs running its `/init`.
fn boot_with_init(kind: BackendKind, kernel: PathBuf, cpio: &tempfile::TempPath) -> Box<dyn Guest> {
    boot(
        kind,
        &spec(
            kernel,
            Some(cpio.to_path_buf()),
            "rdinit=/init",
            kind,
            Duration::from_secs(120),
        ),
    )
    .expect("boot")
}

fn spec(
    kernel: PathBuf,
    initramfs: Option<PathBuf>,
    cmdline: &str,
    kind: BackendKind,
    deadline: Duration,
) -> BootSpec {
    // ktstr-vmm on software KVM boots in minutes, not seconds.
    let deadline = if kind == BackendKind::Vmm && software_kvm() {
        deadline.max(Duration::from_secs(1200))
    } else {
        deadline
    };
    BootSpec {
        kernel,
        initramfs,
        cmdline: cmdline.to_string(),
        vcpus: 2,
        memory_mib: 256,
        deadline,
        topology: None,
        restore_from: None,
    }
}

const BOOT_INIT: &str = "#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
echo \"KTSTR-CONFORMANCE nproc=$(/bin/busybox nproc)\"
/bin/busybox reboot -f
";

fn boots_to_init_and_reboots(kind: BackendKind) {
    let kernel = test_env().kernel;
    let _slot = vm_slot();
    let cpio = initramfs(BOOT_INIT);
    let guest = boot_with_init(kind, kernel, &cpio);
    let outcome = guest.wait().expect("outcome");
    let com1 = outcome.com1_text();
    let tail: String = com1.lines().rev().take(20).collect::<Vec<_>>().join("\n");
    assert!(
        com1.contains("Run /init as init process"),
        "{kind:?} reached /init; tail:\n{tail}"
    );
    if user_space_runs(kind) {
        assert_eq!(outcome.exit, Exit::Reboot, "{kind:?}; tail:\n{tail}");
        assert!(
            matches!(outcome.death, GuestDeath::Rebooted { .. }),
            "{kind:?}: {}",
            outcome.death
        );
        assert!(
            com1.contains("KTSTR-CONFORMANCE nproc=2"),
            "{kind:?} token; tail:\n{tail}"
        );
    } else {
        // /init faults on its first system call and the kernel panics (host limitation).
        assert_eq!(outcome.exit, Exit::GuestPanic, "{kind:?}; tail:\n{tail}");
        eprintln!(
            "{kind:?} on software KVM: /init ran and faulted on its first system call (known host limitation)"
        );
    }
}

/// An /init that echoes the bulk port back to the host.
const ECHO_INIT: &str = "#!/bin/sh
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs dev /dev
exec 3<>/dev/vport0p1
/bin/busybox cat <&3 >&3
";

/// What came back of a ping frame sent (and re-sent until answered, the
/// guest may not be reading yet) through an echoing guest's bulk port.
struct Echo {
    ping: Vec<u8>,
    /// Every frame decoded, up to the first with the ping's sequence number.
    frames: Vec<(u64, Vec<u8>)>,
    decode_errors: u64,
}

fn ping_echo(guest: &dyn Guest, rx: &Receiver<Vec<u8>>, seq: u64) -> Echo {
    let ping = encode(
        seq,
        &Message::Command(Command::Ping(ktstr_wire::Ping::new(0x5eed))),
    )
    .expect("encode");
    let mut decoder = VecDecoder::new(ktstr_wire::DEFAULT_MAX_PAYLOAD);
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut frames: Vec<(u64, Vec<u8>)> = Vec::new();
    while !frames.iter().any(|f| f.0 == seq) && Instant::now() < give_up {
        guest.send_bulk(&ping);
        if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(500)) {
            decoder.push(&bytes, |item| {
                if let Ok(f) = item {
                    frames.push((f.seq(), f.payload().to_vec()));
                }
            });
        }
    }
    Echo {
        ping,
        frames,
        decode_errors: decoder.stats().errors,
    }
}

/// The ping came back whole; any other frame is a whole echo of a ping
/// sent `earlier` (re-sent pings may still be in flight across a snapshot).
fn assert_echoed(echo: Echo, seq: u64, earlier: &[u64], what: &str, com1: impl FnOnce() -> String) {
    if !echo.frames.iter().any(|f| f.0 == seq) {
        panic!(
            "{what}: frame {seq} did not come back (got {:?}); COM1:\n{}",
            echo.frames.iter().map(|f| f.0).collect::<Vec<_>>(),
            com1()
        );
    }
    for (got, payload) in &echo.frames {
        assert!(*got == seq || earlier.contains(got), "{what}: frame {got}");
        assert_eq!(payload[..], echo.ping[ktstr_wire::HEADER_LEN..], "{what}");
    }
    assert_eq!(echo.decode_errors, 0, "{what}");
}

/// The guest echoes the bulk port back to the host; a wire frame must survive the trip.
fn wire_round_trip(kind: BackendKind) {
    let kernel = test_env().kernel;
    let _slot = vm_slot();
    let cpio = initramfs(ECHO_INIT);
    let mut guest = boot_with_init(kind, kernel, &cpio);
    let rx = guest.take_bulk_receiver().expect("bulk receiver");
    let echo = ping_echo(&*guest, &rx, 41);
    guest.kill();
    let outcome = guest.wait().expect("outcome");
    assert_echoed(echo, 41, &[], &format!("{kind:?}"), || outcome.com1_text());
}

/// A snapshot of a running guest: the original continues, two restores
/// continue from it with fresh bulk channels, and a restore with another
/// spec is refused by key, the same error on every backend.
fn snapshot_and_restore(kind: BackendKind) {
    let kernel = test_env().kernel;
    let _slot = vm_slot();
    let cpio = initramfs(ECHO_INIT);
    let spec = spec(
        kernel,
        Some(cpio.to_path_buf()),
        "rdinit=/init",
        kind,
        Duration::from_secs(120),
    );
    let mut guest = boot(kind, &spec).expect("boot");
    let rx = guest.take_bulk_receiver().expect("bulk receiver");
    let no_com1 = || String::from("(still running)");
    assert_echoed(ping_echo(&*guest, &rx, 1), 1, &[], "cold guest", no_com1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("snapshot");
    guest.snapshot(&dir).expect("snapshot");
    let after = ping_echo(&*guest, &rx, 2);
    assert_echoed(after, 2, &[1], "the original after its snapshot", no_com1);
    guest.kill();
    guest.wait().expect("outcome");

    let restore = BootSpec {
        restore_from: Some(dir.clone()),
        ..spec.clone()
    };
    for round in 0..2u64 {
        let what = format!("{kind:?} restore {round}");
        let mut restored = boot(kind, &restore).unwrap_or_else(|e| panic!("{what}: {e}"));
        let rx = restored.take_bulk_receiver().expect("fresh bulk receiver");
        let echo = ping_echo(&*restored, &rx, 10 + round);
        restored.kill();
        let outcome = restored.wait().expect("outcome");
        // The restored guest may still echo a ping the original had in flight.
        assert_echoed(echo, 10 + round, &[1], &what, || outcome.com1_text());
    }

    let other = BootSpec {
        cmdline: format!("{} ktstr_other_machine", spec.cmdline),
        ..restore
    };
    match boot(kind, &other) {
        Err(BackendError::SnapshotKeyMismatch { dir: refused }) => assert_eq!(refused, dir),
        Err(e) => panic!("{kind:?}: refused for another reason: {e}"),
        Ok(_) => panic!("{kind:?}: a snapshot of another machine was restored"),
    }
}

/// Physical address of a kernel data symbol, from the vmlinux symbol table
/// or a System.map beside the image.
fn symbol_phys(kernel: &Path, name: &str) -> Option<u64> {
    use object::{Object, ObjectSymbol};
    let virt = std::fs::read(kernel).ok().and_then(|data| {
        let file = object::File::parse(&*data).ok()?;
        file.symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address())
    });
    let virt = virt.or_else(|| {
        let map = std::fs::read_to_string(kernel.with_file_name("System.map")).ok()?;
        map.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            let addr = f.next()?;
            (f.nth(1)? == name)
                .then(|| u64::from_str_radix(addr, 16).ok())
                .flatten()
        })
    })?;
    virt.checked_sub(START_KERNEL_MAP)
}

/// The kernel copies its command line into `boot_command_line` early in
/// boot: the host must see a marker appear there while the guest runs.
fn reads_guest_memory(kind: BackendKind) {
    let kernel = test_env().kernel;
    let phys = symbol_phys(&kernel, "boot_command_line").expect("checked by kernel_symbols");
    let _slot = vm_slot();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let marker = format!(
        "ktstr_marker={:016x}",
        nanos ^ u64::from(std::process::id())
    );
    let guest = boot(
        kind,
        &spec(kernel, None, &marker, kind, Duration::from_secs(120)),
    )
    .expect("boot");
    let give_up = Instant::now()
        + if software_kvm() && kind == BackendKind::Vmm {
            Duration::from_secs(120)
        } else {
            Duration::from_secs(30)
        };
    let mut seen = false;
    let mut buf = vec![0u8; 2048];
    while !seen && Instant::now() < give_up {
        guest
            .read_memory(phys, &mut buf)
            .expect("read guest memory");
        seen = buf.windows(marker.len()).any(|w| w == marker.as_bytes());
        std::thread::sleep(Duration::from_millis(50));
    }
    guest.kill();
    guest.wait().expect("outcome");
    assert!(
        seen,
        "{kind:?}: marker never appeared in boot_command_line at {phys:#x}"
    );
}

const PANIC_INIT: &str = "#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo c > /proc/sysrq-trigger
";

/// A kernel panic ends the run as `GuestPanic` with the kernel's own report
/// classified: message, crash site and process.
fn a_kernel_panic_is_classified(kind: BackendKind) {
    let kernel = test_env().kernel;
    let _slot = vm_slot();
    let cpio = initramfs(PANIC_INIT);
    let outcome = boot_with_init(kind, kernel.clone(), &cpio)
        .wait()
        .expect("outcome");
    assert_eq!(
        outcome.exit,
        Exit::GuestPanic,
        "{kind:?}: {}",
        outcome.death
    );
    match &outcome.death {
        GuestDeath::KernelCrash(crash) => {
            assert_eq!(
                crash.panic_message.as_deref(),
                Some("sysrq triggered crash")
            );
            assert!(
                crash
                    .location
                    .as_deref()
                    .is_some_and(|l| l.starts_with("sysrq_handle_crash+")),
                "{kind:?}: {}",
                outcome.death
            );
            assert!(
                crash
                    .process
                    .as_deref()
                    .is_some_and(|p| p.contains("(pid 1)")),
                "{kind:?}: {}",
                outcome.death
            );
        }
        other => panic!("{kind:?}: {other}"),
    }
    // PID 1 exiting panics the kernel too; panic=-1 turns that into a reset,
    // which the classifier reads as the panic it was (on either backend).
    let cpio = initramfs(EXIT_INIT);
    let outcome = boot_with_init(kind, kernel, &cpio).wait().expect("outcome");
    assert_eq!(
        outcome.exit,
        Exit::GuestPanic,
        "{kind:?}: {}",
        outcome.death
    );
    assert!(
        matches!(&outcome.death, GuestDeath::KernelCrash(c)
            if c.panic_message.as_deref().is_some_and(|m| m.starts_with("Attempted to kill init"))),
        "{kind:?}: {}",
        outcome.death
    );
}

/// An /init that exits: the kernel panics ("Attempted to kill init!").
const EXIT_INIT: &str = "#!/bin/sh
echo EXITING
exit 3
";

/// An /init that never ends, so only kill or the deadline can stop the guest.
const SLEEP_INIT: &str = "#!/bin/sh
exec /bin/busybox sleep 1000000
";

fn kill_ends_the_run(kind: BackendKind) {
    let kernel = test_env().kernel;
    let _slot = vm_slot();
    let cpio = initramfs(SLEEP_INIT);
    let guest = boot_with_init(kind, kernel, &cpio);
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    guest.kill();
    let outcome = guest.wait().expect("outcome");
    assert_eq!(outcome.exit, Exit::Killed);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{kind:?} took {:?} to end after kill",
        t.elapsed()
    );
}

fn deadline_ends_the_run(kind: BackendKind) {
    let kernel = test_env().kernel;
    let _slot = vm_slot();
    let cpio = initramfs(SLEEP_INIT);
    let mut s = spec(
        kernel,
        Some(cpio.to_path_buf()),
        "rdinit=/init",
        kind,
        Duration::from_secs(3),
    );
    s.deadline = Duration::from_secs(3);
    let outcome = boot(kind, &s).expect("boot").wait().expect("outcome");
    assert_eq!(
        outcome.exit,
        Exit::DeadlineExceeded,
        "COM1:\n{}",
        outcome.com1_text()
    );
    assert!(
        outcome.run_time < Duration::from_secs(10),
        "{:?}",
        outcome.run_time
    );
}

/// Boots `text` (e.g. `2n2l1c1t`) and compares what the guest reports with
/// what the topology implies: sysfs and debugfs where user space runs, the
/// kernel log (sched_verbose domain dump, CPU/node counts, SRAT) everywhere.
fn topology_seen_by_guest(kind: BackendKind, text: &str) {
    let kernel = test_env().kernel;
    let shape = ktstr_topology::resolve(text).expect("topology");
    let topo = shape.topology.clone();
    let _slot = vm_slot();
    let cpio = initramfs(common::topology::PROBE_INIT);
    let mut s = spec(
        kernel,
        Some(cpio.to_path_buf()),
        common::topology::CMDLINE,
        kind,
        Duration::from_secs(120),
    );
    s.topology = Some(topo.clone());
    s.memory_mib = shape.memory_mib(None, s.memory_mib).expect("memory");
    let outcome = boot(kind, &s).expect("boot").wait().expect("outcome");
    let com1 = outcome.com1_text();
    let tail: String = com1.lines().rev().take(30).collect::<Vec<_>>().join("\n");
    let mut bad = common::topology::compare_log(&com1, &topo, s.memory_mib);
    if user_space_runs(kind) {
        assert_eq!(outcome.exit, Exit::Reboot, "{kind:?} {text}; tail:\n{tail}");
        bad.extend(common::topology::compare_probe(
            &common::topology::parse_probe(&com1),
            &topo,
            s.memory_mib,
        ));
    } else {
        assert!(
            com1.contains("Run /init as init process"),
            "{kind:?} {text} reached /init; tail:\n{tail}"
        );
        eprintln!(
            "{kind:?} {text}: kernel log checked; sysfs needs guest user space (known host limitation)"
        );
    }
    assert!(
        bad.is_empty(),
        "{kind:?} {text}: the guest's topology differs:\n  {}\n(run time {:?}); COM1 tail:\n{tail}",
        bad.join("\n  "),
        outcome.run_time
    );
    eprintln!(
        "{kind:?} {text}: guest topology matches ({:?})",
        outcome.run_time
    );
}

/// What `kind` needs for a test; `slow_boot` marks the ktstr-vmm boots that
/// cost minutes on software KVM: there they belong to a larger run than
/// CI's, since the nested tier runs them with user space (`.ci/run` sets
/// the variable only when its nested tier is off).
fn needs(kind: BackendKind, user_space: bool, slow_boot: bool) -> Vec<Need> {
    let mut needs = vec![Need::Kernel, Need::Busybox];
    match kind {
        BackendKind::Vmm if user_space => needs.push(Need::HardwareKvm {
            software_module: software_kvm_module(),
        }),
        BackendKind::Vmm => needs.push(Need::Kvm),
        _ => needs.push(Need::Qemu),
    }
    if slow_boot && kind == BackendKind::Vmm && software_kvm() {
        needs.push(Need::LargerRun {
            var: "KTSTR_CONFORMANCE_SLOW_BOOT",
            value: "1",
            what: "ktstr-vmm's minutes-long boots on software KVM (the nested tier runs them)",
        });
    }
    needs
}

/// The shapes every backend's suite boots (its `topology_*` cases).
const SUITE_TOPOLOGIES: [&str; 2] = ["1n1l2c1t", "2n2l1c1t"];

/// A case of the suite: its name, what it needs, and its body.
type Case = (&'static str, Vec<Need>, fn(BackendKind));

/// One backend's half of the suite, each case named `<module>::<case>`.
fn suite(module: &str, kind: BackendKind) -> Vec<Test> {
    let plain = needs(kind, false, false);
    let slow = needs(kind, false, true);
    let cases: [Case; 9] = [
        (
            "boots_to_init_and_reboots",
            slow.clone(),
            boots_to_init_and_reboots,
        ),
        // The guest's echo loop is user space.
        ("wire_round_trip", needs(kind, true, false), wire_round_trip),
        (
            "a_kernel_panic_is_classified",
            needs(kind, true, false),
            a_kernel_panic_is_classified,
        ),
        (
            "snapshot_and_restore",
            needs(kind, true, false),
            snapshot_and_restore,
        ),
        (
            "reads_guest_memory",
            [plain.clone(), vec![Need::Probe(kernel_symbols)]].concat(),
            reads_guest_memory,
        ),
        ("kill_ends_the_run", plain.clone(), kill_ends_the_run),
        ("deadline_ends_the_run", plain, deadline_ends_the_run),
        ("topology_1n1l2c1t", slow.clone(), |k| {
            topology_seen_by_guest(k, SUITE_TOPOLOGIES[0])
        }),
        ("topology_2n2l1c1t", slow, |k| {
            topology_seen_by_guest(k, SUITE_TOPOLOGIES[1])
        }),
    ];
    cases
        .into_iter()
        .map(|(case, needs, run)| Test::new(format!("{module}::{case}"), &needs, move || run(kind)))
        .collect()
}

fn main() -> std::process::ExitCode {
    // Every preset of the catalogue on QEMU TCG, where guest user space
    // runs and sysfs can be read: the CI subset always, the rest with
    // KTSTR_GAUNTLET=full (64 vCPUs are slow under TCG).
    let presets = ktstr_topology::PRESETS.iter().map(|p| {
        let mut needs = needs(BackendKind::QemuTcg, false, false);
        if p.tier == ktstr_topology::PresetTier::Full {
            needs.push(ktstr_testenv::FULL_GAUNTLET);
        }
        Test::new(format!("presets::topology_{}", p.name), &needs, move || {
            topology_seen_by_guest(BackendKind::QemuTcg, p.name)
        })
    });
    // The CI presets on ktstr-vmm too (those the suite above does not
    // already boot), where sysfs and the bulk port need hardware KVM: the
    // nested tier runs them (issue 12).
    let vmm_presets = ktstr_topology::PRESETS
        .iter()
        .filter(|p| p.tier == ktstr_topology::PresetTier::Ci)
        .filter(|p| !SUITE_TOPOLOGIES.contains(&p.name))
        .map(|p| {
            Test::new(
                format!("vmm::topology_{}", p.name),
                &needs(BackendKind::Vmm, true, false),
                move || topology_seen_by_guest(BackendKind::Vmm, p.name),
            )
        });
    let mut tests = suite("qemu_tcg", BackendKind::QemuTcg);
    tests.extend(suite("vmm", BackendKind::Vmm));
    tests.extend(presets);
    tests.extend(vmm_presets);
    ktstr_testenv::run(tests)
}

//! Real QEMU, real kernel. Each test boots one TCG guest (~3-5 s), one at a time.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{NEEDS, TestEnv, Watch, builder, initramfs, test_env, vm_slot};
use ktstr_qemu::{Error, ExitKind, QemuBuilder, RunningVm, ShapeError};
use ktstr_topology::{NumaTopology, Topology, TopologyError};

const BOOT: Duration = Duration::from_secs(90);

fn boots_to_init_and_reboots_with_n_vcpus() {
    let _slot = vm_slot();
    let env = test_env();
    let initrd = initramfs(
        "echo \"KTSTR-TOKEN nproc=$(nproc)\"\n\
         echo COM2-HELLO > /dev/ttyS1",
    );
    for n in [1u32, 2] {
        let out = builder(&env, initrd.path()).vcpus(n).run().expect("run");
        let com1 = out.com1_text();
        assert_eq!(out.exit, ExitKind::Reboot, "vcpus={n}\n{com1}");
        assert!(
            com1.contains(&format!("KTSTR-TOKEN nproc={n}")),
            "vcpus={n}\n{com1}"
        );
        assert!(
            out.com2_text().contains("COM2-HELLO"),
            "com2: {:?}",
            out.com2_text()
        );
        assert!(out.status.success());
        assert!(out.timings.startup <= out.timings.total);
        eprintln!("vcpus={n}: spawn→exit {:?}", out.timings.total);
    }
}

fn virtio_serial_round_trip() {
    let _slot = vm_slot();
    let env = test_env();
    // A virtio port admits one open, so the guest reads and writes through one fd.
    let initrd = initramfs(
        "echo \"bulkname=$(cat /sys/class/virtio-ports/vport0p1/name)\"\n\
         echo hi-from-hvc0 > /dev/hvc0\n\
         exec 3<>/dev/vport0p1\n\
         read -r line <&3\n\
         echo \"$line\" | tr a-z A-Z >&3\n\
         echo ECHO-DONE\n\
         sleep 1",
    );
    let mut vm = builder(&env, initrd.path()).spawn().expect("spawn");
    let bulk = vm.bulk_sender().expect("bulk sender");
    let mut bulk_rx = Watch::from_receiver(vm.take_bulk_receiver().expect("bulk rx"));
    let mut hvc_rx = Watch::from_receiver(vm.take_console_receiver().expect("console rx"));
    // Sent before the guest opens the port: it waits in the socket.
    bulk.send(b"ping\n").expect("send");
    let got = bulk_rx.wait_for("PING\n", BOOT);
    let hvc = hvc_rx.wait_for("hi-from-hvc0", Duration::from_secs(10));
    let com1_live = String::from_utf8_lossy(&vm.com1()).into_owned();
    let out = vm.wait().expect("wait");
    let com1 = out.com1_text();
    assert!(
        got.is_some(),
        "bulk got {:?}\n{com1_live}\n{com1}",
        bulk_rx.text()
    );
    assert_eq!(bulk_rx.text(), "PING\n");
    assert!(hvc.is_some(), "hvc0 got {:?}", hvc_rx.text());
    assert!(com1.contains("bulkname=ktstr.bulk"), "{com1}");
    assert!(com1.contains("ECHO-DONE"), "{com1}");
    assert_eq!(out.exit, ExitKind::Reboot, "{com1}");
}

fn host_reads_guest_memory_while_running() {
    let _slot = vm_slot();
    let env = test_env();
    // STRICT_DEVMEM forbids /dev/mem on RAM, so the guest writes a runtime-unique marker
    // into a tmpfs file (page cache = guest RAM) and the host finds it by scanning.
    let initrd = initramfs(
        "m=$(cat /proc/sys/kernel/random/uuid)\n\
         echo \"KTSTR-MEM-$m-END\" > /tmp/marker\n\
         echo \"memuuid=$m;\"\n\
         sleep 100000",
    );
    let (mut com1, sink) = Watch::new();
    let vm = builder(&env, initrd.path())
        .memory_mib(128)
        .com1_sink(Box::new(sink))
        .spawn()
        .expect("spawn");
    let mem = vm.memory();
    assert_eq!(mem.size(), 128 << 20);
    assert!(com1.wait_for("memuuid=", BOOT).is_some(), "{}", com1.text());
    assert!(com1.wait_for(";", Duration::from_secs(5)).is_some());
    let text = com1.text();
    let uuid = text
        .split("memuuid=")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .expect("uuid")
        .to_owned();
    let marker = format!("KTSTR-MEM-{uuid}-END");
    let t = Instant::now();
    let addr = mem
        .find(marker.as_bytes())
        .expect("scan")
        .expect("marker in guest RAM");
    eprintln!("marker at {addr:#x}, scan took {:?}", t.elapsed());
    let mut buf = vec![0u8; marker.len()];
    mem.read(addr, &mut buf).expect("read");
    assert_eq!(buf, marker.as_bytes());
    assert!(matches!(
        mem.read(mem.size() - 4, &mut buf),
        Err(Error::OutOfBounds { .. })
    ));
    vm.kill_handle().kill();
    let out = vm.wait().expect("wait");
    assert_eq!(out.exit, ExitKind::Killed);
    // The view outlives the VM and its (removed) file.
    mem.read(addr, &mut buf).expect("read after exit");
}

fn sleeper() -> tempfile::NamedTempFile {
    initramfs("echo GUEST-READY\nsleep 100000")
}

/// A VM booted from a [`sleeper`] initramfs, returned once its init runs.
fn running_sleeper(env: &TestEnv, initrd: &Path) -> RunningVm {
    let (mut com1, sink) = Watch::new();
    let vm = builder(env, initrd)
        .com1_sink(Box::new(sink))
        .spawn()
        .expect("spawn");
    let up = com1.wait_for("GUEST-READY", BOOT);
    assert!(up.is_some(), "guest never ran:\n{}", com1.text());
    vm
}

fn proc_alive(pid: u32) -> bool {
    // A reaped child has no /proc entry; a zombie would show state Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn kill_from_another_thread() {
    let _slot = vm_slot();
    let env = test_env();
    let initrd = sleeper();
    let vm = running_sleeper(&env, initrd.path());
    let pid = vm.pid();
    let kill = vm.kill_handle();
    let killer = std::thread::spawn(move || {
        let t = Instant::now();
        kill.kill();
        t
    });
    let out = vm.wait().expect("wait");
    let killed_at = killer.join().expect("killer thread");
    assert_eq!(out.exit, ExitKind::Killed);
    assert!(
        killed_at.elapsed() < Duration::from_secs(3),
        "{:?}",
        killed_at.elapsed()
    );
    assert!(!proc_alive(pid), "QEMU pid {pid} still present");
}

/// Issue 17 (fault injection): QEMU SIGKILLed from outside mid-run ends the run at once,
/// classified as QEMU's failure with the signal, long before the run's deadline.
fn a_sigkilled_qemu_is_a_qemu_failure_at_once() {
    use std::os::unix::process::ExitStatusExt;
    let _slot = vm_slot();
    let env = test_env();
    let initrd = sleeper();
    let vm = running_sleeper(&env, initrd.path());
    let pid = libc::pid_t::try_from(vm.pid()).expect("pid");
    let t = Instant::now();
    // SAFETY: kill(2) on QEMU, our unreaped child (the VM is not waited on yet).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let out = vm.wait().expect("wait");
    let took = t.elapsed();
    match &out.exit {
        ExitKind::QemuFailed { status, .. } => {
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}")
        }
        other => panic!("wrong exit {other:?}"),
    }
    assert!(out.com1_text().contains("GUEST-READY"), "COM1 kept");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

fn deadline_after_boot() {
    let _slot = vm_slot();
    let env = test_env();
    let initrd = sleeper();
    let (mut com1, sink) = Watch::new();
    let mut vm = builder(&env, initrd.path())
        .com1_sink(Box::new(sink))
        .spawn()
        .expect("spawn");
    let pid = vm.pid();
    assert!(
        com1.wait_for("GUEST-READY", BOOT).is_some(),
        "{}",
        com1.text()
    );
    let t = Instant::now();
    vm.set_deadline(Duration::from_secs(3));
    let out = vm.wait().expect("wait");
    let took = t.elapsed();
    assert_eq!(out.exit, ExitKind::DeadlineExceeded);
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert!(!proc_alive(pid));
}

fn typed_errors() {
    let _slot = vm_slot();
    let env = test_env();
    let initrd = sleeper();
    let e = builder(&env, initrd.path())
        .qemu_binary("/nonexistent/qemu-system-x86_64")
        .spawn()
        .err()
        .expect("missing binary must fail");
    assert!(matches!(e, Error::QemuBinaryMissing { .. }), "{e:?}");
    assert!(e.to_string().contains("qemu-system-x86"), "{e}");

    let e = QemuBuilder::new("/nonexistent/bzImage")
        .spawn()
        .err()
        .expect("no kernel");
    assert!(matches!(e, Error::KernelMissing { .. }), "{e:?}");
    let e = builder(&env, Path::new("/nonexistent/initrd"))
        .spawn()
        .err()
        .expect("no initrd");
    assert!(matches!(e, Error::InitramfsMissing { .. }), "{e:?}");
    let e = builder(&env, initrd.path())
        .memory_mib(4096)
        .spawn()
        .err()
        .expect("too big");
    assert!(matches!(e, Error::MemoryTooLarge { .. }), "{e:?}");

    let t = Instant::now();
    let e = builder(&env, initrd.path())
        .extra_qemu_arg("-device")
        .extra_qemu_arg("ktstr-no-such-device")
        .spawn()
        .err()
        .expect("QEMU must exit early");
    match &e {
        Error::QemuExitedEarly { status, stderr } => {
            assert!(!status.success());
            assert!(stderr.contains("ktstr-no-such-device"), "{stderr}");
        }
        other => panic!("expected QemuExitedEarly, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(20));
}

fn topology_one_socket_two_cores() {
    let _slot = vm_slot();
    let env = test_env();
    // NUMA nodes whose memory does not add up to the VM's are rejected before launch.
    let shape = |text: &str| -> NumaTopology {
        let t: Topology = text.parse().expect(text);
        t.to_numa().expect(text)
    };
    let mut numa = shape("2n2l1c1t");
    numa.nodes[0].memory_mib = Some(128);
    numa.nodes[1].memory_mib = Some(1);
    let initrd = initramfs(
        "echo \"nproc=$(nproc)\"\n\
         for c in /sys/devices/system/cpu/cpu[0-9]*; do \
           echo \"$(basename $c) pkg=$(cat $c/topology/physical_package_id) core=$(cat $c/topology/core_id)\"; done\n\
         for n in /sys/devices/system/node/node*; do echo \"$(basename $n) cpulist=$(cat $n/cpulist)\"; done",
    );
    let e = builder(&env, initrd.path())
        .topology(numa)
        .spawn()
        .err()
        .expect("numa");
    assert!(
        matches!(
            e,
            Error::Topology(ShapeError::Invalid(TopologyError::MemoryMismatch {
                nodes_mib: 129,
                ..
            }))
        ),
        "{e:?}"
    );
    let out = builder(&env, initrd.path())
        .topology(shape("1n1l2c1t"))
        .run()
        .expect("run");
    let com1 = out.com1_text();
    assert_eq!(out.exit, ExitKind::Reboot, "{com1}");
    for want in [
        "nproc=2",
        "cpu0 pkg=0 core=0",
        "cpu1 pkg=0 core=1",
        "node0 cpulist=0-1",
    ] {
        assert!(com1.contains(want), "missing {want:?}\n{com1}");
    }
    assert!(!com1.contains("node1"), "{com1}");
}

fn caller_panic_kills_and_cleans_up() {
    let _slot = vm_slot();
    let env = test_env();
    let initrd = sleeper();
    let shm_before = shm_files();
    let (tx, rx) = std::sync::mpsc::channel();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let vm = builder(&env, initrd.path()).spawn().expect("spawn");
        let _ = tx.send(vm.pid());
        // resume_unwind skips the panic hook, so no backtrace noise in the test log.
        std::panic::resume_unwind(Box::new("caller panics while the VM runs"));
    }));
    assert!(r.is_err());
    let pid = rx.recv().expect("pid");
    assert!(
        !proc_alive(pid),
        "QEMU pid {pid} survived the caller's panic"
    );
    assert_eq!(shm_files(), shm_before, "ktstr file left in /dev/shm");
}

fn shm_files() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ktstr"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn poweroff_is_shutdown_and_init_exit_resets_after_its_panic() {
    let _slot = vm_slot();
    let env = test_env();
    // poweroff goes through microvm's ACPI GED (S5): QMP SHUTDOWN reason guest-shutdown.
    let initrd = initramfs("echo BYE\npoweroff -f\nsleep 100000");
    let out = builder(&env, initrd.path()).run().expect("run");
    assert_eq!(out.exit, ExitKind::Shutdown, "{}", out.com1_text());
    // PID 1 exiting panics the kernel ("Attempted to kill init!"), which panic=-1 turns
    // into a reset: QEMU sees the reset, COM1 shows it was a panic. Calling that a
    // guest panic is ktstr-backend's death classifier's job (its conformance suite
    // asserts it on both backends), not a second text match here.
    let initrd = initramfs("echo EXITING\nexit 3");
    let out = builder(&env, initrd.path()).run().expect("run");
    assert_eq!(out.exit, ExitKind::Reboot, "{}", out.com1_text());
    assert!(
        out.com1_text().contains("Attempted to kill init"),
        "{}",
        out.com1_text()
    );
}

/// Env var that turns the test below into its own child: it names the initramfs to boot;
/// the child starts a VM, waits until the guest runs, prints QEMU's pid, then hangs.
const ORPHAN_CHILD: &str = "KTSTR_QEMU_ORPHAN_CHILD";

/// `/proc/<pid>/fd` targets: (fd number, link text, (device, inode) of the open file).
fn open_files(pid: u32) -> Vec<(String, String, (u64, u64))> {
    use std::os::unix::fs::MetadataExt;
    let dir = format!("/proc/{pid}/fd");
    let mut v = Vec::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let link = std::fs::read_link(e.path()).map(|l| l.to_string_lossy().into_owned());
        // stat follows the magic link to the open file itself, named or not.
        if let (Ok(link), Ok(m)) = (link, std::fs::metadata(e.path())) {
            let fd = e.file_name().to_string_lossy().into_owned();
            v.push((fd, link, (m.dev(), m.ino())));
        }
    }
    v
}

fn parent_pid(pid: &str) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces or parentheses: fields after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn all_pids() -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Issue 17: SIGKILL of a test process mid-run (no destructor runs) leaves nothing, at
/// once, with no later run sweeping: QEMU is gone, no process is left whose parent was
/// the test, nothing the test or QEMU had open survives in any process or on disk, and
/// neither /dev/shm nor the temp dir gained an entry.
fn a_sigkilled_caller_leaves_no_qemu_no_files_no_fds() {
    if let Some(initrd) = std::env::var_os(ORPHAN_CHILD) {
        // The parent holds the VM slot for both of them.
        let vm = running_sleeper(&test_env(), Path::new(&initrd));
        println!("QEMU_PID={}", vm.pid());
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let _slot = vm_slot();
    use std::io::{BufRead, BufReader};
    let initrd = sleeper();
    // The child's temp dir is private, so "no new entry" cannot be confused by other runs.
    let tmp = tempfile::Builder::new()
        .prefix("ktstr-qemu-sigkill-")
        .tempdir()
        .expect("temp dir");
    let shm = Path::new("/dev/shm");
    let shm_before = names_in(shm);
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_sigkilled_caller_leaves_no_qemu_no_files_no_fds",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ORPHAN_CHILD, initrd.path())
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("re-exec the test binary");
    let caller = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let qemu: u32 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest prints "test name ... " on the same line first.
        .find_map(|l| {
            l.split("QEMU_PID=")
                .nth(1)
                .and_then(|p| p.trim().parse().ok())
        })
        .expect("child printed QEMU's pid"); // the pipe's read end is closed here
    assert!(proc_alive(qemu), "QEMU {qemu} running under the child");
    // What the run made that could outlive it: RAM, sockets, pipes, shm and temp files;
    // not what this process holds too (the initramfs, cargo's jobserver pipe).
    let ours: std::collections::HashSet<(u64, u64)> = open_files(std::process::id())
        .into_iter()
        .map(|f| f.2)
        .collect();
    let temp = std::env::temp_dir();
    let made_by_the_run = |link: &str| {
        ["/memfd:", "socket:", "pipe:", "/dev/shm/"]
            .iter()
            .any(|p| link.starts_with(p))
            || ((link.starts_with(&*tmp.path().to_string_lossy())
                || link.starts_with(&*temp.to_string_lossy()))
                && link != initrd.path().to_string_lossy())
    };
    let held: Vec<(String, String, (u64, u64))> = [caller, qemu]
        .iter()
        .flat_map(|&p| open_files(p))
        .filter(|(_, link, id)| made_by_the_run(link) && !ours.contains(id))
        .collect();
    assert!(
        held.iter()
            .any(|(_, l, _)| l.starts_with("/memfd:ktstr-qemu-ram"))
            || held.iter().any(|(_, l, _)| l.starts_with("/dev/shm/")),
        "guest RAM not among the open files: {held:?}"
    );
    child.kill().expect("SIGKILL the caller"); // no Drop, no cleanup: like panic=abort
    let killed = Instant::now();
    child.wait().expect("reap the caller");
    while proc_alive(qemu) && killed.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let qemu_gone_after = killed.elapsed();
    assert!(
        !proc_alive(qemu),
        "QEMU {qemu} outlived its SIGKILLed caller"
    );
    let orphans: Vec<String> = all_pids()
        .into_iter()
        .filter(|p| parent_pid(p) == Some(caller))
        .collect();
    assert!(
        orphans.is_empty(),
        "children of the killed caller: {orphans:?}"
    );
    let inodes: std::collections::HashSet<(u64, u64)> = held.iter().map(|h| h.2).collect();
    let survivors: Vec<(String, String)> = all_pids()
        .into_iter()
        .filter_map(|p| p.parse::<u32>().ok())
        .flat_map(|p| {
            open_files(p)
                .into_iter()
                .filter(|(_, _, id)| inodes.contains(id))
                .map(move |(fd, link, _)| (format!("pid {p} fd {fd}"), link))
        })
        .collect();
    assert!(
        survivors.is_empty(),
        "files of the killed run still open: {survivors:?}"
    );
    for (_, link, _) in &held {
        if link.starts_with('/') && !link.starts_with("/memfd:") {
            let path = link.trim_end_matches(" (deleted)");
            assert!(!Path::new(path).exists(), "{path} was left on disk");
        }
    }
    assert_eq!(
        names_in(tmp.path()),
        Vec::<String>::new(),
        "left in the caller's temp dir"
    );
    let new_shm: Vec<String> = names_in(shm)
        .into_iter()
        .filter(|n| !shm_before.contains(n))
        .filter(|n| n.contains(&caller.to_string()) || n.contains(&qemu.to_string()))
        .collect();
    assert!(new_shm.is_empty(), "left in /dev/shm: {new_shm:?}");
    eprintln!(
        "QEMU gone {qemu_gone_after:.2?} after SIGKILL of its caller; {} open files checked",
        held.len()
    );
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![NEEDS; boots_to_init_and_reboots_with_n_vcpus, virtio_serial_round_trip, host_reads_guest_memory_while_running, kill_from_another_thread, a_sigkilled_qemu_is_a_qemu_failure_at_once, deadline_after_boot, typed_errors, topology_one_socket_two_cores, caller_panic_kills_and_cleans_up, poweroff_is_shutdown_and_init_exit_resets_after_its_panic, a_sigkilled_caller_leaves_no_qemu_no_files_no_fds],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}

//! Real QEMU, real kernel. Each test boots one TCG guest (~3-5 s), one at a time.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Watch, builder, initramfs, test_env, vm_lock};
use ktstr_qemu::{Error, ExitKind, QemuBuilder, ShapeError};
use ktstr_topology::{NumaTopology, Topology, TopologyError};

const BOOT: Duration = Duration::from_secs(90);

#[test]
fn boots_to_init_and_reboots_with_n_vcpus() {
    let _g = vm_lock();
    let Some(env) = test_env("boots_to_init_and_reboots_with_n_vcpus") else {
        return;
    };
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

#[test]
fn virtio_serial_round_trip() {
    let _g = vm_lock();
    let Some(env) = test_env("virtio_serial_round_trip") else {
        return;
    };
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

#[test]
fn host_reads_guest_memory_while_running() {
    let _g = vm_lock();
    let Some(env) = test_env("host_reads_guest_memory_while_running") else {
        return;
    };
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

fn proc_alive(pid: u32) -> bool {
    // A reaped child has no /proc entry; a zombie would show state Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn kill_from_another_thread() {
    let _g = vm_lock();
    let Some(env) = test_env("kill_from_another_thread") else {
        return;
    };
    let initrd = sleeper();
    let (mut com1, sink) = Watch::new();
    let vm = builder(&env, initrd.path())
        .com1_sink(Box::new(sink))
        .spawn()
        .expect("spawn");
    let pid = vm.pid();
    assert!(
        com1.wait_for("GUEST-READY", BOOT).is_some(),
        "{}",
        com1.text()
    );
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

#[test]
fn deadline_after_boot() {
    let _g = vm_lock();
    let Some(env) = test_env("deadline_after_boot") else {
        return;
    };
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

#[test]
fn typed_errors() {
    let _g = vm_lock();
    let Some(env) = test_env("typed_errors") else {
        return;
    };
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

#[test]
fn topology_one_socket_two_cores() {
    let _g = vm_lock();
    let Some(env) = test_env("topology_one_socket_two_cores") else {
        return;
    };
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

#[test]
fn caller_panic_kills_and_cleans_up() {
    let _g = vm_lock();
    let Some(env) = test_env("caller_panic_kills_and_cleans_up") else {
        return;
    };
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
    assert_eq!(
        shm_files(),
        shm_before,
        "guest memory file left in /dev/shm"
    );
}

fn shm_files() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ktstr-qemu-mem-"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn poweroff_is_shutdown_and_init_exit_is_panic() {
    let _g = vm_lock();
    let Some(env) = test_env("poweroff_is_shutdown_and_init_exit_is_panic") else {
        return;
    };
    // poweroff goes through microvm's ACPI GED (S5): QMP SHUTDOWN reason guest-shutdown.
    let initrd = initramfs("echo BYE\npoweroff -f\nsleep 100000");
    let out = builder(&env, initrd.path()).run().expect("run");
    assert_eq!(out.exit, ExitKind::Shutdown, "{}", out.com1_text());
    // PID 1 exiting panics the kernel ("Attempted to kill init!"), which panic=-1 turns
    // into a reset; COM1 shows it was a panic.
    let initrd = initramfs("echo EXITING\nexit 3");
    let out = builder(&env, initrd.path()).run().expect("run");
    assert_eq!(out.exit, ExitKind::GuestPanic, "{}", out.com1_text());
    assert!(
        out.com1_text().contains("Attempted to kill init"),
        "{}",
        out.com1_text()
    );
}

/// Env var that turns the test below into its own child: start a VM, print
/// QEMU's pid, then hang until killed.
const ORPHAN_CHILD: &str = "KTSTR_QEMU_ORPHAN_CHILD";

#[test]
fn qemu_dies_with_a_sigkilled_caller() {
    if std::env::var_os(ORPHAN_CHILD).is_some() {
        let env = test_env("qemu_dies_with_a_sigkilled_caller (child)").expect("env");
        let initrd = sleeper();
        let vm = builder(&env, initrd.path()).spawn().expect("spawn");
        // The parent removes this file: SIGKILL leaves the child no chance to.
        println!("INITRD={}", initrd.path().display());
        println!("QEMU_PID={}", vm.pid());
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let _g = vm_lock();
    if test_env("qemu_dies_with_a_sigkilled_caller").is_none() {
        return;
    }
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "qemu_dies_with_a_sigkilled_caller",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ORPHAN_CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("re-exec the test binary");
    let stdout = child.stdout.take().expect("stdout");
    let mut initrd = None;
    let pid: u32 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest prints "test name ... " on the same line first.
        .find_map(|l| {
            if let Some(p) = l.split("INITRD=").nth(1) {
                initrd = Some(std::path::PathBuf::from(p.trim()));
            }
            l.split("QEMU_PID=")
                .nth(1)
                .and_then(|p| p.trim().parse().ok())
        })
        .expect("child printed QEMU's pid");
    assert!(proc_alive(pid), "QEMU {pid} running under the child");
    child.kill().expect("SIGKILL the caller"); // no Drop, no cleanup: like panic=abort
    child.wait().expect("reap the caller");
    let give_up = Instant::now() + Duration::from_secs(5);
    while proc_alive(pid) && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!proc_alive(pid), "QEMU {pid} outlived its SIGKILLed caller");
    // What the killed caller could not remove: its initramfs, and the guest RAM file and
    // socket directory named after its pid (the next run would sweep those; do it now).
    if let Some(p) = initrd {
        let _ = std::fs::remove_file(p);
    }
    let owned = format!("-{}-", child.id());
    for dir in [std::path::PathBuf::from("/dev/shm"), std::env::temp_dir()] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("ktstr-qemu-") && name.contains(&owned) {
                let _ = std::fs::remove_dir_all(e.path());
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

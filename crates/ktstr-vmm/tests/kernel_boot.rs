//! Kernel tier: the real test kernel (`KTSTR_KERNEL`) boots a busybox
//! initramfs built here; `/init` prints a token with `nproc` and reboots.

mod common;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use common::cpio::{Entry, archive};
use common::{busybox, is_software_kvm, kernel, kvm_available, tiny_init};
use ktstr_vmm::{ExitKind, VmBuilder};

/// How long a boot may take: minutes on software KVM, seconds on hardware.
fn boot_deadline() -> Duration {
    let secs = std::env::var("KTSTR_BOOT_DEADLINE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200);
    Duration::from_secs(secs)
}

const TOKEN: &str = "KTSTR-TOKEN-7f3a online=";

const BUSYBOX_INIT: &str = "#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
echo \"KTSTR-TOKEN-7f3a online=$(/bin/busybox cat /sys/devices/system/cpu/online) nproc=$(/bin/busybox nproc)\"
/bin/busybox reboot -f
";

/// Which `/init` the initramfs carries.
enum Init {
    /// Debian's static busybox running a shell script (uses `syscall`).
    Busybox(PathBuf),
    /// The `int $0x80` init assembled by the test (see `common::tiny_init`).
    Tiny,
}

fn initramfs(init: &Init) -> PathBuf {
    let tiny = tiny_init::build(TOKEN);
    let bb = match init {
        Init::Busybox(path) => std::fs::read(path).expect("read busybox"),
        Init::Tiny => Vec::new(),
    };
    let mut entries = vec![
        Entry::Dir("bin"),
        Entry::Dir("proc"),
        Entry::Dir("sys"),
        Entry::Dir("dev"),
        Entry::CharDev {
            path: "dev/console",
            major: 5,
            minor: 1,
        },
    ];
    match init {
        Init::Busybox(_) => entries.extend([
            Entry::File {
                path: "bin/busybox",
                mode: 0o755,
                data: &bb,
            },
            Entry::Symlink {
                path: "bin/sh",
                target: "busybox",
            },
            Entry::File {
                path: "init",
                mode: 0o755,
                data: BUSYBOX_INIT.as_bytes(),
            },
        ]),
        Init::Tiny => entries.push(Entry::File {
            path: "init",
            mode: 0o755,
            data: &tiny,
        }),
    }
    let path = std::env::temp_dir().join(format!(
        "ktstr-kernel-boot-{}-{}.cpio",
        std::process::id(),
        matches!(init, Init::Tiny)
    ));
    std::fs::write(&path, archive(&entries)).expect("write initramfs");
    path
}

/// Kernel boots run one at a time: on a slow host, concurrent boots starve
/// each other past their deadlines (and trip the guests' lockup detectors).
static ONE_BOOT_AT_A_TIME: Mutex<()> = Mutex::new(());

fn boot_and_count_cpus(init: Init, vcpus: usize) {
    let Some(kernel) = kernel() else { return };
    let _serial = ONE_BOOT_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // COM1 is streamed to a file as it arrives, for post-mortems of slow boots.
    let log_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "kernel-boot-{}-{vcpus}cpu.log",
        if matches!(init, Init::Tiny) {
            "tiny"
        } else {
            "busybox"
        }
    ));
    let log = std::fs::File::create(&log_path).expect("COM1 log file");
    eprintln!("COM1 of this boot streams to {}", log_path.display());
    let initramfs = initramfs(&init);
    let console = ktstr_vmm::virtio_console();
    let vm = VmBuilder::new()
        .kernel(&kernel)
        .initramfs(&initramfs)
        .virtio_console(&console.sender)
        .com1_sink(Box::new(log))
        .cmdline("console=hvc0 console=ttyS0 rdinit=/init")
        .vcpus(vcpus)
        .memory_mib(256)
        .deadline(boot_deadline())
        .build()
        .expect("build");
    let outcome = vm.run().expect("run");
    std::fs::remove_file(&initramfs).ok();
    let com1 = outcome.com1_text();
    let tail = com1
        .lines()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!(
        "boot with {vcpus} vCPU(s): {:?} in {:?}, shims {:?}",
        outcome.exit, outcome.timings.run, outcome.shims
    );
    assert_eq!(outcome.exit, ExitKind::Reboot, "COM1 tail:\n{tail}");
    assert!(
        com1.contains(&format!("smp: Brought up 1 node, {vcpus} CPU")),
        "kernel brought up {vcpus} CPUs; COM1 tail:\n{tail}"
    );
    assert!(
        com1.contains("Run /init as init process"),
        "kernel reached user space; COM1 tail:\n{tail}"
    );
    if is_software_kvm() {
        // Host limitation (see tiny_init): /init runs in user mode, faults on
        // its first system call, and panic=-1 reboots the VM.
        assert!(
            com1.contains("init[1]: segfault at") && com1.contains("RIP: 0033:"),
            "/init ran in user mode; COM1 tail:\n{tail}"
        );
        eprintln!(
            "software KVM: /init executed and faulted on its first system call (known host limitation)"
        );
        return;
    }
    let online = if vcpus == 1 {
        "0".to_string()
    } else {
        format!("0-{}", vcpus - 1)
    };
    let expected = format!("{TOKEN}{online}");
    assert!(
        com1.contains(&expected),
        "expected {expected:?}; COM1 tail:\n{tail}"
    );
    if let Init::Busybox(_) = init {
        assert!(
            com1.contains(&format!("nproc={vcpus}")),
            "busybox nproc; COM1 tail:\n{tail}"
        );
    }
}

#[test]
fn kernel_boots_to_init_and_reboots_with_one_vcpu() {
    if kvm_available() {
        boot_and_count_cpus(Init::Tiny, 1);
    }
}

#[test]
fn kernel_boots_to_init_and_reboots_with_two_vcpus() {
    if kvm_available() {
        boot_and_count_cpus(Init::Tiny, 2);
    }
}

/// Busybox needs a host whose KVM runs guest user-space `syscall` correctly:
/// hardware KVM does; kvm-pvm does not (see `common::tiny_init`).
#[test]
fn kernel_boots_busybox_and_reports_nproc() {
    if !kvm_available() {
        return;
    }
    if is_software_kvm() {
        eprintln!(
            "SKIP (host limitation, not a missing resource): software KVM faults guest user-space `syscall`; the tiny-init tests cover this host"
        );
        return;
    }
    let Some(bb) = busybox() else { return };
    for vcpus in [1, 2] {
        boot_and_count_cpus(Init::Busybox(bb.clone()), vcpus);
    }
}

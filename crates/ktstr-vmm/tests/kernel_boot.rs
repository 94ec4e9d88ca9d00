//! Kernel tier: the real test kernel (`KTSTR_KERNEL`) boots a busybox
//! initramfs built here; `/init` prints a token with `nproc` and reboots.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Need, busybox, hardware_kvm, is_software_kvm, test_env, tiny_init, vm_slot};
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

/// What the busybox init writes to COM2 (`/dev/ttyS1`) from user space:
/// the interrupt-driven UART path the guest init's `PANIC:` line takes.
const COM2_TOKEN: &str = "KTSTR-COM2-5c1e";

const BUSYBOX_INIT: &str = "#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
echo \"KTSTR-TOKEN-7f3a online=$(/bin/busybox cat /sys/devices/system/cpu/online) nproc=$(/bin/busybox nproc)\"
echo KTSTR-COM2-5c1e > /dev/ttyS1
/bin/busybox cat /proc/tty/driver/serial /proc/interrupts
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
    let path = std::env::temp_dir().join(format!(
        "ktstr-kernel-boot-{}-{}.cpio",
        std::process::id(),
        matches!(init, Init::Tiny)
    ));
    let init = match init {
        Init::Busybox(busybox) => common::Init::Busybox {
            busybox,
            script: BUSYBOX_INIT,
        },
        Init::Tiny => common::Init::Tiny(tiny_init::build(TOKEN)),
    };
    common::initramfs(&path, init)
}

fn boot_and_count_cpus(init: Init, vcpus: usize) {
    let kernel = test_env().kernel;
    // On a slow host, concurrent boots starve each other past their
    // deadlines (and trip the guests' lockup detectors).
    let _slot = vm_slot();
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
    let user = user_output(&com1);
    assert!(
        user.contains(&expected),
        "expected {expected:?}; COM1 tail:\n{tail}"
    );
    if let Init::Busybox(_) = init {
        assert!(
            user.contains(&format!("nproc={vcpus}")),
            "busybox nproc; COM1 tail:\n{tail}"
        );
        // Exactly the line, nothing lost: before it only the 0xFF that Linux
        // writes to a legacy port it found without firmware tables, to probe
        // its IRQ (8250 autoconfig_irq; ktstr-vmm boots without ACPI here).
        let com2 = &outcome.com2;
        assert_eq!(
            com2.strip_prefix(b"\xff").unwrap_or(com2),
            format!("{COM2_TOKEN}\r\n").as_bytes(),
            "user space's line on COM2: \"{}\"; COM1 tail:\n{tail}",
            com2.escape_ascii()
        );
    }
}

/// COM1 without the kernel's log records, wherever they start: a printk
/// can land inside /init's line (seen in the nested tier:
/// `online=[   24.027048] hrtimer: interrupt took 43603176 ns` then `0-1`).
fn user_output(com1: &str) -> String {
    let mut out = String::new();
    let mut rest = com1;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        if starts_with_printk_stamp(at) {
            rest = at.find('\n').map_or("", |n| &at[n + 1..]);
        } else {
            out.push('[');
            rest = &at[1..];
        }
    }
    out.push_str(rest);
    out
}

/// `[  SECONDS.MICROS]`, the time stamp a kernel log record starts with.
fn starts_with_printk_stamp(s: &str) -> bool {
    let Some(end) = s.find(']') else {
        return false;
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    s[1..end]
        .trim_start()
        .split_once('.')
        .is_some_and(|(secs, micros)| digits(secs) && digits(micros))
}

fn kernel_lines_inside_a_user_line_are_cut_out() {
    let com1 = "[    1.5] Run /init\nTOKEN online=[   24.027048] hrtimer: took 4 ns\n0-1 [x]\n";
    assert_eq!(user_output(com1), "TOKEN online=0-1 [x]\n");
}

fn kernel_boots_to_init_and_reboots_with_one_vcpu() {
    boot_and_count_cpus(Init::Tiny, 1);
}

fn kernel_boots_to_init_and_reboots_with_two_vcpus() {
    boot_and_count_cpus(Init::Tiny, 2);
}

/// Busybox needs a host whose KVM runs guest user-space `syscall` correctly:
/// hardware KVM does; kvm-pvm does not (see `common::tiny_init`): there it
/// is ignored, the tiny-init tests covering that host.
fn kernel_boots_busybox_and_reports_nproc() {
    let bb = busybox();
    for vcpus in [1, 2] {
        boot_and_count_cpus(Init::Busybox(bb.clone()), vcpus);
    }
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![&[Need::Kvm, Need::Kernel]; kernel_boots_to_init_and_reboots_with_one_vcpu, kernel_boots_to_init_and_reboots_with_two_vcpus],
        ktstr_testenv::tests![&[hardware_kvm(), Need::Kernel, Need::Busybox]; kernel_boots_busybox_and_reports_nproc],
        ktstr_testenv::tests![&[]; kernel_lines_inside_a_user_line_are_cut_out],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}

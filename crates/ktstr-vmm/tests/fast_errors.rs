//! Fast tier: every typed error from its bad input. None may panic or hang.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use ktstr_vmm::{CmdlineError, ConfigError, HostError, ImageError, VmBuilder, VmmError};

fn build_err(builder: VmBuilder) -> VmmError {
    match builder.build() {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("ktstr-errors-{}-{name}", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes))
        .expect("temp file");
    path
}

fn config_errors_need_no_kvm() {
    let raw = || VmBuilder::new().raw_image(vec![0xf4], LOAD_ADDR);
    assert!(matches!(
        build_err(raw().vcpus(0)),
        VmmError::Config(ConfigError::NoVcpus)
    ));
    assert!(matches!(
        build_err(raw().deadline(Duration::ZERO)),
        VmmError::Config(ConfigError::ZeroDeadline)
    ));
    assert!(matches!(
        build_err(raw().memory_mib(1)),
        VmmError::Config(ConfigError::MemoryTooSmall { .. })
    ));
    assert!(matches!(
        build_err(raw().memory_mib(u64::MAX / 2)),
        VmmError::Config(ConfigError::MemoryTooLarge { .. })
    ));
    assert!(matches!(
        build_err(VmBuilder::new()),
        VmmError::Config(ConfigError::NoKernel)
    ));
    assert!(matches!(
        build_err(raw().profile(Duration::ZERO)),
        VmmError::Config(ConfigError::ProfileIntervalTooShort { .. })
    ));
}

fn an_unrepresentable_deadline_is_no_deadline() {
    let code = common::assemble(common::reboot);
    let outcome = common::run(
        VmBuilder::new()
            .raw_image(code, LOAD_ADDR)
            .memory_mib(16)
            .deadline(Duration::MAX),
    );
    assert_eq!(outcome.exit, ktstr_vmm::ExitKind::Reboot);
}

fn missing_or_wrong_kvm_device_is_named() {
    let raw = || VmBuilder::new().raw_image(vec![0xf4], LOAD_ADDR);
    let e = build_err(raw().kvm_path("/nonexistent/kvm"));
    assert!(
        matches!(e, VmmError::Host(HostError::KvmMissing { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("/nonexistent/kvm"));
    assert!(matches!(
        build_err(raw().kvm_path("/dev/null")),
        VmmError::Host(HostError::KvmOpen { .. })
    ));
}

fn too_many_vcpus_names_the_host_limit() {
    match build_err(
        VmBuilder::new()
            .raw_image(vec![0xf4], LOAD_ADDR)
            .vcpus(100_000),
    ) {
        VmmError::Host(HostError::TooManyVcpus {
            requested: 100_000,
            max,
        }) => assert!(max >= 1),
        e => panic!("{e}"),
    }
}

fn kernel_file_errors() {
    let e = build_err(VmBuilder::new().kernel("/nonexistent/vmlinux"));
    assert!(
        matches!(e, VmmError::Image(ImageError::KernelMissing { .. })),
        "{e}"
    );
    let garbage = temp_file("garbage", &[0x5a; 8192]);
    let e = build_err(VmBuilder::new().kernel(&garbage));
    assert!(
        matches!(e, VmmError::Image(ImageError::NotAKernel { .. })),
        "{e}"
    );
    let elf32 = temp_file("elf32", b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0");
    let e = build_err(VmBuilder::new().kernel(&elf32));
    assert!(
        matches!(e, VmmError::Image(ImageError::NotAKernel { .. })),
        "{e}"
    );
    let dir = std::env::temp_dir();
    let e = build_err(VmBuilder::new().kernel(&dir));
    assert!(
        matches!(
            e,
            VmmError::Image(ImageError::KernelUnreadable { .. })
                | VmmError::Image(ImageError::NotAKernel { .. })
        ),
        "{e}"
    );
    for p in [garbage, elf32] {
        std::fs::remove_file(p).ok();
    }
}

fn raw_image_outside_memory_is_rejected() {
    let e = build_err(
        VmBuilder::new()
            .raw_image(vec![0x90; 16], 64 << 20)
            .memory_mib(16),
    );
    assert!(
        matches!(e, VmmError::Image(ImageError::RawImageOutOfRange { .. })),
        "{e}"
    );
}

fn overlapping_devices_are_rejected() {
    // COM1 already lives at 0x3f8.
    let e = build_err(VmBuilder::new().raw_image(vec![0xf4], LOAD_ADDR).device(
        ktstr_vmm::IoSpace::Pio,
        0x3f8,
        1,
        Box::new(Recorder::default()),
    ));
    assert!(
        matches!(
            e,
            VmmError::Config(ConfigError::DeviceOverlap { base: 0x3f8, .. })
        ),
        "{e}"
    );
}

fn real_kernel_input_errors() {
    let kernel = test_env().kernel;
    let e = build_err(VmBuilder::new().kernel(&kernel).memory_mib(8));
    assert!(
        matches!(e, VmmError::Config(ConfigError::MemoryTooSmall { .. })),
        "{e}"
    );
    let e = build_err(VmBuilder::new().kernel(&kernel).cmdline(&"x".repeat(4096)));
    assert!(
        matches!(e, VmmError::Config(ConfigError::CmdlineTooLong { max, .. }) if max < 4096),
        "{e}"
    );
    let e = build_err(VmBuilder::new().kernel(&kernel).cmdline("a\0b"));
    assert!(
        matches!(
            e,
            VmmError::Config(ConfigError::CmdlineInvalid(CmdlineError::NulByte))
        ),
        "{e}"
    );
    let big = temp_file("big-initramfs", &[]);
    std::fs::File::options()
        .write(true)
        .open(&big)
        .and_then(|f| f.set_len(200 << 20))
        .expect("sparse file");
    let e = build_err(
        VmBuilder::new()
            .kernel(&kernel)
            .initramfs(&big)
            .memory_mib(128),
    );
    std::fs::remove_file(&big).ok();
    assert!(
        matches!(e, VmmError::Image(ImageError::InitramfsTooLarge { .. })),
        "{e}"
    );
    let e = build_err(
        VmBuilder::new()
            .kernel(&kernel)
            .initramfs("/nonexistent/initramfs"),
    );
    assert!(
        matches!(e, VmmError::Image(ImageError::InitramfsUnreadable { .. })),
        "{e}"
    );
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![&[Need::Kvm, Need::Kernel]; real_kernel_input_errors],
        ktstr_testenv::tests![&[Need::Kvm]; an_unrepresentable_deadline_is_no_deadline, too_many_vcpus_names_the_host_limit, kernel_file_errors, raw_image_outside_memory_is_rejected, overlapping_devices_are_rejected],
        ktstr_testenv::tests![&[]; config_errors_need_no_kvm, missing_or_wrong_kvm_device_is_named],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}

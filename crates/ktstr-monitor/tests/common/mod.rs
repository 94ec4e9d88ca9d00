//! Shared by the monitor's kernel-tier tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The ELF vmlinux of the test kernel: `KTSTR_KERNEL` itself, or the
/// `vmlinux` beside it when that is a bzImage.
pub fn vmlinux_path() -> PathBuf {
    let kernel = ktstr_testenv::test_env().kernel;
    let is_elf = std::fs::read(&kernel)
        .map(|b| b.starts_with(b"\x7fELF"))
        .unwrap_or(false);
    if is_elf {
        return kernel;
    }
    let beside = kernel.with_file_name("vmlinux");
    assert!(
        beside.is_file(),
        "{} is not an ELF vmlinux and no vmlinux is beside it",
        kernel.display()
    );
    beside
}

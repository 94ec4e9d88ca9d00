//! Shared by the harness's VM tests: kernel and scheduler discovery with the
//! SKIP/CI rule, one VM at a time, and the kernel's release string.
#![allow(dead_code)]

use std::path::Path;

use std::time::Duration;

use ktstr_harness::SessionConfig;

pub use ktstr_testenv::{TestEnv, scheduler, vm_lock};

/// Kernel, QEMU, busybox and the named schedulers (see `ktstr_testenv`).
pub fn test_env(test: &str, schedulers: &[&str]) -> Option<TestEnv> {
    ktstr_testenv::test_env(
        test,
        ktstr_testenv::Needs {
            qemu: true,
            busybox: true,
            schedulers,
        },
    )
}

/// A session config with a private cache dir (removed with the guard).
pub fn config(env: &TestEnv, schedulers: &[&str]) -> (SessionConfig, tempfile::TempDir) {
    let cache = tempfile::Builder::new()
        .prefix("ktstr-harness-cache-")
        .tempdir()
        .expect("cache dir");
    let mut cfg = SessionConfig::new(&env.kernel);
    cfg.schedulers = schedulers.iter().map(|s| scheduler(s)).collect();
    cfg.cache_dir = cache.path().to_owned();
    // These tests are about what a booted guest does; the snapshot test opts in.
    cfg.snapshots = false;
    cfg.snapshot_dir = cache.path().join("snapshots");
    cfg.deadline = Duration::from_secs(540);
    (cfg, cache)
}

/// The release in the kernel image: `Linux version X` in a vmlinux, or the
/// bzImage setup header's version string (pointer at 0x20e, from 0x200).
pub fn kernel_release(kernel: &Path) -> String {
    let img = std::fs::read(kernel).expect("read kernel");
    let needle = b"Linux version ";
    if let Some(at) = img.windows(needle.len()).position(|w| w == needle) {
        let rest = &img[at + needle.len()..];
        let end = rest.iter().position(|&b| b == b' ').expect("release end");
        return String::from_utf8_lossy(&rest[..end]).into_owned();
    }
    let ptr = u16::from_le_bytes([img[0x20e], img[0x20f]]) as usize + 0x200;
    let rest = &img[ptr..];
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == 0)
        .expect("release end");
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

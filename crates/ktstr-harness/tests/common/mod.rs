//! Shared by the harness's VM tests: what they need (checked by
//! `ktstr_testenv`'s runner), their session config, and the kernel's release
//! string.
#![allow(dead_code)]

pub mod stress;

use std::path::Path;

use std::time::Duration;

use ktstr_harness::SessionConfig;

use std::path::PathBuf;

pub use ktstr_testenv::{Need, TestEnv, test_env, vm_slot};

/// A session test's prerequisites: kernel, busybox, `schedulers`, and what
/// the chosen backend needs.
pub fn needs(schedulers: &[&'static str]) -> Vec<Need> {
    let mut needs = vec![Need::Kernel, Need::Busybox];
    needs.extend(schedulers.iter().map(|s| Need::Scheduler(s)));
    needs.extend(ktstr_harness::test::backend_needs());
    needs
}

/// A scheduler the runner found ([`Need::Scheduler`]).
pub fn scheduler(name: &str) -> PathBuf {
    ktstr_testenv::find_scheduler(name).unwrap_or_else(|m| panic!("{m}"))
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

/// Shuts `s` down, requires init's clean exit, and returns COM1.
pub fn powered_off_cleanly(s: ktstr_harness::Session) -> String {
    let end = s.shutdown().expect("shutdown");
    let com1 = end.outcome.com1_text();
    assert_eq!(end.exit, ktstr_harness::GuestExit::Exited(0), "{com1}");
    com1
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

//! Shared by the harness's VM tests: kernel and scheduler discovery with the
//! SKIP/CI rule, one VM at a time, and the kernel's release string.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ktstr_harness::SessionConfig;

/// One VM at a time: the host has 2 cores shared with other jobs.
static VM_LOCK: Mutex<()> = Mutex::new(());

pub fn vm_lock() -> MutexGuard<'static, ()> {
    VM_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// `KTSTR_SCHEDULERS`, else `shared/schedulers` beside the checkout.
pub fn schedulers_dir() -> PathBuf {
    std::env::var_os("KTSTR_SCHEDULERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared().join("schedulers"))
}

pub fn scheduler(name: &str) -> PathBuf {
    schedulers_dir().join(name)
}

pub struct TestEnv {
    pub kernel: PathBuf,
}

/// Kernel from `KTSTR_KERNEL`, else shared/kernels/bzImage; QEMU, busybox
/// and the named schedulers must exist. Missing: panic under CI=true, else
/// SKIP (None).
pub fn test_env(test: &str, schedulers: &[&str]) -> Option<TestEnv> {
    let kernel = std::env::var_os("KTSTR_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared().join("kernels/bzImage"));
    let mut missing = Vec::new();
    if !kernel.is_file() {
        missing.push(format!("kernel {} (set KTSTR_KERNEL)", kernel.display()));
    }
    if which("qemu-system-x86_64").is_none() {
        missing.push("qemu-system-x86_64".into());
    }
    if !Path::new("/bin/busybox").is_file() {
        missing.push("/bin/busybox (Debian package busybox-static)".into());
    }
    for s in schedulers {
        if !scheduler(s).is_file() {
            missing.push(format!("{} (set KTSTR_SCHEDULERS)", scheduler(s).display()));
        }
    }
    if missing.is_empty() {
        return Some(TestEnv { kernel });
    }
    let msg = missing.join("; ");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: CI=true and missing: {msg}");
    }
    eprintln!("SKIP {test}: missing {msg}");
    None
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(prog))
            .find(|c| c.is_file())
    })
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

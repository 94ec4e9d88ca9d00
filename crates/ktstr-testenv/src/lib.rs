//! What ktstr's integration tests need from the machine, found one way: the
//! kernel (`KTSTR_KERNEL`, else the shared bzImage beside the checkout),
//! QEMU, static busybox and the sched_ext schedulers (`KTSTR_SCHEDULERS`,
//! else the shared ones). Anything missing fails the test under `CI=true`
//! and otherwise skips it with a `SKIP` line naming what is missing.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Debian's `busybox-static`.
pub const BUSYBOX: &str = "/bin/busybox";

static VM_LOCK: Mutex<()> = Mutex::new(());

/// One VM at a time per test binary: the hosts have 2 cores.
pub fn vm_lock() -> MutexGuard<'static, ()> {
    VM_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `CI=true`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `shared/` beside the checkout (the project's machines provide it).
fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// `KTSTR_SCHEDULERS`, else `shared/schedulers`.
pub fn schedulers_dir() -> PathBuf {
    std::env::var_os("KTSTR_SCHEDULERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared().join("schedulers"))
}

/// A scheduler binary by name.
pub fn scheduler(name: &str) -> PathBuf {
    schedulers_dir().join(name)
}

/// What a test needs besides the kernel.
#[derive(Clone, Copy, Default)]
pub struct Needs<'a> {
    pub qemu: bool,
    pub busybox: bool,
    pub schedulers: &'a [&'a str],
}

/// What was found.
pub struct TestEnv {
    pub kernel: PathBuf,
}

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// The environment for `test`, or `None` (SKIP) with a message; panics under CI=true.
pub fn test_env(test: &str, needs: Needs<'_>) -> Option<TestEnv> {
    let kernel = std::env::var_os("KTSTR_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared().join("kernels/bzImage"));
    let mut missing = Vec::new();
    if !kernel.is_file() {
        missing.push(format!("kernel {} (set KTSTR_KERNEL)", kernel.display()));
    }
    if needs.qemu && !on_path("qemu-system-x86_64") {
        missing.push("qemu-system-x86_64 (Debian package qemu-system-x86)".into());
    }
    if needs.busybox && !Path::new(BUSYBOX).is_file() {
        missing.push(format!("{BUSYBOX} (Debian package busybox-static)"));
    }
    for s in needs.schedulers {
        if !scheduler(s).is_file() {
            missing.push(format!("{} (set KTSTR_SCHEDULERS)", scheduler(s).display()));
        }
    }
    if missing.is_empty() {
        return Some(TestEnv { kernel });
    }
    let msg = missing.join("; ");
    assert!(!in_ci(), "{test}: CI=true and missing: {msg}");
    eprintln!("SKIP {test}: missing {msg}");
    None
}
